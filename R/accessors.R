# Reading STEM results back from the objects runSTEM() returned.

.stem_store <- function(sc) {
    st <- .stem_saved(sc)  # one method per class (R/classes.R)
    if (is.null(st)) {
        .stem_abort(c(
            "{.arg sc} holds no STEM results.",
            x = "Found a {.cls {class(sc)[1]}} without them.",
            i = "Run {.fn runSTEM} first."
        ))
    }
    st
}

#' Results stored by runSTEM()
#'
#' `stemMapping()` returns the cell x spot mapping C (sparse top-k or dense, as
#' asked in [runSTEM()]; with several readout rounds, their mean: what each spot
#' holds, read by the deconvolution and the transfers); `stemPlacement()` the
#' placement C1 (round 1 of the readout) that the pseudo-coordinates, best spot and
#' confidence read: with `mapping = "dense"`, the coordinates equal
#' `stemPlacement(sc) %*% spot coordinates` (the same matrix as `stemMapping()` with
#' `rounds = 1`); `stemAdjacency()` the sparse cell x cell spatial kNN
#' graph (`adjacency_k` neighbours per cell, weighted; see [runSTEM()]);
#' `stemSettings()` the training settings reported by the
#' Python core; `stemHistory()` the loss per epoch; `stemDeconvolution()` the spot
#' x cell-type proportions for one label.
#'
#' @param sc The object returned by [runSTEM()] (SingleCellExperiment, Seurat, or
#'   the list returned for a matrix).
#' @param label Which deconvolution (a `labels` name given to [runSTEM()]);
#'   default the first.
#' @return A matrix (`stemMapping()`, `stemPlacement()`, `stemAdjacency()`, `stemDeconvolution()`), a list
#'   (`stemSettings()`) or a data.frame (`stemHistory()`).
#' @export
stemMapping <- function(sc) {
    m <- .stem_store(sc)$mapping
    if (is.null(m)) {
        .stem_abort("No mapping was stored; run {.fn runSTEM} with {.code mapping = \"topk\"} or {.code \"dense\"}.")
    }
    m
}

#' @rdname stemMapping
#' @export
stemPlacement <- function(sc) {
    m <- .stem_store(sc)$placement
    if (is.null(m)) {
        .stem_abort("No placement was stored; run {.fn runSTEM} with {.code mapping = \"topk\"} or {.code \"dense\"}.")
    }
    m
}

#' @rdname stemMapping
#' @export
stemAdjacency <- function(sc) {
    a <- .stem_result(sc, "adjacency")
    if (is.null(a)) {
        .stem_abort("No SC-SC graph was stored; run {.fn runSTEM} with {.arg adjacency_k} > 0.")
    }
    a
}

#' @rdname stemMapping
#' @export
stemSettings <- function(sc) .stem_store(sc)$settings

#' @rdname stemMapping
#' @export
stemHistory <- function(sc) .stem_store(sc)$history

#' @rdname stemMapping
#' @export
stemDeconvolution <- function(sc, label = NULL) {
    d <- .stem_store(sc)$deconvolution
    if (!length(d)) {
        .stem_abort("No deconvolution was stored; run {.fn runSTEM} with {.arg labels}.")
    }
    if (is.null(label)) label <- names(d)[1]
    if (!label %in% names(d)) {
        .stem_abort("{.arg label} must be one of {.val {names(d)}}; found {.val {label}}.")
    }
    d[[label]]
}

# Metadata column names of STEM results, the same for every class: "STEM_" + name, with
# each run of characters other than letters, digits, "_" and "." replaced by "_" (so
# "Anterior somitic tissues" -> "STEM_celltype_Anterior_somitic_tissues"), made unique.
# SeuratObject 4 would otherwise apply make.names() with a warning, and names would then
# differ between Seurat and SingleCellExperiment objects.
.stem_colnames <- function(x) {
    make.unique(paste0("STEM_", gsub("[^A-Za-z0-9_.]+", "_", x)), sep = "_")
}

