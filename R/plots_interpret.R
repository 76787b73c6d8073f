# Plots of the analyses of R/interpret.R: spatial dominant genes as a heatmap, expression
# trends along an axis (ggplot2; the plots of the mapping itself are in R/plots.R).

#' Plots of STEM interpretation results
#'
#' `plotSTEMAttributionHeatmap()` shows the mean attribution (or expression) of the
#' top genes of each segment (a [stemSpatialDominantGenes()] table, or a cells x
#' genes matrix with `segments`), scaled per gene across segments.
#' `plotSTEMTrends()` draws [stemExpressionTrends()] curves with +- 2 SE bands.
#'
#' @param x A [stemSpatialDominantGenes()] table (use `fdr = 1` there to keep all
#'   genes), or a cells x genes matrix (e.g. [stemAttribution()]).
#' @param segments With a matrix `x`: the segment of each cell.
#' @param top Genes shown per segment.
#' @param fdr With a table: genes with `padj < fdr` are eligible.
#' @param scale Z-score each gene across segments.
#' @return A ggplot object.
#' @export
plotSTEMAttributionHeatmap <- function(x, segments = NULL, top = 5L, fdr = 1, scale = TRUE) {
    .check_number(top, "top", integer = TRUE, min = 1)
    if (is.data.frame(x) && all(c("segment", "gene", "mean_in") %in% colnames(x))) {
        tab <- x
    } else if (is.matrix(x) && is.numeric(x)) {
        .stem_values(x, "attribution")  # checks the gene names
        if (is.null(segments) || length(segments) != nrow(x)) {
            .stem_abort("{.arg segments} must give the segment of each of the {nrow(x)} cells of {.arg x}.")
        }
        ok <- stats::complete.cases(x) & !is.na(segments)
        x <- x[ok, , drop = FALSE]
        seg <- as.character(segments[ok])
        levs <- unique(seg[order(segments[ok])])
        tab <- do.call(rbind, lapply(levs, function(s) {
            mi <- colMeans(x[seg == s, , drop = FALSE])
            mo <- colMeans(x[seg != s, , drop = FALSE])
            d <- data.frame(segment = s, gene = colnames(x), mean_in = mi,
                            mean_diff = mi - mo, padj = 0, stringsAsFactors = FALSE)
            d[order(-d$mean_diff), , drop = FALSE]
        }))
    } else {
        .stem_abort("{.arg x} must be a {.fn stemSpatialDominantGenes} table or a numeric cells x genes matrix; found {.cls {class(x)[1]}}.")
    }
    segs <- unique(as.character(tab$segment))
    sig <- tab[tab$padj < fdr | fdr >= 1, , drop = FALSE]
    taken <- character()
    for (s in segs) {
        g <- setdiff(sig$gene[sig$segment == s], taken)
        taken <- c(taken, utils::head(g, top))
    }
    if (!length(taken)) {
        .stem_abort("No gene passes {.arg fdr} = {fdr}; raise it (or use {.code fdr = 1} in {.fn stemSpatialDominantGenes}).")
    }
    sub <- tab[tab$gene %in% taken, c("segment", "gene", "mean_in"), drop = FALSE]
    sub$segment <- as.character(sub$segment)
    if (isTRUE(scale)) {
        sub$mean_in <- stats::ave(sub$mean_in, sub$gene, FUN = function(v) {
            s <- stats::sd(v)
            if (is.na(s) || s == 0) v - mean(v) else (v - mean(v)) / s
        })
    }
    sub$segment <- factor(sub$segment, levels = segs)
    sub$gene <- factor(sub$gene, levels = rev(taken))
    ggplot2::ggplot(sub, ggplot2::aes(x = .data$segment, y = .data$gene, fill = .data$mean_in)) +
        ggplot2::geom_tile() +
        ggplot2::scale_fill_gradient2(low = "#2166ac", mid = "white", high = "#b2182b") +
        ggplot2::theme_bw() +
        ggplot2::labs(title = "STEM spatial dominant genes", x = "segment", y = "gene",
                      fill = if (isTRUE(scale)) "scaled mean" else "mean")
}

#' @rdname plotSTEMAttributionHeatmap
#' @param trends A [stemExpressionTrends()] data.frame.
#' @param genes Genes to show (default all, at most 12).
#' @param band Draw +- 2 standard-error bands.
#' @export
plotSTEMTrends <- function(trends, genes = NULL, band = TRUE) {
    need <- c("group", "gene", "score", "fitted", "se")
    if (!is.data.frame(trends) || !all(need %in% colnames(trends))) {
        .stem_abort("{.arg trends} must be a {.fn stemExpressionTrends} data.frame (columns {.val {need}}).")
    }
    if (is.null(genes)) genes <- utils::head(unique(trends$gene), 12L)
    miss <- setdiff(genes, trends$gene)
    if (length(miss)) .stem_abort("{.arg genes} not in {.arg trends}: {.val {utils::head(miss, 3)}}.")
    df <- trends[trends$gene %in% genes, , drop = FALSE]
    df$gene <- factor(df$gene, levels = genes)
    p <- ggplot2::ggplot(df, ggplot2::aes(x = .data$score, y = .data$fitted, colour = .data$group))
    if (isTRUE(band)) {
        p <- p + ggplot2::geom_ribbon(
            ggplot2::aes(ymin = .data$fitted - 2 * .data$se, ymax = .data$fitted + 2 * .data$se,
                         fill = .data$group), alpha = 0.2, colour = NA
        )
    }
    p + ggplot2::geom_line() + ggplot2::facet_wrap(~gene, scales = "free_y") +
        ggplot2::theme_bw() +
        ggplot2::labs(title = "Expression along the axis", x = "score", y = "fitted",
                      colour = "group", fill = "group")
}
