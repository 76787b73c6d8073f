#' Plots of STEM results
#'
#' `plotSTEMPositions()` draws cells at their pseudo-coordinates coloured by a
#' cell label, optionally over the tissue image of the spatial object;
#' `plotSTEMLoss()` the loss terms per epoch; `plotSTEMDeconvolution()` the
#' estimated proportion of one cell type at every spot.
#'
#' @details
#' **Colours.** Labels get the Okabe-Ito palette (up to 8 values) or Kelly's 21
#' colours of maximum contrast (up to 21), then HCL colours; legends with many
#' values use two columns. `palette` takes a character vector of colours (named by
#' label, or in the order of the sorted labels), the name of an HCL palette
#' ([grDevices::hcl.pals()], e.g. `"Dark 3"`), or a function of `n`. Numeric
#' values (e.g. `colour_by = "STEM_confidence"`) use viridis.
#'
#' **Tissue image.** With `image = TRUE`, cells are drawn over the low-resolution
#' image of `st`: for a SpatialExperiment the image of `imgData(st)` (by default
#' the first one of the first sample, preferring `image_id = "lowres"`), whose
#' `scaleFactor` turns `spatialCoords()` into image pixels; for a Seurat object the
#' Visium image (`GetImage()`), whose coordinates `GetTissueCoordinates()` already
#' gives in low-resolution pixels. This assumes `runSTEM()` read the coordinates of
#' `st` from the object itself (the default, not `coords =`). With several slices,
#' only cells whose best slice is the image's sample are drawn.
#'
#' **Loss.** STEM minimises `extract + alpha * mmd + beta * trans`; `beta` is 0
#' during the warm-up (50 epochs by default) and then rises linearly to 1, so the
#' total *rises* after the warm-up while every term falls. `plotSTEMLoss()` shows
#' what is optimised: by default (`what = "weighted"`) the weighted terms stacked,
#' whose top is the total, with the warm-up shaded; `what = "terms"` draws each
#' unweighted term on its own panel (the transfer term is computed but not
#' optimised during the warm-up).
#'
#' @param sc The object returned by [runSTEM()].
#' @param colour_by Cell metadata column (or a vector with one value per cell).
#' @param size Point size.
#' @param palette Colours for a categorical `colour_by` (see Details).
#' @param st The spatial object given to [runSTEM()]. `plotSTEMPositions()` needs it
#'   for `image = TRUE` (`plotSTEMPositions(sce, spe, image = TRUE)`; the older
#'   `plotSTEMPositions(sce, "celltype")` still colours by `"celltype"`);
#'   `plotSTEMDeconvolution()` does not need it: it draws the spots at the coordinates
#'   the mapping used (stored by [runSTEM()]); given `coords`, it reads them from `st`
#'   (as [runSTEM()] does), and a spots x 2 matrix is taken as the coordinates.
#' @param image Draw the cells over the tissue image of `st` (see Details).
#' @param sample,image_id Which image of a SpatialExperiment (default: the first
#'   sample, its `"lowres"` image if there is one) or, for Seurat, `sample` names the
#'   image (default the first).
#' @param certainty Draw each cell the fainter the less certain its placement: opacity
#'   by the radius of its 90 per cent region ([stemUncertainty()]), opaque for the smallest radii.
#' @return A ggplot object.
#' @examples
#' \dontrun{
#' plotSTEMPositions(sce, colour_by = "celltype")
#' plotSTEMPositions(sce, spe, colour_by = "celltype", image = TRUE)
#' plotSTEMPositions(sce, colour_by = "celltype", palette = "Dark 3")
#' plotSTEMPositions(sce, colour_by = "celltype", certainty = TRUE)
#' plotSTEMLoss(sce)
#' plotSTEMLoss(sce, what = "terms")
#' }
#' @export
plotSTEMPositions <- function(sc, st = NULL, colour_by = NULL, size = 1, palette = NULL,
                              image = FALSE, sample = NULL, image_id = NULL,
                              certainty = FALSE) {
    # calls from before `st` was the second argument: plotSTEMPositions(sce, "celltype"[, 0.5])
    if (is.atomic(st) && is.null(dim(st)) && !is.null(st)) {
        if (is.null(colour_by)) {
            colour_by <- st
        } else if (is.numeric(colour_by) && length(colour_by) == 1L && missing(size)) {
            size <- colour_by
            colour_by <- st
        }
        st <- NULL
    }
    if (!is.logical(certainty) || length(certainty) != 1L || is.na(certainty)) {
        .stem_abort("{.arg certainty} must be TRUE or FALSE; found {.val {format(certainty)}}.",
                    kind = "type")
    }
    xy <- .stem_coords(sc)
    df <- data.frame(x = xy[, 1], y = xy[, 2])
    if (certainty) df$radius <- unname(stemUncertainty(sc))
    meta <- .stem_cell_meta(sc)
    if (!is.null(colour_by)) {
        if (length(colour_by) == 1L && !is.null(meta) && colour_by %in% colnames(meta)) {
            df$colour <- meta[[colour_by]]
        } else if (length(colour_by) == nrow(df)) {
            df$colour <- colour_by
            colour_by <- "label"
        } else {
            .stem_abort("{.arg colour_by} must name a cell metadata column or give one value per cell; found {.val {utils::head(colour_by, 3)}}.")
        }
    }
    title <- "STEM pseudo-coordinates"
    img <- NULL
    if (isTRUE(image)) {
        if (is.null(st)) {
            .stem_abort("{.arg image} = TRUE needs the spatial object: {.code plotSTEMPositions(sc, st, image = TRUE)}.")
        }
        img <- .stem_tissue_image(st, sample = sample, image_id = image_id)
        slice <- .stem_best_slice(sc)
        if (!is.null(slice) && !is.null(img$sample)) {
            df <- df[!is.na(slice) & slice == img$sample, , drop = FALSE]
        }
        df$x <- df$x * img$scale
        df$y <- -df$y * img$scale  # image rows grow downwards
        title <- paste0(title, " on the tissue image (", img$what, ")")
    } else if (!identical(image, FALSE)) {
        .stem_abort("{.arg image} must be TRUE or FALSE; found {.val {format(image)}}.")
    }
    df <- df[stats::complete.cases(df[, c("x", "y")]), , drop = FALSE]
    p <- ggplot2::ggplot(df, ggplot2::aes(x = .data$x, y = .data$y))
    if (!is.null(img)) {
        h <- nrow(img$raster)
        w <- ncol(img$raster)
        p <- p + ggplot2::annotation_raster(img$raster, xmin = 0, xmax = w, ymin = -h, ymax = 0) +
            ggplot2::scale_y_continuous(labels = function(b) -b)
    }
    # with `certainty`, opacity by the radius of the 90 % region (opaque = certain)
    p <- if (is.null(colour_by)) {
        fade <- if (certainty) ggplot2::aes(alpha = .data$radius)
        p + ggplot2::geom_point(fade, size = size, colour = if (is.null(img)) "black" else "#0072B2")
    } else {
        aes_c <- if (certainty) {
            ggplot2::aes(colour = .data$colour, alpha = .data$radius)
        } else {
            ggplot2::aes(colour = .data$colour)
        }
        p + ggplot2::geom_point(aes_c, size = size) +
            .stem_colour_scale(df$colour, palette) + ggplot2::labs(colour = colour_by)
    }
    if (certainty) {
        p <- p + ggplot2::scale_alpha_continuous(range = c(1, 0.1), name = "radius of the\n90 % region")
    }
    coord <- if (is.null(img)) {
        ggplot2::coord_equal()
    } else {
        ggplot2::coord_equal(xlim = c(0, ncol(img$raster)), ylim = c(-nrow(img$raster), 0),
                             expand = FALSE)
    }
    p + coord + ggplot2::theme_bw() +
        ggplot2::labs(title = title,
                      x = if (is.null(img)) "x" else "image column (pixels)",
                      y = if (is.null(img)) "y" else "image row (pixels)")
}

