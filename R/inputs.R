# Turning the caller's SC and ST objects into plain matrices (genes x observations),
# coordinates and slices. What differs by class is one method per class in R/classes.R
# (with the helpers of R/from_SummarizedExperiment.R and R/from_Seurat.R).

.check_expr_matrix <- function(x, arg) {
    if (!.stem_is_expr(x)) {
        .stem_abort(c(
            "{.arg {arg}} must be a numeric genes x cells matrix, a SingleCellExperiment or a Seurat object.",
            x = "Found {.cls {class(x)}}."
        ))
    }
    if (is.null(rownames(x))) {
        .stem_abort("{.arg {arg}} must have gene names as row names; found none.")
    }
    if (anyDuplicated(rownames(x))) {
        .stem_abort("{.arg {arg}} has duplicated gene names, e.g. {.val {rownames(x)[anyDuplicated(rownames(x))]}}.")
    }
    if (ncol(x) < 2L) {
        .stem_abort("{.arg {arg}} must have at least 2 columns; found {ncol(x)}.")
    }
    # cells: results are stored per cell by name. (Spots are matched by position: spot
    # barcodes repeated across the samples of one SpatialExperiment are common and fine.)
    cn <- colnames(x)
    if (arg == "sc" && !is.null(cn) && anyDuplicated(cn)) {
        dup <- unique(cn[duplicated(cn)])
        .stem_abort(c(
            "{.arg {arg}} has {length(dup)} duplicated column (cell) name{?s}, e.g. {.val {utils::head(dup, 3)}}.",
            i = "Results are stored by name: make them unique first (e.g. {.code make.unique()})."
        ))
    }
    invisible(x)
}

.with_colnames <- function(x, prefix) {
    if (is.null(colnames(x))) colnames(x) <- paste0(prefix, seq_len(ncol(x)))
    x
}

# Numeric n x 2 coordinate matrix from a matrix/data.frame, in the order of the spots
# (`names`): coordinates with row names are aligned by them.
.as_coords <- function(coords, n, where, names = NULL) {
    rn <- NULL
    if (is.data.frame(coords)) {
        if (.row_names_info(coords) > 0L) rn <- rownames(coords)  # not automatic 1..n
        num <- vapply(coords, is.numeric, logical(1))
        coords <- as.matrix(coords[, num, drop = FALSE])
    } else if (is.matrix(coords)) {
        rn <- rownames(coords)
    }
    if (!is.matrix(coords) || !is.numeric(coords) || ncol(coords) < 2L) {
        .stem_abort(c(
            "Spatial coordinates of {.arg st} must be a numeric matrix with 2 columns.",
            x = "Found {.cls {class(coords)}} with {NCOL(coords)} numeric column{?s} ({where})."
        ))
    }
    if (nrow(coords) != n) {
        .stem_abort(c(
            "Spatial coordinates must have one row per spot of {.arg st}.",
            x = "{.arg st} has {n} spots but the coordinates ({where}) have {nrow(coords)} rows."
        ))
    }
    if (ncol(coords) > 2L) {
        .stem_abort(c(
            "Spatial coordinates of {.arg st} must have 2 columns (x, y); found {ncol(coords)} ({where}).",
            i = "stemmap maps onto 2-D sections and does not drop z silently: pass the x/y columns, or each z-section as its own slice ({.arg sample_id})."
        ))
    }
    # row names equal to the spot names (repeated barcodes of several samples included):
    # already in spot order
    if (!is.null(rn) && !is.null(names) && !identical(as.character(rn), as.character(names))) {
        if (anyDuplicated(rn) || anyDuplicated(names)) {
            dup <- unique(c(rn[duplicated(rn)], names[duplicated(names)]))
            .stem_abort(c(
                "The spatial coordinates ({where}) cannot be matched to the spots of {.arg st} by name: names repeat and the row names are not the spot names in order.",
                x = "{length(dup)} name{?s} repeat{?s/}, e.g. {.val {utils::head(dup, 3)}}.",
                i = "Give the rows in the order of the spots of {.arg st}, or remove the row names to match by position."
            ))
        }
        pos <- match(names, rn)
        if (anyNA(pos)) {
            miss <- names[is.na(pos)]
            .stem_abort(c(
                "The row names of the spatial coordinates ({where}) do not match the spot names of {.arg st}.",
                x = "{sum(is.na(pos))} spot{?s} ha{?s/ve} no row, e.g. {.val {utils::head(miss, 3)}}.",
                i = "Name the rows by spot, or remove the row names to match by position."
            ))
        }
        coords <- coords[pos, , drop = FALSE]
    }
    coords <- coords[, 1:2, drop = FALSE]
    if (anyNA(coords)) {
        .stem_abort("Spatial coordinates of {.arg st} ({where}) contain {sum(is.na(coords))} missing value{?s}.")
    }
    storage.mode(coords) <- "double"
    coords
}

