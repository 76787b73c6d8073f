d <- make_stem_data()

test_that("stemEstimateResources() reports memory, time and the batches chosen", {
    skip_if_no_python()
    small <- stemEstimateResources(2000, 300, 200, device = "cpu")
    expect_s3_class(small, "data.frame")
    expect_identical(nrow(small), 1L)
    expect_true(is.na(small$cell_batch_size) && is.na(small$spot_batch_size))
    expect_identical(small$reason, "")
    expect_equal(small$total_minutes, 400 * small$step_seconds / 60, tolerance = 1e-6)
    big <- stemEstimateResources(100000, 5000, 2000, device = "cpu")
    expect_lt(big$cell_batch_size, 100000)
    expect_lt(big$spot_batch_size, 5000)
    expect_lt(big$step_GiB, big$full_batch_GiB)
    expect_gt(big$full_batch_step_seconds, big$step_seconds)
    expect_true(nzchar(big$reason))
    # objects: their columns and shared genes
    obj <- stemEstimateResources(d$sc, d$st, device = "cpu")
    expect_true(is.na(obj$cell_batch_size))
    expect_error(stemEstimateResources(1e7, 1e6, 2000, device = "cpu", cell_batch_size = 1e7),
                 regexp = "does not fit in memory")
})

test_that("stemEstimateResources() checks its arguments", {
    expect_error(stemEstimateResources(-1, 10, 10), regexp = "n_cells.*whole number")
    expect_error(stemEstimateResources(10, "a", 10), regexp = "n_spots.*must be a number or an object")
    expect_error(stemEstimateResources(10, 10), regexp = "n_genes.*is needed")
})
