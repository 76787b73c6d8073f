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

test_that("a SpatialExperiment has a method of its own: spatialCoords() with repeated barcodes, sample_id", {
    # Without the package (Debian 12 has none) a stand-in class of that name checks the
    # dispatch and what the method does with what spatialCoords() returns; the stand-in's
    # spatialCoords() is the mocked reader .spe_spatial_coords(). With the package, the
    # real class and accessor.
    st <- d$st
    colnames(st) <- rep(paste0("bc", 1:10), 2)  # cbind() of two Visium samples
    xy <- d$coords
    rownames(xy) <- colnames(st)
    sid <- rep(c("A", "B"), each = 10)
    if (requireNamespace("SpatialExperiment", quietly = TRUE)) {
        spe <- SpatialExperiment::SpatialExperiment(assays = list(counts = st),
                                                    spatialCoords = xy, sample_id = sid)
    } else {
        env <- new.env()
        methods::setClass("SpatialExperiment", contains = "SingleCellExperiment", where = env)
        withr::defer(methods::removeClass("SpatialExperiment", where = env))
        spe <- methods::new("SpatialExperiment",
                            SingleCellExperiment::SingleCellExperiment(list(counts = st)))
        spe$sample_id <- sid
        ns <- asNamespace("stemmap")
        orig <- get(".spe_spatial_coords", envir = ns)
        utils::assignInNamespace(".spe_spatial_coords", function(st) xy, "stemmap")
        withr::defer(utils::assignInNamespace(".spe_spatial_coords", orig, "stemmap"))
    }
    got <- stemmap:::.st_input(spe)
    expect_identical(vapply(got$slices, `[[`, "", "name"), c("A", "B"))
    expect_identical(unname(got$slices[[2]]$coords), unname(d$coords[11:20, ] + 0))
    expect_identical(got$read, list(st.assay.type = "counts"))
    # named coordinates still win over spatialCoords() (and then one slice)
    spe$px <- d$coords[, 1] * 10
    spe$py <- d$coords[, 2] * 10
    got2 <- stemmap:::.st_input(spe, coords = c("px", "py"))
    expect_length(got2$slices, 1L)
    expect_identical(unname(got2$slices[[1]]$coords), unname(d$coords * 10 + 0))
})
