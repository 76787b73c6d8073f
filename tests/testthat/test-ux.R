# User experience: gene matching, metadata column names, threads, plots.
d <- make_stem_data()

test_that("gene_match = \"case\" matches case-insensitive names and says so in the error", {
    skip_if_no_core_model()
    st_up <- d$st
    rownames(st_up) <- toupper(rownames(st_up))
    err <- expect_error(runSTEM(d$sc, st_up, coords = d$coords, epochs = 2, verbose = FALSE),
                        regexp = "share no genes")
    expect_match(conditionMessage(err), "gene_match = \"case\".*share 30 genes")
    st0 <- st_up
    res <- runSTEM(d$sc, st_up, coords = d$coords, epochs = 2, gene_match = "case",
                   mapping = "none", verbose = FALSE)
    expect_identical(st_up, st0)  # the caller's gene names are not changed
    expect_identical(res$settings$gene_match, "case")
    expect_identical(as.integer(res$settings$genes_matched_by_rule), 30L)
    expect_identical(as.integer(res$settings$genes_used), 30L)
    expect_error(runSTEM(d$sc, st_up, coords = d$coords, gene_match = "fuzzy"),
                 regexp = "gene_match.*must be one of")
})

test_that("threads is sent to the core only when set; R checks its type, the core its value", {
    expect_false("threads" %in% names(stemmap:::.stem_params()))
    expect_identical(stemmap:::.stem_params(threads = 2)$threads, 2L)
    expect_identical(stemmap:::.stem_params(threads = 0)$threads, 0L)  # the core refuses 0
    expect_error(stemmap:::.stem_params(threads = 1.5), regexp = "threads.*whole number")
})

test_that("deconvolution columns have the same names for every class, without warnings", {
    skip_if_no_core_model()
    labs <- ifelse(d$celltype == "left", "Anterior somitic tissues", "Gut tube/foregut")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    sce$celltype <- labs
    st_sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$st))
    st_sce$x <- d$coords[, 1]
    st_sce$y <- d$coords[, 2]
    out <- runSTEM(sce, st_sce, coords = c("x", "y"), labels = "celltype", epochs = 2,
                   mapping = "none", verbose = FALSE)
    expect_identical(colnames(stemDeconvolution(out)), sort(unique(labs)))  # original names
    want <- c("STEM_celltype_Anterior_somitic_tissues", "STEM_celltype_Gut_tube_foregut")
    a <- expect_no_warning(stemAnnotateSpots(st_sce, out))
    got_sce <- grep("^STEM_celltype", colnames(SummarizedExperiment::colData(a)), value = TRUE)
    expect_identical(sort(got_sce), want)
    skip_if_not_installed("SeuratObject")
    st_seu <- SeuratObject::CreateSeuratObject(counts = methods::as(d$st, "dgCMatrix"),
                                               assay = "Spatial")
    b <- expect_no_warning(stemAnnotateSpots(st_seu, out))
    got_seu <- grep("^STEM_celltype", colnames(b[[]]), value = TRUE)
    expect_identical(got_seu, got_sce)
    expect_equal(b[[]][, want[1]], SummarizedExperiment::colData(a)[, want[1]])
})

test_that("metadata column names: one rule, unique", {
    expect_identical(stemmap:::.stem_colnames(c("a b", "a-b", "ok.1")),
                     c("STEM_a_b", "STEM_a_b_1", "STEM_ok.1"))
})

# A small tissue picture made here: a left-right red gradient over a top-bottom blue one.
make_tissue_image <- function(h = 60L, w = 80L) {
    arr <- array(0, c(h, w, 3L))
    arr[, , 1] <- matrix(seq(0, 1, length.out = w), h, w, byrow = TRUE)
    arr[, , 3] <- matrix(seq(0, 1, length.out = h), h, w)
    arr[, , 2] <- 0.5
    arr
}

