# The one place where R data become a STEM run: plain matrices in, plain lists out
# (.stem_run, the ANY method of runSTEM(); the other methods forward to it).

# The arguments of a STEM run as the core takes them. Every argument left NULL is left
# out: the core then uses its own default (python/src/stemmap/_defaults.py; R never
# repeats a core default). R checks only what it must convert (R types).
.stem_params <- function(epochs = NULL, lr = NULL, alpha = NULL, sigma = NULL,
                         hidden = NULL, device = NULL, seed = NULL,
                         genes = NULL, normalized = NULL, verbose = NULL,
                         keep_model = FALSE, readout = NULL, sigma_scale = NULL,
                         adjacency_k = NULL, preset = NULL,
                         gene_match = NULL, threads = NULL, rounds = NULL,
                         cell_batch_size = NULL, expression_weight = NULL) {
    for (a in c("readout", "preset", "gene_match")) {
        v <- get(a)
        if (!is.null(v)) .check_string(v, a)  # its choices are the core's (check_choice)
    }
    # R types only (what R must convert: one number, a whole number for an integer); every
    # value check (ranges, finiteness) is the core's (stemmap._validate), whose errors
    # arrive as R conditions naming the argument
    for (a in c("threads", "epochs", "adjacency_k", "seed", "rounds", "cell_batch_size")) {
        v <- get(a)
        if (!is.null(v)) .check_number(v, a, integer = TRUE)
    }
    for (a in c("lr", "alpha", "sigma_scale", "expression_weight")) {
        v <- get(a)
        if (!is.null(v)) .check_number(v, a)
    }
    if (!is.null(sigma) && (!is.numeric(sigma) || !length(sigma))) {
        .stem_abort("{.arg sigma} must be NULL or numbers; found {.cls {class(sigma)}}.", kind = "type")
    }
    if (!is.null(hidden) && (!is.numeric(hidden) || !length(hidden))) {
        .stem_abort("{.arg hidden} must be layer sizes (numbers); found {.cls {class(hidden)}}.", kind = "type")
    }
    if (!is.null(device) && (!is.character(device) || length(device) != 1L)) {
        .stem_abort("{.arg device} must be a string such as {.val auto}, {.val cpu} or {.val cuda}.")
    }
    if (!is.null(normalized)) .check_flag(normalized, "normalized")
    .check_flag(keep_model, "keep_model")
    if (!is.null(genes) && (!is.character(genes) || !length(genes))) {
        .stem_abort("{.arg genes} must be NULL or a character vector of gene names.")
    }
    out <- list(
        epochs = if (!is.null(epochs)) as.integer(epochs), lr = if (!is.null(lr)) as.double(lr),
        alpha = if (!is.null(alpha)) as.double(alpha),
        sigma = if (!is.null(sigma)) as.list(as.double(sigma)),
        hidden = if (!is.null(hidden)) as.list(.whole_as_integer(hidden)), device = device,
        seed = if (!is.null(seed)) as.integer(seed),
        genes = if (!is.null(genes)) as.list(genes), normalized = normalized,
        progress = .stem_verbose(verbose), keep_model = isTRUE(keep_model), readout = readout,
        sigma_scale = if (!is.null(sigma_scale)) as.double(sigma_scale),
        adjacency_k = if (!is.null(adjacency_k)) as.integer(adjacency_k), preset = preset,
        gene_match = gene_match, threads = if (!is.null(threads)) as.integer(threads),
        rounds = if (!is.null(rounds)) as.integer(rounds),
        cell_batch_size = if (!is.null(cell_batch_size)) as.integer(cell_batch_size),
        expression_weight = if (!is.null(expression_weight)) as.double(expression_weight)
    )
    out[!vapply(out, is.null, logical(1))]
}

# One string (R type); which strings are allowed is the core's decision.
.check_string <- function(x, arg) {
    if (!is.character(x) || length(x) != 1L || is.na(x)) {
        .stem_abort("{.arg {arg}} must be one string; found {.val {format(x)}}.", kind = "type")
    }
}

