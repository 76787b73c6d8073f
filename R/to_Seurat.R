# STEM results -> a Seurat `sc`: DimReducs, meta.data columns, a Graph and Misc (names
# from the table in R/storage.R).
.to_Seurat <- function(sc, res, assay) {
    cl <- "Seurat"
    emb <- res$embedding
    colnames(emb) <- paste0("STEM_", seq_len(ncol(emb)))
    sc[[.stem_key("embedding", cl)]] <- SeuratObject::CreateDimReducObject(
        embeddings = emb, key = "STEM_", assay = assay)
    xy <- res$coords
    colnames(xy) <- paste0("STEMspatial_", 1:2)
    sc[[.stem_key("coords", cl)]] <- SeuratObject::CreateDimReducObject(
        embeddings = xy, key = "STEMspatial_", assay = assay)
    md <- as.data.frame(.stem_cell_columns(res, cl), row.names = colnames(sc),
                        check.names = FALSE, stringsAsFactors = FALSE)
    sc <- SeuratObject::AddMetaData(sc, md)
    if (!is.null(res$adjacency)) {
        g <- SeuratObject::as.Graph(methods::as(res$adjacency, "CsparseMatrix"))
        SeuratObject::DefaultAssay(g) <- assay
        sc[[.stem_key("adjacency", cl)]] <- g
    }
    SeuratObject::Misc(sc, "STEM") <- .stem_rest(res, cl)
    sc
}