# Visium-like Seurat spatial object: spots on the test grid, full-resolution pixel
# coordinates 100 x the grid, and a low-resolution picture at scale factor 0.1.
make_seurat_visium <- function() {
    st <- SeuratObject::CreateSeuratObject(counts = methods::as(d$st, "dgCMatrix"), assay = "Spatial")
    # VisiumV1 and scalefactors() live in Seurat (v4) or SeuratObject (v5)
    ns_with <- function(name, class = FALSE) {
        for (pkg in c("SeuratObject", "Seurat")) {
            if (!requireNamespace(pkg, quietly = TRUE)) next
            ns <- asNamespace(pkg)
            if (exists(if (class) methods::classMetaName(name) else name, envir = ns, inherits = FALSE)) {
                return(ns)
            }
        }
        testthat::skip(paste("Seurat (v4) or SeuratObject (v5) with", name, "is not installed"))
    }
    where <- ns_with("VisiumV1", class = TRUE)
    sf_fun <- get("scalefactors", envir = ns_with("scalefactors"))
    cc <- data.frame(tissue = 1L, row = d$coords[, 2], col = d$coords[, 1],
                     imagerow = d$coords[, 2] * 100, imagecol = d$coords[, 1] * 100,
                     row.names = colnames(d$st))
    img <- methods::new(methods::getClass("VisiumV1", where = where),
                        image = make_tissue_image(), coordinates = cc,
                        scale.factors = sf_fun(spot = 10, fiducial = 15, hires = 0.4, lowres = 0.1),
                        spot.radius = 0.02, assay = "Spatial", key = "slice1_")
    st[["slice1"]] <- img
    st
}

test_that("cells are drawn over a Seurat Visium image, in its pixel frame", {
    skip_if_not_installed("SeuratObject")
    skip_if_no_core_model()
    st <- make_seurat_visium()
    res <- runSTEM(d$sc, st, epochs = 2, labels = d$celltype, mapping = "none", verbose = FALSE)
    p <- plotSTEMPositions(res, st, colour_by = d$celltype, image = TRUE)  # st as 2nd argument
    expect_s3_class(p, "ggplot")
    b <- ggplot2::ggplot_build(p)
    expect_s3_class(p$layers[[1]]$geom, "GeomRasterAnn")
    ras <- p$layers[[1]]$geom_params$raster
    expect_identical(dim(ras), c(60L, 80L))
    pts <- b$data[[2]]
    # pseudo-coordinates are in low-resolution pixels (grid x 100 x 0.1), y flipped
    expect_equal(sort(pts$x), unname(sort(res$coords[, 1])))
    expect_equal(sort(pts$y), unname(sort(-res$coords[, 2])))
    expect_true(all(pts$x >= 1 & pts$x <= 5 * 10 & pts$y <= -1))
    expect_identical(b$layout$coord$limits$x, c(0, 80))
    # no picture: a clear error
    expect_error(plotSTEMPositions(res, st = d$st, image = TRUE), regexp = "must be a SpatialExperiment or a Seurat")
    expect_error(plotSTEMPositions(res, image = TRUE), regexp = "needs the spatial object")
})

test_that("cells are drawn over a SpatialExperiment image scaled by its scaleFactor", {
    skip_if_not_installed("SpatialExperiment")  # absent on Debian 12: only SeuratObject is tested there
    skip_if_no_core_model()
    spe <- SpatialExperiment::SpatialExperiment(
        assays = list(counts = d$st), spatialCoords = d$coords * 100, sample_id = "s1",
        imgData = S4Vectors::DataFrame(
            sample_id = "s1", image_id = "lowres",
            data = I(list(SpatialExperiment::SpatialImage(grDevices::as.raster(make_tissue_image())))),
            scaleFactor = 0.1
        )
    )
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
    out <- runSTEM(sce, spe, epochs = 2, mapping = "none", verbose = FALSE)
    p <- plotSTEMPositions(out, st = spe, image = TRUE)
    pts <- ggplot2::ggplot_build(p)$data[[2]]
    xy <- SingleCellExperiment::reducedDim(out, "STEM_spatial")
    expect_equal(sort(pts$x), unname(sort(xy[, 1] * 0.1)))
    expect_equal(sort(pts$y), unname(sort(-xy[, 2] * 0.1)))
})

