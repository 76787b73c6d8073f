#' Map single cells into spatial transcriptomics with STEM
#'
#' Trains STEM on single-cell (SC) and spatial (ST) expression and stores the
#' mapping on the SC object: cell embeddings, pseudo-coordinates, each cell's
#' best spot and confidence, and (in the metadata) the cell x spot mapping,
#' spot deconvolution, settings and loss history.
#'
#' @param sc Single-cell data: a [SingleCellExperiment::SingleCellExperiment]
#'   (or any `SummarizedExperiment`), a Seurat object, or a numeric genes x cells
#'   matrix (dense or sparse) with gene names as row names. Raw counts unless
#'   `normalized = TRUE`.
#' @param st Spatial data: a `SpatialExperiment` (coordinates from
#'   `spatialCoords()`; several samples in `sample_id` are trained jointly as
#'   slices), a `SingleCellExperiment` whose coordinates are named by `coords`,
#'   a Seurat object with a spatial image (VisiumV1, SlideSeq, FOV centroids;
#'   read with `GetTissueCoordinates()`), or a genes x spots matrix with `coords`.
#' @param ... Passed between methods.
#' @param assay.type Assay of `sc` (SummarizedExperiment) holding counts.
#' @param assay,layer Seurat assay and layer (v5 `Assay5`) or slot (v4 `Assay`)
#'   of `sc` holding counts.
#' @param coords Spot coordinates: a numeric matrix/data.frame (spots x 2) for a
#'   matrix `st`; for a SingleCellExperiment `st`, two colData column names or one
#'   reducedDim name; for a Seurat `st`, two meta.data column names, one reduction
#'   name or a matrix (then no image is needed). When given, these override the
#'   coordinates of a SpatialExperiment or a Seurat image.
#' @param sample_id Slice of each spot (vector, or a colData column name). Default:
#'   `colData(st)$sample_id` for a SpatialExperiment, one slice otherwise.
#' @param st.assay.type,st.assay,st.layer Assay (and Seurat layer) of `st`.
#' @param image Seurat image(s) of `st` to read coordinates from (default all images
#'   of `st.assay`, one slice each).
#' @param labels Cell labels to deconvolve spots by: column names of
#'   `colData(sc)` / `sc[[]]`, or a vector with one label per cell.
#' @param transfer Spot values to transfer onto cells: column names of the spot
#'   metadata of `st` (numeric columns are averaged, others give per-category
#'   probabilities), or a numeric spots x features matrix.
#' @param mapping How to store the cell x spot mapping: `"topk"` (sparse, the `k`
#'   most probable spots per cell), `"dense"` (the full matrix) or `"none"`.
#' @param k Spots per cell kept by `mapping = "topk"`.
#' @param epochs Training epochs (Python `STEM.train(epochs=)`).
#'   Default (`NULL`): `400`, or the preset's.
#' @param lr AdamW learning rate (Python `STEM.train(lr=)`).
#'   Default (`NULL`): `0.002`, or the preset's.
#' @param alpha Weight of the MMD loss (Python `stemmap.STEM(alpha=)`).
#'   Default (`NULL`): `0.5`.
#' @param sigma Gaussian-kernel sigma of the ground-truth adjacency, one number or
#'   one per slice. Default (`NULL`): `sigma_scale` times the mean
#'   nearest-neighbour spot distance of each slice.
#' @param hidden Encoder layer sizes; the last is the embedding size.
#'   Default (`NULL`): `c(512, 256, 128)`.
#' @param device `"auto"` (CUDA when available, else CPU), `"cpu"`, `"cuda"`, ...
#'   Default (`NULL`): `"auto"`.
#' @param seed Random seed; same seed and device give the same mapping.
#'   Default (`NULL`): `0`.
#' @param genes Genes to use. Default (`NULL`): all genes shared by `sc` and `st`.
#' @param normalized Whether the data are already log-normalised (then not
#'   normalised again). Default (`NULL`): `FALSE`.
#' @param readout How the mapping is read off the trained embeddings:
#'   `"hybrid"` (embeddings plus each cell's expression correlation with each spot,
#'   balanced over spots: more accurate on both benchmark datasets) or `"paper"`
#'   (the publication's softmax of embedding inner products).
#'   Default (`NULL`): `"hybrid"`, or the preset's (`"paper"` for `preset = "paper"`).
#' @param sigma_scale Default sigma in units of the mean nearest-neighbour spot
#'   distance (used when `sigma` is `NULL`); the paper's is 0.5.
#'   Default (`NULL`): `1` (better on both benchmark datasets), or the preset's
#'   (0.5 for `preset = "paper"`).
#' @param adjacency_k Neighbours per cell in the SC-SC spatial kNN graph
#'   (0: not computed). With the hybrid readout its edge weights are the
#'   expected spatial closeness of two cells under their mappings (Python
#'   `StemMapping.sc_adjacency()`); with the paper readout, embedding inner
#'   products. Default (`NULL`): `15`.
#' @param preset Named settings of the core (Python `STEM.train(preset=)`, the
#'   table `stemmap.PRESETS`): `"paper"` (the publication's schedule, sigma scale
#'   0.5 and paper readout where `sigma`, `sigma_scale` and `readout` are left
#'   `NULL`; its schedule overrides `epochs` and `lr`) or `"fast"` (a shorter
#'   schedule on cell batches). Default (`NULL`): none.
#' @param gene_match How gene names of `sc` and `st` are matched: `"exact"`,
#'   `"case"` (case-insensitive, e.g. a human-style `GAPDH` with a mouse-style
#'   `Gapdh`) or `"ensembl"` (Ensembl IDs without their version suffix,
#'   `ENSMUSG00000057666.3` = `ENSMUSG00000057666`). Genes keep the names of `sc`;
#'   neither object is renamed. How many genes matched only by the rule is reported
#'   and stored in `stemSettings()` (`genes_matched_by_rule`). Default (`NULL`):
#'   `"exact"`.
#' @param threads Torch CPU threads for this run: `NULL` (default) leaves the core's
#'   policy (every CPU the process may use, idle threads sleeping), a whole number sets
#'   that many. On a busy shared machine (RStudio Server, an HPC login node) fewer
#'   threads than cores can be faster (see the README's "Speed" section). Results are
#'   bit-identical only for the same device and thread count.
#' @param verbose Show progress (default `getOption("stemmap.verbose", TRUE)`).
#' @param keep_model Keep the trained model (its saved weights and prepared
#'   inputs, as a raw vector in `metadata(sc)$STEM$model` / `Misc(sc, "STEM")$model`)
#'   for [stemAttribution()].
#'
#' @section What goes where:
#' \tabular{lll}{
#'   **Result** \tab **SingleCellExperiment `sc`** \tab **Seurat `sc`** \cr
#'   cell embedding (M x 128) \tab `reducedDim(sc, "STEM")` \tab DimReduc `"stem"` (key `STEM_`) \cr
#'   pseudo-coordinates (M x 2) \tab `reducedDim(sc, "STEM_spatial")` \tab DimReduc `"STEM_spatial"` (key `STEMspatial_`) \cr
#'   best spot, confidence \tab `colData` `STEM_best_spot`, `STEM_confidence` \tab `meta.data`, same names \cr
#'   best slice (several slices) \tab `colData` `STEM_slice` \tab `meta.data` `STEM_slice` \cr
#'   transferred spot values \tab `colData` `STEM_<name>` \tab `meta.data` `STEM_<name>` \cr
#'   cell x spot mapping \tab `metadata(sc)$STEM$mapping` \tab `Misc(sc, "STEM")$mapping` \cr
#'   spot deconvolution (N x types) \tab `metadata(sc)$STEM$deconvolution` \tab `Misc(sc, "STEM")$deconvolution` \cr
#'   spot embedding \tab `metadata(sc)$STEM$spot_embedding` \tab `Misc(sc, "STEM")$spot_embedding` \cr
#'   SC-SC spatial kNN graph (M x M) \tab `colPair(sc, "STEM")` \tab Graph `"STEM_adjacency"` \cr
#'   settings, loss history \tab `metadata(sc)$STEM$settings`, `$history` \tab `Misc(sc, "STEM")`, same \cr
#' }
#' Put the spot-side results on the ST object with [stemAnnotateSpots()]
#' (deconvolution as `colData`/`meta.data` columns `STEM_<label>_<type>`, spot
#' embedding as reducedDim/DimReduc `"STEM"`). [stemPseudoSpatial()] returns a
#' SpatialExperiment whose `spatialCoords()` are the pseudo-coordinates. With
#' several slices, a cell's pseudo-coordinates are in the frame of its best slice.
#' Cells or spots that are all zero on the shared genes are dropped by the core
#' and get `NA`. For a matrix `sc`, `runSTEM()` returns the same results as a list
#' (`embedding`, `coords`, `best_spot`, `confidence`, `mapping`, ...).
#'
#' @section Interoperability:
#' [writeSTEMh5ad()] writes the mapping to `.h5ad` (cells x spots) with the core's
#' anndata and [readSTEMh5ad()] reads it back. Where zellkonverter is installed, an
#' AnnData file becomes a SingleCellExperiment for `runSTEM()`:
#' `sce <- zellkonverter::readH5AD("sc.h5ad"); sce <- runSTEM(sce, spe, assay.type = "X")`.
#'
#' @return `sc` with the results added (see "What goes where"); for a matrix `sc`,
#'   a list. The input objects are not modified.
#' @examples
#' \dontrun{
#' sce <- runSTEM(sce, spe, labels = "celltype", epochs = 400)
#' plotSTEMPositions(sce, colour_by = "celltype")
#' spe <- stemAnnotateSpots(spe, sce)
#' }
#' @seealso [stemPythonInfo()], [stemMapping()], [plotSTEMPositions()]
#' @export
setGeneric("runSTEM", function(sc, st, ...) standardGeneric("runSTEM"))

