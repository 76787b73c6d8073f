# writeSTEMh5ad() / readSTEMh5ad(): argument checks, and the writers (zellkonverter's
# conversion where it is installed, the core's anndata otherwise) giving one layout.
d <- make_stem_data()

test_that("a bad `file` is a stemmap condition naming it, not a base-R error", {
    res <- list(settings = list())  # never read: `file` is checked first
    for (bad in list(1, c("a.h5ad", "b.h5ad"), NA_character_, "", NULL)) {
        expect_error(writeSTEMh5ad(res, file = bad), class = "stemmap_type_error",
                     regexp = "`file` must be one file path")
        expect_error(readSTEMh5ad(bad), class = "stemmap_type_error",
                     regexp = "`file` must be one file path")
    }
    expect_error(writeSTEMh5ad(res, file.path(tempfile(), "x.h5ad")),
                 class = "stemmap_file_error", regexp = "`file` must be in an existing folder")
    expect_error(readSTEMh5ad(tempfile()), class = "stemmap_file_error", regexp = "does not exist")
    expect_error(readSTEMh5ad(tempdir()), class = "stemmap_file_error", regexp = "does not exist")
})
