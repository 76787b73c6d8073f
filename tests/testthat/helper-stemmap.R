# Skip helpers and small fixtures shared by the tests.

# An existing Python that can run the core: named by the option stemmap.python /
# STEMMAP_PYTHON, or recorded when the package was installed (see stemPythonInfo()).
skip_if_no_python <- function() {
    found <- tryCatch(stemmap:::.stem_find_python(), error = function(e) NULL)
    if (is.null(found)) {
        testthat::skip("stemmap.python / STEMMAP_PYTHON names a missing file")
    }
    if (!identical(found$mode, "existing python")) {
        testthat::skip(paste("no existing Python:", found$why))
    }
    invisible(found$python)
}

# conda, which basilisk 1.10-1.20 need to build the stemmap environment.
.conda_available <- function() {
    ext <- Sys.getenv("BASILISK_EXTERNAL_CONDA", "")
    dir <- if (nzchar(ext)) ext else basilisk.utils::getCondaDir()
    file.exists(basilisk.utils::getCondaBinary(dir))
}

skip_if_no_conda <- function() {
    if (utils::packageVersion("basilisk") < "1.21.0" && !.conda_available()) {
        testthat::skip(paste(
            "conda is absent (no BASILISK_EXTERNAL_CONDA and nothing at",
            basilisk.utils::getCondaDir(), "), so basilisk cannot build its environment"
        ))
    }
}

# The STEM model class of the core (being written alongside the R package).
skip_if_no_core_model <- function() {
    skip_if_no_python()
    ok <- tryCatch(
        isTRUE(stemmap:::.run_python(function() {
            b <- stemmap:::.stem_bridge()
            st <- reticulate::import("stemmap", convert = FALSE)
            reticulate::py_has_attr(st, "STEM")
        })),
        error = function(e) FALSE
    )
    if (!ok) testthat::skip("the Python core has no stemmap.STEM yet")
}
