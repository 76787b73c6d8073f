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
#' @param st.assay.type,st.assay,st.layer Assay (and Seurat layer) of `st`. Default
#'   (`NULL`) for `st.assay.type` and `st.layer`: the assay or layer read from `sc`
#'   (`assay.type`, `layer`) where `st` has one of that name (so `layer = "data",
#'   normalized = TRUE` reads the data layer of both), else `"counts"`. The one read is
#'   recorded in the stored `params`.
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
#'   Default (`NULL`): `c(512, 256, 128)`, or the preset's (`c(256, 128, 64)` for
#'   `preset = "quick"`).
#' @param device `"auto"` (CUDA when available, else CPU), `"cpu"`, `"cuda"`, ...
#'   Default (`NULL`): `"auto"`.
#' @param seed Random seed; same seed and device give the same mapping.
#'   Default (`NULL`): `0`.
#' @param genes Genes to use. Default (`NULL`): all genes shared by `sc` and `st`.
#' @param normalized Whether the data are already log-normalised (then not
#'   normalised again). Default (`NULL`): `FALSE`.
#' @param readout How the mapping is read off the trained embeddings:
#'   `"hybrid"` (embeddings plus each cell's expression correlation with each spot,
#'   balanced over spots, in two rounds: the second maps the spots' expression
#'   left unexplained by the first, which finds their minority cell types; cells'
#'   pseudo-coordinates and best spots come from the first round; more
#'   accurate on both benchmark datasets) or `"paper"` (the publication's softmax
#'   of embedding inner products).
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
#'   `NULL`; its schedule sets `epochs` and `lr` where left `NULL`), `"fast"` (a shorter
#'   schedule on cell batches) or `"quick"` (a first map in seconds: 80 epochs on
#'   128-cell batches with a smaller encoder, `c(256, 128, 64)`, and the readout with
#'   `expression_weight = 3` and `rounds = 3`, where `hidden`, `expression_weight` and
#'   `rounds` are left `NULL`; it reached the accuracy of TACCO on both benchmark
#'   semi-simulations in about a quarter of TACCO's time). An argument given always
#'   wins over the preset (`preset = "quick", epochs = 3` trains 3 epochs).
#'   Default (`NULL`): none.
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
#' @param rounds Rounds of the hybrid readout: the second maps what each spot's
#'   expression keeps unexplained after the first (Python `StemMapping(rounds=)`); the
#'   mapping and deconvolution are the rounds' mean, the cells' pseudo-coordinates and
#'   best spots come from the first round. `1` gives a single readout.
#'   Default (`NULL`): `2`, or the preset's (`3` for `preset = "quick"`).
#' @param cell_batch_size Cells per training step (Python `STEM.train(cell_batch_size=)`):
#'   a random batch of that many cells each step. Small batches with a short schedule
#'   are the fast setting (`preset = "quick"`: 80 epochs on batches of 128; steps that
#'   small train on one thread; see the README's benchmark section).
#'   Default (`NULL`): all cells, or batches the core chooses when a step would not fit
#'   in memory (or the preset's).
#' @param expression_weight Weight of the hybrid readout's expression term relative to
#'   the embedding term (Python `StemMapping(expression_weight=)`; 0: embeddings only).
#'   After a short schedule a larger weight placed cells better on few genes (tens,
#'   e.g. osmFISH). Default (`NULL`): `1.5`, or the preset's (`3` for
#'   `preset = "quick"`).
#' @param verbose Show progress (default `getOption("stemmap.verbose", TRUE)`).
#' @param keep_model Keep the trained model (its saved weights and prepared
#'   inputs, as a raw vector in `metadata(sc)$STEM$model` / `Misc(sc, "STEM")$model`)
#'   for [stemAttribution()].
#'
#' @section What goes where:
#' (generated from the table in `R/storage.R` by `.stem_storage_rd()`; a test compares)
#' \tabular{llll}{
#' \strong{Result} \tab \strong{SingleCellExperiment \code{sc}} \tab \strong{SummarizedExperiment \code{sc}} \tab \strong{Seurat \code{sc}} \cr
#' cell embedding (M x d) \tab \code{reducedDim(sc, "STEM")} \tab \code{metadata(sc)$STEM$embedding} \tab DimReduc \code{"stem"} \cr
#' pseudo-coordinates (M x 2) \tab \code{reducedDim(sc, "STEM_spatial")} \tab \code{metadata(sc)$STEM$coords} \tab DimReduc \code{"STEM_spatial"} \cr
#' best spot \tab \code{colData} \verb{STEM_best_spot} \tab \code{colData} \verb{STEM_best_spot} \tab \code{meta.data} \verb{STEM_best_spot} \cr
#' confidence \tab \code{colData} \verb{STEM_confidence} \tab \code{colData} \verb{STEM_confidence} \tab \code{meta.data} \verb{STEM_confidence} \cr
#' best slice (several slices) \tab \code{colData} \verb{STEM_slice} \tab \code{colData} \verb{STEM_slice} \tab \code{meta.data} \verb{STEM_slice} \cr
#' transferred spot values \tab \code{colData} \verb{STEM_<name>} \tab \code{colData} \verb{STEM_<name>} \tab \code{meta.data} \verb{STEM_<name>} \cr
#' cell x spot mapping \tab \code{metadata(sc)$STEM$mapping} \tab \code{metadata(sc)$STEM$mapping} \tab \code{Misc(sc, "STEM")$mapping} \cr
#' cell x spot placement (what coords read) \tab \code{metadata(sc)$STEM$placement} \tab \code{metadata(sc)$STEM$placement} \tab \code{Misc(sc, "STEM")$placement} \cr
#' spot deconvolution (N x types) \tab \code{metadata(sc)$STEM$deconvolution} \tab \code{metadata(sc)$STEM$deconvolution} \tab \code{Misc(sc, "STEM")$deconvolution} \cr
#' spot embedding \tab \code{metadata(sc)$STEM$spot_embedding} \tab \code{metadata(sc)$STEM$spot_embedding} \tab \code{Misc(sc, "STEM")$spot_embedding} \cr
#' spot coordinates the mapping used (N x 2) \tab \code{metadata(sc)$STEM$spot_coords} \tab \code{metadata(sc)$STEM$spot_coords} \tab \code{Misc(sc, "STEM")$spot_coords} \cr
#' genes the core trained on \tab \code{metadata(sc)$STEM$genes} \tab \code{metadata(sc)$STEM$genes} \tab \code{Misc(sc, "STEM")$genes} \cr
#' SC-SC spatial kNN graph (M x M) \tab \code{colPair(sc, "STEM")} \tab \code{metadata(sc)$STEM$adjacency} \tab Graph \code{"STEM_adjacency"} \cr
#' settings \tab \code{metadata(sc)$STEM$settings} \tab \code{metadata(sc)$STEM$settings} \tab \code{Misc(sc, "STEM")$settings} \cr
#' loss history \tab \code{metadata(sc)$STEM$history} \tab \code{metadata(sc)$STEM$history} \tab \code{Misc(sc, "STEM")$history} \cr
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
#' [writeSTEMh5ad()] writes the mapping to `.h5ad` in the layout of Python's `to_anndata()` with the core's
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

