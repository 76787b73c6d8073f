# STEM results -> a SingleCellExperiment `sc`: as a SummarizedExperiment, plus the cell
# embedding and pseudo-coordinates as reducedDims and the SC-SC graph as a colPair (names
# from the table in R/storage.R). Nothing is stored in metadata() to be moved again.
.to_SingleCellExperiment <- function(sc, res) {
    cl <- "SingleCellExperiment"
    sc <- .to_SummarizedExperiment(sc, res, cl)
    SingleCellExperiment::reducedDim(sc, .stem_key("embedding", cl)) <- res$embedding
    SingleCellExperiment::reducedDim(sc, .stem_key("coords", cl)) <- res$coords
    if (!is.null(res$adjacency)) {
        adj <- res$adjacency
        dimnames(adj) <- list(NULL, NULL)  # colPair() keys by column; names break SelfHits
        SingleCellExperiment::colPair(sc, .stem_key("adjacency", cl)) <- adj
    }
    sc
}
