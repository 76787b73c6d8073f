# Class-specific code of the R front end: one method per class on internal S4 generics,
# not chains of class tests in the verbs.
#
#   .stem_counts(x, arg, ...)        read counts: the genes x observations matrix of `x`
#   .stem_layer_names(x, assay)      the assays (SummarizedExperiment) / layers (Seurat) it has
#   .stem_meta(x)                    its per-column metadata (colData, meta.data)
#   .stem_st_coords(st, coords, ...) read coordinates and images: the spot coordinates
#   .stem_write(sc, res, ...)        write results where R/storage.R says `sc`'s class keeps them
#   .stem_saved(sc)                  read back what runSTEM() stored (NULL if nothing)
#   .stem_annotate(st, res, cols)    write the spot-side results onto `st`
#
# Methods: ANY (a base or Matrix matrix; anything else is an error naming the argument),
# SummarizedExperiment, SingleCellExperiment (reducedDims, colPairs), SpatialExperiment
# (spatialCoords(), sample_id) and Seurat. The classes of suggested packages (Seurat,
# SpatialExperiment, DelayedArray) are named, not imported: S4 dispatches on the class
# name of the object, so these methods are found when such an object arrives, and nothing
# needs the package unless it does. setMethod() only remarks that it cannot see the class
# definition here (muffled by .stem_set_method()); a setOldClass()/setClassUnion() stand-in
# would clash with the real class once its package loads.

.stem_set_method <- function(f, signature, definition) {
    suppressWarnings(suppressMessages(methods::setMethod(f, signature, definition)))
}

# ---- read counts ---------------------------------------------------------------------

# list(x = the checked genes x observations matrix, read = what was read: list(assay.type)
# of a SummarizedExperiment, list(assay, layer) of a Seurat object (its default assay
# named), list() for a matrix, which is itself).
methods::setGeneric(".stem_counts", function(x, arg, assay.type = "counts", assay = NULL,
                                             layer = "counts") standardGeneric(".stem_counts"))

methods::setMethod(".stem_counts", "ANY", function(x, arg, assay.type = "counts", assay = NULL,
                                                   layer = "counts") {
    if (identical(arg, "st") && !.stem_is_expr(x)) {
        .stem_abort(c(
            "{.arg st} must be a SpatialExperiment, a SingleCellExperiment with coordinates, a Seurat object with an image, or a genes x spots matrix.",
            x = "Found {.cls {class(x)}}."
        ))
    }
    x <- .stem_in_memory(x)
    .check_expr_matrix(x, arg)
    list(x = x, read = list())
})

methods::setMethod(".stem_counts", "SummarizedExperiment", function(x, arg, assay.type = "counts",
                                                                    assay = NULL, layer = "counts") {
    list(x = .assay_of(x, assay.type, arg), read = list(assay.type = assay.type))
})

.stem_set_method(".stem_counts", "Seurat", function(x, arg, assay.type = "counts", assay = NULL,
                                                    layer = "counts") {
    .stem_require("SeuratObject", "to read Seurat objects")
    if (is.null(assay)) assay <- SeuratObject::DefaultAssay(x)
    m <- .seurat_matrix(x, assay = assay, layer = layer, arg = arg)
    .check_expr_matrix(m, arg)
    list(x = m, read = list(assay = assay, layer = layer))
})

# A numeric (or logical/pattern) matrix, base or Matrix: what the ANY methods accept.
methods::setGeneric(".stem_is_expr", function(x) standardGeneric(".stem_is_expr"))
methods::setMethod(".stem_is_expr", "ANY", function(x) FALSE)
methods::setMethod(".stem_is_expr", "matrix", function(x) is.numeric(x))
for (.cl in c("dMatrix", "lMatrix", "nMatrix")) {
    methods::setMethod(".stem_is_expr", .cl, function(x) TRUE)
}
rm(.cl)

# An out-of-memory matrix (DelayedArray, HDF5-backed assays) as a dgCMatrix; any other
# matrix as it is.
methods::setGeneric(".stem_in_memory", function(x) standardGeneric(".stem_in_memory"))
methods::setMethod(".stem_in_memory", "ANY", function(x) x)
.stem_set_method(".stem_in_memory", "DelayedArray", function(x) methods::as(x, "dgCMatrix"))

methods::setGeneric(".stem_layer_names", function(x, assay = NULL) standardGeneric(".stem_layer_names"))
methods::setMethod(".stem_layer_names", "ANY", function(x, assay = NULL) character())
methods::setMethod(".stem_layer_names", "SummarizedExperiment", function(x, assay = NULL) {
    SummarizedExperiment::assayNames(x)
})
.stem_set_method(".stem_layer_names", "Seurat", function(x, assay = NULL) .seurat_layers(x, assay))

