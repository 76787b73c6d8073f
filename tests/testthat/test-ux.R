# User experience: gene matching, metadata column names, threads, plots.
d <- make_stem_data()

test_that("gene_match = \"case\" matches case-insensitive names and says so in the error", {
    skip_if_no_core_model()
    st_up <- d$st
    rownames(st_up) <- toupper(rownames(st_up))
    err <- expect_error(runSTEM(d$sc, st_up, coords = d$coords, epochs = 2, verbose = FALSE),
                        regexp = "share no genes")
    expect_match(conditionMessage(err), "gene_match = \"case\".*share 30 genes")
    st0 <- st_up
    res <- runSTEM(d$sc, st_up, coords = d$coords, epochs = 2, gene_match = "case",
                   mapping = "none", verbose = FALSE)
    expect_identical(st_up, st0)  # the caller's gene names are not changed
    expect_identical(res$settings$gene_match, "case")
    expect_identical(as.integer(res$settings$genes_matched_by_rule), 30L)
    expect_identical(as.integer(res$settings$genes_used), 30L)
    expect_error(runSTEM(d$sc, st_up, coords = d$coords, gene_match = "fuzzy"),
                 regexp = "gene_match.*must be one of")
})

test_that("threads is sent to the core only when set, and checked in R", {
    expect_false("threads" %in% names(stemmap:::.stem_params()))
    expect_identical(stemmap:::.stem_params(threads = 2)$threads, 2L)
    expect_error(stemmap:::.stem_params(threads = 0), regexp = "threads.*whole number >= 1")
    expect_error(stemmap:::.stem_params(threads = 1.5), regexp = "threads.*whole number")
})

test_that("deconvolution columns have the same names for every class, without warnings", {
    skip_if_no_core_model()
    labs <- ifelse(d$celltype == "left", "Anterior somitic tissues", "Gut tube/foregut")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    sce$celltype <- labs
    st_sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$st))
    st_sce$x <- d$coords[, 1]
    st_sce$y <- d$coords[, 2]
    out <- runSTEM(sce, st_sce, coords = c("x", "y"), labels = "celltype", epochs = 2,
                   mapping = "none", verbose = FALSE)
    expect_identical(colnames(stemDeconvolution(out)), sort(unique(labs)))  # original names
    want <- c("STEM_celltype_Anterior_somitic_tissues", "STEM_celltype_Gut_tube_foregut")
    a <- expect_no_warning(stemAnnotateSpots(st_sce, out))
    got_sce <- grep("^STEM_celltype", colnames(SummarizedExperiment::colData(a)), value = TRUE)
    expect_identical(sort(got_sce), want)
    skip_if_not_installed("SeuratObject")
    st_seu <- SeuratObject::CreateSeuratObject(counts = methods::as(d$st, "dgCMatrix"),
                                               assay = "Spatial")
    b <- expect_no_warning(stemAnnotateSpots(st_seu, out))
    got_seu <- grep("^STEM_celltype", colnames(b[[]]), value = TRUE)
    expect_identical(got_seu, got_sce)
    expect_equal(b[[]][, want[1]], SummarizedExperiment::colData(a)[, want[1]])
})

test_that("metadata column names: one rule, unique", {
    expect_identical(stemmap:::.stem_colnames(c("a b", "a-b", "ok.1")),
                     c("STEM_a_b", "STEM_a_b_1", "STEM_ok.1"))
})
