# STEM results <-> .h5ad in the core's one layout (python/src/stemmap/_layout.py), laid out
# and written by the core's anndata (stemmap.bridge.files). With the zellkonverter engine
# the file is first the SingleCellExperiment itself, written by zellkonverter's writeH5AD()
# (its SCE -> AnnData conversion, in its own environment), into which the core then writes
# the results; readSTEMh5ad(as = "SingleCellExperiment") reads it with readH5AD().

#' Write and read a STEM mapping as .h5ad
#'
#' `writeSTEMh5ad()` writes the results of [runSTEM()] to an AnnData file in the
#' layout of the Python core's `StemMapping.to_anndata()` (the table
#' `stemmap._layout.TABLE`): cells are the observations, `obsm["X_stem"]` the cell
#' embedding, `obsm["stem_spatial"]` the pseudo-coordinates, `obs` columns
#' `stem_best_spot`, `stem_confidence` (and `stem_best_slice` with several slices),
#' `uns["stem"]` the settings; in addition `obsm["stem_mapping"]` the stored cell x
#' spot mapping (absent when `mapping = "none"`), `uns["stem_spots"]` the spot names,
#' slices and embedding and `uns["stem_history"]` the loss history. `readSTEMh5ad()`
#' reads such a file back; it also reads the SC file of `to_anndata()` (without mapping
#' and spots) and files written by stemmap 0.1 (`obsm["STEM"]`, the mapping as `X`).
#'
#' @section Engines:
#' With `engine = "zellkonverter"` (the default for a SingleCellExperiment `sc` where
#' zellkonverter is installed) the file is the object itself, as `to_anndata()` writes
#' into the caller's AnnData: zellkonverter's `writeH5AD()` writes it (`X` the assay
#' `assay.type`, the other assays as layers, colData as `obs`, reducedDims as `obsm`,
#' metadata as `uns`; stemmap's own slots are left out), then the Python core writes the
#' results into that file under the keys above. With `engine = "stemmap"` (the default
#' otherwise, and the only one for Seurat objects and lists) the file holds the results
#' only (`X` is empty). The results are laid out by the core in both. The default can be
#' set with `options(stemmap.h5ad_engine = "stemmap")` (or `"zellkonverter"`, `"auto"`).
#' `readSTEMh5ad(as = "SingleCellExperiment")` reads the file with zellkonverter's
#' `readH5AD()` and stores the results on it as [runSTEM()] does.
#'
#' @param sc The object returned by [runSTEM()].
#' @param file Path of the `.h5ad` file.
#' @param engine `"auto"`, `"zellkonverter"` or `"stemmap"` (see Engines). Default
#'   (`NULL`): `getOption("stemmap.h5ad_engine", "auto")`.
#' @param assay.type With `engine = "zellkonverter"`: the assay written as `X`.
#'   Default (`NULL`): the assay [runSTEM()] read.
#' @return `writeSTEMh5ad()`: `file`, invisibly. `readSTEMh5ad()`: a list with
#'   `mapping`, `embedding`, `coords`, `best_spot`, `best_slice`, `confidence`,
#'   `spot_embedding`, `spot_slice`, `settings` and `history`, with cell and spot
#'   names (`NULL` for what the file does not hold); with
#'   `as = "SingleCellExperiment"`, the file's object with these results stored as
#'   [runSTEM()] stores them.
#' @export
writeSTEMh5ad <- function(sc, file, engine = NULL, assay.type = NULL) {
    file <- .stem_h5ad_path(file, write = TRUE)
    engine <- .stem_h5ad_engine(engine, sc)
    out <- .stem_h5ad_result(sc)
    if (engine == "zellkonverter") {
        base <- .stem_h5ad_base(sc, assay.type)
        .stem_zellkonverter(zellkonverter::writeH5AD(base$sce, file, X_name = base$X_name),
                            "write the object to", file)
        # the core writes the results into that file (the generic worker: write_h5ad's
        # `base` argument)
        .run_bridge("write_h5ad", path = file, result = out, base = file)
    } else {
        .run_bridge("write_h5ad", path = file, result = out)
    }
    invisible(file)
}

