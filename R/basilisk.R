# The Python environment of stemmap, declared once with exact pins.
#
# basilisk 1.10-1.20 build a conda environment: Python and the compiled scientific
# stack come from conda-forge, torch and anndata from PyPI. basilisk 1.22+ build a
# virtualenv from PyPI pins, so there every pin goes to `pip` and only the Python
# version stays in `packages`. Either way the stemmap core itself is installed from
# the copy shipped in the R package (inst/python, made by ./configure), so R and
# Python always run the same core.

.stem_conda_pins <- c(
    "python==3.11.*",
    "numpy==2.1.3",
    "scipy==1.14.1",
    "pandas==2.2.3",
    "h5py==3.12.1",
    "tqdm==4.67.1",
    "matplotlib==3.9.2"
)

.stem_pip_pins <- c(
    "torch==2.13.0",
    "anndata==0.11.4",
    "natsort==8.4.0",
    "array-api-compat==1.11.2"
)

.stem_basilisk_uses_venv <- function() {
    utils::packageVersion("basilisk") >= "1.21.0"
}

.stem_env_packages <- function() {
    if (.stem_basilisk_uses_venv()) {
        .stem_conda_pins[1]
    } else {
        .stem_conda_pins
    }
}

.stem_env_pip <- function() {
    if (.stem_basilisk_uses_venv()) {
        c(.stem_conda_pins[-1], .stem_pip_pins)
    } else {
        .stem_pip_pins
    }
}

#' Python packages of the stemmap environment
#'
#' The Python core runs in a [basilisk::BasiliskEnvironment()] named
#' `stemmap_env` unless an existing Python is named (see [stemPythonInfo()]).
#' `stemmapDependencies()` lists its exact pins.
#'
#' @details
#' With basilisk 1.10 to 1.20 the environment is a conda environment (conda
#' packages plus pip packages); with basilisk 1.22 and later it is a virtualenv
#' built from PyPI pins only. The stemmap core is installed from the copy
#' shipped inside the R package (`system.file("python", package = "stemmap")`),
#' which `./configure` refreshes from the repository's `python/` folder at every
#' source install.
#'
#' @return `stemmapDependencies()` returns a data.frame with columns `package`,
#' `version` and `source` (`"conda"` or `"pip"`, as basilisk will install them).
#' @examples
#' stemmapDependencies()
#' @seealso [stemPythonInfo()]
#' @export
stemmapDependencies <- function() {
    pkgs <- .stem_env_packages()
    pip <- .stem_env_pip()
    all <- c(pkgs, pip)
    parts <- strsplit(all, "==", fixed = TRUE)
    data.frame(
        package = vapply(parts, `[`, "", 1),
        version = vapply(parts, `[`, "", 2),
        source = rep(c("conda", "pip"), c(length(pkgs), length(pip))),
        stringsAsFactors = FALSE
    )
}

# Internal, like zellkonverter's environments: users reach it through
# stemmapDependencies() and stemPythonInfo().
stemmapEnv <- basilisk::BasiliskEnvironment(
    envname = "stemmap_env",
    pkgname = "stemmap",
    packages = .stem_env_packages(),
    channels = "conda-forge",
    pip = .stem_env_pip(),
    paths = "python"
)
