#' An HTML report of a STEM mapping
#'
#' Renders the package's R Markdown template `stemmap-report` for an object
#' returned by [runSTEM()]: training settings, loss curve, reconstructed positions
#' coloured by a cell label, spot deconvolution and mapping confidence. The same
#' template can be copied and edited with
#' `rmarkdown::draft("my-report.Rmd", template = "stemmap-report", package = "stemmap")`
#' and rendered with `rmarkdown::render("my-report.Rmd", params = list(object = "sce.rds"))`.
#'
#' @param object A SingleCellExperiment or Seurat object returned by [runSTEM()],
#'   or the path of an `.rds` file holding one.
#' @param output_file Path of the HTML file to write.
#' @param st The spatial object given to [runSTEM()] (or an `.rds` path), to draw
#'   the cells over its tissue image. The deconvolution is drawn at the spot
#'   coordinates the mapping used, which [runSTEM()] stores (objects mapped by an
#'   older stemmap need `st` for that; without it the report then shows
#'   deconvolution summaries only).
#' @param label Cell metadata column to colour positions by and to show the
#'   deconvolution of (default: the first `labels` given to [runSTEM()]).
#' @param coords As in [runSTEM()]: how to read the coordinates of `st` (e.g.
#'   two colData column names for a SingleCellExperiment `st`), to draw the spots at
#'   those instead of the coordinates the mapping used.
#'
#' @details The inputs (`object`, `st`, `label`, `coords`) are checked before the
#'   rendering starts.
#' @param title Title of the report.
#' @param quiet Passed to [rmarkdown::render()].
#' @param ... Further arguments to [rmarkdown::render()].
#' @return `output_file`, invisibly.
#' @examples
#' \dontrun{
#' sce <- runSTEM(sce, spe, labels = "celltype", epochs = 400)
#' stemReport(sce, "stem-report.html", st = spe)
#' }
#' @seealso [runSTEM()], [plotSTEMPositions()]
#' @export
stemReport <- function(object, output_file, st = NULL, label = NULL, coords = NULL,
                       title = "STEM mapping report", quiet = TRUE, ...) {
    .stem_require("rmarkdown", "to render the report")
    .stem_require("knitr", "to render the report")
    if (!rmarkdown::pandoc_available()) {
        .stem_abort(c("Rendering the report needs pandoc, which was not found.",
                      i = "Install pandoc, or use RStudio, which ships it."))
    }
    if (!is.character(output_file) || length(output_file) != 1L || !nzchar(output_file)) {
        .stem_abort("{.arg output_file} must be one file path; found {.val {output_file}}.")
    }
    work <- tempfile("stemreport")
    dir.create(work)
    on.exit(unlink(work, recursive = TRUE), add = TRUE)
    obj_file <- .stem_report_rds(object, file.path(work, "object.rds"), "object")
    st_file <- if (is.null(st)) "" else .stem_report_rds(st, file.path(work, "st.rds"), "st")
    # every input is checked here, before rendering starts (not 20 s into the template)
    .stem_report_check(readRDS(obj_file), if (nzchar(st_file)) readRDS(st_file), label, coords)
    skel <- system.file("rmarkdown", "templates", "stemmap-report", "skeleton", "skeleton.Rmd",
                        package = "stemmap")
    if (!nzchar(skel)) .stem_abort("The report template is missing from the installed package.")
    rmd <- file.path(work, "stemmap-report.Rmd")
    file.copy(skel, rmd)
    output_file <- path.expand(output_file)
    out_dir <- dirname(output_file)
    dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
    rmarkdown::render(
        rmd, output_file = basename(output_file), output_dir = normalizePath(out_dir),
        intermediates_dir = work, knit_root_dir = work,
        params = list(object = obj_file, st = st_file,
                      label = if (is.null(label)) "" else label,
                      coords = if (is.null(coords)) "" else coords, title = title),
        envir = new.env(parent = globalenv()), quiet = quiet, ...
    )
    invisible(output_file)
}

# What the template will read, read now: the STEM results of `object`, the `label`, and
# the spot coordinates its maps use (those the mapping used, or those of `st` read with
# `coords`, by the code plotSTEMDeconvolution() runs).
.stem_report_check <- function(object, st, label, coords) {
    res <- .stem_store(object)
    if (!is.null(label)) {
        known <- c(names(res$deconvolution), colnames(.stem_cell_meta(object)))
        if (!is.character(label) || length(label) != 1L || !label %in% known) {
            .stem_abort(c(
                "{.arg label} must be a {.arg labels} name given to {.fn runSTEM} or a cell metadata column.",
                x = "Found {.val {format(label)}}; known: {.val {utils::head(known, 10)}}."
            ))
        }
    }
    if (!is.null(st) || !is.null(coords)) .stem_spot_coords(object, st, .stem_report_coords(coords))
    invisible(TRUE)
}

# `coords` as the template reads it: "x,y" is c("x", "y").
.stem_report_coords <- function(coords) {
    if (is.character(coords) && length(coords) == 1L) {
        coords <- if (nzchar(coords)) trimws(strsplit(coords, ",")[[1]]) else NULL
    }
    coords
}

.stem_report_rds <- function(x, dest, arg) {
    if (is.character(x) && length(x) == 1L) {
        if (!file.exists(x)) .stem_abort("{.arg {arg}} names no existing file: {.path {x}}.")
        return(normalizePath(x))
    }
    saveRDS(x, dest)
    dest
}