# The layers / slots of one Seurat assay: v5 Assay5 layers, v3/v4 Assay non-empty slots.
methods::setGeneric(".seurat_assay_layers", function(a) standardGeneric(".seurat_assay_layers"))
.stem_set_method(".seurat_assay_layers", "Assay5", function(a) .seurat_fun("Layers")(a))
methods::setMethod(".seurat_assay_layers", "ANY", function(a) {
    slots <- c("counts", "data", "scale.data")
    slots[vapply(slots, function(s) length(methods::slot(a, s)) > 0L, logical(1))]
})

# One layer (v5 Assay5) or slot (v3/v4 Assay) of assay `a` (named `assay`) of `obj`.
methods::setGeneric(".seurat_assay_matrix", function(a, obj, assay, layer, arg) {
    standardGeneric(".seurat_assay_matrix")
})
.stem_set_method(".seurat_assay_matrix", "Assay5", function(a, obj, assay, layer, arg) {
    layers <- .seurat_fun("Layers")(a)
    if (!layer %in% layers) {
        hint <- if (any(startsWith(layers, paste0(layer, ".")))) {
            "Its layers are split; join them first with {.code SeuratObject::JoinLayers()}."
        } else {
            "Choose one with {.arg {if (arg == 'sc') 'layer' else 'st.layer'}}."
        }
        .stem_abort(c(
            "{.arg {arg}} (Seurat v5 assay {.val {assay}}) has no layer {.val {layer}}.",
            x = "Its layers: {.val {layers}}.", i = hint
        ))
    }
    .seurat_nonempty(.seurat_layer_data(obj, assay, layer), assay, layer, "layer", arg)
})
methods::setMethod(".seurat_assay_matrix", "ANY", function(a, obj, assay, layer, arg) {
    m <- tryCatch(
        .seurat_layer_data(obj, assay, layer),
        error = function(e) {
            .stem_abort(c(
                "{.arg {arg}} (Seurat assay {.val {assay}}) has no slot {.val {layer}}.",
                x = conditionMessage(e)
            ))
        }
    )
    .seurat_nonempty(m, assay, layer, "slot", arg)
})

# ---- per-column metadata -------------------------------------------------------------

# `cells`: the names of the columns read (NULL: all). Only a Seurat object has columns of
# its own beyond those read: a SeuratObject 5 assay may hold a subset of the object's cells
# (one assay per Visium HD bin size), so its meta.data rows are those of the assay's cells.
methods::setGeneric(".stem_meta", function(x, cells = NULL) standardGeneric(".stem_meta"))
# (a matrix: none; its columns may repeat names, so none are used as row names)
methods::setMethod(".stem_meta", "ANY", function(x, cells = NULL) {
    data.frame(row.names = seq_len(NCOL(x)))
})
methods::setMethod(".stem_meta", "SummarizedExperiment", function(x, cells = NULL) {
    SummarizedExperiment::colData(x)  # (a DataFrame: its column names as they are)
})
.stem_set_method(".stem_meta", "Seurat", function(x, cells = NULL) {
    md <- x[[]]
    if (is.null(cells) || identical(rownames(md), cells)) md else md[cells, , drop = FALSE]
})

# ---- read coordinates and images -----------------------------------------------------

# list(xy = coordinates (matrix/data.frame, rows named by spot or in spot order), where =
# where they came from (for messages), sample_id = the class's default slices or NULL).
# `names`: the spot names (columns of the counts read); `assay`: the Seurat assay they were
# read from (`st.assay`, NULL: the default one), whose images hold their coordinates.
methods::setGeneric(".stem_st_coords", function(st, coords, names, image = NULL, assay = NULL) {
    standardGeneric(".stem_st_coords")
})

.stem_no_coords <- function(st, hint) {
    .stem_abort(c(
        "{.arg st} must have spatial coordinates; found none in {.cls {class(st)[1]}}.",
        i = hint
    ))
}

methods::setMethod(".stem_st_coords", "ANY", function(st, coords, names, image = NULL,
                                                     assay = NULL) {
    if (is.null(coords)) {
        .stem_no_coords(st, "Pass {.arg coords}: a numeric matrix with one row per spot and 2 columns.")
    }
    list(xy = coords, where = "argument coords", sample_id = NULL)
})

