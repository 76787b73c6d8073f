# Hardening (issue 16): every error is a classed R condition (`stemmap_error` and a
# subclass per kind) with the core's message, the core's input warnings are R
# warnings, R-only input problems are caught in R, and an offline session without a
# named Python stops before basilisk tries to download anything.

# The condition `expr` signals, or its value when it signals none.
.catch <- function(expr) tryCatch(expr, error = function(e) e)

expect_stem_error <- function(expr, kind, regexp) {
    e <- .catch(expr)
    expect_s3_class(e, paste0("stemmap_", kind, "_error"))
    expect_s3_class(e, "stemmap_error")
    expect_match(conditionMessage(e), regexp)
    # never a raw Python error: no reticulate class, no traceback
    expect_false(any(grepl("^python\\.", class(e))))
    expect_false(grepl("Traceback", conditionMessage(e), fixed = TRUE))
    invisible(e)
}

run_small <- function(d, ..., coords = d$coords) {
    runSTEM(d$sc, d$st, coords = coords, epochs = 2L, hidden = c(8L), verbose = FALSE,
            mapping = "none", adjacency_k = 0L, ...)
}

# ---- R-only checks (no Python needed) -----------------------------------------------

test_that("verbose must be TRUE or FALSE (argument or option)", {
    d <- make_stem_data()
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, verbose = NA), "type",
                      "verbose.*TRUE or FALSE")
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, verbose = "yes"), "type", "verbose")
    withr::local_options(stemmap.verbose = NA)
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords), "type", "stemmap.verbose")
})

test_that("logical flags must be TRUE or FALSE", {
    d <- make_stem_data()
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, normalized = NA, verbose = FALSE),
                      "type", "normalized.*TRUE or FALSE")
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, keep_model = "TRUE", verbose = FALSE),
                      "type", "keep_model")
})

test_that("duplicated cell names are refused", {
    d <- make_stem_data()
    sc <- d$sc
    colnames(sc)[2:3] <- colnames(sc)[1]
    expect_stem_error(runSTEM(sc, d$st, coords = d$coords, verbose = FALSE),
                      "value", "sc.*1 duplicated column \\(cell\\) name.*cell1")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = sc))
    expect_stem_error(runSTEM(sce, d$st, coords = d$coords, verbose = FALSE),
                      "value", "duplicated column")
})

test_that("coordinates with row names are aligned by them, or refused when they do not match", {
    d <- make_stem_data()
    xy <- d$coords
    rownames(xy) <- colnames(d$st)
    perm <- rev(seq_len(nrow(xy)))
    aligned <- stemmap:::.as_coords(xy[perm, ], ncol(d$st), "argument coords", colnames(d$st))
    expect_identical(unname(aligned), unname(xy[, 1:2] + 0))
    df <- as.data.frame(xy[perm, ])
    aligned_df <- stemmap:::.as_coords(df, ncol(d$st), "argument coords", colnames(d$st))
    expect_identical(unname(aligned_df), unname(xy[, 1:2] + 0))
    bad <- xy
    rownames(bad)[1] <- "elsewhere"
    expect_stem_error(runSTEM(d$sc, d$st, coords = bad, verbose = FALSE),
                      "value", "row names of the spatial coordinates.*do not match")
    # the caller's coordinates are not touched
    expect_identical(rownames(bad)[1], "elsewhere")
})

test_that("3-D coordinates are refused, not cut to x/y", {
    d <- make_stem_data()
    xyz <- cbind(d$coords, z = 1)
    expect_stem_error(runSTEM(d$sc, d$st, coords = xyz, verbose = FALSE),
                      "value", "2 columns.*found 3")
    expect_stem_error(runSTEM(d$sc, d$st, coords = as.data.frame(xyz), verbose = FALSE),
                      "value", "found 3")
})

test_that("numbers that do not fit are refused in R", {
    d <- make_stem_data()
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, seed = 2^40, verbose = FALSE),
                      "value", "seed")
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, epochs = Inf, verbose = FALSE),
                      "value", "epochs")
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, alpha = NaN, verbose = FALSE),
                      "value", "alpha")
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, hidden = 0, verbose = FALSE),
                      "value", "hidden")
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, seed = "a", verbose = FALSE),
                      "type", "seed")
})

test_that("integer NA counts travel as NaN, never as INT_MIN", {
    m <- matrix(1:4, 2)
    m[2, 1] <- NA_integer_
    p <- stemmap:::.pack(m)
    expect_identical(p$dtype, "float64")
    v <- stemmap:::.unpack(p)
    expect_true(is.na(v[2, 1]))  # R reads its NA back; Python sees NaN (below)
    expect_identical(stemmap:::.pack(matrix(1:4, 2))$dtype, "int32")
})

