d <- make_stem_data()

# R never repeats a default of the core: arguments that the core defaults are NULL in R,
# NULL is not sent to Python, and the documentation states the core's value. These tests
# read the core's table (python/src/stemmap/_defaults.py) through the bridge and fail
# when R and Python disagree.

.core_table <- function() {
    stemmap:::.run_python(function() {
        stemmap:::.stem_call(stemmap:::.stem_bridge(), "defaults")$value
    })
}

# Formals of a function or of an S4 method (whose own arguments live in .local).
.verb_formals <- function(f, sig = NULL) {
    if (is.null(sig)) return(formals(f))
    m <- methods::getMethod(f, sig, where = asNamespace("stemmap"))
    b <- body(m)
    if (is.call(b) && length(b) >= 2L && is.call(b[[2L]]) &&
        identical(b[[2L]][[2L]], as.name(".local"))) {
        return(formals(eval(b[[2L]][[3L]])))
    }
    formals(m)
}

# The text of each \item of an Rd file's \arguments, by argument name.
.rd_arguments <- function(rd_name) {
    rd <- tools::Rd_db("stemmap")[[rd_name]]
    tags <- vapply(rd, function(x) attr(x, "Rd_tag"), "")
    out <- list()
    for (it in rd[[which(tags == "\\arguments")]]) {
        if (!identical(attr(it, "Rd_tag"), "\\item")) next
        txt <- paste(as.character(structure(it[[2L]], class = "Rd"), deparse = TRUE), collapse = "")
        for (nm in trimws(strsplit(paste(unlist(it[[1L]]), collapse = ""), ",")[[1L]])) {
            out[[nm]] <- txt
        }
    }
    out
}

# How the documentation writes a value: 400, 0.002, "hybrid", c(512, 256, 128), FALSE.
.doc_value <- function(v) {
    v <- unlist(v)
    if (is.character(v)) return(paste0("\"", v, "\""))
    s <- as.character(v)
    if (length(v) > 1L) paste0("c(", paste(s, collapse = ", "), ")") else s
}

test_that("every R default is the core's and is documented with its value", {
    skip_if_no_python()
    tab <- .core_table()
    verbs <- list(
        list(fun = "runSTEM", sig = "ANY", rd = "runSTEM.Rd",
             groups = c("model", "train", "mapping"), min = 10L),
        list(fun = stemEstimateResources, sig = NULL, rd = "stemEstimateResources.Rd",
             groups = c("model", "train"), min = 5L),
        list(fun = "stemAttribution", sig = "ANY", rd = "stemAttribution.Rd",
             groups = "attribution", min = 3L),
        list(fun = stemSpatialDominantGenes, sig = NULL, rd = "stemSpatialDominantGenes.Rd",
             groups = c("analysis", "spatial_dominant_genes"), min = 3L),
        list(fun = stemAxisGenes, sig = NULL, rd = "stemSpatialDominantGenes.Rd",
             groups = c("analysis", "axis_genes"), min = 1L),
        list(fun = stemExpressionTrends, sig = NULL, rd = "stemSpatialDominantGenes.Rd",
             groups = c("analysis", "expression_trends"), min = 4L),
        list(fun = stemNeighbourhoodEnrichment, sig = NULL, rd = "stemSpatialDominantGenes.Rd",
             groups = c("analysis", "neighbourhood_enrichment"), min = 3L)
    )
    for (v in verbs) {
        f <- .verb_formals(v$fun, v$sig)
        docs <- .rd_arguments(v$rd)
        # a group of the table, or (analysis) the group of one function
        core <- if (v$groups[[1L]] == "analysis") tab$analysis[[v$groups[[2L]]]] else
            do.call(c, unname(tab[v$groups]))
        shared <- intersect(names(f), names(core))
        label <- if (is.character(v$fun)) v$fun else paste(v$rd, v$groups[[length(v$groups)]])
        expect_gte(length(shared), v$min, label = paste(label, "arguments in the core's table"))
        for (nm in shared) {
            # NULL in R: "the core's default" (not sent to Python)
            expect_null(f[[nm]], label = sprintf("%s(%s =) default", label, nm))
            expect_false(is.null(docs[[nm]]), label = sprintf("%s: %s documented", label, nm))
            if (is.null(core[[nm]])) next  # the core decides at run time (e.g. batch sizes)
            # "Default (`NULL`): `value`" (several values: one per function of the page)
            marker <- "Default (\\code{NULL}):"
            value <- sprintf("\\code{%s}", .doc_value(core[[nm]]))
            after <- strsplit(docs[[nm]], marker, fixed = TRUE)[[1L]][-1L]
            expect_true(any(grepl(value, after, fixed = TRUE)),
                        label = sprintf("%s: the documentation of %s says '%s %s'", v$rd, nm,
                                        marker, value))
        }
    }
    # R keeps no copy of the choices: a wrong one is the core's error, listing the core's
    d <- make_stem_data()
    for (arg in c("readout", "preset", "gene_match")) {
        wrong <- stats::setNames(list("nope"), arg)
        e <- expect_error(do.call(runSTEM, c(list(d$sc, d$st, coords = d$coords, epochs = 1L,
                                                  verbose = FALSE), wrong)),
                          class = "stemmap_value_error")
        for (ch in unlist(tab$choices[[arg]])) expect_match(conditionMessage(e), ch, fixed = TRUE)
    }
})

