d <- make_stem_data()

test_that("runSTEM() on matrices returns aligned results", {
    skip_if_no_core_model()
    res <- runSTEM(d$sc, d$st, coords = d$coords, epochs = 5, labels = d$celltype,
                   transfer = list(xpos = d$coords[, 1]), verbose = FALSE)
    expect_identical(dim(res$embedding), c(60L, 128L))
    expect_identical(rownames(res$coords), colnames(d$sc))
    expect_identical(colnames(res$coords), c("x", "y"))
    expect_true(all(res$best_spot %in% colnames(d$st)))
    expect_true(all(res$confidence > 0 & res$confidence <= 1))
    expect_s4_class(res$mapping, "dgCMatrix")
    expect_identical(dimnames(res$mapping), list(colnames(d$sc), colnames(d$st)))
    expect_true(all(Matrix::rowSums(res$mapping != 0) == 10))
    dec <- res$deconvolution$label
    expect_identical(dim(dec), c(20L, 2L))
    expect_equal(unname(rowSums(dec)), rep(1, 20), tolerance = 1e-6)
    expect_identical(dim(res$transfer$xpos), c(60L, 1L))
    expect_identical(nrow(res$history), 5L)
    expect_true(all(c("loss", "mmd") %in% colnames(res$history)))
    expect_identical(as.integer(res$settings$seed), 0L)
    expect_equal(unlist(res$settings$sigma_scale), 1)
})

test_that("the SC-SC graph is the expected spatial kernel of the mapping rows", {
    skip_if_no_core_model()
    res <- runSTEM(d$sc, d$st, coords = d$coords, epochs = 5, mapping = "dense",
                   adjacency_k = 4, verbose = FALSE)
    A <- res$adjacency
    expect_s4_class(A, "dgCMatrix")
    expect_identical(dimnames(A), list(colnames(d$sc), colnames(d$sc)))
    expect_true(all(Matrix::rowSums(A != 0) == 4))
    expect_true(all(Matrix::diag(A) == 0))
    # recompute E[K] = C K C' in R from the dense mapping and the spot coordinates
    D2 <- as.matrix(stats::dist(d$coords))^2
    nn <- mean(apply(sqrt(D2) + diag(Inf, nrow(D2)), 1, min))
    K <- exp(-D2 / (2 * nn^2))
    K[D2 > (3 * nn)^2] <- 0
    C <- as.matrix(res$mapping)
    S <- C %*% K %*% t(C)
    diag(S) <- -Inf
    top <- t(apply(S, 1, function(s) sort(order(-s)[1:4])))
    got <- t(apply(as.matrix(A), 1, function(a) sort(which(a != 0))))
    expect_gt(mean(top == got), 0.97)
    expect_equal(max(A), max(S), tolerance = 1e-4)
    none <- runSTEM(d$sc, d$st, coords = d$coords, epochs = 2, mapping = "none",
                    adjacency_k = 0, verbose = FALSE)
    expect_null(none$adjacency)
    expect_error(stemAdjacency(none), "adjacency_k")
    expect_identical(stemAdjacency(res), A)
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, adjacency_k = -1, verbose = FALSE),
                 "adjacency_k")
})

test_that("pseudo-coordinates agree with the Python core on the same data and seed", {
    py <- skip_if_no_python()
    skip_if_no_core_model()
    res <- runSTEM(d$sc, d$st, coords = d$coords, epochs = 5, seed = 3, mapping = "dense",
                   verbose = FALSE)
    dir <- run_core_on(py, d, c(
        "m = stemmap.STEM(a, b, seed=3); m.train(epochs=5, progress=False)",
        "np.savetxt(f'{d}/coords.txt', m.mapping().coords)",
        "np.savetxt(f'{d}/coords_paper.txt', m.mapping(readout='paper').coords)"
    ), "coords.txt")
    ref <- as.matrix(utils::read.table(file.path(dir, "coords.txt")))
    # float32 training: equal up to thread-dependent float32 rounding
    expect_equal(unname(res$coords), unname(ref), tolerance = 1e-3)
    expect_lt(max(abs(res$coords - ref)), 0.01)
    expect_equal(unname(rowSums(res$mapping)), rep(1, 60), tolerance = 1e-5)
    # the paper readout (softmax of embedding inner products) is passed through as well
    res_p <- runSTEM(d$sc, d$st, coords = d$coords, epochs = 5, seed = 3, mapping = "none",
                     readout = "paper", verbose = FALSE)
    ref_p <- as.matrix(utils::read.table(file.path(dir, "coords_paper.txt")))
    expect_equal(unname(res_p$coords), unname(ref_p), tolerance = 1e-3)
    expect_gt(max(abs(ref_p - ref)), 1e-3)  # the two readouts differ
    expect_identical(res_p$params$readout, "paper")
})

