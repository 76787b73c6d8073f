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
    if (is.null(verbose)) {
        verbose <- getOption("stemmap.verbose", TRUE)
    }
    isTRUE(as.logical(verbose)[1])
}

.stem_inform <- function(message, ..., verbose = NULL, .envir = parent.frame()) {
    if (.stem_verbose(verbose)) {
        cli::cli_inform(message, ..., .envir = .envir)
    }
    invisible(NULL)
}

.stem_abort <- function(message, ..., call = NULL, .envir = parent.frame()) {
    cli::cli_abort(message, ..., call = call, class = "stemmap_error", .envir = .envir)
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
        ))
    }
    invisible(TRUE)
}