.run_stem_any <- function(sc, st, ..., assay = NULL, layer = "counts", coords = NULL, sample_id = NULL,
                                     st.assay.type = "counts", st.assay = NULL,
                                     st.layer = "counts", image = NULL, labels = NULL,
                                     transfer = NULL, mapping = c("topk", "dense", "none"),
                                     k = 10L, epochs = NULL, lr = NULL, alpha = NULL,
                                     sigma = NULL, hidden = NULL,
                                     device = NULL, seed = NULL, genes = NULL,
                                     normalized = NULL, verbose = NULL,
                                     keep_model = FALSE, readout = NULL,
                                     sigma_scale = NULL, adjacency_k = NULL, preset = NULL,
                                     gene_match = NULL, threads = NULL) {
    if (inherits(sc, "Seurat")) {
        return(.run_stem_seurat(
            sc, st, ..., assay = assay, layer = layer, coords = coords, sample_id = sample_id, st.assay.type = st.assay.type,
            st.assay = st.assay, st.layer = st.layer, image = image, labels = labels,
            transfer = transfer, mapping = mapping, k = k, epochs = epochs, lr = lr,
            alpha = alpha, sigma = sigma, hidden = hidden, device = device, seed = seed,
            genes = genes, normalized = normalized, verbose = verbose, keep_model = keep_model,
            readout = readout, sigma_scale = sigma_scale, adjacency_k = adjacency_k,
            preset = preset, gene_match = gene_match, threads = threads
        ))
    }
    .check_expr_matrix(sc, "sc")
    sc <- .with_colnames(sc, "cell")
    mapping <- match.arg(mapping)
    .check_number(k, "k", integer = TRUE, min = 1)
    params <- .stem_params(epochs = epochs, lr = lr, alpha = alpha, sigma = sigma,
                           hidden = hidden, device = device, seed = seed, genes = genes,
                           normalized = normalized, verbose = verbose,
                           keep_model = keep_model, readout = readout,
                           sigma_scale = sigma_scale, adjacency_k = adjacency_k,
                           preset = preset, gene_match = gene_match, threads = threads)
    st_in <- .st_input(st, coords = coords, sample_id = sample_id, st.assay.type = st.assay.type,
                       st.assay = st.assay, st.layer = st.layer, image = image)
    labels <- .resolve_labels(labels, data.frame(row.names = colnames(sc)), ncol(sc))
    transfer <- .resolve_transfer(transfer, st_in)
    res <- .stem_fit(sc, st_in, params, labels = labels, transfer = transfer,
                     mapping = mapping, k = min(as.integer(k), st_in$n), verbose = verbose)
    res$params <- params[setdiff(names(params), "progress")]
    res
}

