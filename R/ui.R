# All user-facing messages go through this layer (cli), switched by `verbose`
# arguments and the `stemmap.verbose` option.

#' Verbosity of stemmap
#'
#' Every function with a `verbose` argument takes its default from the option
#' `stemmap.verbose` (default `TRUE`). Set `options(stemmap.verbose = FALSE)` to
#' silence progress messages everywhere; errors are always shown.
#'
#' @name stemmap-verbose
#' @keywords internal
NULL

.stem_verbose <- function(verbose = NULL) {
    arg <- "verbose"
    if (is.null(verbose)) {
        verbose <- getOption("stemmap.verbose", TRUE)
        arg <- "options(stemmap.verbose)"
    }
    if (!is.logical(verbose) || length(verbose) != 1L || is.na(verbose)) {
        .stem_abort("{.arg {arg}} must be TRUE or FALSE; found {.val {format(verbose)}}.",
                    kind = "type")
    }
    verbose
}

.stem_inform <- function(message, ..., verbose = NULL, .envir = parent.frame()) {
    if (.stem_verbose(verbose)) {
        cli::cli_inform(message, ..., .envir = .envir)
    }
    invisible(NULL)
}

# Every error of stemmap is a `stemmap_error` with a subclass naming its kind:
# `stemmap_value_error` (a bad value: the default), `stemmap_type_error`,
# `stemmap_file_error`, `stemmap_model_file_error`, `stemmap_memory_error`,
# `stemmap_training_error`, `stemmap_python_error` (the Python core failed in an
# unexpected way) and `stemmap_setup_error` (no usable Python, a missing optional
# package, a misnamed Python). Errors of the Python
# core arrive with the same kinds and messages (see .stem_unwrap() in R/python.R).
.stem_error_class <- function(kind = "value") {
    c(paste0("stemmap_", kind, "_error"), "stemmap_error")
}

.stem_abort <- function(message, ..., call = NULL, kind = "value", .envir = parent.frame()) {
    cli::cli_abort(message, ..., call = call, class = .stem_error_class(kind), .envir = .envir)
}

# A message from the Python core, re-signalled verbatim (no cli markup applied to it).
.stem_py_error <- function(err) {
    kind <- if (is.null(err$kind)) "python" else as.character(err$kind)
    cond <- structure(
        class = c(.stem_error_class(kind), "error", "condition"),
        list(message = as.character(err$message), call = NULL,
             python_class = as.character(err$python_class))
    )
    stop(cond)
}

# A StemInputWarning of the Python core as an R warning (seen by suppressWarnings() and
# withCallingHandlers()).
.stem_py_warning <- function(message) {
    cond <- structure(
        class = c("stemmap_input_warning", "stemmap_warning", "warning", "condition"),
        list(message = .stem_r_wording(as.character(message)), call = NULL)
    )
    warning(cond)
}

# Python-only pointers in the core's messages, said as R users find them: R results keep
# every input cell and spot (NA for those the core dropped) and have no `dropped` field.
.stem_r_wording <- function(message) {
    gsub("they are listed in the result's `dropped` field",
         "they get NA in the results", message, fixed = TRUE)
}

.stem_warn <- function(message, ..., .envir = parent.frame()) {
    cli::cli_warn(message, ..., class = "stemmap_warning", .envir = .envir)
}

# Names the install command for an optional (Suggests) package.
.stem_require <- function(pkg, why = NULL) {
    if (!requireNamespace(pkg, quietly = TRUE)) {
        bioc <- pkg %in% c("SpatialExperiment", "zellkonverter", "SingleCellExperiment")
        cmd <- if (bioc) {
            sprintf("BiocManager::install(\"%s\")", pkg)
        } else {
            sprintf("install.packages(\"%s\")", pkg)
        }
        .stem_abort(c(
            "Package {.pkg {pkg}} is needed{if (is.null(why)) '' else paste0(' ', why)} but is not installed.",
            i = "Install it with {.code {cmd}}."
        ), kind = "setup")
    }
    invisible(TRUE)
}
