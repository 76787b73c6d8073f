d <- make_stem_data()

# Issue 26: an explicit argument wins over a preset, a preset over the core's table
# (python/src/stemmap/_resolve.py), and the settings record where each value came from.

.presets <- function() {
    stemmap:::.run_python(function() {
        stemmap:::.stem_call(stemmap:::.stem_bridge(), "defaults")$value$presets
    })
}

# an explicit value for each preset key that R has, different from every preset's value
.explicit <- list(epochs = 3L, lr = 0.001, cell_batch_size = 16L, sigma_scale = 2,
                  hidden = c(16L, 8L), readout = "hybrid", expression_weight = 0.5,
                  rounds = 1L)

# where the settings keep a key's value
.setting <- function(s, key) {
    if (key %in% c("readout", "expression_weight", "rounds")) s$mapping[[key]] else s[[key]]
}

test_that("runSTEM(preset = 'quick', epochs = 3) trains 3 epochs", {
    skip_if_no_core_model()
    res <- runSTEM(d$sc, d$st, coords = d$coords, preset = "quick", epochs = 3, hidden = 8,
                   adjacency_k = 0, mapping = "none", verbose = FALSE)
    expect_identical(nrow(res$history), 3L)
    expect_identical(as.integer(res$settings$epochs), 3L)
    expect_identical(res$settings$resolved$epochs$source, "caller")
    # what was not given comes from the preset
    q <- .presets()$quick
    expect_equal(res$settings$lr, q$lr)
    expect_identical(res$settings$resolved$lr$source, "preset")
    expect_equal(res$settings$mapping$rounds, q$rounds)
    expect_identical(res$settings$resolved$rounds$source, "preset")
})

test_that("every preset key R has: the explicit value wins over each preset", {
    skip_if_no_core_model()
    presets <- .presets()
    r_args <- names(formals(stemmap:::.stem_params))
    keys <- unique(unlist(lapply(presets, names)))
    # the schedule's finer keys are Python's and the CLI's only (R has no such arguments)
    expect_setequal(setdiff(keys, r_args), c("lr_step", "lr_gamma", "warmup"))
    checked <- 0L
    for (preset in names(presets)) {
        for (key in intersect(names(presets[[preset]]), r_args)) {
            value <- .explicit[[key]]
            expect_false(identical(unlist(presets[[preset]][[key]]), value) &&
                         key != "readout", label = paste(preset, key))
            if (key == "readout" && identical(presets[[preset]][[key]], value)) value <- "paper"
            args <- list(d$sc, d$st, coords = d$coords, preset = preset, epochs = 2L,
                         hidden = 8L, adjacency_k = 0, mapping = "none", verbose = FALSE)
            args[[key]] <- value
            res <- do.call(runSTEM, args)
            label <- sprintf("preset %s, %s", preset, key)
            expect_equal(unlist(.setting(res$settings, key)), unlist(value), label = label)
            expect_identical(res$settings$resolved[[key]]$source, "caller", label = label)
            checked <- checked + 1L
        }
    }
    expect_gte(checked, 10L)
})