test_that("runSTEM() stores results on a SingleCellExperiment and leaves inputs alone", {
    skip_if_no_core_model()
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    sce$celltype <- d$celltype
    st <- SingleCellExperiment::SingleCellExperiment(list(counts = d$st))
    st$x <- d$coords[, 1]
    st$y <- d$coords[, 2]
    st$depth <- colSums(d$st)
    sce0 <- sce
    st0 <- st
    out <- runSTEM(sce, st, coords = c("x", "y"), labels = "celltype", transfer = "depth",
                   epochs = 5, verbose = FALSE)
    expect_identical(sce, sce0)
    expect_identical(st, st0)
    expect_s4_class(out, "SingleCellExperiment")
    expect_true(all(c("STEM", "STEM_spatial") %in% SingleCellExperiment::reducedDimNames(out)))
    expect_identical(dim(SingleCellExperiment::reducedDim(out, "STEM_spatial")), c(60L, 2L))
    expect_true(all(c("STEM_best_spot", "STEM_confidence", "STEM_depth") %in% colnames(SummarizedExperiment::colData(out))))
    expect_s4_class(stemMapping(out), "dgCMatrix")
    expect_identical(dim(SingleCellExperiment::colPair(out, "STEM", asSparse = TRUE)), c(60L, 60L))
    expect_null(S4Vectors::metadata(out)$STEM$adjacency)
    expect_identical(dim(stemAdjacency(out)), c(60L, 60L))
    expect_identical(rownames(stemAdjacency(out)), colnames(out))
    expect_s3_class(stemHistory(out), "data.frame")
    expect_type(stemSettings(out), "list")
    expect_identical(colnames(stemDeconvolution(out, "celltype")), c("left", "right"))
    st2 <- stemAnnotateSpots(st, out)
    expect_true(all(c("STEM_celltype_left", "STEM_celltype_right") %in% colnames(SummarizedExperiment::colData(st2))))
    expect_identical(SingleCellExperiment::reducedDimNames(st2), "STEM")
    expect_s3_class(plotSTEMPositions(out, colour_by = "celltype"), "ggplot")
    expect_s3_class(plotSTEMLoss(out), "ggplot")
    expect_s3_class(plotSTEMDeconvolution(out, st, type = "left", coords = c("x", "y")), "ggplot")
    # coordinates from a reducedDim, and two slices via sample_id
    SingleCellExperiment::reducedDim(st, "spatial") <- d$coords
    st$sample <- rep(c("A", "B"), each = 10)
    out2 <- runSTEM(sce, st, coords = "spatial", sample_id = "sample", epochs = 2,
                    mapping = "none", verbose = FALSE)
    expect_true(all(out2$STEM_slice %in% c("A", "B")))
    expect_identical(unlist(stemSettings(out2)$slices), c("A", "B"))
})

test_that("bad inputs give errors naming the argument", {
    st <- SingleCellExperiment::SingleCellExperiment(list(counts = d$st))
    expect_error(runSTEM("a", d$st, coords = d$coords), regexp = "sc.*must be a numeric genes x cells matrix")
    expect_error(runSTEM(d$sc, list(1), coords = d$coords), regexp = "st.*must be a SpatialExperiment")
    expect_error(runSTEM(d$sc, d$st), regexp = "st.*must have spatial coordinates")
    expect_error(runSTEM(d$sc, st), regexp = "st.*must have spatial coordinates; found none in")
    expect_error(runSTEM(d$sc, st, coords = c("a", "b")), regexp = "coords.*must name 2 colData columns")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords[1:5, ]), regexp = "20 spots but the coordinates")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, sample_id = c("a", "b")),
                 regexp = "sample_id.*one sample per spot")
    st2 <- d$st
    rownames(st2) <- paste0("other", seq_len(nrow(st2)))
    expect_error(runSTEM(d$sc, st2, coords = d$coords), regexp = "share no genes")
    sc2 <- d$sc
    rownames(sc2) <- NULL
    expect_error(runSTEM(sc2, d$st, coords = d$coords), regexp = "sc.*must have gene names")
    sce <- SingleCellExperiment::SingleCellExperiment(list(logcounts = d$sc))
    expect_error(runSTEM(sce, d$st, coords = d$coords), regexp = "sc.*has no assay.*counts")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, epochs = -1), regexp = "epochs.*positive integer")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, epochs = 2.5), regexp = "epochs.*whole number")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, threads = 0, verbose = FALSE),
                 regexp = "threads.*positive integer")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, labels = "nope"), regexp = "labels")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, transfer = "nope"), regexp = "transfer.*Not found")
    expect_error(stemMapping(sce), regexp = "holds no STEM results")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, readout = "nope"),
                 regexp = "readout.*must be one of")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, sigma_scale = 0),
                 regexp = "sigma_scale.*positive number")
})

test_that("a mapping round-trips through .h5ad", {
    skip_if_no_core_model()
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    out <- runSTEM(sce, d$st, coords = d$coords, epochs = 2, verbose = FALSE)
    f <- withr::local_tempfile(fileext = ".h5ad")
    expect_identical(writeSTEMh5ad(out, f), f)
    back <- readSTEMh5ad(f)
    expect_equal(back$coords, SingleCellExperiment::reducedDim(out, "STEM_spatial"), tolerance = 1e-6)
    expect_equal(as.matrix(back$mapping), as.matrix(stemMapping(out)), tolerance = 1e-6)
    expect_identical(back$best_spot, out$STEM_best_spot)
    expect_identical(nrow(back$history), 2L)
    expect_identical(as.integer(back$settings$seed), 0L)
    expect_error(readSTEMh5ad(tempfile()), regexp = "file.*does not exist")
})