# Okabe & Ito (2008), colour-blind safe; Kelly (1965) 22 colours of maximum contrast
# (white left out, black last).
.stem_okabe_ito <- c("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
                     "#CC79A7", "#000000")
.stem_kelly <- c("#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280",
                 "#848482", "#008856", "#E68FAC", "#0067A5", "#F99379", "#604E97",
                 "#F6A600", "#B3446C", "#DCD300", "#882D17", "#8DB600", "#654522",
                 "#E25822", "#2B3D26", "#222222")

#' Colours for cell labels
#'
#' The colours stemmap's plots give to categorical labels, for use in your own
#' ggplots (`scale_colour_manual(values = stemPalette(x))`).
#'
#' @param labels Labels (a vector; its sorted unique values, or a factor's levels, are
#'   coloured).
#' @param palette `NULL` (Okabe-Ito up to 8 labels, Kelly's 21 colours of maximum
#'   contrast up to 21, then HCL colours), colours (named by label, or in the order of
#'   the sorted labels), an HCL palette name ([grDevices::hcl.pals()]) or a function of
#'   `n`.
#' @return A named character vector: one colour per label.
#' @examples
#' stemPalette(c("B cell", "T cell", "NK"))
#' stemPalette(letters[1:12], "Dark 3")
#' @seealso [plotSTEMPositions()]
#' @export
stemPalette <- function(labels, palette = NULL) {
    lev <- if (is.factor(labels)) levels(droplevels(labels)) else sort(unique(as.character(labels)))
    .stem_palette(lev, palette)
}

