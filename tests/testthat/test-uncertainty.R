# Placement uncertainty: stemUncertainty() and plotSTEMPositions(certainty = TRUE).

test_that("runSTEM stores one radius per cell, the core's 90 % radius, on every class", {
    skip_if_no_core_model()
    d <- make_stem_data()
    run <- function(x) runSTEM(x, d$st, coords = d$coords, epochs = 2, hidden = c(8, 4),
                               verbose = FALSE, adjacency_k = 0, mapping = "dense")
    sce <- run(SingleCellExperiment::SingleCellExperiment(list(counts = d$sc)))
    r <- stemUncertainty(sce)
    expect_type(r, "double")
    expect_length(r, ncol(d$sc))
    expect_identical(names(r), colnames(d$sc))
    expect_true(all(is.finite(r)))
    # at least half the median spot spacing (the footprint every region adds)
    nn <- apply(as.matrix(stats::dist(d$coords)), 1, function(v) min(v[v > 0]))
    expect_true(all(r >= 0.5 * stats::median(nn) - 1e-9))
    # the same radii from a matrix input (a list) and a SummarizedExperiment
    expect_equal(stemUncertainty(run(d$sc)), r)
    expect_equal(stemUncertainty(run(SummarizedExperiment::SummarizedExperiment(list(counts = d$sc)))), r)
    # certainty = TRUE draws with opacity by the radius
    p <- plotSTEMPositions(sce, certainty = TRUE)
    expect_s3_class(p, "ggplot")
    alpha <- ggplot2::ggplot_build(p)$data[[1]]$alpha
    expect_length(alpha, length(r))
    expect_identical(alpha[order(r)], sort(alpha, decreasing = TRUE))  # opaque = certain
    expect_true(max(alpha) > min(alpha))
})

test_that("stemUncertainty without stored radii is a classed error, not a traceback", {
    older <- list(settings = list(), embedding = matrix(0, 2, 2))  # stored without radii
    e <- expect_error(stemUncertainty(older), class = "stemmap_value_error")
    expect_match(conditionMessage(e), "placement uncertainty")
    expect_error(stemUncertainty(list()), class = "stemmap_value_error")  # no STEM results
})

test_that("plotSTEMPositions(certainty =) must be TRUE or FALSE", {
    e <- expect_error(plotSTEMPositions(list(), certainty = "yes"), class = "stemmap_type_error")
    expect_match(conditionMessage(e), "certainty")
})
