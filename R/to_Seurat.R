# STEM results -> a Seurat sc object (DimReducs, meta.data, Misc).
.store_seurat <- function(sc, res, assay) {
    emb <- res$embedding
    colnames(emb) <- paste0("STEM_", seq_len(ncol(emb)))
    sc[["stem"]] <- SeuratObject::CreateDimReducObject(embeddings = emb, key = "STEM_",
                                                       assay = assay)
    xy <- res$coords
    colnames(xy) <- paste0("STEMspatial_", 1:2)
    sc[["STEM_spatial"]] <- SeuratObject::CreateDimReducObject(embeddings = xy,
                                                               key = "STEMspatial_",
                                                               assay = assay)
    md <- data.frame(STEM_best_spot = res$best_spot, STEM_confidence = res$confidence,
                     row.names = colnames(sc))
    if (length(unique(res$spot_slice)) > 1L) md$STEM_slice <- res$best_slice
    for (nm in names(res$transfer)) {
        m <- res$transfer[[nm]]
        cols <- .stem_colnames(if (ncol(m) == 1L) nm else colnames(m))
        for (j in seq_len(ncol(m))) md[[cols[j]]] <- unname(m[, j])
    }
    sc <- SeuratObject::AddMetaData(sc, md)
    if (!is.null(res$adjacency)) {
        g <- SeuratObject::as.Graph(methods::as(res$adjacency, "CsparseMatrix"))
        SeuratObject::DefaultAssay(g) <- assay
        sc[["STEM_adjacency"]] <- g
    }
    keep <- setdiff(names(res), c("embedding", "coords", "best_spot", "confidence", "best_slice",
                                  "adjacency"))
    SeuratObject::Misc(sc, "STEM") <- res[keep]
    sc
}
