# What the analyses of a STEM mapping read (R/attribution.R, R/interpret.R,
# R/plots_interpret.R): the cells' metadata, their values (attribution or expression),
# their coordinates and positions along an axis. Class-specific reading is one S4 method
# per class (internal generics below); everything else is class-free.

# NULL stays NULL (not sent: the core's default), anything else becomes an integer.
.int_or_null <- function(x) if (is.null(x)) NULL else as.integer(x)

# A STEM result: an object whose class the storage table (R/storage.R) knows, or the list
# runSTEM() returns for a matrix.
.stem_has_store <- function(x) {
    !is.null(.stem_class(x)) || (is.list(x) && !is.data.frame(x) && !is.null(x$settings))
}

.cell_names <- function(sc) {
    rownames(.stem_coords(sc))
}

# Each cell's best slice when the mapping had several slices (else NULL), from where the
# storage table (R/storage.R) says the class of `sc` keeps it.
.stem_best_slice <- function(sc) {
    if (length(unique(.stem_store(sc)$spot_slice)) > 1L) .stem_result(sc, "best_slice")
}

# ---- cell metadata: one method per class ---------------------------------------------

# The cells' metadata as a data.frame (NULL when the object has none).
setGeneric(".stem_cell_meta", function(x) standardGeneric(".stem_cell_meta"))
setMethod(".stem_cell_meta", "ANY", function(x) NULL)
setMethod(".stem_cell_meta", "SummarizedExperiment", function(x) {
    as.data.frame(SummarizedExperiment::colData(x))
})
# SeuratObject is suggested, not loaded here: methods for its class are set by name (as
# for runSTEM(), R/runSTEM.R).
suppressWarnings(suppressMessages(
    setMethod(".stem_cell_meta", "Seurat", function(x) x[[]])
))

# One value per cell: a metadata column name or a vector of length n.
.per_cell <- function(x, sc, n, arg) {
    if (is.null(x)) {
        return(NULL)
    }
    meta <- .stem_cell_meta(sc)
    if (is.character(x) && length(x) == 1L && n != 1L) {
        if (is.null(meta) || !x %in% colnames(meta)) {
            .stem_abort(c(
                "{.arg {arg}} must name a cell metadata column or give one value per cell.",
                x = "No column {.val {x}}{if (is.null(meta)) ' (the object has no cell metadata)' else ''}.",
                i = if (!is.null(meta)) "Columns: {.val {utils::head(colnames(meta), 8)}}."
            ))
        }
        return(meta[[x]])
    }
    if (is.factor(x)) x <- as.character(x)
    if (length(x) != n) {
        .stem_abort("{.arg {arg}} must give one value per cell ({n}); found {length(x)}.")
    }
    x
}

# ---- values (cells x genes): one method per class --------------------------------------

# The cells x genes values the analyses run on: a matrix given by the caller, or the
# attribution / expression of a STEM result.
setGeneric(".stem_values", function(x, what, assay.type = NULL, arg = "x") {
    standardGeneric(".stem_values")
})
setMethod(".stem_values", "ANY", function(x, what, assay.type = NULL, arg = "x") {
    .stem_abort("{.arg {arg}} must be a numeric cells x genes matrix; found {.cls {class(x)}}.")
})
setMethod(".stem_values", "matrix", function(x, what, assay.type = NULL, arg = "x") {
    if (!is.numeric(x)) {
        .stem_abort("{.arg {arg}} must be a numeric cells x genes matrix; found a {typeof(x)} matrix.")
    }
    if (is.null(colnames(x))) {
        .stem_abort("{.arg {arg}} needs gene names as column names.")
    }
    x
})
setMethod(".stem_values", "Matrix", function(x, what, assay.type = NULL, arg = "x") {
    .stem_values(as.matrix(x), what, assay.type, arg)
})
setMethod(".stem_values", "data.frame", function(x, what, assay.type = NULL, arg = "x") {
    .stem_values(as.matrix(x), what, assay.type, arg)
})
setMethod(".stem_values", "list", function(x, what, assay.type = NULL, arg = "x") {
    if (!.stem_has_store(x)) callNextMethod() else .stem_result_values(x, what, assay.type)
})
setMethod(".stem_values", "SummarizedExperiment", function(x, what, assay.type = NULL, arg = "x") {
    .stem_result_values(x, what, assay.type)
})
suppressWarnings(suppressMessages(
    setMethod(".stem_values", "Seurat", function(x, what, assay.type = NULL, arg = "x") {
        .stem_result_values(x, what, assay.type)
    })
))