methods::setMethod(".stem_st_coords", "SummarizedExperiment", function(st, coords, names,
                                                                       image = NULL,
                                                                       assay = NULL) {
    if (is.null(coords)) {
        .stem_no_coords(st, "Name them with {.code coords = c(\"x\", \"y\")} (colData columns) or {.code coords = \"spatial\"} (a reducedDim), or pass a SpatialExperiment.")
    }
    if (!is.character(coords)) return(methods::callNextMethod())
    cd <- SummarizedExperiment::colData(st)
    red <- .stem_reduced_dim_names(st)
    if (length(coords) == 2L && all(coords %in% colnames(cd))) {
        # (columns of the spots themselves: in spot order, whatever their row names)
        return(list(xy = unname(as.matrix(as.data.frame(cd[, coords]))),
                    where = sprintf("colData columns %s", paste(coords, collapse = ", ")),
                    sample_id = NULL))
    }
    .stem_abort(c(
        "{.arg coords} must name 2 colData columns or 1 reducedDim of {.arg st}.",
        x = "Found {.val {coords}}; colData has {.val {utils::head(colnames(cd), 10)}}, reducedDims {.val {red}}."
    ))
})

methods::setMethod(".stem_st_coords", "SingleCellExperiment", function(st, coords, names,
                                                                       image = NULL,
                                                                       assay = NULL) {
    if (is.character(coords) && length(coords) == 1L &&
        coords %in% SingleCellExperiment::reducedDimNames(st)) {
        return(list(xy = SingleCellExperiment::reducedDim(st, coords),
                    where = sprintf("reducedDim(st, \"%s\")", coords), sample_id = NULL))
    }
    methods::callNextMethod()
})

# A SpatialExperiment: spatialCoords() (row names: the spot names, repeated across samples
# after cbind()) and its sample_id as slices, unless `coords` names others.
.stem_set_method(".stem_st_coords", "SpatialExperiment", function(st, coords, names,
                                                                  image = NULL, assay = NULL) {
    if (!is.null(coords)) return(methods::callNextMethod())
    list(xy = .spe_spatial_coords(st), where = "spatialCoords(st)", sample_id = st$sample_id)
})

.spe_spatial_coords <- function(st) {
    .stem_require("SpatialExperiment", "to read spatialCoords()")
    SpatialExperiment::spatialCoords(st)
}

.stem_set_method(".stem_st_coords", "Seurat", function(st, coords, names, image = NULL,
                                                     assay = NULL) {
    if (!is.null(coords)) {
        nc <- .seurat_named_coords(st, coords, names)
        return(list(xy = nc$xy, where = nc$where, sample_id = NULL))
    }
    .seurat_image_xy(st, names, image, assay)  # the images of assay `assay` (R/from_Seurat.R)
})

methods::setGeneric(".stem_reduced_dim_names", function(x) standardGeneric(".stem_reduced_dim_names"))
methods::setMethod(".stem_reduced_dim_names", "ANY", function(x) character())
methods::setMethod(".stem_reduced_dim_names", "SingleCellExperiment", function(x) {
    SingleCellExperiment::reducedDimNames(x)
})

# ---- write and read results ----------------------------------------------------------

# `sc` with the results of one run (the list .stem_run() returns), stored where the table
# of R/storage.R says its class keeps them; `assay`: the Seurat assay the counts came from.
methods::setGeneric(".stem_write", function(sc, res, assay = NULL) standardGeneric(".stem_write"))
methods::setMethod(".stem_write", "ANY", function(sc, res, assay = NULL) res)
methods::setMethod(".stem_write", "SummarizedExperiment", function(sc, res, assay = NULL) {
    .to_SummarizedExperiment(sc, res)
})
methods::setMethod(".stem_write", "SingleCellExperiment", function(sc, res, assay = NULL) {
    .to_SingleCellExperiment(sc, res)
})
.stem_set_method(".stem_write", "Seurat", function(sc, res, assay = NULL) .to_Seurat(sc, res, assay))

# What runSTEM() stored on `sc` (metadata(sc)$STEM, Misc(sc, "STEM"), or the list returned
# for a matrix), NULL when nothing.
methods::setGeneric(".stem_saved", function(sc) standardGeneric(".stem_saved"))
methods::setMethod(".stem_saved", "ANY", function(sc) {
    if (is.list(sc) && !is.null(sc$settings)) sc else NULL
})
methods::setMethod(".stem_saved", "SummarizedExperiment", function(sc) {
    S4Vectors::metadata(sc)$STEM
})
.stem_set_method(".stem_saved", "Seurat", function(sc) {
    .stem_require("SeuratObject")
    SeuratObject::Misc(sc, "STEM")  # the table's Misc slot (R/storage.R)
})

