# Seurat -> plain inputs (SC and ST). SeuratObject is optional (Suggests).
# SeuratObject 5 (any assay, v5 `Assay5` or v3 `Assay`): LayerData(layer = layer);
# SeuratObject 4 (`Assay` only): GetAssayData(slot = layer), whose `slot` argument
# SeuratObject 5 deprecates.

# SeuratObject 5 functions, looked up at run time (absent from SeuratObject 4).
.seurat_fun <- function(name) getExportedValue("SeuratObject", name)

.seurat_v5 <- function() utils::packageVersion("SeuratObject") >= "5.0.0"

# One layer (v5) / slot (v4) of an assay, by the API of the installed SeuratObject.
.seurat_layer_data <- function(obj, assay, layer) {
    if (.seurat_v5()) {
        .seurat_fun("LayerData")(obj, assay = assay, layer = layer)
    } else {
        SeuratObject::GetAssayData(obj, assay = assay, slot = layer)
    }
}

# The layers (v5 `Assay5`) or non-empty slots (v4 `Assay`) of an assay of `obj` (default
# its default assay); character(0) for an unknown assay (then .seurat_matrix() says so).
.seurat_layers <- function(obj, assay = NULL) {
    .stem_require("SeuratObject", "to read Seurat objects")
    if (is.null(assay)) assay <- SeuratObject::DefaultAssay(obj)
    if (!assay %in% SeuratObject::Assays(obj)) return(character())
    .seurat_assay_layers(obj[[assay]])  # a method per assay class (R/classes.R)
}

.seurat_matrix <- function(obj, assay = NULL, layer = "counts", arg = "sc") {
    .stem_require("SeuratObject", "to read Seurat objects")
    if (is.null(assay)) assay <- SeuratObject::DefaultAssay(obj)
    if (!assay %in% SeuratObject::Assays(obj)) {
        assay_arg <- if (arg == "st") "st.assay" else "assay"
        .stem_abort(c(
            "{.arg {arg}} has no assay {.val {assay}} (argument {.arg {assay_arg}}).",
            x = "Its assays: {.val {SeuratObject::Assays(obj)}}."
        ))
    }
    a <- obj[[assay]]
    m <- .seurat_assay_matrix(a, obj, assay, layer, arg)  # a method per assay class (R/classes.R)
    if (is.null(rownames(m))) rownames(m) <- rownames(a)
    if (is.null(colnames(m))) colnames(m) <- colnames(obj)
    m
}

# `m` read from `what` ("layer" or "slot") `layer` of assay `assay`, unless it is empty.
.seurat_nonempty <- function(m, assay, layer, what, arg) {
    if (!length(m) || nrow(m) == 0L || ncol(m) == 0L) {
        .stem_abort(c(
            "{.arg {arg}} (Seurat assay {.val {assay}}) has no {.val {layer}}: found an empty {layer} {what}.",
            i = "STEM needs raw counts; or give a normalised layer with {.code layer = \"data\", normalized = TRUE}."
        ))
    }
    m
}

# Coordinates of a Seurat spatial image: VisiumV1 (imagerow/imagecol), SlideSeq
# (x/y), FOV (centroids x/y with a cell column).
.seurat_image_coords <- function(img, cells) {
    tc <- SeuratObject::GetTissueCoordinates(img)
    tc <- as.data.frame(tc)
    if (!is.null(tc$cell)) rownames(tc) <- tc$cell
    xy <- if (all(c("x", "y") %in% colnames(tc))) {
        tc[, c("x", "y")]
    } else if (all(c("imagecol", "imagerow") %in% colnames(tc))) {
        tc[, c("imagecol", "imagerow")]
    } else {
        num <- vapply(tc, is.numeric, logical(1))
        tc[, num, drop = FALSE][, 1:2]
    }
    xy <- as.matrix(xy)
    xy[match(cells, rownames(tc)), , drop = FALSE]
}

# Coordinates named by `coords` on a Seurat object: 2 meta.data columns, 1 reduction
# (e.g. a "spatial" DimReduc), or a numeric matrix / data.frame with one row per spot.
.seurat_named_coords <- function(st, coords, cells) {
    if (!is.character(coords)) return(list(xy = coords, where = "argument coords"))
    md <- st[[]]
    reds <- SeuratObject::Reductions(st)
    if (length(coords) == 1L && coords %in% reds) {
        emb <- SeuratObject::Embeddings(st, reduction = coords)
        return(list(xy = emb[cells, , drop = FALSE],
                    where = sprintf("Embeddings(st, \"%s\")", coords)))
    }
    if (length(coords) == 2L && all(coords %in% colnames(md))) {
        return(list(xy = as.matrix(md[cells, coords]),
                    where = sprintf("meta.data columns %s", paste(coords, collapse = ", "))))
    }
    .stem_abort(c(
        "{.arg coords} must name 2 meta.data columns or 1 reduction of {.arg st}.",
        x = "Found {.val {coords}}; meta.data has {.val {utils::head(colnames(md), 10)}}, reductions {.val {reds}}."
    ))
}

