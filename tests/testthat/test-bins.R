# Objects users bring at bin scale (issue #28): a Seurat object with one assay per bin
# size, each with its own image; a SpatialExperiment with several samples in pixel units;
# results stored without a dense cells x spots matrix.

d <- make_stem_data()

# The class of a Seurat image (SlideSeq: Seurat 4 or SeuratObject 5), or a skip naming the
# package that defines it.
slide_seq_class <- function() {
    if (methods::isClass("SlideSeq", where = asNamespace("SeuratObject"))) {
        return(methods::getClass("SlideSeq", where = asNamespace("SeuratObject")))
    }
    testthat::skip_if_not_installed("Seurat")
    methods::getClass("SlideSeq", where = asNamespace("Seurat"))
}

slide_seq <- function(xy, cells, assay, key) {
    cc <- data.frame(x = xy[, 1], y = xy[, 2], row.names = cells)
    methods::new(slide_seq_class(), coordinates = cc, assay = assay, key = key)
}

# Far apart coordinate frames, so that a result tells which one was read.
xy_008 <- d$coords * 8
xy_016 <- d$coords * 16 + 1e4

in_frame <- function(xy, frame) {
    all(xy[, 1] >= min(frame[, 1]) - 1e-6 & xy[, 1] <= max(frame[, 1]) + 1e-6 &
            xy[, 2] >= min(frame[, 2]) - 1e-6 & xy[, 2] <= max(frame[, 2]) + 1e-6)
}

# A SeuratObject 4 assay of `counts` under a key of its own (the default from an assay name
# with a dot warns).
assay_v4 <- function(counts, key) {
    a <- SeuratObject::CreateAssayObject(counts = counts)
    SeuratObject::Key(a) <- key
    a
}

# A SeuratObject 4 object with two "bin size" assays on the same spots (SeuratObject 4
# keeps one set of cells per object), each with its own SlideSeq image.
make_two_assays <- function() {
    counts <- methods::as(d$st, "dgCMatrix")
    st <- SeuratObject::CreateSeuratObject(counts = counts, assay = "Spatial.008um")
    st[["Spatial.016um"]] <- assay_v4(counts * 2, "spatial016um_")
    st[["slice1.008um"]] <- slide_seq(xy_008, colnames(counts), "Spatial.008um", "s008_")
    st[["slice1.016um"]] <- slide_seq(xy_016, colnames(counts), "Spatial.016um", "s016_")
    st
}

test_that("st.assay picks the assay and the coordinates of that assay's image", {
    testthat::skip_if_not_installed("SeuratObject")
    st <- make_two_assays()
    got <- stemmap:::.st_input(st, st.assay = "Spatial.016um")
    expect_length(got$slices, 1L)
    expect_equal(unname(got$slices[[1]]$coords), unname(xy_016 + 0))
    expect_equal(sum(got$slices[[1]]$x), 2 * sum(d$st))  # the counts of that assay
    expect_identical(got$read$st.assay, "Spatial.016um")
    got8 <- stemmap:::.st_input(st, st.assay = "Spatial.008um")
    expect_equal(unname(got8$slices[[1]]$coords), unname(xy_008 + 0))
    # no assay named: the default assay's image (before, every image was read, one slice
    # each, and the last image's coordinates overwrote the others')
    got0 <- stemmap:::.st_input(st)
    expect_length(got0$slices, 1L)
    expect_equal(unname(got0$slices[[1]]$coords), unname(xy_008 + 0))
    # an image named by the caller wins
    goti <- stemmap:::.st_input(st, st.assay = "Spatial.008um", image = "slice1.016um")
    expect_equal(unname(goti$slices[[1]]$coords), unname(xy_016 + 0))
})

test_that("st.assay errors name the argument: unknown assay, no image, several images", {
    testthat::skip_if_not_installed("SeuratObject")
    st <- make_two_assays()
    expect_error(stemmap:::.st_input(st, st.assay = "Spatial.002um"),
                 regexp = "st.*has no assay.*Spatial.002um.*st.assay", class = "stemmap_error")
    st[["Spatial.002um"]] <- assay_v4(methods::as(d$st, "dgCMatrix"), "spatial002um_")
    err <- expect_error(stemmap:::.st_input(st, st.assay = "Spatial.002um"),
                        class = "stemmap_error")
    expect_match(conditionMessage(err), "st.assay.*Spatial.002um.*has no image")
    expect_match(conditionMessage(err), "slice1.016um \\(Spatial.016um\\)")
    # two images of one assay holding the same spots: which position is meant is unclear
    st2 <- make_two_assays()
    st2[["other.016um"]] <- slide_seq(xy_016 + 1, colnames(d$st), "Spatial.016um", "o016_")
    expect_error(stemmap:::.st_input(st2, st.assay = "Spatial.016um"),
                 regexp = "Several images.*same spots.*image", class = "stemmap_error")
    got <- stemmap:::.st_input(st2, st.assay = "Spatial.016um", image = "other.016um")
    expect_equal(unname(got$slices[[1]]$coords), unname(xy_016 + 1))
})

