# The report template, stemReport(), the example data and the download's offline paths.

test_that("the report template can be drafted with rmarkdown::draft()", {
    skip_if_not_installed("rmarkdown")
    dir <- withr::local_tempdir()
    f <- file.path(dir, "my-report.Rmd")
    rmarkdown::draft(f, template = "stemmap-report", package = "stemmap", edit = FALSE)
    expect_true(file.exists(f))
    txt <- readLines(f)
    expect_true(any(grepl("^# Mapping confidence", txt)))
    expect_true(any(grepl("object:", txt, fixed = TRUE)))
})

# One mapping shared by the report tests: an SCE `st` whose coordinates are colData columns
# named by `coords =` (runSTEM() stores the coordinates it read).
.report_fit <- local({
    cache <- NULL
    function() {
        if (is.null(cache)) {
            d <- make_stem_data()
            sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$sc))
            sce$celltype <- d$celltype
            st <- SingleCellExperiment::SingleCellExperiment(list(counts = d$st))
            st$x <- d$coords[, 1]
            st$y <- d$coords[, 2]
            out <- runSTEM(sce, st, coords = c("x", "y"), labels = "celltype", epochs = 5,
                           verbose = FALSE)
            cache <<- list(out = out, st = st, coords = d$coords)
        }
        cache
    }
})

# The deparsed functions on the stack when `expr` signals its error.
.calls_at_error <- function(expr) {
    calls <- NULL
    err <- tryCatch(withCallingHandlers(expr, error = function(e) calls <<- sys.calls()),
                    error = identity)
    list(error = err, calls = vapply(calls, function(cl) paste(deparse(cl[[1]]), collapse = ""), ""))
}

test_that("stemReport() renders settings, loss, positions, deconvolution and confidence", {
    skip_if_not_installed("rmarkdown")
    skip_if_not(rmarkdown::pandoc_available(), "pandoc is not available")
    skip_if_no_core_model()
    f <- .report_fit()
    out <- f$out
    # the coordinates the mapping used are stored ...
    expect_equal(unname(S4Vectors::metadata(out)$STEM$spot_coords), unname(f$coords * 1))
    dir <- withr::local_tempdir()
    html <- file.path(dir, "report.html")
    # ... so `st` needs no `coords =` again (before: an error 20 s into the template)
    expect_identical(stemReport(out, html, st = f$st), html)
    expect_true(file.exists(html))
    txt <- paste(readLines(html, warn = FALSE), collapse = "\n")
    for (s in c("Settings", "Training loss", "Reconstructed positions", "Spot deconvolution",
                "Mapping confidence", "Session information", "Spot maps of the")) {
        expect_true(grepl(paste0(">", s), txt, fixed = TRUE), label = paste("section", s))
    }
    expect_gte(lengths(regmatches(txt, gregexpr("<img", txt, fixed = TRUE))), 6L)
    # where each argument came from: a table of its own, not one flattened settings row
    expect_match(txt, "Where each argument came from", fixed = TRUE)
    expect_match(txt, ">default</td>", fixed = TRUE)
    expect_false(grepl("<td align=\"left\">resolved</td>", txt, fixed = TRUE))
    # from an .rds path, without the spatial object: the spot maps from the stored coordinates
    rds <- file.path(dir, "mapped.rds")
    saveRDS(out, rds)
    html2 <- file.path(dir, "sub", "report2.html")
    stemReport(rds, html2, label = "celltype")
    expect_match(paste(readLines(html2, warn = FALSE), collapse = "\n"), "Spot\\s+maps\\s+of\\s+the")
    # an object without them (an older stemmap) and no `st`: summaries only
    old <- out
    S4Vectors::metadata(old)$STEM$spot_coords <- NULL
    html3 <- file.path(dir, "report3.html")
    stemReport(old, html3)
    expect_match(paste(readLines(html3, warn = FALSE), collapse = "\n"), "without\\s+spot\\s+maps")
})

