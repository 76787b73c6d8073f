# "What goes where": the one table (R/storage.R) used by the writers and by the docs.

test_that("the documented table is the storage table", {
    rd <- tools::Rd_db("stemmap")[["runSTEM.Rd"]]
    norm <- function(x) gsub("\\s+", "", paste(x, collapse = ""))
    text <- norm(as.character(rd, deparse = TRUE))
    rows <- stemmap:::.stem_storage_rd()
    for (r in rows) expect_true(grepl(norm(r), text, fixed = TRUE), label = r)
})

test_that("every class stores every result where the table says", {
    skip_if_no_core_model()
    d <- make_stem_data()
    tab <- stemmap:::.stem_storage
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    se <- SummarizedExperiment::SummarizedExperiment(list(counts = d$sc))
    run <- function(x) runSTEM(x, d$st, coords = d$coords, epochs = 2, hidden = c(8, 4),
                               verbose = FALSE, adjacency_k = 3)
    for (obj in list(run(sce), run(se))) {
        cl <- if (methods::is(obj, "SingleCellExperiment")) "SingleCellExperiment" else "SummarizedExperiment"
        t <- tab[tab$class == cl & !tab$result %in% c("best_slice", "transfer", "deconvolution"), ]
        meta <- S4Vectors::metadata(obj)$STEM
        for (i in seq_len(nrow(t))) {
            key <- t$key[i]
            found <- switch(t$slot[i],
                reducedDim = key %in% SingleCellExperiment::reducedDimNames(obj),
                colPair = key %in% SingleCellExperiment::colPairNames(obj),
                colData = key %in% names(SummarizedExperiment::colData(obj)),
                metadata = !is.null(meta[[key]]))
            expect_true(found, label = paste(cl, t$result[i], t$slot[i], key))
        }
        # a result kept in a slot of its own is not also left in metadata()
        own <- setdiff(stemmap:::.stem_own_slot(cl), "transfer")
        expect_length(intersect(names(meta), own), 0L)
    }
    expect_identical(stemMapping(run(sce)), stemMapping(run(se)))
})

test_that("an unknown argument is an error naming it", {
    d <- make_stem_data()
    e <- expect_error(runSTEM(d$sc, d$st, coords = d$coords, epoch = 3),
                      class = "stemmap_type_error")
    expect_match(conditionMessage(e), "epoch")
})