test_that("runSTEM() on two bin-size assays maps onto the one named by st.assay", {
    testthat::skip_if_not_installed("SeuratObject")
    skip_if_no_core_model()
    st <- make_two_assays()
    sc <- SeuratObject::CreateSeuratObject(counts = methods::as(d$sc, "dgCMatrix"))
    out <- runSTEM(sc, st, st.assay = "Spatial.016um", epochs = 2, verbose = FALSE)
    expect_true(in_frame(SeuratObject::Embeddings(out, "STEM_spatial"), xy_016))
    misc <- SeuratObject::Misc(out, "STEM")
    expect_identical(misc$params$st.assay, "Spatial.016um")
    expect_equal(unname(misc$spot_coords), unname(xy_016 + 0))
    st2 <- stemAnnotateSpots(st, out)
    expect_identical(SeuratObject::DefaultAssay(st2[["stem"]]), "Spatial.016um")
})

test_that("SeuratObject 5: one assay per bin size, each with its own spots and image", {
    testthat::skip_if_not_installed("SeuratObject")
    if (utils::packageVersion("SeuratObject") < "5.0.0") {
        skip(paste("SeuratObject >= 5 is needed for assays with their own cells; found",
                   utils::packageVersion("SeuratObject")))
    }
    # bins of two sizes: 20 of 16 um, 80 of 8 um (4 per 16 um bin), as Load10X_Spatial()
    # builds them from a Visium HD capture (assays "Spatial.008um", "Spatial.016um")
    c16 <- methods::as(d$st, "dgCMatrix")
    colnames(c16) <- sprintf("s_016um_%05d-1", seq_len(ncol(c16)))
    c8 <- methods::as(d$st[, rep(seq_len(ncol(d$st)), each = 4)], "dgCMatrix")
    colnames(c8) <- sprintf("s_008um_%05d-1", seq_len(ncol(c8)))
    xy8 <- xy_008[rep(seq_len(nrow(xy_008)), each = 4), ] +
        cbind(rep(c(0, 4, 0, 4), 20), rep(c(0, 0, 4, 4), 20))
    # one object per bin size, merged, as Load10X_Spatial(bin.size = c(8, 16)) does
    o8 <- SeuratObject::CreateSeuratObject(counts = SeuratObject::CreateAssay5Object(c8),
                                           assay = "Spatial.008um")
    o8[["slice1.008um"]] <- slide_seq(xy8, colnames(c8), "Spatial.008um", "s008_")
    o16 <- SeuratObject::CreateSeuratObject(counts = SeuratObject::CreateAssay5Object(c16),
                                            assay = "Spatial.016um")
    o16[["slice1.016um"]] <- slide_seq(xy_016, colnames(c16), "Spatial.016um", "s016_")
    st <- merge(o8, o16)
    expect_setequal(SeuratObject::Images(st), c("slice1.008um", "slice1.016um"))
    st$bin_size <- ifelse(grepl("016um", colnames(st)), "16um", "8um")
    got <- stemmap:::.st_input(st, st.assay = "Spatial.016um")
    expect_identical(got$names, colnames(c16))
    expect_equal(unname(got$slices[[1]]$coords), unname(xy_016 + 0))
    expect_identical(nrow(got$coldata), ncol(c16))  # meta.data rows of that assay's bins
    got8 <- stemmap:::.st_input(st, st.assay = "Spatial.008um", sample_id = "bin_size")
    expect_identical(got8$names, colnames(c8))
    expect_equal(unname(got8$slices[[1]]$coords), unname(xy8 + 0))
    skip_if_no_core_model()
    sc <- SeuratObject::CreateSeuratObject(counts = methods::as(d$sc, "dgCMatrix"))
    sc$celltype <- d$celltype
    out <- runSTEM(sc, st, st.assay = "Spatial.016um", labels = "celltype", epochs = 2,
                   verbose = FALSE)
    expect_true(in_frame(SeuratObject::Embeddings(out, "STEM_spatial"), xy_016))
    # the spot-side results go on the bins of the assay read (before: refused, since the
    # object's columns are the bins of both sizes, 100, not the 20 mapped)
    st2 <- stemAnnotateSpots(st, out)
    emb <- SeuratObject::Embeddings(st2, "stem")
    expect_identical(rownames(emb), colnames(c16))
    expect_equal(unname(emb), unname(SeuratObject::Misc(out, "STEM")$spot_embedding))
    expect_identical(SeuratObject::DefaultAssay(st2[["stem"]]), "Spatial.016um")
    md <- st2[[]]
    decon <- stemDeconvolution(out)
    expect_equal(md[colnames(c16), "STEM_celltype_left"], unname(decon[, "left"]))
    expect_true(all(is.na(md[colnames(c8), "STEM_celltype_left"])))  # the 8 um bins
    expect_identical(ncol(st2), ncol(st))
    # the 8 um assay's bins are not the spots mapped: refused, naming the assay compared
    out8 <- out
    out8@misc$STEM$params$st.assay <- "Spatial.008um"
    expect_error(stemAnnotateSpots(st, out8),
                 regexp = "does not match.*Mapped 20 spots.*has 80 in assay.*Spatial.008um",
                 class = "stemmap_error")
})

