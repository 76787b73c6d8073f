# The R tests of `make r-test` / .ci/run: tests/testthat against the installed stemmap.
# Fails on a failed or erroring test, and on a skip whose message does not start with one
# of the patterns of .ci/allowed-skips (a named optional package, basilisk/conda, the
# shared data): a broken bridge must fail CI, not leave tests skipped and CI green.
# Usage: Rscript .ci/r_test.R [allowed-skips file] [test folder]

# The skips of a testthat result list (testthat::test_dir()): data.frame(test, reason).
skips_of <- function(res) {
    test <- character()
    reason <- character()
    for (t in res) {
        for (e in t$results) {
            if (inherits(e, "expectation_skip")) {
                test <- c(test, t$test)
                reason <- c(reason, sub("^Reason: ", "", conditionMessage(e)))
            }
        }
    }
    data.frame(test = test, reason = reason, stringsAsFactors = FALSE)
}

# Whether each reason starts with a match of one of the patterns.
allowed_reason <- function(reason, patterns) {
    vapply(reason, function(r) {
        any(vapply(patterns, function(p) grepl(paste0("^(", p, ")"), r), logical(1)))
    }, logical(1), USE.NAMES = FALSE)
}

read_patterns <- function(file) {
    p <- trimws(readLines(file, warn = FALSE))
    p[nzchar(p) & !startsWith(p, "#")]
}

main <- function(args) {
    allowed <- if (length(args) >= 1L) args[[1]] else ".ci/allowed-skips"
    dir <- if (length(args) >= 2L) args[[2]] else "tests/testthat"
    patterns <- read_patterns(allowed)
    res <- testthat::test_dir(
        dir, package = "stemmap", load_package = "installed",
        reporter = testthat::ProgressReporter$new(show_praise = FALSE),
        stop_on_failure = FALSE
    )
    df <- as.data.frame(res)
    n_bad <- sum(df$failed > 0 | df$error)
    sk <- skips_of(res)
    ok <- allowed_reason(sk$reason, patterns)
    lines <- sprintf("%s: %s", sk$test, sk$reason)
    cat(sprintf("\nR tests: %d tests, %d expectations passed, %d failed or errored, %d skipped (%d not allowed)\n",
                nrow(df), sum(df$passed), n_bad, nrow(sk), sum(!ok)))
    if (nrow(sk)) cat("Skips:\n", paste0("  ", lines, "\n"), sep = "")
    if (any(!ok)) {
        cat("\nSkips not allowed by ", allowed, " (only a named optional package may be absent):\n",
            paste0("  ", lines[!ok], "\n"), sep = "")
    }
    if (n_bad || any(!ok)) quit(status = 1, save = "no")
    invisible(TRUE)
}

if (!interactive() && identical(sys.nframe(), 0L)) main(commandArgs(trailingOnly = TRUE))