# Named colours, one per level: the default palette or the user's `palette`.
.stem_palette <- function(levels, palette = NULL) {
    n <- length(levels)
    cols <- if (is.null(palette)) {
        if (n <= length(.stem_okabe_ito)) {
            .stem_okabe_ito[seq_len(n)]
        } else if (n <= length(.stem_kelly)) {
            .stem_kelly[seq_len(n)]
        } else {
            c(.stem_kelly, grDevices::hcl.colors(n - length(.stem_kelly), "Dark 3"))
        }
    } else if (is.function(palette)) {
        palette(n)
    } else if (is.character(palette) && length(palette) == 1L && palette %in% grDevices::hcl.pals()) {
        grDevices::hcl.colors(n, palette)
    } else if (is.character(palette) && !is.null(names(palette))) {
        miss <- setdiff(levels, names(palette))
        if (length(miss)) {
            .stem_abort(c("{.arg palette} must name a colour for every label.",
                          x = "No colour for {.val {miss}}."))
        }
        palette[levels]
    } else if (is.character(palette)) {
        if (length(palette) < n) {
            .stem_abort(c("{.arg palette} must have at least one colour per label.",
                          x = "{n} label{?s}, {length(palette)} colour{?s}."))
        }
        palette[seq_len(n)]
    } else {
        .stem_abort("{.arg palette} must be colours, an HCL palette name or a function; found {.cls {class(palette)}}.")
    }
    if (length(cols) < n) {
        .stem_abort("{.arg palette} gave {length(cols)} colour{?s} for {n} label{?s}.")
    }
    stats::setNames(unname(cols[seq_len(n)]), levels)
}

.stem_colour_scale <- function(values, palette = NULL) {
    if (is.numeric(values)) {
        return(ggplot2::scale_colour_viridis_c())
    }
    pal <- stemPalette(values, palette)
    lev <- names(pal)
    ncol <- if (length(lev) > 12L) 2L else 1L
    list(
        ggplot2::scale_colour_manual(values = pal, breaks = lev),
        ggplot2::guides(colour = ggplot2::guide_legend(ncol = ncol,
                                                       override.aes = list(size = 2.5))),
        ggplot2::theme(legend.text = ggplot2::element_text(size = if (length(lev) > 12L) 7 else 9),
                       legend.key.size = ggplot2::unit(0.4, "cm"))
    )
}

# The low-resolution tissue image of a spatial object: list(raster, scale, sample, what),
# `scale` turning the coordinates runSTEM() read into image pixels. One method per class.
setGeneric(".stem_tissue_image", function(st, sample = NULL, image_id = NULL) {
    standardGeneric(".stem_tissue_image")
})

setMethod(".stem_tissue_image", "ANY", function(st, sample = NULL, image_id = NULL) {
    .stem_abort(c("{.arg st} must be a SpatialExperiment or a Seurat object with a tissue image.",
                  x = "Found {.cls {class(st)}}."))
})