.stem_match_arg <- function(x, choices, arg) {
    if (identical(x, choices)) return(choices[[1L]])
    if (!is.character(x) || length(x) != 1L || is.na(x) || !x %in% choices) {
        .stem_abort("{.arg {arg}} must be one of {.val {choices}}; found {.val {format(x)}}.")
    }
    x
}

.check_flag <- function(x, arg) {
    if (!is.logical(x) || length(x) != 1L || is.na(x)) {
        .stem_abort("{.arg {arg}} must be TRUE or FALSE; found {.val {format(x)}}.", kind = "type")
    }
}

# R structure only: one number, not NA; a whole number must fit R's integers (it is sent as
# a Python int). `min` is for R-only arguments (e.g. `k`); the core checks the ranges of
# its own arguments.
.check_number <- function(x, arg, integer = FALSE, min = -Inf) {
    ok <- is.numeric(x) && length(x) == 1L && !is.na(x) && x >= min &&
        (!integer || (is.finite(x) && x == round(x) && abs(x) <= .Machine$integer.max))
    if (!ok) {
        what <- if (integer) "a whole number" else "a number"
        if (is.finite(min)) what <- paste(what, ">=", min)
        .stem_abort("{.arg {arg}} must be {what}; found {.val {format(x)}}.",
                    kind = if (is.numeric(x)) "value" else "type")
    }
}

# Whole numbers as R integers (sent as Python ints); others unchanged, for the core to refuse.
.whole_as_integer <- function(x) {
    if (is.numeric(x) && all(is.finite(x) & x == round(x) & abs(x) <= .Machine$integer.max)) {
        as.integer(x)
    } else {
        x
    }
}

# The one implementation, the ANY method (a genes x cells matrix): every other method
# takes the counts and cell labels out of its object and forwards `...` here. The core's
# arguments go, by name, to the one params builder .stem_params() (no hand forwarding).
# Returns the results as a list (input order, cell names).
.stem_run <- function(sc, st, ..., coords = NULL, sample_id = NULL,
                      st.assay.type = NULL, st.assay = NULL, st.layer = NULL,
                      image = NULL, labels = NULL, transfer = NULL,
                      mapping = c("topk", "dense", "none"), k = 10L,
                      epochs = NULL, lr = NULL, alpha = NULL, sigma = NULL, hidden = NULL,
                      device = NULL, seed = NULL, genes = NULL, normalized = NULL,
                      verbose = NULL, keep_model = FALSE, readout = NULL,
                      sigma_scale = NULL, adjacency_k = NULL, preset = NULL,
                      gene_match = NULL, threads = NULL, rounds = NULL,
                      cell_batch_size = NULL, expression_weight = NULL) {
    .stem_no_dots(...)
    sc <- .with_colnames(.stem_counts(sc, "sc")$x, "cell")  # a matrix (R/classes.R)
    mapping <- .stem_match_arg(mapping, c("topk", "dense", "none"), "mapping")
    .check_number(k, "k", integer = TRUE, min = 1)
    params <- do.call(.stem_params, mget(names(formals(.stem_params)), environment()))
    st_in <- .st_input(st, coords = coords, sample_id = sample_id, st.assay.type = st.assay.type,
                       st.assay = st.assay, st.layer = st.layer, image = image)
    labels <- .resolve_labels(labels, data.frame(row.names = colnames(sc)), ncol(sc))
    transfer <- .resolve_transfer(transfer, st_in)
    # the keys the core knows cells and spots by (also those of a kept model, which
    # stemAttribution() uses); its warnings name them by their own names (.stem_say_names())
    cell_ids <- paste0("c", seq_len(ncol(sc)))
    spot_ids <- paste0("s", seq_len(st_in$n))
    # the core reports the genes it uses (and how many matched by `gene_match`) itself
    .stem_inform("Mapping {ncol(sc)} cells onto {st_in$n} spots ({length(st_in$slices)} slice{?s}).",
                 verbose = verbose)
    slices <- lapply(st_in$slices, function(s) {
        list(x = s$x, coords = s$coords, name = s$name, spots = spot_ids[s$index])
    })
    res <- .stem_say_names(
        .run_python(.worker_stem, sc = sc, cells = cell_ids, st = slices, params = params,
                    labels = lapply(labels, .labels_for_python),
                    transfer = lapply(transfer, function(v) .pack(as.matrix(v))),
                    mapping = mapping, k = min(as.integer(k), st_in$n)),
        c(cell_ids, spot_ids), c(colnames(sc), as.character(st_in$names))
    )
    if (!is.null(res$no_shared_genes)) .stem_abort_no_genes(sc, st_in, res$no_shared_genes)
    res <- .stem_collect(res, cell_ids, colnames(sc), spot_ids, st_in, labels, transfer)
    res$params <- c(params[setdiff(names(params), "progress")], st_in$read)
    res
}

