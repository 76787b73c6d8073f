library(testthat)
library(stemmap)

test_check("stemmap")