#' @rdname writeSTEMh5ad
#' @param as `"list"` (the results) or `"SingleCellExperiment"` (the file's object with
#'   the results stored on it; needs zellkonverter).
#' @export
readSTEMh5ad <- function(file, as = c("list", "SingleCellExperiment")) {
    file <- .stem_h5ad_path(file, write = FALSE)
    as <- .stem_match_arg(as, c("list", "SingleCellExperiment"), "as")
    if (as == "list") {
        return(.stem_h5ad_list(.run_bridge("read_h5ad", path = file)))
    }
    .stem_require("zellkonverter", "to read an .h5ad file as a SingleCellExperiment")
    res <- .stem_h5ad_list(.run_bridge("read_h5ad", path = file))
    sce <- .stem_zellkonverter(zellkonverter::readH5AD(file), "read", file)
    .to_SingleCellExperiment(.stem_drop_layout(sce), res)
}

# A zellkonverter call; its failure a stemmap condition saying what was being done and
# how to do without it.
.stem_zellkonverter <- function(expr, doing, file) {
    tryCatch(expr, error = function(e) {
        msg <- conditionMessage(e)
        alt <- if (startsWith(doing, "write")) {
            "Write the results alone with {.code engine = \"stemmap\"} (or {.code options(stemmap.h5ad_engine = \"stemmap\")})."
        } else {
            "Read the results alone with {.code readSTEMh5ad(file)}."
        }
        .stem_abort(c("zellkonverter could not {doing} {.path {file}}.", x = "{msg}", i = alt),
                    kind = "python")
    })
}

# ---- which engine ----------------------------------------------------------------------

.stem_h5ad_engines <- c("auto", "zellkonverter", "stemmap")

# "zellkonverter" or "stemmap": the one asked for (argument, else the option), "auto"
# resolved: zellkonverter for a SingleCellExperiment where it is installed.
.stem_h5ad_engine <- function(engine, sc, have = requireNamespace("zellkonverter", quietly = TRUE)) {
    arg <- "engine"
    if (is.null(engine)) {
        engine <- getOption("stemmap.h5ad_engine", "auto")
        arg <- "options(stemmap.h5ad_engine)"
    }
    engine <- .stem_match_arg(engine, .stem_h5ad_engines, arg)
    sce <- identical(.stem_class(sc), "SingleCellExperiment")  # the storage table's class
    if (engine == "auto") {
        return(if (have && sce) "zellkonverter" else "stemmap")
    }
    if (engine == "zellkonverter") {
        if (!have) .stem_require("zellkonverter", "for engine = \"zellkonverter\"")
        if (!sce) {
            .stem_abort(c(
                "{.arg {arg}} = {.val zellkonverter} converts a SingleCellExperiment; {.arg sc} is a {.cls {class(sc)[1]}}.",
                i = "Use {.code engine = \"stemmap\"}."
            ))
        }
    }
    engine
}

# ---- writing -----------------------------------------------------------------------------

# The results of `sc` as the core's write_h5ad() takes them (packed arrays, names).
.stem_h5ad_result <- function(sc) {
    res <- .stem_store(sc)
    emb <- .stem_result(sc, "embedding")
    xy <- .stem_coords(sc)
    best <- .stem_result(sc, "best_spot")
    conf <- .stem_result(sc, "confidence")
    slice <- .stem_best_slice(sc)
    map <- res$mapping
    list(
        cells = as.list(rownames(emb)), spots = as.list(rownames(res$spot_embedding)),
        spot_slice = as.list(res$spot_slice),
        mapping = if (is.null(map)) NULL else .pack(map),
        embedding = .pack(unname(as.matrix(emb))), coords = .pack(unname(as.matrix(xy))),
        spot_embedding = .pack(unname(res$spot_embedding)),
        best_spot = as.list(ifelse(is.na(best), "", best)), confidence = .pack(as.double(conf)),
        best_slice = if (!is.null(slice)) as.list(as.character(slice)),
        settings = res$settings,
        history = lapply(res$history, function(v) .pack(as.double(v)))
    )
}

