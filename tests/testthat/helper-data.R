# Tiny synthetic SC and ST data (60 cells x 30 genes, 20 spots on a 5 x 4 grid).
# The same generator, with the script that writes it to disk, is in
# inst/scripts/make-test-data.R.
make_stem_data <- function(seed = 1, n_cells = 60, n_genes = 30, nx = 5, ny = 4) {
    withr::with_seed(seed, {
        n_spots <- nx * ny
        genes <- paste0("gene", seq_len(n_genes))
        xy <- cbind(x = rep(seq_len(nx), ny), y = rep(seq_len(ny), each = nx))
        rate <- vapply(seq_len(n_spots), function(i) {
            exp(-((seq_len(n_genes) / n_genes * nx) - xy[i, 1])^2) * 20 +
                exp(-((rev(seq_len(n_genes)) / n_genes * ny) - xy[i, 2])^2) * 10 + 1
        }, numeric(n_genes))
        st <- matrix(stats::rpois(n_genes * n_spots, rate), n_genes, n_spots,
                     dimnames = list(genes, paste0("spot", seq_len(n_spots))))
        spot_of <- sample(n_spots, n_cells, replace = TRUE)
        sc <- matrix(stats::rpois(n_genes * n_cells, rate[, spot_of]), n_genes, n_cells,
                     dimnames = list(genes, paste0("cell", seq_len(n_cells))))
        list(sc = sc, st = st, coords = xy,
             celltype = ifelse(xy[spot_of, 1] > nx / 2, "left", "right"),
             spot_of = spot_of)
    })
}
