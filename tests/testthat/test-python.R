test_that("stemmapDependencies() lists exact pins", {
    deps <- stemmapDependencies()
    expect_s3_class(deps, "data.frame")
    expect_named(deps, c("package", "version", "source"))
    expect_true(all(c("python", "torch", "anndata", "numpy") %in% deps$package))
    expect_true(all(nzchar(deps$version)))
    expect_identical(deps$version[deps$package == "torch"], "2.13.0")
    expect_true(all(deps$source %in% c("conda", "pip")))
})

test_that("an existing Python that does not exist is a clear error", {
    withr::local_options(stemmap.python = tempfile("nopython"))
    expect_error(stemPythonInfo(), regexp = "stemmap.python.*must name an existing Python")
})

test_that("stemPythonInfo() reports the existing Python", {
    py <- skip_if_no_python()
    info <- stemPythonInfo()
    expect_s3_class(info, "data.frame")
    expect_identical(nrow(info), 1L)
    expect_identical(info$mode, "existing python")
    expect_match(info$python_version, "^3\\.[0-9]+\\.[0-9]+")
    expect_match(info$torch_version, "^[0-9]+\\.[0-9]+")
    expect_true(info$device %in% c("cpu", "cuda", "mps"))
    expect_true(nzchar(info$device_name))
    expect_match(info$stemmap_version, "^[0-9]+\\.[0-9]+\\.[0-9]+")
    # the same interpreter as requested (venv pythons may be symlinks)
    expect_identical(normalizePath(info$python), normalizePath(py))
})

test_that("torch is imported with RTLD_DEEPBIND so it does not run on R's BLAS", {
    skip_if_no_python()
    info <- stemPythonInfo()
    # FALSE would mean torch was imported before stemmap's launcher (e.g. by the user's
    # own reticulate code): then its matrix products may resolve to R's BLAS.
    # RTLD_DEEPBIND is a glibc (Linux) flag: elsewhere it is never set.
    linux <- identical(Sys.info()[["sysname"]], "Linux")
    expect_identical(identical(info$torch_deepbind, "TRUE"), linux)
})

test_that("a dense matrix with dimnames round-trips R -> numpy -> R", {
    skip_if_no_python()
    x <- matrix(c(1.5, -2, 3e10, 0, NA, 6.25), nrow = 2,
                dimnames = list(c("g1", "g2"), c("c1", "c2", "c3")))
    y <- stemmap:::.stem_roundtrip(x)
    expect_identical(attr(y, "python")$type, "ndarray")
    expect_identical(as.integer(attr(y, "python")$shape), c(2L, 3L))
    attr(y, "python") <- NULL
    expect_identical(y, x)
})

test_that("a sparse matrix and unicode names round-trip", {
    skip_if_no_python()
    set.seed(1)
    x <- Matrix::rsparsematrix(30, 12, density = 0.2)
    dimnames(x) <- list(paste0("gène", 1:30), paste0("cell_", 1:12))
    y <- stemmap:::.stem_roundtrip(x)
    expect_identical(attr(y, "python")$type, "csc_matrix")
    expect_equal(attr(y, "python")$sum, sum(x))
    attr(y, "python") <- NULL
    expect_s4_class(y, "dgCMatrix")
    expect_equal(as.matrix(y), as.matrix(x))
    expect_identical(dimnames(y), dimnames(x))
})

test_that("integer matrices keep their type; no dimnames stay NULL", {
    skip_if_no_python()
    x <- matrix(1:6, 3)
    y <- stemmap:::.stem_roundtrip(x)
    attr(y, "python") <- NULL
    expect_identical(unname(y), x)
    expect_null(rownames(y))
})