test_that("NULL arguments are not sent to Python", {
    p <- stemmap:::.stem_params(verbose = FALSE)
    expect_identical(sort(names(p)), c("keep_model", "progress"))
    p <- stemmap:::.stem_params(epochs = 3, sigma_scale = 0.5, preset = "paper", verbose = FALSE)
    expect_identical(p$epochs, 3L)
    expect_identical(p$sigma_scale, 0.5)
    expect_identical(p$preset, "paper")
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, preset = "turbo"),
                 regexp = "preset.*must be one of")
})

test_that("runSTEM(preset = 'paper') gives the sigma, readout and adjacency of STEM.train(preset='paper')", {
    py <- skip_if_no_python()
    skip_if_no_core_model()
    # preset "paper" trains its 400 epochs; small layers keep that short
    res <- runSTEM(d$sc, d$st, coords = d$coords, preset = "paper", hidden = c(16, 8),
                   seed = 3, adjacency_k = 5, mapping = "none", verbose = FALSE)
    dir <- run_core_on(py, d, c(
        "m = stemmap.STEM(a, b, seed=3, hidden=(16, 8)); m.train(preset='paper', progress=False)",
        "mp = m.mapping()",
        "A = mp.sc_adjacency(5, weighted=True).tocoo()",
        "np.savetxt(f'{d}/adj.txt', np.column_stack([A.row, A.col, A.data]))",
        "with open(f'{d}/settings.txt', 'w') as fh:",
        "    fh.write(f\"sigma\\t{m.data.slices[0].sigma!r}\\nreadout\\t{mp.readout}\\n\")",
        "    fh.write(f\"sigma_scale\\t{m.settings['sigma_scale']}\\nepochs\\t{m.settings['epochs']}\\n\")"
    ), "settings.txt")
    kv <- utils::read.delim(file.path(dir, "settings.txt"), header = FALSE,
                            colClasses = "character")
    ref <- stats::setNames(as.list(kv[[2]]), kv[[1]])
    ref$sigma <- as.numeric(ref$sigma)
    ref$epochs <- as.integer(ref$epochs)
    s <- res$settings
    expect_equal(unlist(s$sigma), unlist(ref$sigma), tolerance = 1e-10)
    nn <- apply(as.matrix(dist(d$coords)) + diag(Inf, nrow(d$coords)), 1, min)
    expect_equal(unlist(s$sigma), 0.5 * mean(nn), tolerance = 1e-10)  # the paper's sigma
    expect_identical(s$mapping$readout, "paper")
    expect_identical(ref$readout, "paper")
    expect_equal(unlist(s$sigma_scale), 0.5)
    expect_equal(unlist(s$epochs), unlist(ref$epochs))
    A <- as.matrix(utils::read.table(file.path(dir, "adj.txt")))
    ref_adj <- Matrix::sparseMatrix(i = A[, 1] + 1, j = A[, 2] + 1, x = A[, 3], dims = c(60, 60))
    got <- res$adjacency
    expect_s4_class(got, "dgCMatrix")
    # the same graph (embedding inner products: the paper's basis), up to float32 rounding
    expect_gt(mean((as.matrix(got) != 0) == (as.matrix(ref_adj) != 0)), 0.99)
    both <- as.matrix(got) != 0 & as.matrix(ref_adj) != 0
    expect_equal(as.matrix(got)[both], as.matrix(ref_adj)[both], tolerance = 1e-3)
})

