# Interpretation of STEM mappings from R: gene attribution (integrated gradients of
# the trained model), spatial dominant genes, axis genes and trends, neighbourhood
# enrichment. The statistics run in the Python core (stemmap.attribution,
# stemmap.analysis) through the same worker/packed-array bridge as runSTEM().

# (the workers are in R/bridge.R)

# NULL stays NULL (not sent: the core's default), anything else becomes an integer.
.int_or_null <- function(x) if (is.null(x)) NULL else as.integer(x)

# ---- inputs -------------------------------------------------------------------------

.cell_names <- function(sc) {
    rownames(.stem_coords(sc))
}

.cell_meta <- function(sc) {
    if (inherits(sc, "Seurat")) {
        sc[[]]
    } else if (methods::is(sc, "SummarizedExperiment")) {
        as.data.frame(SummarizedExperiment::colData(sc))
    } else {
        NULL
    }
}

# One value per cell: a metadata column name or a vector of length n.
.per_cell <- function(x, sc, n, arg) {
    if (is.null(x)) {
        return(NULL)
    }
    meta <- .cell_meta(sc)
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

.check_values_matrix <- function(x, arg = "x") {
    if (!(is.matrix(x) && is.numeric(x)) && !methods::is(x, "Matrix")) {
        .stem_abort("{.arg {arg}} must be a numeric cells x genes matrix; found {.cls {class(x)}}.")
    }
    if (is.null(colnames(x))) {
        .stem_abort("{.arg {arg}} needs gene names as column names.")
    }
    invisible(x)
}

.has_stem <- function(x) {
    inherits(x, "Seurat") || methods::is(x, "SummarizedExperiment") ||
        (is.list(x) && !is.null(x$settings))
}

# Coordinates of the cells: given (cells x 2) or the STEM pseudo-coordinates of x.
.resolve_coords <- function(coords, x, n) {
    if (is.null(coords)) {
        if (!.has_stem(x)) {
            .stem_abort(c(
                "{.arg coords} is needed when {.arg x} is a matrix.",
                i = "Give cells x 2 coordinates, or pass the object returned by {.fn runSTEM}."
            ))
        }
        return(.stem_coords(x))
    }
    if (is.character(coords) && length(coords) == 1L && methods::is(x, "SingleCellExperiment")) {
        if (!coords %in% SingleCellExperiment::reducedDimNames(x)) {
            .stem_abort("{.arg coords} {.val {coords}} is not a reducedDim of {.arg x}.")
        }
        coords <- SingleCellExperiment::reducedDim(x, coords)
    }
    coords <- as.matrix(coords)
    if (!is.numeric(coords) || ncol(coords) < 2L || nrow(coords) != n) {
        .stem_abort("{.arg coords} must be a numeric cells x 2 matrix with {n} rows; found {nrow(coords)} x {ncol(coords)}.")
    }
    coords[, 1:2, drop = FALSE]
}

# Log-normalised expression (cells x genes) of the counts STEM was trained on.
.stem_expression <- function(sc, assay.type = NULL) {
    res <- .stem_store(sc)
    p <- res$params
    if (inherits(sc, "Seurat")) {
        x <- .seurat_matrix(sc, assay = p$assay, layer = if (is.null(p$layer)) "counts" else p$layer)
    } else if (methods::is(sc, "SummarizedExperiment")) {
        a <- if (!is.null(assay.type)) assay.type else if (!is.null(p$assay.type)) p$assay.type else "counts"
        x <- .assay_of(sc, a, "sc")
    } else {
        .stem_abort("{.code what = \"expression\"} needs a SingleCellExperiment or Seurat object; give a cells x genes matrix as {.arg x} instead.")
    }
    x <- methods::as(x, "CsparseMatrix")
    if (!isTRUE(res$settings$normalized)) {  # what the core used
        lib <- Matrix::colSums(x)
        lib[lib == 0] <- 1
        x <- x %*% Matrix::Diagonal(x = 1e4 / lib)
        x@x <- log1p(x@x)
    }
    out <- as.matrix(Matrix::t(x))
    rownames(out) <- colnames(sc)
    out
}

# cells x genes values for the analyses: a matrix, or attribution/expression of a
# STEM object.
.stem_values <- function(x, what, assay.type = NULL, arg = "x") {
    if (.has_stem(x)) {
        if (what == "attribution") {
            a <- .stored_attribution(x)
            if (is.null(a)) a <- stemAttribution(x, verbose = FALSE)
            return(a)
        }
        return(.stem_expression(x, assay.type))
    }
    if (is.data.frame(x)) x <- as.matrix(x)
    .check_values_matrix(x, arg)
    as.matrix(x)
}

.stored_attribution <- function(x) {
    if (methods::is(x, "SingleCellExperiment") &&
        "STEM_attribution" %in% SingleCellExperiment::reducedDimNames(x)) {
        return(SingleCellExperiment::reducedDim(x, "STEM_attribution"))
    }
    if (inherits(x, "Seurat") && "STEM_attribution" %in% names(x)) {
        a <- SeuratObject::Embeddings(x, "STEM_attribution")
        genes <- SeuratObject::Misc(x, "STEM_attribution_genes")
        colnames(a) <- if (length(genes) == ncol(a)) genes else sub("^STEMattr_", "", colnames(a))
        return(a)
    }
    NULL
}

.check_axis <- function(axis) {
    if (is.character(axis) && length(axis) == 1L && axis %in% c("x", "y", "pc1")) {
        return(axis)
    }
    if (is.numeric(axis) && length(axis) == 2L && all(is.finite(axis)) && any(axis != 0)) {
        return(.pack(as.double(axis)))
    }
    .stem_abort("{.arg axis} must be {.val x}, {.val y}, {.val pc1} or a non-zero direction c(dx, dy); found {.val {format(axis)}}.")
}

# ---- attribution ----------------------------------------------------------------------

#' Gene attribution of STEM mappings (integrated gradients)
#'
#' Explains where STEM puts each cell: the integrated-gradient attribution of the
#' probability of the cell's best spot (or of a set of spots) to each of its genes,
#' with a zero baseline (Hao et al. 2024, "Attribution function"). Each row sums to
#' the best-spot probability minus its value at the baseline (completeness), up to
#' the quadrature error.
#'
#' Needs the trained model: run [runSTEM()] with `keep_model = TRUE`.
#'
#' Attribution explains the network's own mapping, `softmax(Z_SC Z_ST^T)` (the
#' `readout = "paper"` of [runSTEM()]); the expression term of the default
#' hybrid readout is not part of it.
#'
#' @param sc The object returned by `runSTEM(..., keep_model = TRUE)`
#'   (SingleCellExperiment, Seurat, or the list for matrix input).
#' @param ... Passed between methods.
#' @param cells Cells to explain: names, indices or a logical vector (default all).
#' @param target `"best_spot"` (each cell's most probable spot) or spot names, whose
#'   summed probability is explained (a region).
#' @param steps Points of the path integral. Default (`NULL`): `50`.
#' @param method Quadrature rule (`"riemann_trapezoid"`, `"gausslegendre"`, ...).
#'   Default (`NULL`): `"riemann_trapezoid"`.
#' @param batch_size Cells per forward/backward pass. Default (`NULL`): `128`.
#' @param device Where to run (`"cpu"`, `"cuda"`, `"auto"`).
#' @param store Return `sc` with the attribution stored (SingleCellExperiment:
#'   `reducedDim(sc, "STEM_attribution")`; Seurat: DimReduc `"STEM_attribution"`,
#'   key `STEMattr_`, gene names in `Misc(sc, "STEM_attribution_genes")`), rows of
#'   cells not explained set to `NA`.
#' @param verbose Show progress.
#' @return A cells x genes matrix (attribute `"delta"`: the completeness error per
#'   cell), or `sc` with it stored when `store = TRUE`.
#' @examples
#' \dontrun{
#' sce <- runSTEM(sce, spe, keep_model = TRUE)
#' attr <- stemAttribution(sce, steps = 50)
#' sdg <- stemSpatialDominantGenes(attr, coords = reducedDim(sce, "STEM_spatial"))
#' }
#' @seealso [stemSpatialDominantGenes()], [plotSTEMAttributionHeatmap()]
#' @export
setGeneric("stemAttribution", function(sc, ...) standardGeneric("stemAttribution"))

#' @rdname stemAttribution
#' @export
setMethod("stemAttribution", "ANY", function(sc, ..., cells = NULL, target = "best_spot",
                                             steps = NULL, method = NULL,
                                             batch_size = NULL, device = "cpu",
                                             store = FALSE, verbose = NULL) {
    if (!.has_stem(sc)) {
        .stem_abort(c(
            "{.arg sc} must be the object returned by {.fn runSTEM}; found {.cls {class(sc)[1]}}.",
            i = "Run {.fn runSTEM} first, with {.code keep_model = TRUE}."
        ))
    }
    res <- .stem_store(sc)
    if (is.null(res$model)) {
        .stem_abort(c(
            "{.arg sc} holds STEM results but not the trained model.",
            i = "Run {.fn runSTEM} first with {.code keep_model = TRUE}; attribution needs the trained weights."
        ))
    }
    if (!is.null(steps)) .check_number(steps, "steps", integer = TRUE, min = 2)
    if (!is.null(batch_size)) .check_number(batch_size, "batch_size", integer = TRUE, min = 1)
    if (!is.null(method) && (!is.character(method) || length(method) != 1L)) {
        .stem_abort("{.arg method} must be the name of a quadrature rule; found {.val {format(method)}}.")
    }
    all_cells <- .cell_names(sc)
    n <- length(all_cells)
    idx <- .resolve_cells(cells, all_cells)
    spots <- rownames(res$spot_embedding)
    if (identical(target, "best_spot")) {
        tgt <- "best_spot"
    } else {
        if (is.logical(target) && length(target) == length(spots)) target <- spots[target]
        if (is.numeric(target)) target <- spots[target]
        if (!is.character(target) || !length(target) || anyNA(target) || !all(target %in% spots)) {
            .stem_abort(c(
                "{.arg target} must be {.val best_spot} or names of mapped spots.",
                x = "Unknown: {.val {utils::head(setdiff(target, spots), 3)}}."
            ))
        }
        tgt <- as.list(paste0("s", match(target, spots)))
    }
    .stem_inform("Attributing {length(idx)} cell{?s} to their genes.", verbose = verbose)
    out <- .run_python(.worker_attribution, model = res$model,
                       cells = as.list(paste0("c", idx)), target = tgt, steps = steps,
                       method = method, batch_size = batch_size, device = device,
                       progress = .stem_verbose(verbose))
    a <- .unpack(out$x)
    genes <- .chr(out$genes)
    got <- match(.chr(out$cells), paste0("c", seq_len(n)))
    mat <- matrix(NA_real_, length(idx), length(genes),
                  dimnames = list(all_cells[idx], genes))
    delta <- rep(NA_real_, length(idx))
    if (length(got)) {
        a <- matrix(a, nrow = length(got))
        pos <- match(got, idx)
        mat[pos, ] <- a
        delta[pos] <- as.vector(.unpack(out$delta))
    }
    names(delta) <- all_cells[idx]
    if (!isTRUE(store)) {
        attr(mat, "delta") <- delta
        return(mat)
    }
    full <- matrix(NA_real_, n, length(genes), dimnames = list(all_cells, genes))
    full[idx, ] <- mat
    .store_attribution(sc, full)
})

.resolve_cells <- function(cells, all_cells) {
    n <- length(all_cells)
    if (is.null(cells)) {
        return(seq_len(n))
    }
    if (is.logical(cells)) {
        if (length(cells) != n || anyNA(cells)) {
            .stem_abort("A logical {.arg cells} must have one value per cell ({n}); found {length(cells)}.")
        }
        return(which(cells))
    }
    if (is.numeric(cells)) {
        if (anyNA(cells) || any(cells < 1 | cells > n | cells != round(cells))) {
            .stem_abort("{.arg cells} indices must lie in 1..{n}.")
        }
        return(as.integer(cells))
    }
    if (is.character(cells)) {
        pos <- match(cells, all_cells)
        if (anyNA(pos)) {
            .stem_abort("{.arg cells} names unknown cells, e.g. {.val {utils::head(cells[is.na(pos)], 3)}}.")
        }
        return(pos)
    }
    .stem_abort("{.arg cells} must be cell names, indices or a logical vector; found {.cls {class(cells)}}.")
}

.store_attribution <- function(sc, full) {
    if (methods::is(sc, "SingleCellExperiment")) {
        SingleCellExperiment::reducedDim(sc, "STEM_attribution") <- full
        return(sc)
    }
    if (inherits(sc, "Seurat")) {
        emb <- full
        colnames(emb) <- paste0("STEMattr_", colnames(full))
        sc[["STEM_attribution"]] <- SeuratObject::CreateDimReducObject(
            embeddings = emb, key = "STEMattr_", assay = SeuratObject::DefaultAssay(sc)
        )
        # Seurat renames DimReduc columns to key_1..n: keep the gene names beside
        withCallingHandlers(
            SeuratObject::Misc(sc, "STEM_attribution_genes") <- colnames(full),
            warning = function(w) {
                if (grepl("Overwriting", conditionMessage(w))) invokeRestart("muffleWarning")
            }
        )
        return(sc)
    }
    if (methods::is(sc, "SummarizedExperiment")) {
        S4Vectors::metadata(sc)$STEM$attribution <- full
        return(sc)
    }
    sc$attribution <- full
    sc
}

# ---- spatial dominant genes -----------------------------------------------------------

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
#'   (log-normalised counts of the assay STEM was trained on).
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
    what <- match.arg(what)
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
        if (!is.null(axis)) ax <- .check_axis(axis)
    }
    keep <- stats::complete.cases(vals) & (if (is.null(xy)) !is.na(seg) else stats::complete.cases(xy))
    res <- .run_analysis(
        "spatial_dominant_genes",
        values = .pack(unname(vals[keep, , drop = FALSE])), genes = as.list(colnames(vals)),
        coords = if (is.null(xy)) NULL else .pack(unname(xy[keep, , drop = FALSE])),
        segments = if (is.null(seg)) NULL else as.list(as.character(seg[keep])),
        axis = ax, n_segments = as.integer(n_segments), alternative = alternative,
        min_cells = if (!is.null(min_cells)) as.integer(min_cells)
    )
    tab <- .unpack_table(res)
    tab$n_in <- as.integer(tab$n_in)
    tab <- tab[tab$padj < fdr | fdr >= 1, , drop = FALSE]
    rownames(tab) <- NULL
    tab
}