# The image of `imgData(st)` (default: the first sample, its "lowres" image if any), whose
# scaleFactor turns spatialCoords() into image pixels.
.stem_tissue_image_spe <- function(st, sample = NULL, image_id = NULL) {
    .stem_require("SpatialExperiment", "to read the tissue image")
    imgs <- SpatialExperiment::imgData(st)
    if (is.null(imgs) || !nrow(imgs)) {
        .stem_abort(c("{.arg st} has no tissue image: {.code imgData(st)} is empty.",
                      i = "Add one with {.code SpatialExperiment::addImg()}, or plot without {.arg image}."))
    }
    if (is.null(sample)) sample <- as.character(imgs$sample_id[1])
    rows <- which(imgs$sample_id == sample)
    if (!length(rows)) {
        .stem_abort("{.arg sample} {.val {sample}} has no image; images are for {.val {unique(imgs$sample_id)}}.")
    }
    if (is.null(image_id)) {
        image_id <- if ("lowres" %in% imgs$image_id[rows]) "lowres" else as.character(imgs$image_id[rows[1]])
    }
    row <- rows[imgs$image_id[rows] == image_id]
    if (!length(row)) {
        .stem_abort("{.arg image_id} {.val {image_id}} not found for sample {.val {sample}}; found {.val {imgs$image_id[rows]}}.")
    }
    sf <- imgs$scaleFactor[row[1]]
    if (is.na(sf) || sf <= 0) {
        .stem_abort("The image {.val {image_id}} of sample {.val {sample}} has no scale factor ({.code imgData(st)$scaleFactor}).")
    }
    ras <- SpatialExperiment::imgRaster(st, sample_id = sample, image_id = image_id)
    list(raster = ras, scale = sf, sample = sample,
         what = sprintf("%s, %s", sample, image_id))
}

# The Visium image `sample` of a Seurat object (default the first).
.stem_tissue_image_seurat <- function(st, sample = NULL, image_id = NULL) {
    .stem_require("SeuratObject", "to read the tissue image")
    imgs <- SeuratObject::Images(st)
    if (is.null(sample)) sample <- imgs[1]
    if (!length(imgs) || is.na(sample) || !sample %in% imgs) {
        .stem_abort(c("{.arg st} has no image {.val {sample}}.", x = "Its images: {.val {imgs}}."))
    }
    img <- st[[sample]]
    ras <- tryCatch(SeuratObject::GetImage(img, mode = "raster"), error = function(e) NULL)
    if (!grDevices::is.raster(ras) || !length(ras)) {
        .stem_abort(c("The Seurat image {.val {sample}} ({.cls {class(img)[1]}}) carries no tissue picture.",
                      i = "Visium images (from {.code Load10X_Spatial()}) do; SlideSeq and FOV images only hold coordinates."))
    }
    # GetTissueCoordinates() of a Visium image, which runSTEM() reads, is already in
    # low-resolution image pixels
    list(raster = ras, scale = 1, sample = if (length(imgs) > 1L) sample else NULL,
         what = sample)
}

# SpatialExperiment and SeuratObject are suggested, not loaded here: their methods are set
# by class name (as for runSTEM(), R/runSTEM.R).
suppressWarnings(suppressMessages(
    setMethod(".stem_tissue_image", "SpatialExperiment", .stem_tissue_image_spe)
))
suppressWarnings(suppressMessages(
    setMethod(".stem_tissue_image", "Seurat", .stem_tissue_image_seurat)
))

#' @rdname plotSTEMPositions
#' @param what `"weighted"` (default): the weighted terms that are optimised,
#'   stacked; `"terms"`: each unweighted term on its own panel.
#' @export
plotSTEMLoss <- function(sc, what = c("weighted", "terms")) {
    what <- .stem_match_arg(what, c("weighted", "terms"), "what")
    h <- stemHistory(sc)
    alpha <- as.numeric(unlist(stemSettings(sc)$alpha))[1]
    if (is.na(alpha)) alpha <- 0.5
    beta <- if ("beta" %in% colnames(h)) h$beta else rep(1, nrow(h))
    warm <- h$epoch[beta == 0]
    shade <- if (length(warm)) {
        ggplot2::annotate("rect", xmin = min(warm) - 0.5, xmax = max(warm) + 0.5,
                          ymin = -Inf, ymax = Inf, fill = "grey85", alpha = 0.6)
    }
    if (what == "weighted") {
        terms <- c("extract", paste0("alpha x mmd (alpha = ", format(alpha), ")"), "beta x trans")
        long <- data.frame(
            epoch = rep(h$epoch, 3),
            term = factor(rep(terms, each = nrow(h)), levels = rev(terms)),
            value = c(h$extract, alpha * h$mmd, beta * h$trans)
        )
        p <- ggplot2::ggplot(long, ggplot2::aes(x = .data$epoch, y = .data$value)) + shade +
            ggplot2::geom_area(ggplot2::aes(fill = .data$term), stat = "identity", alpha = 0.85) +
            ggplot2::geom_line(data = data.frame(epoch = h$epoch, value = h$loss),
                               ggplot2::aes(x = .data$epoch, y = .data$value), colour = "black",
                               linewidth = 0.4) +
            ggplot2::scale_fill_manual(values = stats::setNames(.stem_okabe_ito[c(5, 3, 6)], terms)) +
            ggplot2::labs(title = "STEM training: the loss that is minimised",
                          subtitle = paste0("extract + alpha x mmd + beta x trans (black: total)",
                                            if (length(warm)) "; grey: warm-up, beta = 0; then beta rises to 1, so the total rises" else ""),
                          x = "epoch", y = "weighted loss", fill = "term")
    } else {
        terms <- intersect(c("extract", "trans", "mmd", "beta"), colnames(h))
        long <- do.call(rbind, lapply(terms, function(t) data.frame(epoch = h$epoch, term = t, value = h[[t]])))
        long$term <- factor(long$term, levels = terms)
        p <- ggplot2::ggplot(long, ggplot2::aes(x = .data$epoch, y = .data$value)) + shade +
            ggplot2::geom_line() + ggplot2::facet_wrap(~term, scales = "free_y", nrow = 1) +
            ggplot2::labs(title = "STEM training: each term (unweighted)",
                          subtitle = if (length(warm)) "grey: warm-up, trans is computed but not optimised (beta = 0)",
                          x = "epoch", y = "loss")
    }
    p + ggplot2::theme_bw() + ggplot2::theme(plot.subtitle = ggplot2::element_text(size = 8))
}