#' Put spot-side STEM results on the spatial object
#'
#' Adds the spot deconvolution of every label given to [runSTEM()] as columns
#' `STEM_<label>_<type>` of `colData(st)` (Seurat: `meta.data`), and the spot
#' embedding as `reducedDim(st, "STEM")` (Seurat: DimReduc `"stem"`). Column names
#' are the same for every class: characters other than letters, digits, `_` and
#' `.` become `_` (`"Anterior somitic tissues"` gives
#' `STEM_celltype_Anterior_somitic_tissues`); [stemDeconvolution()] keeps the
#' original type names.
#'
#' @param st The spatial object given to [runSTEM()].
#' @param sc The object returned by [runSTEM()].
#' @return `st` with the results added.
#' @export
stemAnnotateSpots <- function(st, sc) {
    res <- .stem_store(sc)
    spots <- rownames(res$spot_embedding)
    # the spots of `st` that were read: all its columns, or (Seurat) those of the assay read
    own <- .stem_spots_read(st, res$params[["st.assay"]])
    n <- if (is.null(own$n)) NA else own$n
    if (!identical(as.integer(n), length(spots)) ||
        (!is.null(own$names) && !identical(as.character(own$names), as.character(spots)))) {
        .stem_abort(c(
            "{.arg st} does not match the spots {.arg sc} was mapped onto.",
            x = "Mapped {length(spots)} spots; {.arg st} has {n}{own$where}."
        ))
    }
    cols <- list()
    for (lab in names(res$deconvolution)) {
        d <- res$deconvolution[[lab]]
        nm <- .stem_colnames(paste0(lab, "_", colnames(d)))
        for (j in seq_len(ncol(d))) cols[[nm[j]]] <- unname(d[, j])
    }
    .stem_annotate(st, res, cols)  # one method per class (R/classes.R)
}

# The cells (spots) of assay `assay` of a Seurat object: SeuratObject 5, the assay's own
# (a subset of the object's); SeuratObject 4, the object's (one set of cells per object).
.seurat_assay_cells <- function(obj, assay) {
    if (.seurat_v5()) colnames(obj[[assay]]) else colnames(obj)
}

# Spot values `cols` (one vector per name, in the order of `spots`) as a data.frame over
# all columns `all` of the object (NA for columns not among `spots`: bins of another size).
.stem_spot_columns <- function(cols, spots, all) {
    pos <- match(all, spots)
    out <- lapply(cols, function(v) v[pos])
    as.data.frame(out, row.names = all, check.names = FALSE, optional = TRUE)
}

.stem_coords <- function(sc) {
    xy <- .stem_result(sc, "coords")
    if (is.null(xy)) xy <- .stem_store(sc)$coords  # objects written before the table
    colnames(xy) <- c("x", "y")
    xy
}

#' Cells at their STEM pseudo-coordinates, as a SpatialExperiment
#'
#' @param sc A SingleCellExperiment returned by [runSTEM()].
#' @return A `SpatialExperiment` with the assays and colData of `sc` whose
#'   `spatialCoords()` are the STEM pseudo-coordinates (cells dropped by the core,
#'   with no coordinates, are left out). Needs the SpatialExperiment package.
#' @export
stemPseudoSpatial <- function(sc) {
    .stem_require("SpatialExperiment", "to build a SpatialExperiment")
    .stem_as_spatial(sc)  # R/classes.R
}

#' Placement uncertainty of each cell
#'
#' The radius, in the units of the spot coordinates, of the disc around each cell's
#' pseudo-coordinate that holds its true position with 90 per cent probability: read from a
#' tempered placement C1 whose temperature [runSTEM()] fitted on the data, without
#' ground truth (the core's `StemMapping.placement_uncertainty()`: for a sample of
#' cells the most probable spot is hidden, and the temperature is the smallest at which
#' 90 per cent of them find it in the region of the rest of their mass). Larger = less
#' certain. On the shared semi-simulations 88-90 per cent of the cells' true positions were
#' inside their regions when the cells were not in the spots (95 per cent when they were);
#' cells from a part of the tissue that no spot covers cannot be placed, and their
#' regions do not hold them (`benchmarks/results/issue27/uncertainty.md`). With several
#' slices, the radius is in the frame of each cell's best slice.
#'
#' @param sc The object returned by [runSTEM()].
#' @return A numeric vector, one radius per cell (named by cell; `NA` for cells the core
#'   dropped).
#' @seealso [plotSTEMPositions()] (`certainty = TRUE` draws uncertain cells faint).
#' @examples
#' \dontrun{
#' r <- stemUncertainty(sce)
#' summary(r)
#' plotSTEMPositions(sce, colour_by = "celltype", certainty = TRUE)
#' }
#' @export
stemUncertainty <- function(sc) {
    res <- .stem_store(sc)
    r <- res$uncertainty
    if (is.null(r)) {
        .stem_abort(c(
            "{.arg sc} holds no placement uncertainty.",
            x = "Its STEM results were stored by a stemmap without it.",
            i = "Run {.fn runSTEM} again."
        ))
    }
    r <- as.double(r)
    names(r) <- rownames(.stem_result(sc, "embedding"))
    r
}
