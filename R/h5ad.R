# STEM results <-> .h5ad, written and read by the core's anndata (workers in R/bridge.R;
# the layout is the core's, python/src/stemmap/_layout.py).

#' Write and read a STEM mapping as .h5ad
#'
#' `writeSTEMh5ad()` writes the results of [runSTEM()] to an AnnData file in the
#' layout of the Python core's `StemMapping.to_anndata()` (the table
#' `stemmap._layout.TABLE`): cells are the observations, `obsm["X_stem"]` the cell
#' embedding, `obsm["stem_spatial"]` the pseudo-coordinates, `obs` columns
#' `stem_best_spot`, `stem_confidence` (and `stem_best_slice` with several slices),
#' `uns["stem"]` the settings; in addition `obsm["stem_mapping"]` the stored cell x
#' spot mapping (absent when `mapping = "none"`), `uns["stem_spots"]` the spot names,
#' slices and embedding and `uns["stem_history"]` the loss history. No expression is
#' written (`X` is empty). `readSTEMh5ad()` reads such a file back into a list; it
#' also reads the SC file of `to_anndata()` (without mapping and spots) and files
#' written by stemmap 0.1 (`obsm["STEM"]`, the mapping as `X`).
#'
#' @param sc The object returned by [runSTEM()].
#' @param file Path of the `.h5ad` file.
#' @return `writeSTEMh5ad()`: `file`, invisibly. `readSTEMh5ad()`: a list with
#'   `mapping`, `embedding`, `coords`, `best_spot`, `best_slice`, `confidence`,
#'   `spot_embedding`, `spot_slice`, `settings` and `history`, with cell and spot
#'   names (`NULL` for what the file does not hold).
#' @export
writeSTEMh5ad <- function(sc, file) {
    file <- .stem_h5ad_path(file, write = TRUE)
    res <- .stem_store(sc)
    emb <- .stem_result(sc, "embedding")
    xy <- .stem_coords(sc)
    best <- .stem_result(sc, "best_spot")
    conf <- .stem_result(sc, "confidence")
    slice <- .stem_best_slice(sc)
    map <- res$mapping
    out <- list(
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
    .run_python(.worker_write_h5ad, path = file, result = out)
    invisible(file)
}

#' @rdname writeSTEMh5ad
#' @export
readSTEMh5ad <- function(file) {
    file <- .stem_h5ad_path(file, write = FALSE)
    r <- .run_python(.worker_read_h5ad, path = file)
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