test_that("stemReport() checks its inputs before rendering starts", {
    skip_if_not_installed("rmarkdown")
    skip_if_not(rmarkdown::pandoc_available(), "pandoc is not available")
    skip_if_no_core_model()
    f <- .report_fit()
    html <- file.path(withr::local_tempdir(), "report.html")
    old <- f$out
    S4Vectors::metadata(old)$STEM$spot_coords <- NULL
    # an object without stored coordinates and an `st` whose coordinates need `coords =`
    r <- .calls_at_error(stemReport(old, html, st = f$st))
    expect_s3_class(r$error, "stemmap_error")
    expect_match(conditionMessage(r$error), "coords")
    expect_false(any(grepl("render|knit", r$calls)))  # raised before rendering
    expect_false(file.exists(html))
    # with `coords =` it is read as runSTEM() read it
    expect_silent(stemmap:::.stem_report_check(old, f$st, NULL, c("x", "y")))
    expect_silent(stemmap:::.stem_report_check(old, f$st, NULL, "x, y"))
    # an `st` other than the one mapped onto
    r <- .calls_at_error(stemReport(f$out, html, st = f$st[, 1:10]))
    expect_s3_class(r$error, "stemmap_value_error")
    expect_match(conditionMessage(r$error), "mapped onto 20 spots")
    expect_false(any(grepl("render|knit", r$calls)))
    # an unknown label
    expect_error(stemReport(f$out, html, label = "nope"), class = "stemmap_value_error",
                 regexp = "label")
    expect_false(file.exists(html))
})

test_that("plotSTEMDeconvolution() draws the spots where the mapping put them", {
    skip_if_no_core_model()
    f <- .report_fit()
    p <- plotSTEMDeconvolution(f$out, type = "left")
    expect_equal(unname(as.matrix(p$data[, c("x", "y")])), unname(f$coords * 1))
    p2 <- plotSTEMDeconvolution(f$out, f$st, type = "left", coords = c("y", "x"))  # as asked
    expect_equal(unname(as.matrix(p2$data[, c("x", "y")])), unname(f$coords[, 2:1] * 1))
    expect_error(plotSTEMDeconvolution(f$out, type = "nope"), class = "stemmap_value_error",
                 regexp = "type")
})

test_that("stemReport() rejects objects without a mapping", {
    skip_if_not_installed("rmarkdown")
    skip_if_not(rmarkdown::pandoc_available(), "pandoc is not available")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = matrix(1, 2, 2)))
    expect_error(stemReport(sce, tempfile(fileext = ".html")), regexp = "holds no STEM results")
    expect_error(stemReport(sce, character()), regexp = "output_file")
})

test_that("stemExampleData() builds a semi-simulated SCE pair through the core", {
    skip_if_no_core_model()
    ex <- stemExampleData(source = "generated", grid = c(8, 6), n_cells = 200, seed = 1)
    expect_s4_class(ex$sc, "SingleCellExperiment")
    expect_identical(ncol(ex$sc), 200L)
    expect_identical(rownames(ex$sc), rownames(ex$st))
    expect_true(all(c("x", "y", "n_cells") %in% colnames(SummarizedExperiment::colData(ex$st))))
    expect_identical(dim(SingleCellExperiment::reducedDim(ex$sc, "spatial_true")), c(200L, 2L))
    p <- S4Vectors::metadata(ex$st)$proportions
    expect_identical(nrow(p), ncol(ex$st))
    expect_equal(unname(rowSums(p)), rep(1, ncol(ex$st)), tolerance = 1e-6)
    expect_identical(ex$info$source, "generated")
    expect_true(all(ex$sc$true_spot %in% c(colnames(ex$st), NA)))
    expect_error(stemExampleData(grid = 3), regexp = "grid")
    expect_error(stemExampleData(file = tempfile()), regexp = "file")
})

test_that("stemDownloadEmbryo() fails clearly offline and on a checksum mismatch", {
    cache <- withr::local_tempdir()
    expect_error(stemDownloadEmbryo(cache = cache, url = paste0("file://", tempfile())),
                 regexp = "Could not download")
    expect_false(file.exists(file.path(cache, "mouseEmbryo2.rda")))
    # a download whose checksum does not match is not cached
    src <- withr::local_tempfile(fileext = ".rda")
    writeBin(as.raw(1:10), src)
    expect_error(stemDownloadEmbryo(cache = cache, url = paste0("file://", src),
                                    md5 = strrep("0", 32)),
                 regexp = "Checksum mismatch")
    expect_false(file.exists(file.path(cache, "mouseEmbryo2.rda")))
    # a good download is cached with its checksum; a later change to it is caught
    f <- stemDownloadEmbryo(cache = cache, url = paste0("file://", src))
    expect_true(file.exists(f))
    expect_identical(stemDownloadEmbryo(cache = cache, url = "file:///nowhere"), f)
    writeBin(as.raw(1:3), f)
    expect_error(stemDownloadEmbryo(cache = cache), regexp = "Checksum mismatch")
    expect_error(stemDownloadEmbryo(cache = cache, md5 = "abc"), regexp = "md5")
})