test_that("stemAnnotateSpots() writes a bin-size assay's spots back (SeuratObject 4)", {
    testthat::skip_if_not_installed("SeuratObject")
    skip_if_no_core_model()
    st <- make_two_assays()
    sc <- SeuratObject::CreateSeuratObject(counts = methods::as(d$sc, "dgCMatrix"))
    sc$celltype <- d$celltype
    out <- runSTEM(sc, st, st.assay = "Spatial.016um", labels = "celltype", epochs = 2,
                   verbose = FALSE)
    st2 <- stemAnnotateSpots(st, out)
    expect_identical(rownames(SeuratObject::Embeddings(st2, "stem")), colnames(st))
    expect_identical(SeuratObject::DefaultAssay(st2[["stem"]]), "Spatial.016um")
    expect_equal(unname(st2$STEM_celltype_left), unname(stemDeconvolution(out)[, "left"]))
    # another object's spots: refused, naming the assay its spots were compared in
    other <- st[, 1:10]
    expect_error(stemAnnotateSpots(other, out),
                 regexp = "does not match.*Mapped 20 spots.*has 10 in assay.*Spatial.016um",
                 class = "stemmap_error")
})

test_that("spot columns cover every column of the object, NA for bins not mapped", {
    got <- stemmap:::.stem_spot_columns(list(`STEM_a b` = c(0.25, 0.75)), c("s2", "s3"),
                                        c("s1", "s2", "s3", "t1"))
    expect_identical(rownames(got), c("s1", "s2", "s3", "t1"))
    expect_identical(colnames(got), "STEM_a b")
    expect_equal(got[["STEM_a b"]], c(NA, 0.25, 0.75, NA))
})

test_that("SpatialExperiment, several samples in pixels: results in the same units, per sample", {
    testthat::skip_if_not_installed("SpatialExperiment")
    skip_if_no_core_model()
    # two samples on full-resolution pixel frames far apart (Visium: ~100 px per 55 um spot)
    px <- rbind(d$coords[1:10, ] * 180 + 3000, d$coords[11:20, ] * 180 + 9000)
    rownames(px) <- colnames(d$st)
    spe <- SpatialExperiment::SpatialExperiment(
        assays = list(counts = d$st), spatialCoords = px,
        sample_id = rep(c("A1", "B1"), each = 10)
    )
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    out <- runSTEM(sce, spe, epochs = 2, verbose = FALSE)
    st <- S4Vectors::metadata(out)$STEM
    expect_equal(unname(st$spot_coords), unname(px))  # the pixels as given
    expect_identical(st$spot_slice, spe$sample_id)
    xy <- SingleCellExperiment::reducedDim(out, "STEM_spatial")
    expect_true(all(out$STEM_slice %in% c("A1", "B1")))
    for (s in c("A1", "B1")) {  # each cell in the pixel frame of its best sample
        cells <- which(out$STEM_slice == s)
        expect_true(in_frame(xy[cells, , drop = FALSE], px[spe$sample_id == s, ]))
    }
    # the cells at their pseudo-coordinates keep the sample whose frame these are in
    ps <- stemPseudoSpatial(out)
    expect_identical(ps$sample_id, out$STEM_slice)
    expect_equal(unname(SpatialExperiment::spatialCoords(ps)), unname(xy))
})

