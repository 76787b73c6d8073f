# The bridge between R and the Python core, R side: the launcher and every worker.
#
# A worker is the R function that runs where Python lives (this R session through
# reticulate, or a basilisk process): plain R objects in, one verb of the core's bridge
# (python/src/stemmap/bridge/: the wire protocol in _wire.py, the verbs in verbs.py,
# files.py and interpret.py) called through stemmap.bridge.call(), plain R objects out.
# One generic worker, .worker_call(verb, args), run by .run_bridge(verb, ...), serves every
# verb; runSTEM()'s .worker_stem() alone does two verbs in one worker (it asks the core
# which genes are shared, then sends only those rows). Which Python runs them is decided in
# R/python.R.
#
# Numeric data cross the boundary as "packed arrays": raw little-endian bytes + dtype +
# shape (a dgCMatrix as its i/p/x pieces, so sparse stays sparse), so no numpy object is
# ever converted by reticulate (reticulate < 1.38 cannot convert NumPy 2 arrays).

# ---- launcher -----------------------------------------------------------------------

# Imports torch with RTLD_DEEPBIND (Linux), before anything else imports it in this
# Python. An R process has already loaded R's BLAS (Debian: the reference libblas.so.3)
# with global symbols; torch's CPU build then resolves its sgemm_ calls to that BLAS and
# runs 15-20x slower than in a plain Python (measured: 20 matmuls 1000 x 1000 took 9.3 s
# inside R vs 0.5 s in Python; with DEEPBIND 0.6 s). DEEPBIND makes torch's libraries
# use their own symbols first. Sets STEMMAP_TORCH_DEEPBIND=1 so stemPythonInfo() can tell.
.stem_import_torch <- function() {
    reticulate::py_run_string(paste(
        "import os, sys",
        "if 'torch' not in sys.modules:",
        "    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # see stemmap/__init__.py",
        "if 'torch' not in sys.modules and hasattr(os, 'RTLD_DEEPBIND'):",
        "    _stem_flags = sys.getdlopenflags()",
        "    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_DEEPBIND)",
        "    try:",
        "        import torch",
        "        os.environ['STEMMAP_TORCH_DEEPBIND'] = '1'",
        "    finally:",
        "        sys.setdlopenflags(_stem_flags)",
        sep = "\n"), local = TRUE)
    invisible(NULL)
}

# Imports the bridge of the core (python/src/stemmap/bridge/) inside whichever Python runs the worker. When
# `import stemmap` fails (an existing Python without the core), the copy shipped in
# the R package is put on sys.path.
.stem_bridge <- function() {
    .stem_import_torch()
    ok <- tryCatch({
        reticulate::import("stemmap", convert = FALSE)
        TRUE
    }, error = function(e) FALSE)
    if (!ok) {
        src <- system.file("python", "src", package = "stemmap")
        if (!nzchar(src)) {
            .stem_abort("The stemmap Python core is neither importable nor shipped in the R package.",
                        kind = "setup")
        }
        sys <- reticulate::import("sys", convert = FALSE)
        sys$path$insert(0L, src)
    }
    reticulate::import("stemmap.bridge", convert = FALSE)
}

# Runs `FUN(...)` where Python lives. FUN must only take and return plain R objects.
# Argument names of `...` must not clash with basiliskRun()'s (proc, fun, env,
# persist, testload). Workers return the envelope of .stem_call(); it is opened here,
# in the caller's R process, so that warnings and errors reach the caller's handlers.
.run_python <- function(FUN, ...) {
    py <- .stem_existing_python()
    if (!is.null(py)) {
        .stem_use_python(py)
        res <- tryCatch(FUN(...), stemmap_error = function(e) stop(e), error = function(e) {
            .stem_abort(c("The Python core failed.", x = "{conditionMessage(e)}"),
                        kind = "python")
        })
        return(.stem_unwrap(res))
    }
    .stem_basilisk_usable(stop_if_not = TRUE)
    # the core's own errors come back in the envelope; an R error here means the process or
    # the worker failed: drop the process so that the next call starts a fresh one
    res <- tryCatch(basilisk::basiliskRun(.stem_basilisk_proc(), FUN, ...), error = function(e) {
        .stem_basilisk_close()
        stop(e)
    })
    .stem_unwrap(res)
}