test_that("the basilisk launcher runs the core in the stemmap environment", {
    skip_if_no_conda()
    withr::local_options(stemmap.python = NULL)
    withr::local_envvar(STEMMAP_PYTHON = "basilisk")
    basilisk::setBasiliskFork(FALSE)
    basilisk::setBasiliskShared(FALSE)
    withr::defer({
        basilisk::setBasiliskFork(TRUE)
        basilisk::setBasiliskShared(TRUE)
    })
    info <- stemPythonInfo()
    expect_identical(info$mode, "basilisk")
    expect_match(info$python_version, "^3\\.11")
    expect_identical(info$torch_version, "2.13.0")
    x <- matrix(as.double(1:6), 2, dimnames = list(c("a", "b"), c("x", "y", "z")))
    y <- stemmap:::.stem_roundtrip(x)
    attr(y, "python") <- NULL
    expect_identical(y, x)
})

test_that("the Python recorded at install is read, and a stale record is explained", {
    rec <- tempfile("stemmap-python")
    py <- file.path(R.home("bin"), "Rscript")  # any existing file stands in for a Python
    writeLines(c(paste("python:", py), "source: STEMMAP_PYTHON at install"), rec)
    got <- stemmap:::.stem_recorded_python(rec)
    expect_identical(got$python, py)
    expect_match(got$why, "recorded when stemmap was installed \\(STEMMAP_PYTHON at install")
    writeLines("python: /nonexistent/bin/python", rec)
    expect_identical(stemmap:::.stem_recorded_python(rec)$python, NA_character_)
    expect_match(stemmap:::.stem_recorded_python(rec)$why, "no longer exists")
    expect_match(stemmap:::.stem_recorded_python(tempfile())$why, "no Python was recorded")
})

test_that("the option wins over the variable, and \"basilisk\" asks for basilisk", {
    py <- file.path(R.home("bin"), "Rscript")
    withr::local_options(stemmap.python = py)
    withr::local_envvar(STEMMAP_PYTHON = "/nonexistent/python")
    f <- stemmap:::.stem_find_python()
    expect_identical(f[c("mode", "python", "why")],
                     list(mode = "existing python", python = py, why = "option stemmap.python"))
    withr::local_options(stemmap.python = NULL)
    withr::local_envvar(STEMMAP_PYTHON = "basilisk")
    f <- stemmap:::.stem_find_python()
    expect_identical(f$mode, "basilisk")
    expect_match(f$why, "STEMMAP_PYTHON = \"basilisk\"")
    withr::local_envvar(STEMMAP_PYTHON = "/nonexistent/python")
    expect_error(stemmap:::.stem_find_python(), "STEMMAP_PYTHON.*must name an existing Python")
})

test_that("a fresh Rscript with no stemmap variable finds the Python recorded at install", {
    skip_if(!nzchar(system.file("stemmap-python", package = "stemmap")),
            "basilisk mode: the installed stemmap has no recorded Python (installed without STEMMAP_PYTHON or .venv)")
    out <- system2(
        file.path(R.home("bin"), "Rscript"),
        c("-e", shQuote("i <- stemmap::stemPythonInfo(); cat(i$mode, '|', i$why, '|', i$torch_version, '\\n')")),
        stdout = TRUE, stderr = TRUE,
        env = c("STEMMAP_PYTHON=", paste0("R_LIBS=", paste(.libPaths(), collapse = ":")))
    )
    expect_match(paste(out, collapse = "\n"), "existing python \\| recorded when stemmap was installed.*\\| [0-9]+\\.[0-9]+")
})


test_that("basilisk mode starts one Python process per R session and reuses it", {
    stemmap:::.stem_basilisk_close()
    withr::defer(stemmap:::.stem_basilisk_close())
    started <- 0L
    stopped <- 0L
    start <- function() {
        started <<- started + 1L
        structure(list(id = started), class = "fake_proc")
    }
    stop_fun <- function(proc) stopped <<- stopped + 1L
    p1 <- stemmap:::.stem_basilisk_proc(start = start, stop = stop_fun)
    p2 <- stemmap:::.stem_basilisk_proc(start = start, stop = stop_fun)
    expect_identical(started, 1L)
    expect_identical(p1, p2)
    stemmap:::.stem_basilisk_close()
    expect_identical(stopped, 1L)
    p3 <- stemmap:::.stem_basilisk_proc(start = start, stop = stop_fun)
    expect_identical(started, 2L)  # a closed session starts afresh
    expect_identical(p3$id, 2L)
})