# A position per cell: numeric vector, metadata column, or an axis of the coordinates.
.resolve_score <- function(score, x, n, coords = NULL) {
    if (is.character(score) && length(score) == 1L) {
        if (score %in% c("x", "y", "pc1")) {
            xy <- .resolve_coords(coords, x, n)
            s <- rep(NA_real_, n)
            ok <- stats::complete.cases(xy)
            s[ok] <- as.vector(.unpack(.run_analysis("axis_score", coords = .pack(unname(xy[ok, , drop = FALSE])), axis = score)))
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
    what <- match.arg(what)
    if (!is.null(min_cells)) .check_number(min_cells, "min_cells", integer = TRUE, min = 1)
    args <- .axis_inputs(x, score, groups, genes, coords, what, assay.type)
    res <- do.call(.run_analysis, c(list("axis_genes"), args,
                                    list(min_cells = .int_or_null(min_cells))))
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
    what <- match.arg(what)
    if (!is.null(n_knots)) .check_number(n_knots, "n_knots", integer = TRUE, min = 0)
    if (!is.null(degree)) .check_number(degree, "degree", integer = TRUE, min = 0)
    if (!is.null(n_points)) .check_number(n_points, "n_points", integer = TRUE, min = 2)
    if (!is.null(min_cells)) .check_number(min_cells, "min_cells", integer = TRUE, min = 1)
    args <- .axis_inputs(x, score, groups, genes, coords, what, assay.type)
    res <- do.call(.run_analysis, c(list("expression_trends"), args, list(
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
    res <- .run_analysis(
        "neighbourhood_enrichment", coords = .pack(unname(xy[keep, , drop = FALSE])),
        labels = as.list(as.character(lab[keep])), n_neighbors = .int_or_null(n_neighbors),
        n_perms = .int_or_null(n_perms), seed = .int_or_null(seed)
    )
    labs <- .chr(res$labels)
    z <- matrix(.unpack(res$zscore), length(labs), dimnames = list(labs, labs))
    cnt <- matrix(.unpack(res$count), length(labs), dimnames = list(labs, labs))
    list(zscore = z, count = cnt)
}

# ---- plots ---------------------------------------------------------------------------

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
        .check_values_matrix(x)
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