# basilisk mode: one Python process per R session, started at the first call and reused by
# every later one (torch and the core are imported once, not at every call); stopped when
# the package is unloaded or the R session ends. `start`/`stop` are basilisk's (arguments so
# that the reuse can be tested without conda).
.stem_session <- new.env(parent = emptyenv())

.stem_basilisk_proc <- function(start = function() basilisk::basiliskStart(stemmapEnv),
                                stop = basilisk::basiliskStop) {
    if (is.null(.stem_session$proc)) {
        proc <- start()
        .stem_session$proc <- proc
        .stem_session$stop <- stop
        reg.finalizer(.stem_session, function(e) .stem_basilisk_close(), onexit = TRUE)
    }
    .stem_session$proc
}

# Stops the session's basilisk process, if one was started.
.stem_basilisk_close <- function() {
    proc <- .stem_session$proc
    if (!is.null(proc)) {
        .stem_session$proc <- NULL
        try(.stem_session$stop(proc), silent = TRUE)
    }
    invisible(NULL)
}

.onUnload <- function(libpath) .stem_basilisk_close()

# In a worker: bridge function `fun` with named arguments, through stemmap.bridge.call(), which
# returns an envelope (value, StemInputWarning messages, error) instead of raising.
.stem_call <- function(bridge, fun, ...) {
    args <- list(...)
    kwargs <- if (length(args)) args else reticulate::dict()
    reticulate::py_to_r(bridge$call(fun, kwargs))
}

# In the caller's process: re-signal the core's input warnings as R warnings and its
# error as a classed R condition (same message); else return the value.
.stem_unwrap <- function(res) {
    if (!is.list(res) || !isTRUE(res$stemmap_envelope)) return(res)
    for (w in res$warnings) .stem_py_warning(w)
    if (!is.null(res$error)) .stem_py_error(res$error)
    res$value
}

# ---- packed arrays: R side of stemmap.bridge._wire.pack()/unpack() -----------------

# A packed array: a dgCMatrix as its i/p/x pieces (any other sparse matrix becomes one
# first), anything else as raw bytes of int32 or float64.
methods::setGeneric(".pack", function(x) standardGeneric(".pack"))
methods::setMethod(".pack", "dgCMatrix", function(x) {
    list(
        format = "csc", shape = as.integer(dim(x)),
        i = .pack(as.integer(x@i)), p = .pack(as.integer(x@p)), x = .pack(as.double(x@x))
    )
})
methods::setMethod(".pack", "sparseMatrix", function(x) {
    .pack(methods::as(methods::as(methods::as(x, "CsparseMatrix"), "generalMatrix"), "dMatrix"))
})
methods::setMethod(".pack", "ANY", function(x) {
    shape <- if (is.null(dim(x))) length(x) else dim(x)
    # integer/logical NA has no int32 value (it would arrive as -2^31): send NaN instead
    if ((is.integer(x) || is.logical(x)) && !anyNA(x)) {
        list(dtype = "int32", shape = as.integer(shape),
             data = writeBin(as.integer(x), raw(), size = 4L, endian = "little"))
    } else {
        list(dtype = "float64", shape = as.integer(shape),
             data = writeBin(as.double(x), raw(), size = 8L, endian = "little"))
    }
})

.unpack <- function(p) {
    if (is.null(p)) {
        return(NULL)
    }
    if (!is.null(p$format) && identical(p$format, "csc")) {
        shape <- as.integer(unlist(p$shape))
        return(Matrix::sparseMatrix(
            i = .unpack(p$i), p = .unpack(p$p), x = .unpack(p$x),
            dims = shape, index1 = FALSE
        ))
    }
    shape <- as.integer(unlist(p$shape))
    n <- prod(shape)
    vals <- if (identical(p$dtype, "int32")) {
        readBin(p$data, "integer", n = n, size = 4L, endian = "little")
    } else {
        readBin(p$data, "double", n = n, size = 8L, endian = "little")
    }
    if (length(shape) >= 2L) dim(vals) <- shape
    vals
}

.chr <- function(x) {
    if (is.null(x)) NULL else as.character(unlist(x))
}

