# Skip helpers and small fixtures shared by the tests.
#
# A test skips only when a named optional package (or basilisk's conda) is absent, with a
# message that starts with its name: `make r-test` / .ci/run fail on any other skip
# (.ci/allowed-skips lists the names, .ci/r_test.R checks). Everything else that keeps a
# test from running -- a broken bridge, a Python that cannot import the core, a
# STEMMAP_PYTHON naming a missing file -- is an error of that test, never a skip.

# An existing Python that can run the core: named by the option stemmap.python /
# STEMMAP_PYTHON, or recorded when the package was installed (see stemPythonInfo()).
# Without one the package runs the core through basilisk: then the test skips, naming
# basilisk (and conda where basilisk would need it). A named Python that does not exist is
# an error (.stem_find_python()'s stemmap_setup_error), not a skip.
skip_if_no_python <- function() {
    found <- stemmap:::.stem_find_python()
    if (!identical(found$mode, "existing python")) {
        skip_if_no_conda()
        testthat::skip(paste("basilisk mode (no existing Python):", found$why))
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

# The Python core runs: an existing Python (else the skip of skip_if_no_python()) that
# imports the core's bridge and has stemmap.STEM. Any error on the way fails the test.
skip_if_no_core_model <- function() {
    skip_if_no_python()
    ok <- stemmap:::.run_python(function() {
        stemmap:::.stem_bridge()
        st <- reticulate::import("stemmap", convert = FALSE)
        reticulate::py_has_attr(st, "STEM")
    })
    if (!isTRUE(ok)) stop("the Python core imports but has no stemmap.STEM", call. = FALSE)
    invisible(TRUE)
}

# Runs the Python core on the same data as an R test: writes `d$sc`, `d$st` (genes x cells /
# spots) and `d$coords` to a temporary folder, then runs `body` (Python lines) after a preamble
# that reads them into AnnData `a` (cells) and `b` (spots); `d` is the folder in Python.
# Returns the folder; `expect_file` (relative) must exist afterwards.
run_core_on <- function(py, d, body, expect_file) {
    dir <- withr::local_tempdir(.local_envir = parent.frame())
    utils::write.csv(t(d$sc), file.path(dir, "sc.csv"))
    utils::write.csv(t(d$st), file.path(dir, "st.csv"))
    utils::write.csv(d$coords, file.path(dir, "xy.csv"), row.names = FALSE)
    script <- file.path(dir, "run.py")
    writeLines(c(
        "import sys, numpy as np, pandas as pd, anndata as ad, stemmap",
        "d = sys.argv[1]",
        "sc = pd.read_csv(f'{d}/sc.csv', index_col=0); st = pd.read_csv(f'{d}/st.csv', index_col=0)",
        "a = ad.AnnData(sc.to_numpy(float), obs=pd.DataFrame(index=sc.index), var=pd.DataFrame(index=sc.columns))",
        "b = ad.AnnData(st.to_numpy(float), obs=pd.DataFrame(index=st.index), var=pd.DataFrame(index=st.columns))",
        "b.obsm['spatial'] = pd.read_csv(f'{d}/xy.csv').to_numpy(float)",
        body
    ), script)
    out <- system2(py, c(script, dir), stdout = TRUE, stderr = TRUE)
    expect_true(file.exists(file.path(dir, expect_file)), label = paste(out, collapse = "\n"))
    dir
}