# The spots of `st` a run read, list(names, n, where): the columns of `st`; for a Seurat
# object the cells of the assay the spots were read from (`assay`, the stored `st.assay`):
# with SeuratObject 5 each assay holds its own cells (Visium HD: one assay per bin size, so
# the object's columns are the bins of every size), with SeuratObject 4 every assay holds
# the object's cells.
methods::setGeneric(".stem_spots_read", function(st, assay = NULL) standardGeneric(".stem_spots_read"))
methods::setMethod(".stem_spots_read", "ANY", function(st, assay = NULL) {
    list(names = colnames(st), n = ncol(st), where = "")
})
.stem_set_method(".stem_spots_read", "Seurat", function(st, assay = NULL) {
    if (is.null(assay) || !assay %in% SeuratObject::Assays(st)) {
        assay <- SeuratObject::DefaultAssay(st)
    }
    cells <- .seurat_assay_cells(st, assay)
    list(names = cells, n = length(cells), where = sprintf(" in assay \"%s\"", assay))
})

# `st` with the spot-side results: `cols` (deconvolution columns) as colData / meta.data,
# the spot embedding `res$spot_embedding` as a reducedDim / DimReduc "STEM".
methods::setGeneric(".stem_annotate", function(st, res, cols) standardGeneric(".stem_annotate"))
methods::setMethod(".stem_annotate", "ANY", function(st, res, cols) {
    .stem_abort("{.arg st} must be a SummarizedExperiment or Seurat object; found {.cls {class(st)}}.")
})
methods::setMethod(".stem_annotate", "SummarizedExperiment", function(st, res, cols) {
    cd <- SummarizedExperiment::colData(st)
    for (nm in names(cols)) cd[[nm]] <- cols[[nm]]
    SummarizedExperiment::colData(st) <- cd
    st
})
methods::setMethod(".stem_annotate", "SingleCellExperiment", function(st, res, cols) {
    st <- methods::callNextMethod()
    SingleCellExperiment::reducedDim(st, "STEM") <- res$spot_embedding
    st
})
.stem_set_method(".stem_annotate", "Seurat", function(st, res, cols) {
    emb <- res$spot_embedding
    colnames(emb) <- paste0("STEM_", seq_len(ncol(emb)))
    # the assay the spots were read from (st.assay; several bin sizes: one assay each), where
    # `st` has it (`[[`: `$` would match st.assay.type partially)
    assay <- res$params[["st.assay"]]
    if (is.null(assay) || !assay %in% SeuratObject::Assays(st)) {
        assay <- SeuratObject::DefaultAssay(st)
    }
    # SeuratObject 5: the spot embedding holds the cells of that assay only (a DimReduc
    # may cover a subset of the object's cells), the meta.data columns are NA for the bins
    # of other assays (R/accessors.R)
    rownames(emb) <- .seurat_assay_cells(st, assay)
    st[["stem"]] <- SeuratObject::CreateDimReducObject(embeddings = emb, key = "STEM_",
                                                       assay = assay)
    if (length(cols)) {
        st <- SeuratObject::AddMetaData(st, .stem_spot_columns(cols, rownames(emb),
                                                               colnames(st)))
    }
    st
})

# The cells of a SingleCellExperiment `sc` at their pseudo-coordinates, as a
# SpatialExperiment (cells without coordinates left out). After a run on several slices a
# cell's pseudo-coordinates are in the frame of its best slice: that slice is its
# `sample_id` (a `sample_id` column of the cells' own is kept as `sc_sample_id`).
methods::setGeneric(".stem_as_spatial", function(sc) standardGeneric(".stem_as_spatial"))
methods::setMethod(".stem_as_spatial", "ANY", function(sc) {
    .stem_abort("{.arg sc} must be a SingleCellExperiment returned by {.fn runSTEM}; found {.cls {class(sc)}}.")
})
methods::setMethod(".stem_as_spatial", "SingleCellExperiment", function(sc) {
    xy <- .stem_coords(sc)
    keep <- stats::complete.cases(xy)
    sc <- sc[, keep]
    cd <- SummarizedExperiment::colData(sc)
    slice <- cd[[.stem_key("best_slice", "SingleCellExperiment")]]
    if (!is.null(slice)) {
        if ("sample_id" %in% colnames(cd)) cd$sc_sample_id <- cd$sample_id
        cd$sample_id <- as.character(slice)
    }
    SpatialExperiment::SpatialExperiment(
        assays = SummarizedExperiment::assays(sc),
        colData = cd,
        rowData = SummarizedExperiment::rowData(sc),
        reducedDims = SingleCellExperiment::reducedDims(sc),
        spatialCoords = xy[keep, , drop = FALSE],
        metadata = S4Vectors::metadata(sc)
    )
})