#' @rdname plotSTEMPositions
#' @param type Cell type to show (a column of the deconvolution).
#' @param label Which deconvolution (a `labels` name given to [runSTEM()]).
#' @param coords As in [runSTEM()], to read the coordinates of `st` instead of those
#'   the mapping used.
#' @export
plotSTEMDeconvolution <- function(sc, st = NULL, type, label = NULL, coords = NULL, size = 2) {
    d <- stemDeconvolution(sc, label)
    if (missing(type) || !is.character(type) || length(type) != 1L || !type %in% colnames(d)) {
        .stem_abort("{.arg type} must be one of {.val {colnames(d)}}; found {.val {if (missing(type)) 'nothing' else format(type)}}.")
    }
    xy <- .stem_spot_coords(sc, st, coords)
    df <- data.frame(x = xy[, 1], y = xy[, 2], value = d[, type])
    ggplot2::ggplot(df, ggplot2::aes(x = .data$x, y = .data$y, colour = .data$value)) +
        ggplot2::geom_point(size = size) + ggplot2::coord_equal() + ggplot2::theme_bw() +
        ggplot2::scale_colour_viridis_c() +
        ggplot2::labs(title = paste("STEM deconvolution:", type), colour = "proportion")
}

# Spot coordinates (spots x 2, in the order of the mapped spots) for the spot plots: a
# matrix `st`; or, unless `coords` asks to read `st`, the coordinates the mapping used
# (stored by runSTEM()); or those of `st` read as runSTEM() reads them. Errors name `st`
# or `coords`; stemReport() calls it before rendering.
.stem_spot_coords <- function(sc, st = NULL, coords = NULL) {
    res <- .stem_store(sc)
    n <- nrow(res$spot_embedding)
    if (is.matrix(st) && ncol(st) == 2L && is.numeric(st)) {
        xy <- st
    } else if (is.null(coords) && !is.null(res$spot_coords)) {
        if (!is.null(st) && !identical(as.integer(NCOL(st)), n)) {
            .stem_abort(c("{.arg st} must be the spatial object {.arg sc} was mapped onto.",
                          x = "{.arg sc} was mapped onto {n} spots; {.arg st} has {NCOL(st)}."))
        }
        return(res$spot_coords)
    } else if (is.null(st)) {
        .stem_abort(c(
            "{.arg st} is needed: {.arg sc} does not hold the spot coordinates (mapped by an older stemmap).",
            i = "Pass the spatial object given to {.fn runSTEM} (with {.arg coords} as there), or run {.fn runSTEM} again."
        ))
    } else {
        s <- .st_input(st, coords = coords)
        xy <- matrix(NA_real_, s$n, 2L)
        for (sl in s$slices) xy[sl$index, ] <- sl$coords
    }
    if (nrow(xy) != n) {
        .stem_abort(c("{.arg st} must be the spatial object {.arg sc} was mapped onto.",
                      x = "{.arg sc} was mapped onto {n} spots; {.arg st} has {nrow(xy)}."))
    }
    xy
}
