# STEM results <-> .h5ad, written and read by the core's anndata.

.worker_write_h5ad <- function(path, result) {
    bridge <- .stem_bridge()
    .stem_call(bridge, "write_h5ad", path = path, result = result)
}

.worker_read_h5ad <- function(path) {
    bridge <- .stem_bridge()
    .stem_call(bridge, "read_h5ad", path = path)
}

#' Write and read a STEM mapping as .h5ad
#'
#' `writeSTEMh5ad()` writes the results of [runSTEM()] to an AnnData file with
#' cells as observations and spots as variables: `X` is the stored cell x spot
#' mapping (zeros when `mapping = "none"`), `obsm["STEM"]` the cell embedding,
#' `obsm["STEM_spatial"]` the pseudo-coordinates, `obs` the best spot and
#' confidence, `varm["STEM"]` the spot embedding and `uns["stem"]` the settings and
#' loss history. `readSTEMh5ad()` reads such a file back into a list.
#'
#' @param sc The object returned by [runSTEM()].
#' @param file Path of the `.h5ad` file.
#' @return `writeSTEMh5ad()`: `file`, invisibly. `readSTEMh5ad()`: a list with
#'   `mapping`, `embedding`, `coords`, `best_spot`, `confidence`, `spot_embedding`,
#'   `spot_slice`, `settings` and `history`, with cell and spot names.
#' @export
writeSTEMh5ad <- function(sc, file) {
    res <- .stem_store(sc)
    emb <- if (!is.null(res$embedding)) res$embedding else .stem_embedding(sc)
    xy <- .stem_coords(sc)
    meta <- if (inherits(sc, "Seurat")) sc[[]] else if (methods::is(sc, "SummarizedExperiment")) as.data.frame(SummarizedExperiment::colData(sc)) else NULL
    best <- if (!is.null(meta)) meta$STEM_best_spot else res$best_spot
    conf <- if (!is.null(meta)) meta$STEM_confidence else res$confidence
    cells <- rownames(emb)
    spots <- rownames(res$spot_embedding)
    map <- res$mapping
    out <- list(
        cells = as.list(cells), spots = as.list(spots),
        spot_slice = as.list(res$spot_slice),
        mapping = if (is.null(map)) NULL else .pack(map),
        embedding = .pack(unname(as.matrix(emb))), coords = .pack(unname(as.matrix(xy))),
        spot_embedding = .pack(unname(res$spot_embedding)),
        best_spot = as.list(ifelse(is.na(best), "", best)), confidence = .pack(as.double(conf)),
        settings = res$settings,
        history = lapply(res$history, function(v) .pack(as.double(v)))
    )
    file <- path.expand(file)
    .run_python(.worker_write_h5ad, path = file, result = out)
    invisible(file)
}

#' @rdname writeSTEMh5ad
#' @export
readSTEMh5ad <- function(file) {
    if (!file.exists(file)) .stem_abort("{.arg file} {.path {file}} does not exist.")
    r <- .run_python(.worker_read_h5ad, path = normalizePath(file))
    cells <- .chr(r$cells)
    spots <- .chr(r$spots)
    emb <- .unpack(r$embedding)
    dimnames(emb) <- list(cells, paste0("STEM_", seq_len(ncol(emb))))
    xy <- .unpack(r$coords)
    dimnames(xy) <- list(cells, c("x", "y"))
    semb <- .unpack(r$spot_embedding)
    dimnames(semb) <- list(spots, colnames(emb))
    map <- .unpack(r$mapping)
    dimnames(map) <- list(cells, spots)
    best <- .chr(r$best_spot)
    best[!nzchar(best)] <- NA_character_
    list(
        mapping = map, embedding = emb, coords = xy, best_spot = best,
        confidence = .unpack(r$confidence), spot_embedding = semb,
        spot_slice = .chr(r$spot_slice), settings = r$settings,
        history = as.data.frame(lapply(r$history, .unpack))
    )
}

.stem_embedding <- function(sc) {
    if (inherits(sc, "Seurat")) {
        SeuratObject::Embeddings(sc, "stem")
    } else {
        SingleCellExperiment::reducedDim(sc, "STEM")
    }
}
