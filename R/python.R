# Which Python runs the core (the launcher and the workers are in R/bridge.R):
#   * an existing Python, the first of: the option `stemmap.python`, the environment
#     variable STEMMAP_PYTHON, or the Python recorded when the package was installed
#     (./configure writes it into the installed package: `make setup` records its
#     .venv) -- run through reticulate in this R session;
#   * otherwise the basilisk environment `stemmapEnv` (basiliskStart/basiliskRun).
# The value "basilisk" in the option or the variable asks for basilisk explicitly.
# basilisk 1.10's basiliskStart() cannot run a plain virtualenv (it activates conda),
# which is why the existing-Python mode goes through reticulate directly.

# The file ./configure writes into the installed package (DCF: python, source).
.stem_python_record_file <- function() {
    system.file("stemmap-python", package = "stemmap")
}

# The Python recorded at install time: list(python = path or NA, why = the reason).
.stem_recorded_python <- function(file = .stem_python_record_file()) {
    none <- function(why) list(python = NA_character_, why = why)
    if (!nzchar(file) || !file.exists(file)) {
        return(none("no Python was recorded when stemmap was installed"))
    }
    rec <- tryCatch(read.dcf(file, fields = c("python", "source")), error = function(e) NULL)
    py <- if (is.null(rec) || !nrow(rec)) NA_character_ else unname(rec[1, "python"])
    if (is.na(py) || !nzchar(py)) {
        return(none(sprintf("the install record %s names no Python", file)))
    }
    if (!file.exists(py) || dir.exists(py)) {
        return(none(sprintf("the Python recorded at install (%s) no longer exists", py)))
    }
    src <- unname(rec[1, "source"])
    list(python = py, why = sprintf("recorded when stemmap was installed (%s; %s)",
                                    if (is.na(src)) "configure" else src, file))
}

# Which Python runs the core: list(mode = "existing python" | "basilisk", python, why).
# Errors when the option or the variable names something that is not a file.
.stem_find_python <- function() {
    opt <- getOption("stemmap.python", NULL)
    env <- Sys.getenv("STEMMAP_PYTHON", "")
    named <- if (!is.null(opt) && !is.na(opt[1]) && nzchar(opt[1])) {
        list(py = as.character(opt[1]), origin = "option {.code stemmap.python}",
             why = "option stemmap.python")
    } else if (nzchar(env)) {
        list(py = env, origin = "environment variable {.envvar STEMMAP_PYTHON}",
             why = "environment variable STEMMAP_PYTHON")
    }
    if (!is.null(named)) {
        if (identical(tolower(named$py), "basilisk")) {
            return(list(mode = "basilisk", python = NA_character_,
                        why = paste0(named$why, " = \"basilisk\"")))
        }
        py <- path.expand(named$py)
        if (!file.exists(py) || dir.exists(py)) {
            origin <- named$origin
            .stem_abort(c(
                paste0(origin, " must name an existing Python executable."),
                x = "Found {.path {py}}, which is not a file.",
                i = "Point it to e.g. {.path /path/to/venv/bin/python}, or unset it to use the Python recorded at install or basilisk."
            ), kind = "setup")
        }
        return(list(mode = "existing python", python = py, why = named$why))
    }
    rec <- .stem_recorded_python()
    if (!is.na(rec$python)) {
        return(list(mode = "existing python", python = rec$python, why = rec$why))
    }
    list(mode = "basilisk", python = NA_character_,
         why = paste0("no Python named by option stemmap.python or STEMMAP_PYTHON, and ",
                      rec$why))
}

.stem_existing_python <- function() {
    f <- .stem_find_python()
    if (identical(f$mode, "basilisk")) NULL else f$python
}

.stem_python_mode <- function() {
    .stem_find_python()$mode
}

# Binds reticulate to `py` (once per R session).
.stem_use_python <- function(py) {
    if (reticulate::py_available(initialize = FALSE)) {
        cfg <- reticulate::py_config()
        same <- identical(cfg$python, py) ||
            identical(normalizePath(cfg$python, mustWork = FALSE), normalizePath(py, mustWork = FALSE))
        if (!same) {
            .stem_abort(c(
                "reticulate is already bound to another Python in this R session.",
                x = "Bound: {.path {cfg$python}}; requested: {.path {py}}.",
                i = "Restart R and run stemmap before anything else initialises reticulate."
            ), kind = "setup")
        }
        return(invisible(py))
    }
    reticulate::use_python(py, required = TRUE)
    invisible(py)
}