# Evaluates `expr` (a run of the core) re-signalling the core's warnings about cells or
# spots with their own names instead of the keys R gave them (`ids` -> `names`): the
# dropped-cells warning names 'cell3', not 'c3'.
.stem_say_names <- function(expr, ids, names) {
    withCallingHandlers(expr, stemmap_input_warning = function(w) {
        msg <- conditionMessage(w)
        new <- .stem_ids_to_names(msg, ids, names)
        if (!identical(new, msg)) {
            .stem_py_warning(new)
            invokeRestart("muffleWarning")
        }
    })
}

# The quoted keys ('c3', 's12') in a message about cells or spots, as their names.
.stem_ids_to_names <- function(msg, ids, names) {
    if (!grepl("(cells|spots) in `", msg)) return(msg)
    m <- gregexpr("'[cs][0-9]+'", msg)
    hits <- regmatches(msg, m)[[1]]
    if (!length(hits)) return(msg)
    nm <- names[match(substr(hits, 2L, nchar(hits) - 1L), ids)]
    regmatches(msg, m) <- list(ifelse(is.na(nm), hits, paste0("'", nm, "'")))
    msg
}

# Arguments no method knows: an error naming them (a misspelt `epoch =` is not ignored).
.stem_no_dots <- function(...) {
    n <- ...length()
    if (!n) return(invisible())
    nm <- names(list(...))
    nm <- if (is.null(nm)) rep("", n) else nm
    shown <- ifelse(nzchar(nm), nm, paste0("..", seq_len(n)))
    .stem_abort(c("{.fn runSTEM} has no argument{?s} {.arg {shown}}.",
                  i = "See {.code ?runSTEM} for its arguments."), kind = "type")
}

# No shared gene names under the rule asked for: one error, with the rule of `gene_match`
# that would match them (`counts`: the core's stemmap._data.gene_overlaps()).
.stem_abort_no_genes <- function(sc_mat, st, counts) {
    better <- names(counts)[which.max(counts)]
    hint <- if (!identical(better, "exact") && counts[[better]] > 0) {
        c(i = paste0("With {.code gene_match = \"", better, "\"} they share ", counts[[better]],
                     " gene", if (counts[[better]] == 1) "" else "s",
                     " (", if (better == "case") "case-insensitive names" else "Ensembl IDs without version",
                     "); the objects' gene names are not changed."))
    } else {
        c(i = "Both must use the same gene identifiers as row names (or see {.arg gene_match}).")
    }
    .stem_abort(c(
        "{.arg sc} and {.arg st} share no genes.",
        x = "{.arg sc} genes: {.val {utils::head(rownames(sc_mat), 3)}}...; {.arg st} genes: {.val {utils::head(rownames(st$slices[[1]]$x), 3)}}...",
        hint
    ))
}