# {columns, data} from stemmap.bridge._wire.table() -> data.frame
.unpack_table <- function(t) {
    cols <- .chr(t$columns)
    out <- lapply(cols, function(k) {
        v <- t$data[[k]]
        if (is.list(v) && !is.null(v$dtype)) as.vector(.unpack(v)) else .chr(v)
    })
    names(out) <- cols
    as.data.frame(out, stringsAsFactors = FALSE, check.names = FALSE)
}

# ---- workers (run where Python lives; plain R in, plain R out) ------------------------

# The one generic worker: bridge verb `verb` with the named arguments `args` (plain R).
.worker_call <- function(verb, args = list()) {
    do.call(.stem_call, c(list(.stem_bridge(), verb), args))
}

# Runs bridge verb `verb` with the named arguments `...` where Python lives; returns its
# value (its input warnings and errors re-signalled in R). (`verb`, not `fun`: basiliskRun()
# takes `fun` itself.)
.run_bridge <- function(verb, ...) {
    .run_python(.worker_call, verb = verb, args = list(...))
}

# runSTEM(): `sc` genes x cells (dense or sparse), `st` list of slices (x genes x spots,
# coords, name, spots = ids). The core says which rows SC and ST share (under any gene
# matching rule, so that choosing genes stays its decision); only those rows are packed
# and sent. Returns the envelope of the run (or of the gene query when it failed), or
# list(no_shared_genes = genes shared under each rule) when the rule asked for shares none.
.worker_stem <- function(sc, cells, st, params, labels, transfer, mapping, k) {
    bridge <- .stem_bridge()
    rows <- .stem_call(bridge, "shared_genes", sc_genes = as.list(rownames(sc)),
                       st_genes = lapply(st, function(s) as.list(rownames(s$x))))
    if (!is.null(rows$error)) return(rows)
    counts <- unlist(rows$value$overlaps)
    rule <- if (is.null(params$gene_match)) "exact" else params$gene_match
    # (an unknown rule is the core's error, from run_stem)
    if (rule %in% names(counts) && counts[[rule]] == 0) return(list(no_shared_genes = counts))
    sc_rows <- as.integer(unlist(rows$value$sc))
    if (length(sc_rows) < nrow(sc)) sc <- sc[sc_rows, , drop = FALSE]  # else: no copy
    # each packed matrix becomes a Python object at once and R's packed copy (raw vectors of
    # 12 bytes per nonzero, as large as the counts) is garbage from then on; gc() returns it
    # before the core runs (issue #28: else 1.5 GB stay held through a 300k x 150k run)
    sc_in <- .stem_to_py(list(x = .pack(sc), genes = as.list(rownames(sc)),
                              cells = as.list(cells)))
    sc <- NULL  # (a subset's copy)
    st_in <- reticulate::r_to_py(unname(Map(function(s, r) {
        r <- as.integer(unlist(r))
        x <- if (length(r) < nrow(s$x)) s$x[r, , drop = FALSE] else s$x
        .stem_to_py(list(x = .pack(x), genes = as.list(rownames(x)), spots = as.list(s$spots),
                         coords = .pack(unname(as.matrix(s$coords))), name = s$name))
    }, st, rows$value$st)))
    st <- NULL
    invisible(gc(verbose = FALSE))
    .stem_call(bridge, "run_stem", sc = sc_in, st = st_in, params = params,
               labels = labels, transfer = transfer, mapping = mapping,
               mapping_k = as.integer(k))
}

# A plain R list (packed arrays, names) as the Python object the bridge would make of it
# (reticulate's conversion; no numpy object is made here either).
.stem_to_py <- function(x) reticulate::r_to_py(x)

# Internal bridge test used by the test suite: sends a matrix with dimnames through
# numpy/pandas and back.
.stem_roundtrip <- function(x) {
    dn <- dimnames(x)
    res <- .run_bridge("roundtrip", x = .pack(x), rownames = dn[[1]], colnames = dn[[2]])
    out <- .unpack(res$x)
    dimnames(out) <- list(.chr(res$rownames), .chr(res$colnames))
    attr(out, "python") <- list(type = res$type, sum = res$sum, shape = unlist(res$shape))
    out
}