test_that("tryCatch(stemmap_error = ) catches stemmap's errors", {
    d <- make_stem_data()
    got <- tryCatch(runSTEM(d$sc, d$st, verbose = FALSE),
                    stemmap_error = function(e) "caught")
    expect_identical(got, "caught")
})

test_that("offline without a named Python stops before any download, with one classed message", {
    # "basilisk" forces basilisk, as when no Python is named and none was recorded at install
    withr::local_options(stemmap.python = "basilisk", stemmap.offline = TRUE)
    withr::local_envvar(STEMMAP_PYTHON = "", BASILISK_EXTERNAL_CONDA = tempfile("noconda"))
    skip_if(utils::packageVersion("basilisk") >= "1.21.0", "basilisk 1.21+ builds virtualenvs")
    ok <- stemmap:::.stem_basilisk_usable()
    expect_false(ok)
    expect_match(attr(ok, "reason"), "no conda.*cannot download")
    e <- expect_stem_error(stemPythonInfo(), "setup", "No Python to run the stemmap core")
    expect_match(conditionMessage(e), "stemmap.python")
    expect_match(conditionMessage(e), "STEMMAP_PYTHON")
    d <- make_stem_data()
    expect_stem_error(run_small(d), "setup", "No Python")
    # nothing was fetched or installed where basilisk would have put conda
    expect_false(file.exists(Sys.getenv("BASILISK_EXTERNAL_CONDA")))
})

test_that(".stem_basilisk_usable() answers TRUE when conda exists or can be downloaded", {
    skip_if(utils::packageVersion("basilisk") >= "1.21.0", "basilisk 1.21+ builds virtualenvs")
    fake <- tempfile("conda")
    dir.create(file.path(fake, "bin"), recursive = TRUE)
    file.create(file.path(fake, "bin", "conda"))
    expect_true(as.logical(stemmap:::.stem_basilisk_usable(conda_dir = fake, online = FALSE)))
    expect_true(as.logical(stemmap:::.stem_basilisk_usable(conda_dir = tempfile(), online = TRUE)))
    expect_stem_error(stemmap:::.stem_basilisk_usable(TRUE, conda_dir = tempfile(), online = FALSE),
                      "setup", "cannot download")
})

test_that("the Python core's conditions are re-signalled in R with their class and message", {
    env <- list(stemmap_envelope = TRUE, value = NULL, warnings = list("w1 `genes`"),
                error = list(kind = "model_file", message = "x.stem is not a stemmap model file.",
                             python_class = "StemModelFileError"))
    seen <- character()
    e <- .catch(withCallingHandlers(
        stemmap:::.stem_unwrap(env),
        stemmap_input_warning = function(w) {
            seen <<- c(seen, conditionMessage(w))
            invokeRestart("muffleWarning")
        }
    ))
    expect_identical(seen, "w1 `genes`")
    expect_s3_class(e, "stemmap_model_file_error")
    expect_identical(conditionMessage(e), "x.stem is not a stemmap model file.")
    expect_identical(e$python_class, "StemModelFileError")
    expect_identical(stemmap:::.stem_unwrap(list(stemmap_envelope = TRUE, value = 3,
                                                 warnings = list(), error = NULL)), 3)
})

# ---- errors from the Python core -----------------------------------------------------

test_that("the core's value errors arrive as classed R errors with the core's message", {
    skip_if_no_python()
    d <- make_stem_data()
    e <- expect_stem_error(run_small(d, lr = 0), "value", "`lr` must be a finite positive number")
    expect_identical(conditionMessage(e), "`lr` must be a finite positive number; found 0.0.")
    expect_stem_error(run_small(d, lr = Inf), "value", "`lr`")
    expect_stem_error(run_small(d, sigma = Inf), "value", "`sigma`")
    expect_stem_error(run_small(d, device = "gpu0"), "value", "`device`")
    expect_stem_error(run_small(d, sigma_scale = 1, genes = "gene1"), "value",
                      "share only 1 gene")
})

test_that("cuda on a machine without it is a classed error", {
    skip_if_no_python()
    info <- stemPythonInfo()
    d <- make_stem_data()
    if (identical(info$device, "cuda")) {
        # (a machine with CUDA: the request is valid here, and runs)
        expect_identical(dim(run_small(d, device = "cuda")$coords), c(60L, 2L))
    } else {
        expect_stem_error(run_small(d, device = "cuda"), "value", "CUDA is not available")
    }
})

test_that("bad values in the data are classed errors naming the input", {
    skip_if_no_python()
    d <- make_stem_data()
    xy <- d$coords
    xy[1, 1] <- Inf
    expect_stem_error(run_small(d, coords = xy), "value", "NaN/Inf coordinates")
    sc <- d$sc
    storage.mode(sc) <- "integer"
    sc[1, 1] <- NA_integer_
    e <- expect_stem_error(runSTEM(sc, d$st, coords = d$coords, epochs = 1L, verbose = FALSE),
                           "value", "sc.X` has 1 NaN/Inf")
    expect_false(grepl("negative", conditionMessage(e)))
    neg <- d$st
    neg[2, 2] <- -3
    expect_stem_error(runSTEM(d$sc, neg, coords = d$coords, epochs = 1L, verbose = FALSE),
                      "value", "negative values")
})