#' @rdname runSTEM
#' @export
setMethod("runSTEM", "ANY", .stem_run)  # R/fit.R

# A SummarizedExperiment or SingleCellExperiment `sc` (one method for both) and a Seurat
# `sc` (R/from_Seurat.R): forwards to the one implementation for objects
# (.runSTEM_object(), R/inputs.R), which reads and writes by the methods of their class.
.runSTEM_SummarizedExperiment <- function(sc, st, ..., assay.type = "counts", labels = NULL,
                                          st.assay.type = NULL, st.layer = NULL,
                                          st.assay = NULL) {
    .runSTEM_object(sc, st, ..., labels = labels, assay.type = assay.type,
                    st.assay.type = st.assay.type, st.layer = st.layer, st.assay = st.assay)
}

#' @rdname runSTEM
#' @export
setMethod("runSTEM", "SummarizedExperiment", .runSTEM_SummarizedExperiment)

#' @rdname runSTEM
#' @export
setMethod("runSTEM", "SingleCellExperiment", .runSTEM_SummarizedExperiment)

#' @rdname runSTEM
#' @export
# SeuratObject's class (a suggested package, not loaded here): the method is set by the
# class name, which is how S4 dispatches a Seurat object (methods would only warn here
# that it cannot see the class definition, and a setOldClass() copy would clash with it).
suppressWarnings(suppressMessages(setMethod("runSTEM", "Seurat", .runSTEM_Seurat)))  # R/from_Seurat.R
