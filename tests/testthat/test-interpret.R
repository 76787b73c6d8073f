# Interpretation from R: attribution, SDGs, axis genes, trends, enrichment, plots.
d <- make_stem_data()

# One tiny trained model shared by the tests of this file (2 epochs, small layers).
.interp_fit <- local({
    cache <- NULL
    function() {
        if (is.null(cache)) {
            sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
            sce$celltype <- d$celltype
            st <- SingleCellExperiment::SingleCellExperiment(list(counts = d$st))
            st$x <- d$coords[, 1]
            st$y <- d$coords[, 2]
            # the paper readout: attribution explains the embedding mapping, so the
            # completeness check below compares it with that mapping's confidence
            cache <<- runSTEM(sce, st, coords = c("x", "y"), epochs = 3, hidden = c(32, 16),
                              mapping = "dense", keep_model = TRUE, verbose = FALSE,
                              readout = "paper")
        }
        cache
    }
})

test_that("stemAttribution() returns cells x genes with dimnames and completeness holds", {
    skip_if_no_core_model()
    sce <- .interp_fit()
    expect_type(S4Vectors::metadata(sce)$STEM$model, "raw")
    a <- stemAttribution(sce, steps = 20, verbose = FALSE)
    expect_identical(dim(a), c(60L, 30L))
    expect_identical(dimnames(a), list(colnames(sce), rownames(sce)))
    delta <- attr(a, "delta")
    expect_length(delta, 60L)
    # completeness: row sum = C_{i,best}(x) - C_{i,best}(0) + delta; C(0) depends only on the
    # best spot (the zero input has one embedding), so conf - rowsum + delta is constant
    # within cells sharing a best spot
    f0 <- sce$STEM_confidence - rowSums(a) + delta
    spread <- tapply(f0, sce$STEM_best_spot, function(v) diff(range(v)))
    expect_lt(max(spread), 1e-3)
    expect_true(all(f0 > -1e-4 & f0 < 1))
    # a subset by name and a region target
    b <- stemAttribution(sce, cells = colnames(sce)[1:4], steps = 20, verbose = FALSE)
    expect_equal(unname(b), unname(a[1:4, ]), tolerance = 1e-6, ignore_attr = TRUE)
    r <- stemAttribution(sce, cells = 1:3, target = c("spot1", "spot2"), steps = 5,
                         verbose = FALSE)
    expect_identical(rownames(r), colnames(sce)[1:3])
    # store = TRUE puts it on the object
    s2 <- stemAttribution(sce, cells = 1:5, store = TRUE, steps = 5, verbose = FALSE)
    stored <- SingleCellExperiment::reducedDim(s2, "STEM_attribution")
    expect_identical(dim(stored), c(60L, 30L))
    expect_true(all(is.na(stored[6:60, ])) && !anyNA(stored[1:5, ]))
})

test_that("stemSpatialDominantGenes() returns the SDG table", {
    skip_if_no_core_model()
    sce <- stemAttribution(.interp_fit(), store = TRUE, steps = 10, verbose = FALSE)
    sdg <- stemSpatialDominantGenes(sce, axis = "x", n_segments = 3, fdr = 1)
    expect_s3_class(sdg, "data.frame")
    expect_true(all(c("segment", "gene", "statistic", "auc", "mean_diff", "pval", "padj") %in%
                        colnames(sdg)))
    expect_identical(nrow(sdg), 3L * 30L)
    expect_setequal(unique(sdg$segment), c("0", "1", "2"))
    expect_true(all(sdg$auc >= 0 & sdg$auc <= 1 & sdg$padj >= sdg$pval - 1e-12))
    strict <- stemSpatialDominantGenes(sce, axis = "pc1", fdr = 0.05)
    expect_true(all(strict$padj < 0.05))
    ex <- stemSpatialDominantGenes(sce, segments = "celltype", what = "expression", fdr = 1)
    expect_setequal(unique(ex$segment), c("left", "right"))
    # a plain matrix with the true positions of the cells
    m <- stemAttribution(sce, steps = 5, verbose = FALSE)
    tab <- stemSpatialDominantGenes(m, coords = d$coords[d$spot_of, ], n_segments = 2, fdr = 1)
    expect_identical(nrow(tab), 60L)
    expect_s3_class(plotSTEMAttributionHeatmap(sdg, top = 2), "ggplot")
    expect_s3_class(plotSTEMAttributionHeatmap(m, segments = sce$celltype, top = 2), "ggplot")
})

test_that("axis genes, trends and neighbourhood enrichment", {
    skip_if_no_core_model()
    sce <- .interp_fit()
    ag <- stemAxisGenes(sce, score = "x")
    expect_identical(colnames(ag), c("group", "gene", "rho", "pval", "padj"))
    expect_identical(nrow(ag), 30L)
    agg <- stemAxisGenes(sce, score = "y", groups = "celltype")
    expect_setequal(unique(agg$group), c("left", "right"))
    tr <- stemExpressionTrends(sce, score = "pc1", groups = "celltype",
                               genes = c("gene1", "gene30"), n_points = 10)
    expect_identical(colnames(tr), c("group", "gene", "score", "fitted", "se"))
    expect_identical(nrow(tr), 2L * 2L * 10L)
    expect_s3_class(plotSTEMTrends(tr), "ggplot")
    expect_s3_class(plotSTEMTrends(tr, genes = "gene1", band = FALSE), "ggplot")
    ne <- stemNeighbourhoodEnrichment(sce, labels = "celltype", n_neighbors = 5, n_perms = 30)
    expect_named(ne, c("zscore", "count"))
    expect_identical(dimnames(ne$zscore), list(c("left", "right"), c("left", "right")))
    expect_equal(ne$count, t(ne$count))
    expect_equal(ne$zscore, t(ne$zscore), tolerance = 1e-6)
    expect_gt(sum(diag(ne$zscore)), sum(ne$zscore[upper.tri(ne$zscore)]))
    # coordinates given directly
    ne2 <- stemNeighbourhoodEnrichment(NULL, labels = d$celltype, coords = d$coords[d$spot_of, ],
                                       n_neighbors = 5, n_perms = 10)
    expect_identical(dim(ne2$zscore), c(2L, 2L))
})

