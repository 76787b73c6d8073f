# Reading the inputs of runSTEM() from SummarizedExperiment objects (SingleCellExperiment,
# SpatialExperiment): the counts of an assay. (Their coordinates and slices: the methods
# of .stem_st_coords() in R/classes.R.)

.assay_of <- function(x, assay.type, arg) {
    .check_assay(x, assay.type, arg)
    m <- .stem_in_memory(SummarizedExperiment::assay(x, assay.type, withDimnames = TRUE))
    .check_expr_matrix(m, arg)
    m
}

# `assay.type` names (or numbers) an assay of `x`: an R condition naming the argument if not.
.check_assay <- function(x, assay.type, arg) {
    an <- SummarizedExperiment::assayNames(x)
    if (is.numeric(assay.type)) {
        ok <- assay.type >= 1 && assay.type <= length(SummarizedExperiment::assays(x))
    } else {
        ok <- assay.type %in% an
    }
    if (!ok) {
        .stem_abort(c(
            "{.arg {arg}} has no assay {.val {assay.type}}.",
            x = "Its assays: {.val {an}}.",
            i = "Choose one with {.arg {if (arg == 'sc') 'assay.type' else 'st.assay.type'}}."
        ))
    }
    invisible(TRUE)
}