test_that("runSTEM(cell_batch_size =, expression_weight =) reach the core", {
    skip_if_no_python()
    res <- runSTEM(d$sc, d$st, coords = d$coords, epochs = 2L, hidden = c(16, 8), seed = 1,
                   cell_batch_size = 16, expression_weight = 3, adjacency_k = 0,
                   mapping = "none", verbose = FALSE)
    expect_identical(as.integer(res$settings$cell_batch_size), 16L)
    expect_equal(res$settings$mapping$expression_weight, 3)
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, cell_batch_size = 2.5, verbose = FALSE),
                 regexp = "cell_batch_size")
    e <- expect_error(runSTEM(d$sc, d$st, coords = d$coords, epochs = 1L, expression_weight = -1,
                              verbose = FALSE), class = "stemmap_value_error")
    expect_match(conditionMessage(e), "expression_weight", fixed = TRUE)
})

test_that("runSTEM(preset = 'quick') takes the preset's layers and readout where left NULL", {
    skip_if_no_python()
    q <- .core_table()$presets$quick
    res <- runSTEM(d$sc, d$st, coords = d$coords, preset = "quick", seed = 1,
                   adjacency_k = 0, mapping = "none", verbose = FALSE)
    expect_equal(unlist(res$settings$hidden), unlist(q$hidden))
    expect_equal(res$settings$mapping$expression_weight, q$expression_weight)
    expect_identical(as.integer(res$settings$mapping$rounds), as.integer(q$rounds))
    expect_identical(as.integer(res$settings$epochs), as.integer(q$epochs))
    # what the caller sets wins over the preset
    own <- runSTEM(d$sc, d$st, coords = d$coords, preset = "quick", seed = 1, hidden = c(16, 8),
                   rounds = 1, expression_weight = 0.5, adjacency_k = 0, mapping = "none",
                   verbose = FALSE)
    expect_equal(unlist(own$settings$hidden), c(16, 8))
    expect_identical(as.integer(own$settings$mapping$rounds), 1L)
    expect_equal(own$settings$mapping$expression_weight, 0.5)
})

test_that("runSTEM(rounds =) reaches the readout; a bad value is the core's R condition", {
    skip_if_no_python()
    one <- runSTEM(d$sc, d$st, coords = d$coords, epochs = 2L, hidden = c(16, 8), seed = 1,
                   rounds = 1, adjacency_k = 0, mapping = "dense", verbose = FALSE)
    expect_identical(as.integer(one$settings$mapping$rounds), 1L)
    two <- runSTEM(d$sc, d$st, coords = d$coords, epochs = 2L, hidden = c(16, 8), seed = 1,
                   adjacency_k = 0, mapping = "dense", verbose = FALSE)
    expect_identical(as.integer(two$settings$mapping$rounds), 2L)  # the core's default
    # the mapping is the rounds' mean; cells are placed by round 1, as with one round
    expect_false(isTRUE(all.equal(as.matrix(one$mapping), as.matrix(two$mapping))))
    expect_equal(two$coords, one$coords, tolerance = 1e-5)
    expect_identical(two$best_spot, one$best_spot)
    # every output agrees with the matrix it reads: coords = placement C1 %*% spot coordinates
    # (with one round the placement is the mapping itself)
    xy <- as.matrix(d$coords)
    expect_equal(unname(two$coords), unname(as.matrix(stemPlacement(two)) %*% xy), tolerance = 1e-5)
    expect_false(isTRUE(all.equal(unname(two$coords), unname(as.matrix(stemMapping(two)) %*% xy))))
    expect_equal(as.matrix(stemPlacement(one)), as.matrix(stemMapping(one)), tolerance = 1e-6)
    expect_equal(unname(one$coords), unname(as.matrix(stemMapping(one)) %*% xy), tolerance = 1e-5)
    e <- expect_error(runSTEM(d$sc, d$st, coords = d$coords, epochs = 1L, rounds = 0,
                              verbose = FALSE), class = "stemmap_value_error")
    expect_match(conditionMessage(e), "rounds", fixed = TRUE)
    expect_error(runSTEM(d$sc, d$st, coords = d$coords, rounds = "two", verbose = FALSE),
                 regexp = "rounds")
})
