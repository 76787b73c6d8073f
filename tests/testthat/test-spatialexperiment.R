d <- make_stem_data()

test_that("runSTEM() reads spatialCoords() and sample_id of a SpatialExperiment", {
    skip_if_not_installed("SpatialExperiment", minimum_version = NULL)
    skip_if_no_core_model()
    spe <- SpatialExperiment::SpatialExperiment(
        assays = list(counts = d$st), spatialCoords = d$coords,
        sample_id = rep(c("s1", "s2"), each = 10)
    )
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    out <- runSTEM(sce, spe, epochs = 2, verbose = FALSE)
    expect_true(all(out$STEM_slice %in% c("s1", "s2")))
    one <- spe[, spe$sample_id == "s1"]
    out1 <- runSTEM(sce, one, epochs = 2, verbose = FALSE)
    ps <- stemPseudoSpatial(out1)
    expect_s4_class(ps, "SpatialExperiment")
    expect_identical(dim(SpatialExperiment::spatialCoords(ps)), c(60L, 2L))
})

test_that("stemPseudoSpatial() names the package it needs", {
    if (requireNamespace("SpatialExperiment", quietly = TRUE)) skip("SpatialExperiment is installed")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    expect_error(stemPseudoSpatial(sce), regexp = "SpatialExperiment.*not installed")
})