# The SingleCellExperiment zellkonverter writes: `sc` without stemmap's own slots (named
# by the storage table, R/storage.R; the core writes their results under the layout's
# keys) and `X_name`, the assay written as X.
.stem_h5ad_base <- function(sc, assay.type = NULL) {
    cl <- "SingleCellExperiment"
    a <- assay.type
    if (is.null(a)) a <- .stem_store(sc)$params$assay.type
    if (is.null(a)) a <- SummarizedExperiment::assayNames(sc)[1]
    .check_assay(sc, a, "sc")
    if (is.numeric(a)) a <- SummarizedExperiment::assayNames(sc)[a]
    own <- c(.stem_key("embedding", cl), .stem_key("coords", cl))
    SingleCellExperiment::reducedDims(sc) <-
        SingleCellExperiment::reducedDims(sc)[setdiff(SingleCellExperiment::reducedDimNames(sc), own)]
    pairs <- SingleCellExperiment::colPairNames(sc)
    SingleCellExperiment::colPairs(sc) <-
        SingleCellExperiment::colPairs(sc)[setdiff(pairs, .stem_key("adjacency", cl))]
    cd <- SummarizedExperiment::colData(sc)
    cols <- vapply(c("best_spot", "confidence", "best_slice"), .stem_key, "", class = cl)
    SummarizedExperiment::colData(sc) <- cd[, setdiff(colnames(cd), cols), drop = FALSE]
    S4Vectors::metadata(sc)$STEM <- NULL  # (the model's bytes, the mapping, the settings...)
    list(sce = sc, X_name = a)
}

# ---- reading -----------------------------------------------------------------------------

# The layout's keys (python/src/stemmap/_layout.py TABLE; test-h5ad.R compares): what
# .stem_drop_layout() removes from the object zellkonverter read (the core reads the
# results, and they are stored as runSTEM() stores them).
.stem_anndata_keys <- c(
    embedding = "X_stem", coords = "stem_spatial", best_spot = "stem_best_spot",
    confidence = "stem_confidence", best_slice = "stem_best_slice", settings = "stem",
    mapping = "stem_mapping", spots = "stem_spots", history = "stem_history"
)

.stem_drop_layout <- function(sce) {
    k <- .stem_anndata_keys
    SingleCellExperiment::reducedDims(sce) <-
        SingleCellExperiment::reducedDims(sce)[setdiff(SingleCellExperiment::reducedDimNames(sce), k)]
    cd <- SummarizedExperiment::colData(sce)
    SummarizedExperiment::colData(sce) <- cd[, setdiff(colnames(cd), k), drop = FALSE]
    md <- S4Vectors::metadata(sce)
    S4Vectors::metadata(sce) <- md[setdiff(names(md), k)]
    sce
}

# The core's read_h5ad() answer as the list readSTEMh5ad() returns.
.stem_h5ad_list <- function(r) {
    cells <- .chr(r$cells)
    spots <- .chr(r$spots)
    named <- function(p, rn, cn) {
        m <- .unpack(p)
        if (!is.null(m)) dimnames(m) <- list(rn, cn)
        m
    }
    emb <- named(r$embedding, cells, NULL)
    colnames(emb) <- paste0("STEM_", seq_len(ncol(emb)))
    chr_na <- function(v) {
        if (is.null(v)) return(NULL)
        v <- vapply(v, function(x) if (is.null(x) || !nzchar(x)) NA_character_ else as.character(x), "")
        unname(v)
    }
    list(
        mapping = named(r$mapping, cells, spots), embedding = emb,
        coords = named(r$coords, cells, c("x", "y")), best_spot = chr_na(r$best_spot),
        best_slice = chr_na(r$best_slice),
        confidence = if (!is.null(r$confidence)) as.vector(.unpack(r$confidence)),
        spot_embedding = named(r$spot_embedding, spots, colnames(emb)),
        spot_slice = .chr(r$spot_slice), settings = r$settings,
        history = as.data.frame(lapply(r$history, .unpack))
    )
}

# `file` as a path to write (its folder must exist) or to read (it must exist): R
# structure checked here, before anything is converted or sent to Python.
.stem_h5ad_path <- function(file, write) {
    if (!is.character(file) || length(file) != 1L || is.na(file) || !nzchar(file)) {
        .stem_abort("{.arg file} must be one file path (a string); found {.obj_type_friendly {file}}.",
                    kind = "type")
    }
    file <- path.expand(file)
    if (write) {
        dir <- dirname(file)
        if (!dir.exists(dir)) {
            .stem_abort("{.arg file} must be in an existing folder; {.path {dir}} does not exist.",
                        kind = "file")
        }
        return(file)
    }
    if (!file.exists(file) || dir.exists(file)) {
        .stem_abort("{.arg file} {.path {file}} does not exist.", kind = "file")
    }
    normalizePath(file)
}