# Slices from a sample id per spot.
.slices <- function(x, coords, sample_id) {
    n <- ncol(x)
    if (is.null(sample_id)) sample_id <- rep("st", n)
    if (length(sample_id) != n) {
        .stem_abort(c(
            "{.arg sample_id} must give one sample per spot of {.arg st}.",
            x = "{.arg st} has {n} spots; {.arg sample_id} has {length(sample_id)} value{?s}."
        ))
    }
    if (anyNA(sample_id)) {
        .stem_abort("{.arg sample_id} has {sum(is.na(sample_id))} missing value{?s}.")
    }
    sample_id <- as.character(sample_id)
    samples <- unique(sample_id)
    slices <- lapply(samples, function(s) {
        idx <- which(sample_id == s)
        if (length(idx) < 2L) {
            .stem_abort("Sample {.val {s}} of {.arg st} has {length(idx)} spot; each slice needs at least 2.")
        }
        # one slice: the matrix itself (no copy)
        sx <- if (length(idx) == n) x else x[, idx, drop = FALSE]
        list(x = sx, coords = coords[idx, , drop = FALSE], name = s, index = idx)
    })
    list(slices = slices, n = n, names = colnames(x), sample_id = sample_id)
}

# The ST assay and layer to read when the caller named none (NULL), for an `sc` read from
# its assay or layer `sc_layer`: that one where `st` has it (its Seurat layers or its
# SummarizedExperiment assays, .stem_layer_names()), so that `layer = "data", normalized =
# TRUE` reads the data layer of both and both sides hold the values Python's
# `normalized=True` is given; else "counts" (the core warns when values do not look like
# what `normalized` says). Returns list(st.assay.type, st.layer).
.st_layers_like_sc <- function(st, sc_layer, st.assay.type = NULL, st.layer = NULL,
                               st.assay = NULL) {
    avail <- .stem_layer_names(st, st.assay)
    same <- if (is.character(sc_layer) && length(sc_layer) == 1L && sc_layer %in% avail) sc_layer
    list(st.assay.type = if (is.null(st.assay.type)) same else st.assay.type,
         st.layer = if (is.null(st.layer)) same else st.layer)
}

# An object `sc` (SummarizedExperiment, SingleCellExperiment, Seurat) into the one
# implementation .stem_run(): its counts (.stem_counts(): `assay.type`, or `assay` and
# `layer`) and metadata labels in; the ST assay or layer named like the one read from `sc`
# by default (.st_layers_like_sc()); the results back on `sc` with the writer of its class
# (.stem_write()), what was read from `sc` recorded in the params.
.runSTEM_object <- function(sc, st, ..., labels = NULL, assay.type = "counts", assay = NULL,
                            layer = "counts", st.assay.type = NULL, st.layer = NULL,
                            st.assay = NULL) {
    rd <- .stem_counts(sc, "sc", assay.type = assay.type, assay = assay, layer = layer)
    sc_layer <- if (!is.null(rd$read$layer)) rd$read$layer else rd$read$assay.type
    stl <- .st_layers_like_sc(st, sc_layer, st.assay.type, st.layer, st.assay)
    res <- .stem_run(rd$x, st, ..., labels = .resolve_labels(labels, .stem_meta(sc), ncol(rd$x)),
                     st.assay.type = stl$st.assay.type, st.layer = stl$st.layer,
                     st.assay = st.assay)
    res$params[names(rd$read)] <- rd$read
    .stem_write(sc, res, rd$read$assay)
}