.stem_result_values <- function(x, what, assay.type) {
    if (what == "attribution") {
        a <- .stem_attribution_of(x)
        if (is.null(a)) a <- stemAttribution(x, verbose = FALSE)
        return(a)
    }
    .stem_expression(x, assay.type)
}

# The matrix (genes x cells) runSTEM() read the counts of `sc` from: the assay (layer) it
# recorded, or `assay.type`.
setGeneric(".stem_counts_used", function(sc, params, assay.type = NULL) {
    standardGeneric(".stem_counts_used")
})
setMethod(".stem_counts_used", "ANY", function(sc, params, assay.type = NULL) {
    .stem_abort("{.code what = \"expression\"} needs a SingleCellExperiment or Seurat object; give a cells x genes matrix as {.arg x} instead.")
})
setMethod(".stem_counts_used", "SummarizedExperiment", function(sc, params, assay.type = NULL) {
    a <- if (!is.null(assay.type)) assay.type else if (!is.null(params$assay.type)) params$assay.type else "counts"
    .assay_of(sc, a, "sc")
})
suppressWarnings(suppressMessages(
    setMethod(".stem_counts_used", "Seurat", function(sc, params, assay.type = NULL) {
        .seurat_matrix(sc, assay = params$assay,
                       layer = if (is.null(params$layer)) "counts" else params$layer)
    })
))

# The expression (cells x genes) the core trained on: the counts runSTEM() read, of the
# genes the core used (recorded at the run), normalised by the core itself with the rule
# it applied (stemmap.bridge.interpret.expression); cells the core dropped are NA.
.stem_expression <- function(sc, assay.type = NULL) {
    res <- .stem_store(sc)
    genes <- res$genes
    if (is.null(genes)) {
        .stem_abort(c(
            "{.arg x} does not record the genes STEM was trained on (mapped by an older stemmap).",
            i = "Run {.fn runSTEM} again, or give the expression as a cells x genes matrix."
        ))
    }
    x <- .stem_counts_used(sc, res$params, assay.type)
    miss <- setdiff(genes, rownames(x))
    if (length(miss)) {
        .stem_abort(c(
            "The counts of {.arg x} lack {length(miss)} of the {length(genes)} genes STEM was trained on.",
            x = "Missing: {.val {utils::head(miss, 3)}}."
        ))
    }
    if (!identical(rownames(x), genes)) x <- x[genes, , drop = FALSE]
    packed <- .run_python(.worker_call, verb = "expression", args = list(
        x = .pack(x), normalized = isTRUE(res$settings$normalized)
    ))
    out <- .unpack(packed)
    dimnames(out) <- list(.cell_names(sc), genes)
    out[!stats::complete.cases(.stem_coords(sc)), ] <- NA_real_  # dropped by the core
    out
}

# ---- coordinates and positions -----------------------------------------------------------

# Cell coordinates named by `name` on `x` (a reducedDim of a SingleCellExperiment).
setGeneric(".stem_named_coords", function(x, name) standardGeneric(".stem_named_coords"))
setMethod(".stem_named_coords", "ANY", function(x, name) {
    .stem_abort(c(
        "{.arg coords} must be a numeric cells x 2 matrix; found {.val {name}}.",
        i = "A name is read as a reducedDim of a SingleCellExperiment {.arg x}."
    ))
})
setMethod(".stem_named_coords", "SingleCellExperiment", function(x, name) {
    if (!name %in% SingleCellExperiment::reducedDimNames(x)) {
        .stem_abort("{.arg coords} {.val {name}} is not a reducedDim of {.arg x}.")
    }
    SingleCellExperiment::reducedDim(x, name)
})