# The normalised values a model kept by runSTEM(keep_model = TRUE) was trained on, as the
# core holds them (cells x genes, model gene order).
core_values <- function(fit) {
    blob <- stemmap:::.stem_store(fit)$model
    res <- stemmap:::.run_bridge("model_expression", model = blob)
    x <- stemmap:::.unpack(res$x)
    dimnames(x) <- list(stemmap:::.chr(res$cells), stemmap:::.chr(res$genes))
    x
}

test_that("the analyses read the expression the core trained on (its genes, its rule)", {
    skip_if_no_core_model()
    # sc has 5 genes st lacks: the core normalises over the 30 shared genes only
    extra <- withr::with_seed(2, matrix(stats::rpois(5 * 60, 40), 5, 60,
                                        dimnames = list(paste0("extra", 1:5), colnames(d$sc))))
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = rbind(d$sc, extra)))
    st <- SingleCellExperiment::SingleCellExperiment(list(counts = d$st))
    st$x <- d$coords[, 1]
    st$y <- d$coords[, 2]
    fit <- runSTEM(sce, st, coords = c("x", "y"), epochs = 2, hidden = c(16, 8),
                   keep_model = TRUE, verbose = FALSE)
    core <- core_values(fit)
    expect_identical(rownames(core), paste0("c", 1:60))  # R's ids of the cells, in order
    vals <- stemmap:::.stem_values(fit, "expression")
    expect_identical(dimnames(vals), list(colnames(sce), rownames(d$sc)))
    expect_identical(unname(vals), unname(core))  # bitwise: the core's own values
    ag <- stemAxisGenes(fit, score = "x")
    expect_setequal(ag$gene, rownames(d$sc))
    # an object that does not record the genes (an older stemmap) is refused, not guessed
    old <- fit
    S4Vectors::metadata(old)$STEM$genes <- NULL
    expect_error(stemAxisGenes(old), class = "stemmap_value_error", regexp = "genes STEM was trained on")
})

test_that("interpretation functions give clear errors", {
    sce0 <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    expect_error(stemAttribution(sce0), regexp = "runSTEM")
    expect_error(stemAttribution(d$sc), regexp = "returned by")
    expect_error(stemSpatialDominantGenes("a"), regexp = "cells x genes matrix")
    expect_error(stemSpatialDominantGenes(matrix(1, 3, 2)), regexp = "gene names")
    m <- matrix(stats::runif(60 * 3), 60, 3, dimnames = list(NULL, c("a", "b", "c")))
    expect_error(stemSpatialDominantGenes(m), regexp = "coords")
    expect_error(stemSpatialDominantGenes(m, coords = d$coords), regexp = "coords")
    expect_error(stemSpatialDominantGenes(m, coords = d$coords[d$spot_of, ], axis = "z"),
                 regexp = "axis")
    expect_error(stemSpatialDominantGenes(m, segments = 1:3), regexp = "segments")
    expect_error(stemSpatialDominantGenes(m, coords = d$coords[d$spot_of, ], fdr = -1),
                 regexp = "fdr")
    expect_error(plotSTEMAttributionHeatmap(list()), regexp = "x")
    expect_error(plotSTEMTrends(data.frame(a = 1)), regexp = "trends")
    expect_error(stemNeighbourhoodEnrichment(sce0, labels = "celltype"), regexp = "runSTEM")
    skip_if_no_core_model()
    sce <- .interp_fit()
    expect_error(stemNeighbourhoodEnrichment(sce, labels = "nope"), regexp = "labels.*nope|nope")
    expect_error(stemAxisGenes(sce, score = "nope"), regexp = "score")
    expect_error(stemAxisGenes(sce, genes = "nope"), regexp = "genes")
    expect_error(stemAttribution(sce, target = "nope"), regexp = "target")
    expect_error(stemAttribution(sce, cells = "nope"), regexp = "cells")
    expect_error(stemAttribution(sce, steps = 1), regexp = "steps")
    nomodel <- sce
    S4Vectors::metadata(nomodel)$STEM$model <- NULL
    expect_error(stemAttribution(nomodel), regexp = "keep_model")
})

test_that("Seurat: attribution stored as a DimReduc keeps gene names", {
    skip_if_not_installed("SeuratObject")
    skip_if_no_core_model()
    so <- SeuratObject::CreateSeuratObject(counts = methods::as(d$sc, "dgCMatrix"))
    so$celltype <- d$celltype
    so <- runSTEM(so, d$st, coords = d$coords, epochs = 2, hidden = c(16, 8),
                  keep_model = TRUE, verbose = FALSE)
    so <- stemAttribution(so, store = TRUE, steps = 5, verbose = FALSE)
    expect_identical(dim(SeuratObject::Embeddings(so, "STEM_attribution")), c(60L, 30L))
    sdg <- stemSpatialDominantGenes(so, fdr = 1)
    expect_true(all(sdg$gene %in% rownames(d$sc)))
    ex <- stemSpatialDominantGenes(so, segments = "celltype", what = "expression", fdr = 1)
    expect_setequal(unique(ex$segment), c("left", "right"))
    # the sparse counts of a Seurat object give the core's values too
    expect_identical(unname(stemmap:::.stem_values(so, "expression")), unname(core_values(so)))
})
