# writeSTEMh5ad() / readSTEMh5ad(): argument checks, and the writers (zellkonverter's
# conversion where it is installed, the core's anndata otherwise) giving one layout.
d <- make_stem_data()

test_that("a bad `file` is a stemmap condition naming it, not a base-R error", {
    res <- list(settings = list())  # never read: `file` is checked first
    for (bad in list(1, c("a.h5ad", "b.h5ad"), NA_character_, "", NULL)) {
        expect_error(writeSTEMh5ad(res, file = bad), class = "stemmap_type_error",
                     regexp = "`file` must be one file path")
        expect_error(readSTEMh5ad(bad), class = "stemmap_type_error",
                     regexp = "`file` must be one file path")
    }
    expect_error(writeSTEMh5ad(res, file.path(tempfile(), "x.h5ad")),
                 class = "stemmap_file_error", regexp = "`file` must be in an existing folder")
    expect_error(readSTEMh5ad(tempfile()), class = "stemmap_file_error", regexp = "does not exist")
    expect_error(readSTEMh5ad(tempdir()), class = "stemmap_file_error", regexp = "does not exist")
})

test_that("the engine: zellkonverter for a SingleCellExperiment where installed, else stemmap", {
    eng <- stemmap:::.stem_h5ad_engine
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    res <- list(settings = list())
    expect_identical(eng(NULL, sce, have = FALSE), "stemmap")
    expect_identical(eng(NULL, sce, have = TRUE), "zellkonverter")
    expect_identical(eng("auto", res, have = TRUE), "stemmap")  # a list: nothing to convert
    expect_identical(eng("stemmap", sce, have = TRUE), "stemmap")
    withr::with_options(list(stemmap.h5ad_engine = "stemmap"),
                        expect_identical(eng(NULL, sce, have = TRUE), "stemmap"))
    withr::with_options(list(stemmap.h5ad_engine = "nope"),
                        expect_error(eng(NULL, sce), class = "stemmap_value_error",
                                     regexp = "stemmap.h5ad_engine"))
    expect_error(eng("nope", sce), class = "stemmap_value_error", regexp = "`engine` must be one of")
    expect_error(eng("zellkonverter", res, have = TRUE), class = "stemmap_value_error",
                 regexp = "converts a SingleCellExperiment")
})

test_that("asking for zellkonverter without it names the package", {
    skip_if(requireNamespace("zellkonverter", quietly = TRUE), "zellkonverter is installed")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    expect_error(stemmap:::.stem_h5ad_engine("zellkonverter", sce), class = "stemmap_setup_error",
                 regexp = "zellkonverter")
    f <- withr::local_tempfile(fileext = ".h5ad")
    file.create(f)
    expect_error(readSTEMh5ad(f, as = "SingleCellExperiment"), class = "stemmap_setup_error",
                 regexp = "zellkonverter")
    expect_error(readSTEMh5ad(f, as = "nope"), class = "stemmap_value_error", regexp = "`as`")
})

test_that("R's copy of the layout keys is the core's table", {
    skip_if_no_core_model()
    tab <- stemmap:::.run_python(function() {
        stemmap:::.stem_bridge()
        reticulate::py_to_r(reticulate::import("stemmap._layout", convert = FALSE)$TABLE)
    })
    keys <- stats::setNames(vapply(tab, function(r) r[[3]], ""), vapply(tab, function(r) r[[1]], ""))
    expect_identical(stemmap:::.stem_anndata_keys, keys)
})

# One small mapping of an SCE (with a cell label) shared by the writers' tests.
.h5ad_fit <- local({
    cache <- NULL
    function() {
        if (is.null(cache)) {
            sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
            sce$celltype <- d$celltype
            cache <<- runSTEM(sce, d$st, coords = d$coords, epochs = 2, hidden = c(16, 8),
                              verbose = FALSE)
        }
        cache
    }
})

test_that("the own writer (engine = \"stemmap\") round-trips the results", {
    skip_if_no_core_model()
    out <- .h5ad_fit()
    f <- withr::local_tempfile(fileext = ".h5ad")
    expect_identical(writeSTEMh5ad(out, f, engine = "stemmap"), f)
    back <- readSTEMh5ad(f)
    expect_equal(back$coords, SingleCellExperiment::reducedDim(out, "STEM_spatial"), tolerance = 1e-6)
    expect_equal(unname(back$embedding), unname(SingleCellExperiment::reducedDim(out, "STEM")),
                 tolerance = 1e-6)
    expect_equal(as.matrix(back$mapping), as.matrix(stemMapping(out)), tolerance = 1e-6)
    expect_identical(back$best_spot, out$STEM_best_spot)
    expect_equal(back$confidence, out$STEM_confidence, tolerance = 1e-6)
    expect_identical(back$spot_slice, S4Vectors::metadata(out)$STEM$spot_slice)
    expect_identical(nrow(back$history), 2L)
    expect_identical(as.integer(back$settings$seed), 0L)
    # the option chooses it too
    f2 <- withr::local_tempfile(fileext = ".h5ad")
    withr::with_options(list(stemmap.h5ad_engine = "stemmap"), writeSTEMh5ad(out, f2))
    expect_identical(readSTEMh5ad(f2)$best_spot, back$best_spot)
})

test_that("zellkonverter writes the object in the same layout and reads it back", {
    skip_if_not(requireNamespace("zellkonverter", quietly = TRUE), "zellkonverter not installed")
    skip_if_no_core_model()
    out <- .h5ad_fit()
    own <- withr::local_tempfile(fileext = ".h5ad")
    zk <- withr::local_tempfile(fileext = ".h5ad")
    writeSTEMh5ad(out, own, engine = "stemmap")
    writeSTEMh5ad(out, zk, engine = "zellkonverter")
    # the same results under the same keys
    a <- readSTEMh5ad(own)
    b <- readSTEMh5ad(zk)
    for (k in c("embedding", "coords", "best_spot", "confidence", "mapping", "spot_embedding",
                "spot_slice", "history", "settings")) {
        expect_equal(b[[k]], a[[k]], tolerance = 1e-6, label = k)
    }
    # ... and the object itself: the counts as X, the cell metadata as obs
    sce <- readSTEMh5ad(zk, as = "SingleCellExperiment")
    expect_s4_class(sce, "SingleCellExperiment")
    expect_equal(unname(as.matrix(SummarizedExperiment::assay(sce, 1))), unname(d$sc * 1))
    expect_identical(sce$celltype, out$celltype)
    expect_identical(sce$STEM_best_spot, out$STEM_best_spot)
    expect_equal(SingleCellExperiment::reducedDim(sce, "STEM_spatial"),
                 SingleCellExperiment::reducedDim(out, "STEM_spatial"), tolerance = 1e-6)
    expect_false(any(c("X_stem", "stem_spatial") %in% SingleCellExperiment::reducedDimNames(sce)))
    expect_s3_class(plotSTEMPositions(sce, colour_by = "celltype"), "ggplot")
})
