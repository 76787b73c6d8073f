d <- make_stem_data()

skip_if_no_seurat <- function() {
    testthat::skip_if_not_installed("SeuratObject")
}

make_seurat_st <- function() {
    st <- SeuratObject::CreateSeuratObject(counts = methods::as(d$st, "dgCMatrix"), assay = "Spatial")
    cc <- data.frame(x = d$coords[, 1], y = d$coords[, 2], row.names = colnames(d$st))
    # SlideSeq is defined in Seurat (v4) or SeuratObject (v5)
    where <- if (methods::isClass("SlideSeq", where = asNamespace("SeuratObject"))) {
        asNamespace("SeuratObject")
    } else {
        testthat::skip_if_not_installed("Seurat")
        asNamespace("Seurat")
    }
    img <- methods::new(methods::getClass("SlideSeq", where = where), coordinates = cc,
                        assay = "Spatial", key = "image_")
    st[["slice1"]] <- img
    st
}

test_that("runSTEM() on Seurat v4 objects with a SlideSeq image", {
    skip_if_no_seurat()
    skip_if_no_core_model()
    sc <- SeuratObject::CreateSeuratObject(counts = methods::as(d$sc, "dgCMatrix"))
    sc$celltype <- d$celltype
    st <- make_seurat_st()
    sc0 <- sc
    out <- runSTEM(sc, st, labels = "celltype", epochs = 5, verbose = FALSE)
    expect_identical(sc, sc0)
    expect_true(all(c("stem", "STEM_spatial") %in% SeuratObject::Reductions(out)))
    expect_identical(dim(SeuratObject::Embeddings(out, "STEM_spatial")), c(60L, 2L))
    expect_true(all(c("STEM_best_spot", "STEM_confidence") %in% colnames(out[[]])))
    expect_s4_class(stemMapping(out), "dgCMatrix")
    expect_s4_class(out[["STEM_adjacency"]], "Graph")
    expect_identical(dim(out[["STEM_adjacency"]]), c(60L, 60L))
    expect_identical(rownames(out[["STEM_adjacency"]]), colnames(out))
    expect_identical(dim(stemAdjacency(out)), c(60L, 60L))
    st2 <- stemAnnotateSpots(st, out)
    expect_true("STEM_celltype_left" %in% colnames(st2[[]]))
    expect_s3_class(plotSTEMPositions(out, colour_by = "celltype"), "ggplot")
    # FOV centroids, and a matrix sc with a Seurat st give the same kind of result
    res <- runSTEM(d$sc, st, epochs = 2, mapping = "none", verbose = FALSE)
    expect_identical(dim(res$coords), c(60L, 2L))
})

test_that("Seurat v5 Assay5 layers are read with LayerData()", {
    skip_if_no_seurat()
    if (utils::packageVersion("SeuratObject") < "5.0.0") {
        skip(paste("SeuratObject >= 5 is needed for Assay5; found", utils::packageVersion("SeuratObject")))
    }
    skip_if_no_core_model()
    sc <- SeuratObject::CreateSeuratObject(
        counts = SeuratObject::CreateAssay5Object(counts = methods::as(d$sc, "dgCMatrix"))
    )
    out <- runSTEM(sc, make_seurat_st(), epochs = 2, verbose = FALSE)
    expect_true("stem" %in% SeuratObject::Reductions(out))
    expect_error(runSTEM(sc, make_seurat_st(), layer = "nope"), regexp = "has no layer")
})

test_that("Seurat errors: no counts, no image, unknown assay", {
    skip_if_no_seurat()
    sc <- SeuratObject::CreateSeuratObject(counts = methods::as(d$sc, "dgCMatrix"))
    st <- make_seurat_st()
    expect_error(runSTEM(sc, st, assay = "nope"), regexp = "sc.*has no assay.*nope")
    data_only <- SeuratObject::CreateAssayObject(data = methods::as(log1p(d$sc), "dgCMatrix"))
    sc2 <- SeuratObject::CreateSeuratObject(counts = methods::as(d$sc, "dgCMatrix"))
    sc2[["RNA"]] <- data_only
    expect_error(runSTEM(sc2, st), regexp = "sc.*has no.*counts.*empty counts")
    st_noimg <- SeuratObject::CreateSeuratObject(counts = methods::as(d$st, "dgCMatrix"))
    expect_error(runSTEM(sc, st_noimg), regexp = "st.*must have spatial coordinates; found no image")
})