#' @rdname runSTEM
#' @export
setMethod("runSTEM", "ANY", .run_stem_any)

#' @rdname runSTEM
#' @export
setMethod("runSTEM", "SummarizedExperiment", function(sc, st, ..., assay.type = "counts",
                                                      labels = NULL) {
    x <- .assay_of(sc, assay.type, "sc")
    x <- .with_colnames(x, "cell")
    cd <- SummarizedExperiment::colData(sc)
    lab <- .resolve_labels(labels, as.data.frame(cd), ncol(sc))
    res <- .run_stem_any(x, st, ..., labels = lab)
    res$params$assay.type <- assay.type
    .store_se(sc, res)
})

#' @rdname runSTEM
#' @export
setMethod("runSTEM", "SingleCellExperiment", function(sc, st, ...) {
    out <- callNextMethod()
    stem <- S4Vectors::metadata(out)$STEM
    SingleCellExperiment::reducedDim(out, "STEM") <- stem$embedding
    SingleCellExperiment::reducedDim(out, "STEM_spatial") <- stem$coords
    if (!is.null(stem$adjacency)) {
        adj <- stem$adjacency
        dimnames(adj) <- list(NULL, NULL)  # colPair() keys by column; names break SelfHits
        SingleCellExperiment::colPair(out, "STEM") <- adj
        stem$adjacency <- NULL
    }
    stem$embedding <- NULL
    stem$coords <- NULL
    S4Vectors::metadata(out)$STEM <- stem
    out
})

# Per-cell results -> colData; everything else -> metadata(sc)$STEM.
.store_se <- function(sc, res) {
    cd <- SummarizedExperiment::colData(sc)
    cd$STEM_best_spot <- res$best_spot
    cd$STEM_confidence <- res$confidence
    if (length(unique(res$spot_slice)) > 1L) cd$STEM_slice <- res$best_slice
    for (nm in names(res$transfer)) {
        m <- res$transfer[[nm]]
        cols <- .stem_colnames(if (ncol(m) == 1L) nm else colnames(m))
        for (j in seq_len(ncol(m))) cd[[cols[j]]] <- unname(m[, j])
    }
    SummarizedExperiment::colData(sc) <- cd
    S4Vectors::metadata(sc)$STEM <- res[setdiff(names(res), c("best_spot", "confidence", "best_slice"))]
    sc
}
