#' stemmap: map single cells into spatial transcriptomics with STEM
#'
#' R front end of the stemmap Python core. See [runSTEM()] for the one user verb,
#' [stemPythonInfo()] for where Python runs and [stemmapDependencies()] for its pins.
#'
#' Options: `stemmap.verbose` (default `TRUE`) switches progress messages;
#' `stemmap.python` (or the environment variable `STEMMAP_PYTHON`) names an
#' existing Python to use instead of the one recorded at install or the basilisk
#' environment (see [stemPythonInfo()]).
#'
#' @keywords internal
#' @importFrom methods is as new callNextMethod setGeneric setMethod
#' @importFrom ggplot2 .data
"_PACKAGE"
