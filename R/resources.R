#' Memory and time of a mapping, before running it
#'
#' Estimates the memory of one training step and the training time of [runSTEM()]
#' for data of a given size, and the batches it would choose. With no batch sizes
#' given, training uses full batches (the paper) unless one full-batch step would
#' need more than 60% of the free memory of the device or take longer than about
#' 1 s; then it trains on cell batches and spatially contiguous spot patches. Times
#' are rough (operation counts at a nominal device speed); memory is the float32
#' working set of one step.
#'
#' @param n_cells,n_spots,n_genes Data size: cells, spots (of the largest slice)
#'   and shared genes. `n_cells` may be a single-cell object and `n_spots` a
#'   spatial object (their `ncol()` is used); then `n_genes` defaults to the number
#'   of genes they share.
#' @param device `"auto"`, `"cpu"` or `"cuda"`. Default (`NULL`): `"auto"`.
#' @param epochs Epochs for the total time. Default (`NULL`): `400`.
#' @param cell_batch_size,spot_batch_size Batch sizes to check (default: chosen).
#' @param hidden Encoder layer sizes. Default (`NULL`): `c(512, 256, 128)`.
#' @return A one-row data.frame: `device`, `cell_batch_size` and
#'   `spot_batch_size` (`NA` = all), `step_GiB`, `step_seconds`, `total_minutes`,
#'   `full_batch_GiB`, `full_batch_step_seconds`, `free_GiB` and `reason` (why
#'   batches are used; empty for full batches). An error names the sizes when even
#'   the smallest batches do not fit.
#' @examples
#' \dontrun{
#' stemEstimateResources(100000, 5000, 2000)
#' stemEstimateResources(sce, spe)
#' }
#' @seealso [runSTEM()]
#' @export
stemEstimateResources <- function(n_cells, n_spots, n_genes = NULL, device = NULL,
                                  epochs = NULL, cell_batch_size = NULL,
                                  spot_batch_size = NULL, hidden = NULL) {
    genes <- list()
    size_of <- function(x, arg) {
        if (is.numeric(x) && length(x) == 1L && !is.na(x)) return(x)
        d <- tryCatch(dim(x), error = function(e) NULL)
        if (length(d) == 2L) {
            genes[[arg]] <<- rownames(x)
            return(d[2L])
        }
        .stem_abort("{.arg {arg}} must be a number or an object with genes x {if (arg == 'n_cells') 'cells' else 'spots'}; found {.cls {class(x)}}.")
    }
    n_cells <- size_of(n_cells, "n_cells")
    n_spots <- size_of(n_spots, "n_spots")
    if (is.null(n_genes)) {
        if (length(genes) < 2L) {
            .stem_abort("{.arg n_genes} is needed unless {.arg n_cells} and {.arg n_spots} are objects with gene names.")
        }
        n_genes <- length(intersect(genes$n_cells, genes$n_spots))
    }
    .check_number(n_cells, "n_cells", integer = TRUE, min = 1)
    .check_number(n_spots, "n_spots", integer = TRUE, min = 1)
    .check_number(n_genes, "n_genes", integer = TRUE, min = 1)
    for (b in c("epochs", "cell_batch_size", "spot_batch_size")) {
        v <- get(b)
        if (!is.null(v)) .check_number(v, b, integer = TRUE, min = 1)
    }
    if (!is.null(hidden) && (!is.numeric(hidden) || !length(hidden) || anyNA(hidden) || any(hidden < 1))) {
        .stem_abort("{.arg hidden} must be positive layer sizes; found {.val {hidden}}.")
    }
    # NULL arguments are not sent: the core uses its defaults
    res <- .run_bridge("estimate_resources", n_cells = as.integer(n_cells),
                       n_spots = as.integer(n_spots), n_genes = as.integer(n_genes),
                       hidden = if (!is.null(hidden)) as.list(as.integer(hidden)), device = device,
                       cell_batch_size = cell_batch_size, spot_batch_size = spot_batch_size,
                       epochs = if (!is.null(epochs)) as.integer(epochs))
    if (!is.null(res$error)) {
        .stem_abort(c(
            "Training {n_cells} cells x {n_spots} spots does not fit in memory.",
            x = res$error
        ), kind = "memory")
    }
    num <- function(v) if (is.null(v)) NA_real_ else as.numeric(v)
    gib <- 1024^3
    data.frame(
        device = as.character(res$device),
        cell_batch_size = num(res$cell_batch_size),
        spot_batch_size = num(res$spot_batch_size),
        step_GiB = num(res$step_bytes) / gib,
        step_seconds = num(res$step_seconds),
        total_minutes = num(res$total_seconds) / 60,
        full_batch_GiB = num(res$full_batch_bytes) / gib,
        full_batch_step_seconds = num(res$full_batch_step_seconds),
        free_GiB = num(res$free_bytes) / gib,
        reason = as.character(res$reason),
        stringsAsFactors = FALSE
    )
}
