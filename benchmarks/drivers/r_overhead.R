# R side of benchmarks/bench_r_overhead.py: build a Seurat SC object and a Seurat ST
# object with an FOV image (centroids: the class of a Visium HD image) from the cached
# matrices, then time runSTEM() with its default outputs written back (top-k mapping and
# placement, coordinates, best spot, uncertainty, SC-SC graph, deconvolution of the cell
# types). Prints one line `RESULT <json>` with the wall time of each phase.
#
# Usage (the bench script runs it; STEMMAP_PYTHON and PYTHONPATH name the core to use):
#   Rscript benchmarks/drivers/r_overhead.R --data DIR --epochs 400 [--threads N] [--seed 0]

args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default = NULL) {
    i <- match(paste0("--", name), args)
    if (is.na(i)) default else args[[i + 1L]]
}
data <- opt("data")
epochs <- as.integer(opt("epochs", "400"))
seed <- as.integer(opt("seed", "0"))
threads <- opt("threads")
threads <- if (is.null(threads)) NULL else as.integer(threads)
now <- function() proc.time()[["elapsed"]]
out <- list()

t0 <- now()
suppressPackageStartupMessages({
    library(Matrix)
    library(SeuratObject)
    library(stemmap)
})
out$load_packages_s <- now() - t0

# genes x observations dgCMatrix from the cache (bench_r_overhead.write_counts()).
read_counts <- function(dir) {
    genes <- readLines(file.path(dir, "genes.txt"))
    obs <- readLines(file.path(dir, "obs.txt"))
    bin <- function(f, what, n, size) {
        readBin(file.path(dir, f), what, n = n, size = size, endian = "little")
    }
    p <- bin("p.int32", "integer", length(obs) + 1L, 4L)
    nnz <- p[[length(p)]]
    methods::new("dgCMatrix", i = bin("i.int32", "integer", nnz, 4L), p = p,
                 x = bin("x.float64", "double", nnz, 8L),
                 Dim = c(length(genes), length(obs)), Dimnames = list(genes, obs))
}

t0 <- now()
sc_counts <- read_counts(file.path(data, "sc"))
st_counts <- read_counts(file.path(data, "st"))
celltype <- readLines(file.path(data, "sc", "celltype.txt"))
xy <- matrix(readBin(file.path(data, "st", "coords.float64"), "double",
                     n = 2L * ncol(st_counts), size = 8L, endian = "little"), ncol = 2L)
out$read_files_s <- now() - t0

t0 <- now()
sc <- CreateSeuratObject(counts = sc_counts,
                         meta.data = data.frame(celltype = celltype,
                                                row.names = colnames(sc_counts)))
st <- CreateSeuratObject(counts = st_counts, assay = "Spatial")
fov <- CreateFOV(data.frame(x = xy[, 1], y = xy[, 2], cell = colnames(st_counts)),
                 type = "centroids", assay = "Spatial", key = "fov_")
st[["fov"]] <- fov
rm(sc_counts, st_counts, fov)
invisible(gc())
out$build_objects_s <- now() - t0

# the embedded Python started and the core imported once, with the modules the Python
# side imports before its clock starts (as in any R session's first call): reported apart
# from runSTEM()
t0 <- now()
invisible(stemmap:::.run_python(function() {
    stemmap:::.stem_bridge()
    for (m in c("anndata", "numpy", "pandas", "stemmap")) reticulate::import(m)
    TRUE
}))
out$start_python_s <- now() - t0
vm <- grep("^VmRSS:", readLines("/proc/self/status"), value = TRUE)
out$rss_after_import_gib <- as.numeric(strsplit(trimws(sub("VmRSS:", "", vm)), " +")[[1]][1]) /
    2^20  # R, the objects built, Python and the core imported

t0 <- now()
res <- runSTEM(sc, st, labels = "celltype", epochs = epochs, seed = seed, threads = threads,
               verbose = FALSE)
out$runSTEM_s <- now() - t0

t0 <- now()
st2 <- stemAnnotateSpots(st, res)
out$annotate_spots_s <- now() - t0

store <- Misc(res, "STEM")
out$mapping_class <- class(store$mapping)[[1]]
out$mapping_nnz <- length(store$mapping@x)
plan <- c("cell_batch_size", "spot_batch_size", "mixed_precision", "threads", "readout",
          "rounds")  # as bench_r_overhead.PLAN_KEYS (the batches follow the free memory)
settings <- c(store$settings, store$settings$mapping)
out$plan <- lapply(stats::setNames(plan, plan), function(k) {
    v <- settings[[k]]
    if (is.null(v)) NA else v
})
out$results_mb <- as.numeric(utils::object.size(store)) / 2^20
out$cells <- ncol(sc)
out$spots <- ncol(st)
out$genes <- nrow(sc)
out$epochs <- epochs
out$finite_coords <- all(is.finite(Embeddings(res, "STEM_spatial")))
cat("RESULT ", jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA), "\n", sep = "")