# The images of a Seurat `st` that hold the coordinates of assay `assay` (NULL: none was
# named): `image` when the caller named it (the caller wins); else the images whose assay is
# `assay` (SeuratObject::Images(st, assay = ), the same in SeuratObject 4 and 5: a Visium HD
# object of SeuratObject 5 has one assay per bin size, "Spatial.008um", "Spatial.016um",
# each with its own image). With no assay named, the images of the default assay, or every
# image when none is of that one (e.g. a "SCT" default assay next to a "Spatial" image).
.seurat_images_of <- function(st, assay = NULL, image = NULL) {
    imgs <- SeuratObject::Images(st)
    if (!is.null(image)) {
        miss <- setdiff(image, imgs)
        if (length(miss)) {
            .stem_abort("{.arg image} {.val {miss}} not found in {.arg st}; its images: {.val {imgs}}.")
        }
        return(image)
    }
    if (!length(imgs)) {
        .stem_abort(c(
            "{.arg st} must have spatial coordinates; found no image in this {.cls Seurat} object.",
            i = "Use a Seurat object with a spatial image (VisiumV1, VisiumV2, SlideSeq, FOV), or name its coordinates with {.arg coords} (2 meta.data columns, a reduction, or a spots x 2 matrix)."
        ))
    }
    of_assay <- if (is.null(assay)) SeuratObject::DefaultAssay(st) else assay
    own <- SeuratObject::Images(st, assay = of_assay)
    if (length(own) || is.null(assay)) return(if (length(own)) own else imgs)
    of <- vapply(imgs, function(im) SeuratObject::DefaultAssay(st[[im]]), "")
    .stem_abort(c(
        "{.arg st.assay} = {.val {assay}} has no image in {.arg st}.",
        x = "Its images and their assays: {.val {paste0(imgs, ' (', of, ')')}}.",
        i = "Name the image to read with {.arg image}, or give the coordinates with {.arg coords}."
    ))
}

# The coordinates of the spots `cells` in the images of a Seurat `st` that belong to assay
# `assay` (.seurat_images_of()), one slice per image when there are several:
# list(xy, where, sample_id). Images without any of `cells` are left out (another bin size's
# image); a spot in two of the images is an error (which one holds its position is
# ambiguous), naming `image`.
.seurat_image_xy <- function(st, cells, image = NULL, assay = NULL) {
    imgs <- .seurat_images_of(st, assay, image)
    xy <- matrix(NA_real_, length(cells), 2L)
    sid <- rep(NA_character_, length(cells))
    used <- character()
    for (im in imgs) {
        img <- st[[im]]
        c_im <- intersect(cells, SeuratObject::Cells(img))
        if (!length(c_im) && is.null(image)) next
        pos <- match(c_im, cells)
        twice <- pos[!is.na(sid[pos])]
        if (length(twice)) {
            .stem_abort(c(
                "Several images of {.arg st} hold the same spots: {.val {unique(sid[twice])}} and {.val {im}} share {length(twice)} spot{?s}, e.g. {.val {utils::head(cells[twice], 3)}}.",
                i = "Choose one with {.arg image} (or the assay with {.arg st.assay})."
            ))
        }
        xy[pos, ] <- .seurat_image_coords(img, c_im)
        sid[pos] <- im
        used <- c(used, im)
    }
    keep <- !is.na(sid) & stats::complete.cases(xy)
    if (!all(keep)) {
        .stem_abort(c(
            "Every spot of {.arg st} needs spatial coordinates.",
            x = "{sum(!keep)} of {length(keep)} spots have none in image{?s} {.val {imgs}}."
        ))
    }
    list(xy = xy, where = sprintf("image%s %s", if (length(used) > 1L) "s" else "",
                                  paste(used, collapse = ", ")),
         sample_id = if (length(used) > 1L) sid)
}

# runSTEM() for a Seurat sc: its counts and meta.data into the one implementation for
# objects (.runSTEM_object(), R/inputs.R), the results back on the object (R/to_Seurat.R).
.runSTEM_Seurat <- function(sc, st, ..., assay = NULL, layer = "counts", labels = NULL,
                            st.assay.type = NULL, st.layer = NULL, st.assay = NULL) {
    .runSTEM_object(sc, st, ..., labels = labels, assay = assay, layer = layer,
                    st.assay.type = st.assay.type, st.layer = st.layer, st.assay = st.assay)
}