test_that("palettes: readable defaults for many labels and a palette argument", {
    lev <- paste("type", 1:18)
    pal <- stemmap:::.stem_palette(lev)
    expect_identical(names(pal), lev)
    expect_false(anyDuplicated(pal) > 0)
    expect_identical(unname(stemmap:::.stem_palette(c("a", "b"), c(b = "red", a = "blue"))),
                     c("blue", "red"))
    expect_length(stemmap:::.stem_palette(lev, "Dark 3"), 18L)
    expect_length(stemmap:::.stem_palette(paste0("t", 1:30)), 30L)
    expect_error(stemmap:::.stem_palette(lev, c("red", "blue")), regexp = "palette.*one colour per label")
    expect_error(stemmap:::.stem_palette(c("a", "b"), c(a = "red")), regexp = "No colour for")
})

test_that("plotSTEMLoss() shows the optimised weighted terms and marks the warm-up", {
    h <- data.frame(epoch = 1:80, loss = NA, extract = 4 - (1:80) / 40, trans = rep(3, 80),
                    mmd = rep(0.2, 80), beta = pmax(((1:80) - 1 - 50) / 29, 0), lr = 0.002)
    h$loss <- h$extract + 0.5 * h$mmd + h$beta * h$trans
    obj <- list(settings = list(alpha = 0.5), history = h)
    p <- plotSTEMLoss(obj)
    b <- ggplot2::ggplot_build(p)
    rect <- b$data[[1]]
    expect_equal(c(rect$xmin, rect$xmax), c(0.5, 51.5))  # epochs 1..51 have beta = 0
    stacked <- stats::aggregate(value ~ epoch, p$data, sum)
    expect_equal(stacked$value, h$loss, tolerance = 1e-8)  # the stack adds up to the total
    expect_true(all(p$data$value[grepl("^beta", p$data$term) & p$data$epoch <= 51] == 0))
    expect_equal(b$data[[3]]$y, h$loss)
    p2 <- plotSTEMLoss(obj, what = "terms")
    expect_setequal(levels(p2$data$term), c("extract", "trans", "mmd", "beta"))
    expect_error(plotSTEMLoss(obj, what = "nope"), regexp = "what.*must be one of")
})

test_that("an Rscript log shows progress as lines, each message once", {
    skip_if_no_core_model()
    script <- tempfile(fileext = ".R")
    writeLines(c(
        "d <- list(sc = matrix(rpois(600, 5), 30, 20, dimnames = list(paste0('g', 1:30), paste0('c', 1:20))),",
        "          st = matrix(rpois(300, 5), 30, 10, dimnames = list(paste0('g', 1:30), paste0('s', 1:10))))",
        "r <- stemmap::runSTEM(d$sc, d$st, coords = cbind(1:10, (1:10) %% 3), epochs = 20, verbose = TRUE)"
    ), script)
    py <- stemmap:::.stem_existing_python()
    out <- system2(file.path(R.home("bin"), "Rscript"), script, stdout = TRUE, stderr = TRUE,
                   env = c(paste0("STEMMAP_PYTHON=", py),
                           paste0("R_LIBS=", paste(.libPaths(), collapse = ":"))))
    log <- paste(out, collapse = "\n")
    expect_false(grepl("\r", log, fixed = TRUE))  # no carriage-return bar in a log
    bars <- grep("^STEM training: ", out, value = TRUE)
    expect_length(bars, 10L)                      # 10 %, 20 %, ..., 100 %
    expect_match(bars[10], "^STEM training: 20/20 epochs \\(100%\\)")
    expect_length(grep("shared genes", out), 1L)  # said once (by the core), not by R too
    expect_length(grep("^Mapping 20 cells onto 10 spots", out), 1L)
})