# Coordinates of the cells: given (cells x 2) or the STEM pseudo-coordinates of x.
.resolve_coords <- function(coords, x, n) {
    if (is.null(coords)) {
        if (!.stem_has_store(x)) {
            .stem_abort(c(
                "{.arg coords} is needed when {.arg x} is a matrix.",
                i = "Give cells x 2 coordinates, or pass the object returned by {.fn runSTEM}."
            ))
        }
        return(.stem_coords(x))
    }
    if (is.character(coords) && length(coords) == 1L) coords <- .stem_named_coords(x, coords)
    coords <- as.matrix(coords)
    if (!is.numeric(coords) || ncol(coords) < 2L || nrow(coords) != n) {
        .stem_abort("{.arg coords} must be a numeric cells x 2 matrix with {n} rows; found {nrow(coords)} x {ncol(coords)}.")
    }
    coords[, 1:2, drop = FALSE]
}

# `axis` of stemSpatialDominantGenes(): a name, or a direction packed for the core.
.check_direction <- function(axis) {
    if (is.character(axis) && length(axis) == 1L && axis %in% c("x", "y", "pc1")) {
        return(axis)
    }
    if (is.numeric(axis) && length(axis) == 2L && all(is.finite(axis)) && any(axis != 0)) {
        return(.pack(as.double(axis)))
    }
    .stem_abort("{.arg axis} must be {.val x}, {.val y}, {.val pc1} or a non-zero direction c(dx, dy); found {.val {format(axis)}}.")
}

# A position per cell: numeric vector, metadata column, or an axis of the coordinates.
.resolve_score <- function(score, x, n, coords = NULL) {
    if (is.character(score) && length(score) == 1L) {
        if (score %in% c("x", "y", "pc1")) {
            xy <- .resolve_coords(coords, x, n)
            s <- rep(NA_real_, n)
            ok <- stats::complete.cases(xy)
            packed <- .run_python(.worker_call, verb = "axis_score", args = list(
                coords = .pack(unname(xy[ok, , drop = FALSE])), axis = score
            ))
            s[ok] <- as.vector(.unpack(packed))
            return(s)
        }
        s <- .per_cell(score, x, n, "score")
    } else {
        s <- score
    }
    if (!is.numeric(s) || length(s) != n) {
        .stem_abort("{.arg score} must be {.val x}, {.val y}, {.val pc1}, a numeric cell metadata column or one number per cell ({n}).")
    }
    as.double(s)
}

.subset_genes <- function(vals, genes) {
    if (is.null(genes)) {
        return(vals)
    }
    miss <- setdiff(genes, colnames(vals))
    if (length(miss)) {
        .stem_abort("{.arg genes} not found: {.val {utils::head(miss, 3)}}.")
    }
    vals[, genes, drop = FALSE]
}

# Values (expression or attribution), axis score and optional groups of the cells for the
# axis analyses, restricted to complete cases, as the bridge's keyword arguments.
.axis_inputs <- function(x, score, groups, genes, coords, what, assay.type) {
    vals <- .subset_genes(.stem_values(x, what, assay.type), genes)
    n <- nrow(vals)
    s <- .resolve_score(score, x, n, coords)
    g <- .per_cell(groups, x, n, "groups")
    keep <- stats::complete.cases(vals) & !is.na(s) & (if (is.null(g)) TRUE else !is.na(g))
    list(expr = .pack(unname(vals[keep, , drop = FALSE])), genes = as.list(colnames(vals)),
         score = .pack(s[keep]),
         groups = if (is.null(g)) NULL else as.list(as.character(g[keep])))
}
