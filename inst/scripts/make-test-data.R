# Makes the tiny synthetic data used by the stemmap test suite and writes it as
# .rds (and, with the core's Python, as .h5ad for the Python side).
# Usage: Rscript inst/scripts/make-test-data.R [outdir]
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args)) args[1] else "stem-test-data"
dir.create(out, showWarnings = FALSE, recursive = TRUE)
source(file.path("tests", "testthat", "helper-data.R"))
d <- make_stem_data()
saveRDS(d, file.path(out, "stem-test-data.rds"))
cat("wrote", file.path(out, "stem-test-data.rds"), "\n")
