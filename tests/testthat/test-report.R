# The report template, stemReport(), the example data and the download's offline paths.

test_that("the report template can be drafted with rmarkdown::draft()", {
    skip_if_not_installed("rmarkdown")
    dir <- withr::local_tempdir()
    f <- file.path(dir, "my-report.Rmd")
    rmarkdown::draft(f, template = "stemmap-report", package = "stemmap", edit = FALSE)
    expect_true(file.exists(f))
    txt <- readLines(f)
    expect_true(any(grepl("^# Mapping confidence", txt)))
    expect_true(any(grepl("object:", txt, fixed = TRUE)))
})

test_that("stemReport() renders settings, loss, positions, deconvolution and confidence", {
    skip_if_not_installed("rmarkdown")
    skip_if_not(rmarkdown::pandoc_available(), "pandoc is not available")
    skip_if_no_core_model()
    d <- make_stem_data()
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    sce$celltype <- d$celltype
    st <- SingleCellExperiment::SingleCellExperiment(list(counts = d$st))
    st$x <- d$coords[, 1]
    st$y <- d$coords[, 2]
    out <- runSTEM(sce, st, coords = c("x", "y"), labels = "celltype", epochs = 5, verbose = FALSE)
    dir <- withr::local_tempdir()
    html <- file.path(dir, "report.html")
    expect_identical(stemReport(out, html, st = st, coords = c("x", "y")), html)
    expect_true(file.exists(html))
    txt <- paste(readLines(html, warn = FALSE), collapse = "\n")
    for (s in c("Settings", "Training loss", "Reconstructed positions", "Spot deconvolution",
                "Mapping confidence", "Session information", "Spot maps of the")) {
        expect_true(grepl(paste0(">", s), txt, fixed = TRUE), label = paste("section", s))
    }
    expect_gte(lengths(regmatches(txt, gregexpr("<img", txt, fixed = TRUE))), 6L)
    # from an .rds path, without the spatial object
    rds <- file.path(dir, "mapped.rds")
    saveRDS(out, rds)
    html2 <- file.path(dir, "sub", "report2.html")
    stemReport(rds, html2, label = "celltype")
    expect_true(file.exists(html2))
    expect_true(grepl("without spot maps", paste(readLines(html2, warn = FALSE), collapse = "\n"),
                      fixed = TRUE))
})

test_that("stemReport() rejects objects without a mapping", {
    skip_if_not_installed("rmarkdown")
    skip_if_not(rmarkdown::pandoc_available(), "pandoc is not available")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = matrix(1, 2, 2)))
    expect_error(stemReport(sce, tempfile(fileext = ".html")), regexp = "holds no STEM results")
    expect_error(stemReport(sce, character()), regexp = "output_file")
})

test_that("stemExampleData() builds a semi-simulated SCE pair through the core", {
    skip_if_no_core_model()
    ex <- stemExampleData(source = "generated", grid = c(8, 6), n_cells = 200, seed = 1)
    expect_s4_class(ex$sc, "SingleCellExperiment")
    expect_identical(ncol(ex$sc), 200L)
    expect_identical(rownames(ex$sc), rownames(ex$st))
    expect_true(all(c("x", "y", "n_cells") %in% colnames(SummarizedExperiment::colData(ex$st))))
    expect_identical(dim(SingleCellExperiment::reducedDim(ex$sc, "spatial_true")), c(200L, 2L))
    p <- S4Vectors::metadata(ex$st)$proportions
    expect_identical(nrow(p), ncol(ex$st))
    expect_equal(unname(rowSums(p)), rep(1, ncol(ex$st)), tolerance = 1e-6)
    expect_identical(ex$info$source, "generated")
    expect_true(all(ex$sc$true_spot %in% c(colnames(ex$st), NA)))
    expect_error(stemExampleData(grid = 3), regexp = "grid")
    expect_error(stemExampleData(file = tempfile()), regexp = "file")
})

test_that("stemDownloadEmbryo() fails clearly offline and on a checksum mismatch", {
    cache <- withr::local_tempdir()
    expect_error(stemDownloadEmbryo(cache = cache, url = paste0("file://", tempfile())),
                 regexp = "Could not download")
    expect_false(file.exists(file.path(cache, "mouseEmbryo2.rda")))
    # a download whose checksum does not match is not cached
    src <- withr::local_tempfile(fileext = ".rda")
    writeBin(as.raw(1:10), src)
    expect_error(stemDownloadEmbryo(cache = cache, url = paste0("file://", src),
                                    md5 = strrep("0", 32)),
                 regexp = "Checksum mismatch")
    expect_false(file.exists(file.path(cache, "mouseEmbryo2.rda")))
    # a good download is cached with its checksum; a later change to it is caught
    f <- stemDownloadEmbryo(cache = cache, url = paste0("file://", src))
    expect_true(file.exists(f))
    expect_identical(stemDownloadEmbryo(cache = cache, url = "file:///nowhere"), f)
    writeBin(as.raw(1:3), f)
    expect_error(stemDownloadEmbryo(cache = cache), regexp = "Checksum mismatch")
    expect_error(stemDownloadEmbryo(cache = cache, md5 = "abc"), regexp = "md5")
})
