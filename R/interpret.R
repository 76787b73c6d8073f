# The spatial analyses of a STEM mapping from R: spatial dominant genes, axis genes and
# trends, neighbourhood enrichment. The statistics run in the Python core
# (stemmap.analysis, through stemmap.bridge.interpret); what they read (values,
# coordinates, labels) is prepared in R/analysis_inputs.R, their plots are in
# R/plots_interpret.R and gene attribution in R/attribution.R.

#' Spatial dominant genes, axis genes, expression trends and neighbourhood enrichment
#'
#' `stemSpatialDominantGenes()` groups cells into segments (quantile bins along an
#' axis of their coordinates, or given labels) and tests every gene in each segment
#' against the other cells (Wilcoxon rank-sum, BH FDR within segment). On
#' attributions ([stemAttribution()]) these are the spatial dominant genes (SDGs) of
#' the STEM paper; on expression, regional DEGs. `stemAxisGenes()` tests Spearman
#' correlation of expression with a position along an axis; `stemExpressionTrends()`
#' fits smooth trends (regression splines) along it; `stemNeighbourhoodEnrichment()`
#' gives label-pair permutation z-scores on the kNN graph of the positions.
#'
#' @param x The object returned by [runSTEM()] (SingleCellExperiment, Seurat, list),
#'   or a numeric cells x genes matrix (attributions or expression) with gene column
#'   names.
#' @param coords Cells x 2 coordinates (default: the STEM pseudo-coordinates of `x`;
#'   for a SingleCellExperiment also a reducedDim name).
#' @param axis `"x"`, `"y"`, `"pc1"` (first principal axis) or a direction `c(dx, dy)`.
#'   Default (`NULL`): `"x"`.
#' @param n_segments Number of quantile segments along `axis` (R's default, 3; the
#'   Python function's is 10).
#' @param segments Segment of each cell instead: a cell metadata column or a vector.
#' @param fdr Keep rows with `padj < fdr` (`1` keeps all).
#' @param what For a STEM object: `"attribution"` (stored by
#'   `stemAttribution(store = TRUE)`, else computed) or `"expression"`
#'   (the values STEM was trained on: the counts of the assay it read, of the genes it
#'   used, normalised by the Python core exactly as for training; `NA` for cells the
#'   core dropped).
#' @param alternative `"greater"` (higher in the segment), `"two-sided"` or `"less"`.
#'   Default (`NULL`): `"greater"`.
#' @param min_cells Segments (groups) with fewer cells are skipped.
#'   Default (`NULL`): `3` for `stemSpatialDominantGenes()`, `10` for
#'   `stemAxisGenes()` and `stemExpressionTrends()`.
#' @param assay.type Assay of a SingleCellExperiment `x` for `what = "expression"`.
#' @return `stemSpatialDominantGenes()`: a data.frame with columns `segment, gene,
#'   statistic, auc, mean_in, mean_out, mean_diff, pval, padj, n_in`, sorted by
#'   segment then `padj`.
#' @examples
#' \dontrun{
#' sce <- runSTEM(sce, spe, keep_model = TRUE)
#' sce <- stemAttribution(sce, store = TRUE)
#' sdg <- stemSpatialDominantGenes(sce, axis = "x", n_segments = 5)
#' plotSTEMAttributionHeatmap(sdg, top = 3)
#' ag <- stemAxisGenes(sce, score = "x")
#' tr <- stemExpressionTrends(sce, score = "x", genes = head(ag$gene, 4))
#' plotSTEMTrends(tr)
#' ne <- stemNeighbourhoodEnrichment(sce, labels = "celltype")
#' }
#' @export
stemSpatialDominantGenes <- function(x, coords = NULL, axis = NULL, n_segments = 3L,
                                     segments = NULL, fdr = 0.05,
                                     what = c("attribution", "expression"),
                                     alternative = NULL, min_cells = NULL,
                                     assay.type = NULL) {
    what <- .stem_match_arg(what, c("attribution", "expression"), "what")
    if (!is.null(alternative) && (!is.character(alternative) || length(alternative) != 1L)) {
        .stem_abort("{.arg alternative} must be {.val greater}, {.val two-sided} or {.val less}; found {.val {format(alternative)}}.")
    }
    .check_number(fdr, "fdr", min = 0)
    .check_number(n_segments, "n_segments", integer = TRUE, min = 2)
    if (!is.null(min_cells)) .check_number(min_cells, "min_cells", integer = TRUE, min = 1)
    vals <- .stem_values(x, what, assay.type)
    n <- nrow(vals)
    seg <- .per_cell(segments, x, n, "segments")
    xy <- NULL
    ax <- NULL
    if (is.null(seg)) {
        xy <- .resolve_coords(coords, x, n)
        if (!is.null(axis)) ax <- .check_direction(axis)
    }
    keep <- stats::complete.cases(vals) & (if (is.null(xy)) !is.na(seg) else stats::complete.cases(xy))
    res <- .run_python(.worker_call, verb = "spatial_dominant_genes", args = list(
        values = .pack(unname(vals[keep, , drop = FALSE])), genes = as.list(colnames(vals)),
        coords = if (is.null(xy)) NULL else .pack(unname(xy[keep, , drop = FALSE])),
        segments = if (is.null(seg)) NULL else as.list(as.character(seg[keep])),
        axis = ax, n_segments = as.integer(n_segments), alternative = alternative,
        min_cells = if (!is.null(min_cells)) as.integer(min_cells)
    ))
    tab <- .unpack_table(res)
    tab$n_in <- as.integer(tab$n_in)
    tab <- tab[tab$padj < fdr | fdr >= 1, , drop = FALSE]
    rownames(tab) <- NULL
    tab
}

