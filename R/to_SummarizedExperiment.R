# STEM results -> a SummarizedExperiment `sc`: per-cell results as colData columns, the
# rest in metadata(sc)$STEM (names from the table in R/storage.R).
.to_SummarizedExperiment <- function(sc, res, class = "SummarizedExperiment") {
    cd <- SummarizedExperiment::colData(sc)
    cols <- .stem_cell_columns(res, class)
    for (nm in names(cols)) cd[[nm]] <- cols[[nm]]
    SummarizedExperiment::colData(sc) <- cd
    S4Vectors::metadata(sc)$STEM <- .stem_rest(res, class)
    sc
}

# Per-cell results (best spot, confidence, best slice with several slices, transferred
# values) as a named list of columns, named as `class` keeps them.
.stem_cell_columns <- function(res, class) {
    out <- list()
    out[[.stem_key("best_spot", class)]] <- res$best_spot
    out[[.stem_key("confidence", class)]] <- res$confidence
    if (length(unique(res$spot_slice)) > 1L) out[[.stem_key("best_slice", class)]] <- res$best_slice
    for (nm in names(res$transfer)) {
        m <- res$transfer[[nm]]
        cols <- .stem_colnames(if (ncol(m) == 1L) nm else colnames(m))
        for (j in seq_len(ncol(m))) out[[cols[j]]] <- unname(m[, j])
    }
    out
}

# What goes into metadata(sc)$STEM / Misc(sc, "STEM"): every result `class` does not keep
# in a slot of its own (the transferred values stay there too, one matrix per name).
.stem_rest <- function(res, class) {
    res[setdiff(names(res), setdiff(.stem_own_slot(class), "transfer"))]
}
