#' Plots of STEM results
#'
#' `plotSTEMPositions()` draws cells at their pseudo-coordinates coloured by a
#' cell label; `plotSTEMLoss()` the loss terms per epoch; `plotSTEMDeconvolution()`
#' the estimated proportion of one cell type at every spot.
#'
#' @param sc The object returned by [runSTEM()].
#' @param colour_by Cell metadata column (or a vector with one value per cell).
#' @param size Point size.
#' @return A ggplot object.
#' @export
plotSTEMPositions <- function(sc, colour_by = NULL, size = 1) {
    xy <- .stem_coords(sc)
    df <- data.frame(x = xy[, 1], y = xy[, 2])
    if (!is.null(colour_by)) {
        meta <- if (inherits(sc, "Seurat")) sc[[]] else if (methods::is(sc, "SummarizedExperiment")) as.data.frame(SummarizedExperiment::colData(sc)) else NULL
        if (length(colour_by) == 1L && !is.null(meta) && colour_by %in% colnames(meta)) {
            df$colour <- meta[[colour_by]]
        } else if (length(colour_by) == nrow(df)) {
            df$colour <- colour_by
            colour_by <- "label"
        } else {
            .stem_abort("{.arg colour_by} must name a cell metadata column or give one value per cell; found {.val {utils::head(colour_by, 3)}}.")
        }
    }
    df <- df[stats::complete.cases(df[, c("x", "y")]), , drop = FALSE]
    p <- ggplot2::ggplot(df, ggplot2::aes(x = .data$x, y = .data$y))
    p <- if (is.null(colour_by)) {
        p + ggplot2::geom_point(size = size)
    } else {
        p + ggplot2::geom_point(ggplot2::aes(colour = .data$colour), size = size) +
            ggplot2::labs(colour = colour_by)
    }
    p + ggplot2::coord_equal() + ggplot2::theme_bw() +
        ggplot2::labs(title = "STEM pseudo-coordinates", x = "x", y = "y")
}

#' @rdname plotSTEMPositions
#' @export
plotSTEMLoss <- function(sc) {
    h <- stemHistory(sc)
    terms <- intersect(c("loss", "extract", "trans", "mmd"), colnames(h))
    long <- do.call(rbind, lapply(terms, function(t) data.frame(epoch = h$epoch, term = t, value = h[[t]])))
    ggplot2::ggplot(long, ggplot2::aes(x = .data$epoch, y = .data$value, colour = .data$term)) +
        ggplot2::geom_line() + ggplot2::theme_bw() +
        ggplot2::labs(title = "STEM training loss", x = "epoch", y = "loss", colour = "term")
}

#' @rdname plotSTEMPositions
#' @param st Spatial object with coordinates (as given to [runSTEM()]), or a
#'   spots x 2 coordinate matrix.
#' @param type Cell type to show (a column of the deconvolution).
#' @param label Which deconvolution (a `labels` name given to [runSTEM()]).
#' @param coords As in [runSTEM()], to read the coordinates of `st`.
#' @export
plotSTEMDeconvolution <- function(sc, st, type, label = NULL, coords = NULL, size = 2) {
    d <- stemDeconvolution(sc, label)
    if (!type %in% colnames(d)) {
        .stem_abort("{.arg type} must be one of {.val {colnames(d)}}; found {.val {type}}.")
    }
    xy <- if (is.matrix(st) && ncol(st) == 2L && is.numeric(st)) {
        st
    } else {
        s <- .st_input(st, coords = coords)
        out <- matrix(NA_real_, s$n, 2L)
        for (sl in s$slices) out[sl$index, ] <- sl$coords
        out
    }
    df <- data.frame(x = xy[, 1], y = xy[, 2], value = d[, type])
    ggplot2::ggplot(df, ggplot2::aes(x = .data$x, y = .data$y, colour = .data$value)) +
        ggplot2::geom_point(size = size) + ggplot2::coord_equal() + ggplot2::theme_bw() +
        ggplot2::scale_colour_viridis_c() +
        ggplot2::labs(title = paste("STEM deconvolution:", type), colour = "proportion")
}