#' @rdname stemSpatialDominantGenes
#' @param score Position of each cell along the axis: `"x"`, `"y"`, `"pc1"` (of
#'   `coords`), a numeric cell metadata column, or a numeric vector.
#' @param groups Optional label per cell (metadata column or vector): one test or
#'   trend per group.
#' @param genes Genes to use (default all).
#' @return `stemAxisGenes()`: a data.frame `group, gene, rho, pval, padj`.
#' @export
stemAxisGenes <- function(x, score = "x", groups = NULL, genes = NULL, coords = NULL,
                          min_cells = NULL, what = c("expression", "attribution"),
                          assay.type = NULL) {
    what <- .stem_match_arg(what, c("expression", "attribution"), "what")
    if (!is.null(min_cells)) .check_number(min_cells, "min_cells", integer = TRUE, min = 1)
    args <- .axis_inputs(x, score, groups, genes, coords, what, assay.type)
    res <- .run_python(.worker_call, verb = "axis_genes",
                       args = c(args, list(min_cells = .int_or_null(min_cells))))
    .unpack_table(res)
}

#' @rdname stemSpatialDominantGenes
#' @param n_knots,degree Spline flexibility (interior knots at score quantiles;
#'   `n_knots = 0` gives a polynomial of `degree`). Default (`NULL`): `3` each.
#' @param n_points Grid points per trend. Default (`NULL`): `50`.
#' @return `stemExpressionTrends()`: a data.frame `group, gene, score, fitted, se`.
#' @export
stemExpressionTrends <- function(x, score = "x", groups = NULL, genes = NULL, coords = NULL,
                                 n_knots = NULL, degree = NULL, n_points = NULL,
                                 min_cells = NULL, what = c("expression", "attribution"),
                                 assay.type = NULL) {
    what <- .stem_match_arg(what, c("expression", "attribution"), "what")
    if (!is.null(n_knots)) .check_number(n_knots, "n_knots", integer = TRUE, min = 0)
    if (!is.null(degree)) .check_number(degree, "degree", integer = TRUE, min = 0)
    if (!is.null(n_points)) .check_number(n_points, "n_points", integer = TRUE, min = 2)
    if (!is.null(min_cells)) .check_number(min_cells, "min_cells", integer = TRUE, min = 1)
    args <- .axis_inputs(x, score, groups, genes, coords, what, assay.type)
    res <- .run_python(.worker_call, verb = "expression_trends", args = c(args, list(
        n_knots = .int_or_null(n_knots), degree = .int_or_null(degree),
        n_points = .int_or_null(n_points), min_cells = .int_or_null(min_cells)
    )))
    .unpack_table(res)
}

#' @rdname stemSpatialDominantGenes
#' @param sc For `stemNeighbourhoodEnrichment()`: the object returned by
#'   [runSTEM()] (its pseudo-coordinates are used unless `coords` is given), or any
#'   object/`NULL` together with `coords`.
#' @param labels Label of each cell: a cell metadata column or a vector.
#' @param n_neighbors k of the (symmetrised) kNN graph. Default (`NULL`): `10`.
#' @param n_perms Label permutations. Default (`NULL`): `200`.
#' @param seed Seed of the permutations. Default (`NULL`): `0`.
#' @return `stemNeighbourhoodEnrichment()`: `list(zscore, count)`, labels x labels
#'   matrices (z-scores of observed vs permuted kNN edge counts, and observed counts).
#' @export
stemNeighbourhoodEnrichment <- function(sc, labels, n_neighbors = NULL, n_perms = NULL,
                                        seed = NULL, coords = NULL) {
    if (!is.null(n_neighbors)) .check_number(n_neighbors, "n_neighbors", integer = TRUE, min = 1)
    if (!is.null(n_perms)) .check_number(n_perms, "n_perms", integer = TRUE, min = 1)
    if (!is.null(seed)) .check_number(seed, "seed", integer = TRUE, min = 0)
    xy <- .resolve_coords(coords, sc, if (is.null(coords)) NA else NROW(coords))
    n <- nrow(xy)
    lab <- .per_cell(labels, sc, n, "labels")
    if (is.null(lab)) .stem_abort("{.arg labels} must be given.")
    keep <- stats::complete.cases(xy) & !is.na(lab)
    if (!is.null(n_neighbors) && n_neighbors >= sum(keep)) {
        .stem_abort("{.arg n_neighbors} must be below the number of cells ({sum(keep)}); found {n_neighbors}.")
    }
    res <- .run_python(.worker_call, verb = "neighbourhood_enrichment", args = list(
        coords = .pack(unname(xy[keep, , drop = FALSE])),
        labels = as.list(as.character(lab[keep])), n_neighbors = .int_or_null(n_neighbors),
        n_perms = .int_or_null(n_perms), seed = .int_or_null(seed)
    ))
    labs <- .chr(res$labels)
    z <- matrix(.unpack(res$zscore), length(labs), dimnames = list(labs, labs))
    cnt <- matrix(.unpack(res$count), length(labs), dimnames = list(labs, labs))
    list(zscore = z, count = cnt)
}