# ST object -> list(slices, n, names, sample_id, coldata, read): its counts
# (.stem_counts()), its coordinates and default slices (.stem_st_coords()) and its spot
# metadata (.stem_meta()), by the methods of its class; `read` records the assay or layer
# read (st.assay.type / st.layer). NULL st.assay.type / st.layer read "counts".
.st_input <- function(st, coords = NULL, sample_id = NULL, st.assay.type = NULL,
                      st.assay = NULL, st.layer = NULL, image = NULL) {
    rd <- .stem_counts(st, "st", assay.type = if (is.null(st.assay.type)) "counts" else st.assay.type,
                       assay = st.assay, layer = if (is.null(st.layer)) "counts" else st.layer)
    x <- .with_colnames(rd$x, "spot")
    meta <- .stem_meta(st, colnames(x))  # (the spots read: those of `st.assay`)
    if (is.character(sample_id) && length(sample_id) == 1L && ncol(x) != 1L) {
        if (!sample_id %in% colnames(meta)) {
            .stem_abort(c(
                "{.arg sample_id} = {.val {sample_id}} is not a spot metadata column of {.arg st}.",
                i = "Its columns: {.val {utils::head(colnames(meta), 10)}}."
            ))
        }
        sample_id <- meta[[sample_id]]
    }
    xy <- .stem_st_coords(st, coords, colnames(x), image, st.assay)
    if (is.null(sample_id)) sample_id <- xy$sample_id
    out <- .slices(x, .as_coords(xy$xy, ncol(x), xy$where, colnames(x)), sample_id)
    out$coldata <- meta
    out$read <- rd$read
    if (length(out$read)) names(out$read) <- paste0("st.", names(out$read))
    out
}

# Label values as given (factors as character): numbers stay numbers so that the core can
# refuse continuous values; NA stays NA (the core skips it with a warning).
.label_values <- function(v) {
    if (is.factor(v)) as.character(v) else v
}

# Labels for the core: a list with NULL (None) for NA. Whole numbers go as text (cluster
# ids "1", "2"), other doubles as numbers.
.labels_for_python <- function(l) {
    whole <- is.numeric(l) && all(l[!is.na(l)] == round(l[!is.na(l)]))
    out <- if (is.double(l) && !whole) as.list(as.double(l)) else as.list(as.character(l))
    out[is.na(l)] <- list(NULL)
    out
}

# Per-cell labels: column names of the SC metadata or a named list of vectors.
.resolve_labels <- function(labels, meta, n) {
    if (is.null(labels) || (is.list(labels) && !length(labels))) return(list())
    if (is.character(labels) && all(labels %in% colnames(meta)) && length(labels) <= ncol(meta)) {
        out <- lapply(labels, function(l) .label_values(meta[[l]]))
        names(out) <- labels
    } else if (is.list(labels) && !is.null(names(labels))) {
        out <- lapply(labels, .label_values)
    } else if (is.atomic(labels) && length(labels) == n) {
        out <- list(label = .label_values(labels))
    } else {
        .stem_abort(c(
            "{.arg labels} must name columns of the cell metadata, or be a vector with one label per cell.",
            x = "Found {.val {utils::head(labels, 5)}}; metadata columns: {.val {utils::head(colnames(meta), 10)}}."
        ))
    }
    bad <- vapply(out, length, 1L) != n
    if (any(bad)) {
        .stem_abort("{.arg labels} {.val {names(out)[bad]}} must have one value per cell ({n}).")
    }
    out
}

# Values to transfer from spots to cells: ST metadata columns or spots x F matrices.
.resolve_transfer <- function(transfer, st_in) {
    if (is.null(transfer)) return(list())
    cd <- st_in$coldata
    if (is.character(transfer)) {
        miss <- setdiff(transfer, colnames(cd))
        if (length(miss)) {
            .stem_abort(c(
                "{.arg transfer} must name spot metadata columns of {.arg st}.",
                x = "Not found: {.val {miss}}; available: {.val {utils::head(colnames(cd), 10)}}."
            ))
        }
        out <- lapply(transfer, function(col) {
            v <- cd[[col]]
            if (is.numeric(v)) {
                m <- matrix(as.double(v), ncol = 1, dimnames = list(NULL, col))
            } else {
                # one column per category; a spot without a value is NA in every column
                # (skipped by the core with a warning), not dropped
                f <- factor(v)
                m <- matrix(0, length(f), nlevels(f),
                            dimnames = list(NULL, paste0(col, "_", levels(f))))
                ok <- which(!is.na(f))
                m[cbind(ok, as.integer(f[ok]))] <- 1
                m[is.na(f), ] <- NA_real_
            }
            m
        })
        names(out) <- transfer
    } else {
        if (!is.list(transfer)) transfer <- list(values = transfer)
        out <- lapply(transfer, function(m) {
            m <- as.matrix(m)
            if (!is.numeric(m) || nrow(m) != st_in$n) {
                .stem_abort("{.arg transfer} values must be numeric with one row per spot ({st_in$n}); found {nrow(m)} row{?s}.")
            }
            if (is.null(colnames(m))) colnames(m) <- paste0("V", seq_len(ncol(m)))
            m
        })
        if (is.null(names(out)) || any(!nzchar(names(out)))) names(out) <- paste0("values", seq_along(out))
    }
    out
}
