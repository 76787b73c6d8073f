# Gene attribution of STEM mappings: integrated gradients of the trained model, run in the
# Python core (stemmap.attribution) through the bridge (worker in R/bridge.R). Where each
# class keeps the attribution is one S4 method per class (bottom of this file).

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
    if (!.stem_has_store(sc)) {
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
    # NULL steps/method/batch_size: the core's defaults
    out <- .run_bridge("attribution", model = res$model, cells = as.list(paste0("c", idx)),
                       target = tgt, steps = if (!is.null(steps)) as.integer(steps),
                       method = method,
                       batch_size = if (!is.null(batch_size)) as.integer(batch_size),
                       device = device, progress = isTRUE(.stem_verbose(verbose)))
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
    .stem_attribution_into(sc, full)
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

# ---- where each class keeps the attribution -------------------------------------------

# The stored attribution (cells x genes, gene names as columns), NULL when none is.
setGeneric(".stem_attribution_of", function(x) standardGeneric(".stem_attribution_of"))
setMethod(".stem_attribution_of", "ANY", function(x) NULL)
setMethod(".stem_attribution_of", "list", function(x) x$attribution)
setMethod(".stem_attribution_of", "SummarizedExperiment", function(x) {
    S4Vectors::metadata(x)$STEM$attribution
})
setMethod(".stem_attribution_of", "SingleCellExperiment", function(x) {
    if ("STEM_attribution" %in% SingleCellExperiment::reducedDimNames(x)) {
        SingleCellExperiment::reducedDim(x, "STEM_attribution")
    }
})
suppressWarnings(suppressMessages(
    setMethod(".stem_attribution_of", "Seurat", function(x) {
        if (!"STEM_attribution" %in% names(x)) return(NULL)
        a <- SeuratObject::Embeddings(x, "STEM_attribution")
        genes <- SeuratObject::Misc(x, "STEM_attribution_genes")
        colnames(a) <- if (length(genes) == ncol(a)) genes else sub("^STEMattr_", "", colnames(a))
        a
    })
))

# `x` with the attribution `full` (all cells x genes) stored.
setGeneric(".stem_attribution_into", function(x, full) standardGeneric(".stem_attribution_into"))
setMethod(".stem_attribution_into", "list", function(x, full) {
    x$attribution <- full
    x
})
setMethod(".stem_attribution_into", "SummarizedExperiment", function(x, full) {
    S4Vectors::metadata(x)$STEM$attribution <- full
    x
})
setMethod(".stem_attribution_into", "SingleCellExperiment", function(x, full) {
    SingleCellExperiment::reducedDim(x, "STEM_attribution") <- full
    x
})
suppressWarnings(suppressMessages(
    setMethod(".stem_attribution_into", "Seurat", function(x, full) {
        emb <- full
        colnames(emb) <- paste0("STEMattr_", colnames(full))
        x[["STEM_attribution"]] <- SeuratObject::CreateDimReducObject(
            embeddings = emb, key = "STEMattr_", assay = SeuratObject::DefaultAssay(x)
        )
        # Seurat renames DimReduc columns to key_1..n: keep the gene names beside
        withCallingHandlers(
            SeuratObject::Misc(x, "STEM_attribution_genes") <- colnames(full),
            warning = function(w) {
                if (grepl("Overwriting", conditionMessage(w))) invokeRestart("muffleWarning")
            }
        )
        x
    })
))