# Every cells x spots matrix in `x` (a list, walked down): list(path, class, nnz).
cells_by_spots <- function(x, m, n, path = "") {
    if (is.list(x) && !is.data.frame(x)) {
        out <- list()
        for (nm in names(x)) out <- c(out, cells_by_spots(x[[nm]], m, n, paste0(path, "$", nm)))
        return(out)
    }
    if (!identical(as.integer(dim(x)), c(m, n))) return(list())
    nnz <- if (methods::is(x, "sparseMatrix")) Matrix::nnzero(x) else length(x)
    list(list(path = path, sparse = methods::is(x, "sparseMatrix"), nnz = nnz,
              bytes = as.numeric(utils::object.size(x))))
}

test_that("at bin scale R stores top-k sparse mappings, never a dense cells x bins matrix", {
    skip_if_no_core_model()
    # more bins than cells' top-k, as at bin scale: 60 cells x 160 bins, k = 3
    b <- make_stem_data(seed = 2, nx = 16, ny = 10)
    m <- ncol(b$sc)
    n <- ncol(b$st)
    k <- 3L
    dense_bytes <- 8 * m * n
    check <- function(store, what) {
        found <- cells_by_spots(store, m, n)
        paths <- vapply(found, `[[`, "", "path")
        expect_setequal(paths, c("$mapping", "$placement"))
        for (f in found) {
            expect_true(f$sparse, label = paste(what, f$path, "is sparse"))
            expect_lte(f$nnz, k * m)
            expect_lt(f$bytes, dense_bytes / 4)
        }
    }
    res <- runSTEM(b$sc, b$st, coords = b$coords, labels = b$celltype, k = k, epochs = 2,
                   verbose = FALSE)
    check(res, "matrix sc")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = b$sc))
    sce$celltype <- b$celltype
    stc <- SingleCellExperiment::SingleCellExperiment(list(counts = b$st))
    stc$x <- b$coords[, 1]
    stc$y <- b$coords[, 2]
    out <- runSTEM(sce, stc, coords = c("x", "y"), labels = "celltype", k = k, epochs = 2,
                   verbose = FALSE)
    check(S4Vectors::metadata(out)$STEM, "SingleCellExperiment sc")
    # the deconvolution is bins x types, the spot embedding bins x d: no cells on either side
    decon <- S4Vectors::metadata(out)$STEM$deconvolution$celltype
    expect_identical(dim(decon), c(n, 2L))
    expect_length(cells_by_spots(SummarizedExperiment::colData(out), m, n), 0L)
    # only a caller who asks for it gets the dense matrix
    dn <- runSTEM(b$sc, b$st, coords = b$coords, mapping = "dense", epochs = 2, verbose = FALSE)
    expect_false(cells_by_spots(dn, m, n)[[1]]$sparse)
})

test_that("the packed counts cross to Python before the core runs (R's copies dropped)", {
    skip_if_no_core_model()
    # R's packed copy of the counts (raw vectors, 12 bytes per nonzero) was held in R lists
    # through the whole core run: 1.5 GB at 300k cells x 150k bins (issue #28). The core
    # now gets Python objects made before it starts; the R lists are garbage by then.
    real <- stemmap:::.stem_call
    seen <- list()
    fake <- function(bridge, fun, ...) {
        if (!identical(fun, "run_stem")) return(real(bridge, fun, ...))
        seen <<- list(...)
        "not run"
    }
    utils::assignInNamespace(".stem_call", fake, "stemmap")
    withr::defer(utils::assignInNamespace(".stem_call", real, "stemmap"))
    b <- make_stem_data()
    got <- stemmap:::.run_python(stemmap:::.worker_stem, sc = methods::as(b$sc, "dgCMatrix"),
                                 cells = colnames(b$sc),
                                 st = list(list(x = b$st, coords = b$coords, name = "st",
                                                spots = colnames(b$st))),
                                 params = list(), labels = list(), transfer = list(),
                                 mapping = "topk", k = 3L)
    expect_identical(got, "not run")
    expect_true(inherits(seen$sc, "python.builtin.object"))
    expect_true(inherits(seen$st, "python.builtin.object"))
    # what the core reads is unchanged: the counts, as sent before
    back <- reticulate::py_to_r(seen$sc)
    expect_equal(as.matrix(stemmap:::.unpack(back$x)), b$sc, ignore_attr = TRUE)
    expect_identical(unlist(back$cells), colnames(b$sc))
})
