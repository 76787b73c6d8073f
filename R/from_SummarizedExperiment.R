# Reading the inputs of runSTEM() from SummarizedExperiment objects (SingleCellExperiment,
# SpatialExperiment): the counts of an assay, spot coordinates and slices.

.assay_of <- function(x, assay.type, arg) {
    .check_assay(x, assay.type, arg)
    m <- .as_counts_matrix(SummarizedExperiment::assay(x, assay.type, withDimnames = TRUE))
    .check_expr_matrix(m, arg)
    m
}

# `assay.type` names (or numbers) an assay of `x`: an R condition naming the argument if not.
.check_assay <- function(x, assay.type, arg) {
    an <- SummarizedExperiment::assayNames(x)
    if (is.numeric(assay.type)) {
        ok <- assay.type >= 1 && assay.type <= length(SummarizedExperiment::assays(x))
    } else {
        ok <- assay.type %in% an
    }
    if (!ok) {
        .stem_abort(c(
            "{.arg {arg}} has no assay {.val {assay.type}}.",
            x = "Its assays: {.val {an}}.",
            i = "Choose one with {.arg {if (arg == 'sc') 'assay.type' else 'st.assay.type'}}."
        ))
    }
    invisible(TRUE)
}

# A DelayedArray (HDF5-backed assays) becomes a dgCMatrix; any other matrix is returned as is.
.as_counts_matrix <- function(m) {
    if (methods::is(m, "DelayedArray")) methods::as(m, "dgCMatrix") else m
}

# ST from a SummarizedExperiment (a SpatialExperiment's spatialCoords(), or coordinates named
# by `coords`): list(slices, n, names, sample_id, coldata).
.st_from_se <- function(st, coords = NULL, sample_id = NULL, st.assay.type = "counts") {
    x <- .assay_of(st, st.assay.type, "st")
    x <- .with_colnames(x, "spot")
    cd <- as.data.frame(SummarizedExperiment::colData(st))
    if (is.null(coords)) {
        if (methods::is(st, "SpatialExperiment")) {
            .stem_require("SpatialExperiment", "to read spatialCoords()")
            xy <- SpatialExperiment::spatialCoords(st)
            where <- "spatialCoords(st)"
            if (is.null(sample_id)) sample_id <- st$sample_id
        } else {
            .stem_abort(c(
                "{.arg st} must have spatial coordinates; found none in {.cls {class(st)}}.",
                i = "Name them with {.code coords = c(\"x\", \"y\")} (colData columns) or {.code coords = \"spatial\"} (a reducedDim), or pass a SpatialExperiment."
            ))
        }
    } else if (is.character(coords)) {
        red <- if (methods::is(st, "SingleCellExperiment")) SingleCellExperiment::reducedDimNames(st) else character()
        if (length(coords) == 1L && coords %in% red) {
            xy <- SingleCellExperiment::reducedDim(st, coords)
            where <- sprintf("reducedDim(st, \"%s\")", coords)
        } else if (length(coords) == 2L && all(coords %in% colnames(cd))) {
            xy <- as.matrix(cd[, coords])
            where <- sprintf("colData columns %s", paste(coords, collapse = ", "))
        } else {
            .stem_abort(c(
                "{.arg coords} must name 2 colData columns or 1 reducedDim of {.arg st}.",
                x = "Found {.val {coords}}; colData has {.val {utils::head(colnames(cd), 10)}}, reducedDims {.val {red}}."
            ))
        }
    } else {
        xy <- coords
        where <- "argument coords"
    }
    if (is.character(sample_id) && length(sample_id) == 1L && ncol(x) != 1L) {
        if (!sample_id %in% colnames(cd)) {
            .stem_abort("{.arg sample_id} = {.val {sample_id}} is not a colData column of {.arg st}.")
        }
        sample_id <- cd[[sample_id]]
    }
    out <- .slices(x, .as_coords(xy, ncol(x), where, colnames(x)), sample_id)
    out$coldata <- cd
    out
}