# basilisk can only run the core if it has a conda (basilisk 1.10-1.20) or can download
# one. Offline, with no Python named, it would try to download Miniconda on every call
# and fail with "cannot open URL". Returns TRUE/FALSE (with the reason as attribute
# "reason"); with `stop_if_not = TRUE` stops BEFORE any download attempt with one
# `stemmap_setup_error` that says how to name an existing Python.
.stem_basilisk_usable <- function(stop_if_not = FALSE,
                                  conda_dir = NULL,
                                  online = NULL) {
    ok <- TRUE
    reason <- NULL
    if (!.stem_basilisk_uses_venv()) {
        if (is.null(conda_dir)) {
            # basilisk.utils comes with basilisk (not a direct dependency of stemmap)
            conda_dir <- Sys.getenv("BASILISK_EXTERNAL_CONDA", "")
            if (!nzchar(conda_dir)) {
                conda_dir <- tryCatch({
                    get_dir <- getExportedValue("basilisk.utils", "getCondaDir")
                    get_dir(installed = FALSE)
                }, error = function(e) "")
            }
        }
        have_conda <- nzchar(conda_dir) && tryCatch({
            get_bin <- getExportedValue("basilisk.utils", "getCondaBinary")
            file.exists(get_bin(conda_dir))
        }, error = function(e) file.exists(file.path(conda_dir, "bin", "conda")))
        if (!have_conda) {
            if (is.null(online)) online <- .stem_can_download()
            if (!isTRUE(online)) {
                ok <- FALSE
                reason <- sprintf("basilisk has no conda (%s) and cannot download one (offline)",
                                  if (nzchar(conda_dir)) conda_dir else "none")
            }
        }
    }
    if (!ok && stop_if_not) {
        .stem_abort(c(
            "No Python to run the stemmap core: none is named, and {reason}.",
            i = "Name an existing Python with torch, anndata and scipy: {.code options(stemmap.python = \"/path/to/venv/bin/python\")} or the environment variable {.envvar STEMMAP_PYTHON} (e.g. the {.path .venv/bin/python} made by {.code make setup})."
        ), kind = "setup")
    }
    structure(ok, reason = reason)
}

# Whether the Miniconda installer basilisk would fetch can be reached (a HEAD request,
# a few seconds at most). `options(stemmap.offline = TRUE)` answers FALSE without trying.
.stem_can_download <- function() {
    if (isTRUE(getOption("stemmap.offline", FALSE))) return(FALSE)
    url <- "https://repo.anaconda.com/miniconda/"
    old <- options(timeout = 5)
    on.exit(options(old), add = TRUE)
    ok <- tryCatch({
        con <- url(url, open = "rb")
        close(con)
        TRUE
    }, error = function(e) FALSE, warning = function(w) FALSE)
    ok
}

# ---- exported -----------------------------------------------------------------------

#' Python behind stemmap
#'
#' Reports which Python runs the stemmap core, why that one, and what it finds there.
#'
#' @details
#' stemmap runs its Python core in one of two places, chosen in this order:
#' 1. **an existing Python** named by `options(stemmap.python = "/path/to/bin/python")`;
#' 2. or by the environment variable `STEMMAP_PYTHON`;
#' 3. or the Python recorded when the R package was installed: `./configure` writes
#'    the Python named by `STEMMAP_PYTHON` at install time, or else the source
#'    checkout's `.venv/bin/python`, into the installed package (file
#'    `stemmap-python`), so after `make setup` a new R session, `Rscript` and
#'    `rmarkdown::render()` find the set-up's virtualenv with nothing set
#'    (reinstall to change it);
#' 4. otherwise the **basilisk environment** `stemmap_env` with the exact pins of
#'    [stemmapDependencies()], built on first use and run in a separate process.
#'    Setting the option or the variable to `"basilisk"` asks for it explicitly.
#'
#' An existing Python (it needs torch, anndata and scipy) is bound through reticulate
#' in the current R session; if it cannot `import stemmap`, the copy of the core
#' shipped in the R package is put on `sys.path`.
#'
#' @return A one-row data.frame with columns `mode` (`"existing python"` or
#' `"basilisk"`), `why` (which of the rules above chose it), `python` (path),
#' `python_version`, `torch_version`, `device` (`"cpu"`, `"cuda"` or `"mps"`),
#' `device_name`, `stemmap_version` (of the Python core), `numpy_version`,
#' `anndata_version` and `torch_deepbind` (`"TRUE"` when torch was imported with
#' `RTLD_DEEPBIND` so that it does not use R's BLAS).
#' @examples
#' \dontrun{
#' stemPythonInfo()[, c("mode", "why", "python")]
#' options(stemmap.python = "/path/to/venv/bin/python")
#' stemPythonInfo()
#' }
#' @seealso [stemmapDependencies()]
#' @export
stemPythonInfo <- function() {
    found <- .stem_find_python()
    res <- .run_bridge("info")
    cols <- c("python", "python_version", "torch_version", "device", "device_name",
              "stemmap_version", "numpy_version", "anndata_version", "torch_deepbind")
    vals <- lapply(cols, function(k) {
        v <- res[[k]]
        if (is.null(v)) NA_character_ else as.character(v)
    })
    names(vals) <- cols
    data.frame(mode = found$mode, why = found$why, vals, stringsAsFactors = FALSE,
               check.names = FALSE)
}