test_that("Seurat st: coords names meta.data columns, a reduction or a matrix", {
    skip_if_no_seurat()
    skip_if_no_core_model()
    st <- SeuratObject::CreateSeuratObject(counts = methods::as(d$st, "dgCMatrix"), assay = "Spatial")
    far <- d$coords * 1000 + 5e4  # far from any default, so we can tell they were used
    st$px <- far[, 1]
    st$py <- far[, 2]
    in_range <- function(xy) {
        all(xy[, 1] >= min(far[, 1]) - 1e-6 & xy[, 1] <= max(far[, 1]) + 1e-6) &&
            all(xy[, 2] >= min(far[, 2]) - 1e-6 & xy[, 2] <= max(far[, 2]) + 1e-6)
    }
    res <- runSTEM(d$sc, st, coords = c("px", "py"), epochs = 2, mapping = "none", verbose = FALSE)
    expect_true(in_range(res$coords))
    emb <- far
    dimnames(emb) <- list(colnames(d$st), c("sp_1", "sp_2"))
    st[["spatial"]] <- SeuratObject::CreateDimReducObject(embeddings = emb, key = "sp_", assay = "Spatial")
    res2 <- runSTEM(d$sc, st, coords = "spatial", epochs = 2, mapping = "none", verbose = FALSE)
    expect_true(in_range(res2$coords))
    res3 <- runSTEM(d$sc, st, coords = far, epochs = 2, mapping = "none", verbose = FALSE)
    expect_true(in_range(res3$coords))
    # an image is overridden by coords too
    st_img <- make_seurat_st()
    st_img$px <- far[, 1]
    st_img$py <- far[, 2]
    res4 <- runSTEM(d$sc, st_img, coords = c("px", "py"), epochs = 2, mapping = "none", verbose = FALSE)
    expect_true(in_range(res4$coords))
    expect_error(runSTEM(d$sc, st, coords = c("px", "nope")),
                 regexp = "coords.*must name 2 meta.data columns or 1 reduction")
    expect_error(runSTEM(d$sc, st, coords = far[-1, ]), regexp = "coordinates.*rows")
})

# log1p(1e4 * counts / cell total): the "data" layer after Seurat's NormalizeData()
.lognorm <- function(m) log1p(t(t(m) / colSums(m)) * 1e4)

test_that("a Seurat data-layer run sees the values Python's normalized = TRUE sees", {
    skip_if_no_seurat()
    py <- skip_if_no_python()
    skip_if_no_core_model()
    with_data <- function(counts, assay = "RNA") {
        o <- SeuratObject::CreateSeuratObject(counts = methods::as(counts, "dgCMatrix"),
                                              assay = assay)
        SeuratObject::SetAssayData(o, slot = "data",
                                   new.data = methods::as(.lognorm(counts), "dgCMatrix"))
    }
    sso <- with_data(d$sc)
    sto <- with_data(d$st, "Spatial")
    sto$x <- d$coords[, 1]
    sto$y <- d$coords[, 2]
    res <- runSTEM(sso, sto, coords = c("x", "y"), layer = "data", normalized = TRUE,
                   epochs = 3, seed = 1, mapping = "dense", verbose = FALSE)
    dn <- list(sc = .lognorm(d$sc), st = .lognorm(d$st), coords = d$coords)
    dir <- run_core_on(py, dn, c(
        "m = stemmap.STEM(a, b, normalized=True, seed=1); m.train(epochs=3, progress=False)",
        "np.savetxt(f'{d}/loss.txt', m.history['loss'])",
        "np.savetxt(f'{d}/coords.txt', m.mapping().coords)"
    ), "coords.txt")
    ref_loss <- utils::read.table(file.path(dir, "loss.txt"))[[1]]
    ref <- as.matrix(utils::read.table(file.path(dir, "coords.txt")))
    hist <- stemHistory(res)
    expect_equal(hist$loss, ref_loss, tolerance = 1e-4)
    expect_equal(unname(SeuratObject::Embeddings(res, "STEM_spatial")), unname(ref),
                 tolerance = 1e-3)
    # the layer read from st is recorded with the one read from sc
    expect_identical(SeuratObject::Misc(res, "STEM")$params$st.layer, "data")
})
