# What goes where: the one table of where runSTEM() stores each result on each class of
# `sc`. The to_*.R writers and the readers (R/accessors.R) take their names from it, and
# the runSTEM() documentation's "What goes where" table is tested against it
# (tests/testthat/test-storage.R, through .stem_storage_rd()).

.stem_storage <- utils::read.csv(text = '
result,what,class,slot,key
embedding,cell embedding (M x d),SingleCellExperiment,reducedDim,STEM
embedding,cell embedding (M x d),SummarizedExperiment,metadata,embedding
embedding,cell embedding (M x d),Seurat,DimReduc,stem
coords,pseudo-coordinates (M x 2),SingleCellExperiment,reducedDim,STEM_spatial
coords,pseudo-coordinates (M x 2),SummarizedExperiment,metadata,coords
coords,pseudo-coordinates (M x 2),Seurat,DimReduc,STEM_spatial
best_spot,best spot,SingleCellExperiment,colData,STEM_best_spot
best_spot,best spot,SummarizedExperiment,colData,STEM_best_spot
best_spot,best spot,Seurat,meta.data,STEM_best_spot
confidence,confidence,SingleCellExperiment,colData,STEM_confidence
confidence,confidence,SummarizedExperiment,colData,STEM_confidence
confidence,confidence,Seurat,meta.data,STEM_confidence
best_slice,best slice (several slices),SingleCellExperiment,colData,STEM_slice
best_slice,best slice (several slices),SummarizedExperiment,colData,STEM_slice
best_slice,best slice (several slices),Seurat,meta.data,STEM_slice
transfer,transferred spot values,SingleCellExperiment,colData,STEM_<name>
transfer,transferred spot values,SummarizedExperiment,colData,STEM_<name>
transfer,transferred spot values,Seurat,meta.data,STEM_<name>
mapping,cell x spot mapping,SingleCellExperiment,metadata,mapping
mapping,cell x spot mapping,SummarizedExperiment,metadata,mapping
mapping,cell x spot mapping,Seurat,Misc,mapping
placement,cell x spot placement (what coords read),SingleCellExperiment,metadata,placement
placement,cell x spot placement (what coords read),SummarizedExperiment,metadata,placement
placement,cell x spot placement (what coords read),Seurat,Misc,placement
deconvolution,spot deconvolution (N x types),SingleCellExperiment,metadata,deconvolution
deconvolution,spot deconvolution (N x types),SummarizedExperiment,metadata,deconvolution
deconvolution,spot deconvolution (N x types),Seurat,Misc,deconvolution
spot_embedding,spot embedding,SingleCellExperiment,metadata,spot_embedding
spot_embedding,spot embedding,SummarizedExperiment,metadata,spot_embedding
spot_embedding,spot embedding,Seurat,Misc,spot_embedding
spot_coords,spot coordinates the mapping used (N x 2),SingleCellExperiment,metadata,spot_coords
spot_coords,spot coordinates the mapping used (N x 2),SummarizedExperiment,metadata,spot_coords
spot_coords,spot coordinates the mapping used (N x 2),Seurat,Misc,spot_coords
genes,genes the core trained on,SingleCellExperiment,metadata,genes
genes,genes the core trained on,SummarizedExperiment,metadata,genes
genes,genes the core trained on,Seurat,Misc,genes
adjacency,SC-SC spatial kNN graph (M x M),SingleCellExperiment,colPair,STEM
adjacency,SC-SC spatial kNN graph (M x M),SummarizedExperiment,metadata,adjacency
adjacency,SC-SC spatial kNN graph (M x M),Seurat,Graph,STEM_adjacency
settings,settings,SingleCellExperiment,metadata,settings
settings,settings,SummarizedExperiment,metadata,settings
settings,settings,Seurat,Misc,settings
history,loss history,SingleCellExperiment,metadata,history
history,loss history,SummarizedExperiment,metadata,history
history,loss history,Seurat,Misc,history
', stringsAsFactors = FALSE, strip.white = TRUE)

# The name under which `class` keeps `result` (e.g. "STEM" for the SCE embedding).
.stem_key <- function(result, class) {
    t <- .stem_storage
    k <- t$key[t$result == result & t$class == class]
    if (length(k) != 1L) stop("no storage for ", result, " on ", class)  # a bug, not a user error
    k
}

# The results stored in the object's own slots (not in metadata(sc)$STEM / Misc(sc, "STEM")).
.stem_own_slot <- function(class) {
    t <- .stem_storage[.stem_storage$class == class, ]
    t$result[!t$slot %in% c("metadata", "Misc")]
}

# The table as the Rd \tabular of runSTEM()'s "What goes where" (one row per result).
.stem_storage_rd <- function() {
    t <- .stem_storage
    cell <- function(slot, key) {
        switch(slot,
            reducedDim = sprintf("\\code{reducedDim(sc, \"%s\")}", key),
            colPair = sprintf("\\code{colPair(sc, \"%s\")}", key),
            colData = sprintf("\\code{colData} \\verb{%s}", key),
            meta.data = sprintf("\\code{meta.data} \\verb{%s}", key),
            metadata = sprintf("\\code{metadata(sc)$STEM$%s}", key),
            Misc = sprintf("\\code{Misc(sc, \"STEM\")$%s}", key),
            DimReduc = sprintf("DimReduc \\code{\"%s\"}", key),
            Graph = sprintf("Graph \\code{\"%s\"}", key)
        )
    }
    classes <- c("SingleCellExperiment", "SummarizedExperiment", "Seurat")
    head <- paste0("\\strong{Result} \\tab ",
                   paste(sprintf("\\strong{%s \\code{sc}}", classes), collapse = " \\tab "), " \\cr")
    rows <- vapply(unique(t$result), function(r) {
        s <- t[t$result == r, ]
        cells <- vapply(classes, function(cl) cell(s$slot[s$class == cl], s$key[s$class == cl]), "")
        paste0(s$what[1], " \\tab ", paste(cells, collapse = " \\tab "), " \\cr")
    }, "")
    c("\\tabular{llll}{", head, unname(rows), "}")
}

# The class of `sc` in the table: the first of its classes ("SingleCellExperiment" before
# "SummarizedExperiment", "Seurat") that `sc` is, or NULL (the list runSTEM() returns for a
# matrix).
.stem_class <- function(sc) {
    for (cl in unique(.stem_storage$class)) if (methods::is(sc, cl)) return(cl)
    NULL
}

# One result read back from where the table says `sc`'s class keeps it (NULL if absent).
.stem_result <- function(sc, result) {
    cl <- .stem_class(sc)
    if (is.null(cl)) return(.stem_store(sc)[[result]])
    t <- .stem_storage[.stem_storage$result == result & .stem_storage$class == cl, ]
    key <- t$key
    switch(t$slot,
        reducedDim = if (key %in% SingleCellExperiment::reducedDimNames(sc)) {
            SingleCellExperiment::reducedDim(sc, key)
        },
        colPair = if (key %in% SingleCellExperiment::colPairNames(sc)) {
            out <- SingleCellExperiment::colPair(sc, key, asSparse = TRUE)
            dimnames(out) <- list(colnames(sc), colnames(sc))
            out
        },
        DimReduc = if (key %in% SeuratObject::Reductions(sc)) SeuratObject::Embeddings(sc, key),
        Graph = if (key %in% names(sc@graphs)) methods::as(sc[[key]], "CsparseMatrix"),
        colData = SummarizedExperiment::colData(sc)[[key]],
        meta.data = sc[[]][[key]],
        .stem_store(sc)[[key]]
    )
}