# Python results -> input order (NA for cells/spots the core dropped).
.stem_collect <- function(res, cell_ids, cell_names, spot_ids, st, labels, transfer) {
    cpos <- match(cell_ids, .chr(res$cells))
    spos <- match(spot_ids, .chr(res$spots))
    rows <- function(m, pos) {
        m <- as.matrix(m)
        out <- m[pos, , drop = FALSE]
        out
    }
    emb <- rows(.unpack(res$sc_embedding), cpos)
    colnames(emb) <- paste0("STEM_", seq_len(ncol(emb)))
    rownames(emb) <- cell_names
    xy <- rows(.unpack(res$coords), cpos)
    colnames(xy) <- c("x", "y")
    rownames(xy) <- cell_names
    spot_names <- st$names
    best_id <- .chr(res$best_spot)[cpos]
    best <- spot_names[match(best_id, spot_ids)]
    semb <- rows(.unpack(res$st_embedding), spos)
    colnames(semb) <- colnames(emb)
    rownames(semb) <- spot_names
    cells_by_spots <- function(x) {
        if (is.null(x)) return(NULL)
        m <- .expand_mapping(.unpack(x), cpos, spos)
        dimnames(m) <- list(cell_names, spot_names)
        m
    }
    mapping <- cells_by_spots(res$sc_to_st)  # C, the rounds' mean
    placement <- cells_by_spots(res$placement)  # C1, which coords/best spot/confidence read
    decon <- lapply(res$deconvolution, function(d) {
        m <- rows(.unpack(d$x), spos)
        dimnames(m) <- list(spot_names, .chr(d$types))
        m
    })
    trans <- lapply(names(transfer), function(nm) {
        m <- rows(.unpack(res$transfer[[nm]]), cpos)
        rownames(m) <- cell_names
        colnames(m) <- colnames(transfer[[nm]])
        m
    })
    names(trans) <- names(transfer)
    hist <- as.data.frame(lapply(res$history, .unpack))
    settings <- res$settings
    out <- list(
        embedding = emb, coords = xy, best_spot = best,
        best_slice = .chr(res$best_slice)[cpos], confidence = .unpack(res$confidence)[cpos],
        uncertainty = if (!is.null(res$uncertainty)) .unpack(res$uncertainty)[cpos],
        spot_embedding = semb, spot_slice = .spot_slices(st), spot_coords = .spot_coords(st),
        mapping = mapping, placement = placement,
        deconvolution = decon, transfer = trans, history = hist, settings = settings,
        genes = .chr(res$genes)  # the genes the core trained on (R/analysis_inputs.R)
    )
    if (!is.null(res$adjacency)) {
        adj <- .expand_mapping(.unpack(res$adjacency), cpos, cpos)
        dimnames(adj) <- list(cell_names, cell_names)
        out$adjacency <- adj
    }
    if (!is.null(res$model)) out$model <- as.raw(res$model)
    out
}

# Mapping of kept cells x kept spots -> all cells x all spots (zeros elsewhere), sparse
# when the core sent it sparse.
methods::setGeneric(".expand_mapping", function(mm, cpos, spos) standardGeneric(".expand_mapping"))
methods::setMethod(".expand_mapping", "sparseMatrix", function(mm, cpos, spos) {
    mm <- methods::as(mm, "TsparseMatrix")
    ci <- match(mm@i + 1L, cpos)
    si <- match(mm@j + 1L, spos)
    ok <- !is.na(ci) & !is.na(si)
    Matrix::sparseMatrix(i = ci[ok], j = si[ok], x = mm@x[ok],
                         dims = c(length(cpos), length(spos)))
})
methods::setMethod(".expand_mapping", "ANY", function(mm, cpos, spos) {
    out <- matrix(0, length(cpos), length(spos))
    okc <- !is.na(cpos)
    oks <- !is.na(spos)
    out[okc, oks] <- mm[cpos[okc], spos[oks], drop = FALSE]
    out
})

.spot_slices <- function(st) {
    out <- character(st$n)
    for (s in st$slices) out[s$index] <- s$name
    out
}

# The spot coordinates the mapping used (spots x 2, each slice in its own frame).
.spot_coords <- function(st) {
    out <- matrix(NA_real_, st$n, 2L, dimnames = list(st$names, c("x", "y")))
    for (s in st$slices) out[s$index, ] <- s$coords
    out
}