test_that("a damaged kept model is a classed model-file error in stemAttribution()", {
    skip_if_no_python()
    d <- make_stem_data()
    res <- run_small(d, keep_model = TRUE)
    expect_type(res$model, "raw")
    res$model <- as.raw(sample(0:255, 2000, replace = TRUE))
    expect_stem_error(stemAttribution(res, cells = 1:2, steps = 2L, verbose = FALSE),
                      "model_file", "not a stemmap model file")
})

# ---- warnings from the Python core ----------------------------------------------------

test_that("the core's input warnings are R warnings", {
    skip_if_no_python()
    d <- make_stem_data()
    lognorm <- log1p(d$sc / 3)
    expect_warning(runSTEM(lognorm, d$st, coords = d$coords, epochs = 1L, hidden = 8L,
                           verbose = FALSE, mapping = "none", adjacency_k = 0L),
                   class = "stemmap_input_warning", regexp = "log-normalised")
    # suppressWarnings() silences them: a handler outside it sees none
    n <- 0L
    withCallingHandlers(
        suppressWarnings(runSTEM(lognorm, d$st, coords = d$coords, epochs = 1L, hidden = 8L,
                                 verbose = FALSE, mapping = "none", adjacency_k = 0L)),
        warning = function(w) n <<- n + 1L
    )
    expect_identical(n, 0L)
    # withCallingHandlers() sees each one
    seen <- character()
    withCallingHandlers(
        run_small(d, genes = c(rownames(d$sc), "absent_gene")),
        warning = function(w) {
            seen <<- c(seen, conditionMessage(w))
            invokeRestart("muffleWarning")
        }
    )
    expect_true(any(grepl("1 of the 31 genes in `genes`", seen)))
})

test_that("dropped all-zero cells warn in R and get NA", {
    skip_if_no_python()
    d <- make_stem_data()
    sc <- d$sc
    sc[, 3] <- 0L
    w <- NULL
    res <- withCallingHandlers(
        runSTEM(sc, d$st, coords = d$coords, epochs = 1L, hidden = 8L,
                verbose = FALSE, mapping = "none", adjacency_k = 0L),
        stemmap_input_warning = function(c) {
            if (grepl("dropped", conditionMessage(c))) w <<- c
            invokeRestart("muffleWarning")
        }
    )
    expect_s3_class(w, "stemmap_input_warning")
    # the warning names the cell by its name, and says what R results do with it (no
    # internal id such as 'c3', no pointer to a Python-only `dropped` field)
    expect_match(conditionMessage(w), "cell3", fixed = TRUE)
    expect_match(conditionMessage(w), "get NA in the results", fixed = TRUE)
    expect_false(grepl("'c3'", conditionMessage(w), fixed = TRUE))
    expect_false(grepl("`dropped` field", conditionMessage(w), fixed = TRUE))
    expect_true(all(is.na(res$coords[3, ])))
    expect_true(all(is.finite(res$coords[-3, ])))
})

test_that("the core's warnings about cells and spots name them, not R's keys", {
    f <- stemmap:::.stem_ids_to_names
    ids <- c("c1", "c2", "c3", "s1", "s2")
    nms <- c("AAAC-1", "AAAG-1", "cell3", "bc1", "bc1")
    expect_identical(
        f("2 cells in `sc` have no counts on the shared genes and were dropped (e.g. ['c1', 'c3'])", ids, nms),
        "2 cells in `sc` have no counts on the shared genes and were dropped (e.g. ['AAAC-1', 'cell3'])"
    )
    expect_identical(f("1 spots in `st` were dropped (e.g. ['s2'])", ids, nms),
                     "1 spots in `st` were dropped (e.g. ['bc1'])")
    # other messages (genes named like keys) are left as they are
    expect_identical(f("genes not found: ['c1']", ids, nms), "genes not found: ['c1']")
})

test_that("mapping = \"nonsense\" is a stemmap condition naming the argument", {
    d <- make_stem_data()
    e <- expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, mapping = "nonsense"),
                           "value", "`mapping` must be one of")
    expect_match(conditionMessage(e), "nonsense", fixed = TRUE)
    expect_stem_error(runSTEM(d$sc, d$st, coords = d$coords, mapping = c("topk", "dense")),
                      "value", "`mapping` must be one of")
})

test_that("coordinates whose row names are repeated barcodes in spot order are read", {
    # what cbind() of two Visium samples gives: spot names and spatialCoords() row names
    # both repeat the barcodes of each sample
    d <- make_stem_data()
    st <- d$st
    colnames(st) <- rep(paste0("bc", 1:10), 2)
    xy <- d$coords
    rownames(xy) <- colnames(st)
    sid <- rep(c("A", "B"), each = 10)
    got <- stemmap:::.st_input(st, coords = xy, sample_id = sid)
    expect_identical(got$n, 20L)
    expect_identical(unname(got$slices[[2]]$coords), unname(d$coords[11:20, ] + 0))
    # the same through a SingleCellExperiment whose reducedDim has those row names
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = st),
                                                      reducedDims = list(spatial = xy))
    sce$sample_id <- sid
    got2 <- stemmap:::.st_input(sce, coords = "spatial", sample_id = "sample_id")
    expect_identical(got2$slices[[1]]$coords, got$slices[[1]]$coords)
    # repeated names out of spot order cannot be matched: a stemmap condition, not a guess
    e <- expect_stem_error(stemmap:::.st_input(st, coords = xy[c(2, 1, 3:20), ], sample_id = sid),
                           "value", "cannot be matched to the spots")
    expect_match(conditionMessage(e), "bc1", fixed = TRUE)
})

test_that("a matrix st with repeated spot names runs (no base-R duplicate row.names)", {
    skip_if_no_python()
    d <- make_stem_data()
    st <- d$st
    colnames(st) <- rep(paste0("bc", 1:10), 2)
    res <- runSTEM(d$sc, st, coords = d$coords, sample_id = rep(c("A", "B"), each = 10),
                   epochs = 2L, hidden = 8L, verbose = FALSE, adjacency_k = 0L,
                   labels = d$celltype)
    expect_true(all(res$best_spot %in% colnames(st)))
    expect_identical(colnames(res$mapping), colnames(st))
    expect_identical(rownames(res$deconvolution$label), colnames(st))
})

test_that("coordinates aligned by row names give the same mapping as ordered ones", {
    skip_if_no_python()
    d <- make_stem_data()
    xy <- d$coords
    rownames(xy) <- colnames(d$st)
    a <- run_small(d, coords = xy)
    b <- run_small(d, coords = xy[rev(seq_len(nrow(xy))), ])
    expect_identical(a$coords, b$coords)
    expect_identical(a$best_spot, b$best_spot)
})

test_that("NA labels are skipped with a warning and continuous labels refused", {
    skip_if_no_python()
    d <- make_stem_data()
    lab <- d$celltype
    lab[1:4] <- NA
    expect_warning(res <- run_small(d, labels = lab), class = "stemmap_input_warning",
                   regexp = "4 of 60 cells have no label")
    dec <- res$deconvolution$label
    expect_identical(sort(colnames(dec)), c("left", "right"))  # no "NA" column
    expect_equal(unname(rowSums(dec)), rep(1, nrow(dec)), tolerance = 1e-6)
    cont <- seq(0, 1, length.out = 60)
    expect_stem_error(run_small(d, labels = cont), "value",
                      "`labels` are floating-point numbers with 60 distinct values")
    clusters <- as.double(rep(1:3, 20))  # whole numbers: cluster ids, named "1", "2", "3"
    res2 <- run_small(d, labels = clusters)
    expect_identical(colnames(res2$deconvolution$label), c("1", "2", "3"))
})

test_that("NA spot values are skipped in transfer with a warning, never NaN everywhere", {
    skip_if_no_python()
    d <- make_stem_data()
    st <- SingleCellExperiment::SingleCellExperiment(list(counts = d$st))
    st$score <- seq_len(ncol(d$st)) / 10
    st$score[2] <- NA
    st$zone <- ifelse(d$coords[, 1] > 2, "a", "b")
    st$zone[5] <- NA
    SingleCellExperiment::reducedDim(st, "spatial") <- d$coords
    seen <- character()
    res <- withCallingHandlers(
        runSTEM(d$sc, st, coords = "spatial", transfer = c("score", "zone"), epochs = 2L,
                hidden = 8L, verbose = FALSE, mapping = "none", adjacency_k = 0L),
        stemmap_input_warning = function(w) {
            seen <<- c(seen, conditionMessage(w))
            invokeRestart("muffleWarning")
        }
    )
    expect_identical(sum(grepl("1 of 20 spots have missing", seen)), 2L)
    expect_true(all(is.finite(res$transfer$score)))
    expect_identical(colnames(res$transfer$zone), c("zone_a", "zone_b"))
    expect_equal(unname(rowSums(res$transfer$zone)), rep(1, 60), tolerance = 1e-6)
})

test_that("a misnamed Python is a setup error", {
    withr::local_options(stemmap.python = tempfile("nopython"))
    expect_stem_error(stemPythonInfo(), "setup", "must name an existing Python executable")
})
