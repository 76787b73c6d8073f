# stemmap: one entry point for set-up, tests and the main job.
#   make setup   install R + R packages (Debian apt), a Python venv with the core, the R package
#   make test    pytest (Python core) + testthat (R package)
#   make demo    map the shared embryo data (or generated data) and write figures to out/demo
#   make lint    ruff check + ruff format --check;  make check  R CMD check on the built package
# RLIB=/path installs the R package into that library (and puts it first on R_LIBS) instead of
# the system one; .ci/run uses RLIB=.rlib so that CI never changes the machine's R library.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
VPY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
R_APT := r-base-core r-base-dev r-cran-seurat r-cran-seuratobject r-cran-reticulate r-bioc-basilisk \
	r-bioc-singlecellexperiment r-bioc-summarizedexperiment r-cran-testthat r-cran-knitr \
	r-cran-rmarkdown r-bioc-biocstyle pandoc r-cran-cli r-cran-ggplot2 r-cran-matrix r-cran-withr
export STEMMAP_PYTHON := $(VPY)
RLIB ?=
ifneq ($(RLIB),)
export R_LIBS := $(abspath $(RLIB))$(if $(R_LIBS),:$(R_LIBS))
endif

.PHONY: setup apt venv r-install test py-test r-test lint demo benchmark check clean speed-guard gpu-check-quick

setup: apt venv r-install

apt:
	@missing=$$(for p in $(R_APT); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "apt: R and R packages already installed"; fi

venv:
	[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "$(TORCH_PIN)"
	$(VPY) -m pip install -q -e "python[dev]"
	@$(VPY) -c "import stemmap, torch; print('venv: stemmap', stemmap.__version__, '| torch', torch.__version__)"

r-install:
	$(if $(RLIB),mkdir -p $(RLIB) && )R CMD INSTALL --no-multiarch --with-keep.source $(if $(RLIB),-l $(RLIB)) . > /tmp/stemmap-r-install.log 2>&1 || (cat /tmp/stemmap-r-install.log; exit 1)
	@echo "R package stemmap installed"

test: py-test r-test

# Both fail on a skip whose reason is not in .ci/allowed-skips (a named optional package,
# basilisk/conda, the shared data): .ci/skipguard.py (pytest plugin), .ci/r_test.R.
py-test:
	cd python && PYTHONPATH=$(CURDIR)/.ci$${PYTHONPATH:+:$$PYTHONPATH} $(VPY) -m pytest -q -m "not slow" -p skipguard

r-test:
	Rscript .ci/r_test.R .ci/allowed-skips

lint:
	$(VPY) -m ruff check python benchmarks
	$(VPY) -m ruff format --check python benchmarks

# a few β > 0 training steps on the shared embryo against a plain-torch step of the same
# shapes in the same process; fails when stemmap's step is > 3x slower (benchmarks/speed_guard.py)
speed-guard:
	$(VPY) benchmarks/speed_guard.py

# the GPU machine's one-command check, small and on the CPU (benchmarks/gpu_check.py)
gpu-check-quick:
	$(VPY) benchmarks/gpu_check.py --device cpu --quick --out /tmp/stemmap-gpu-check/gpu_check.md

demo:
	$(VENV)/bin/stemmap demo --out out/demo

benchmark:
	$(VPY) benchmarks/run_benchmark.py

# R CMD build copies the whole folder (venvs included) before pruning it: build from a staged
# copy of the tracked package files plus the configure-made inst/python instead.
# R CMD build knits the vignette (once); the check of the tarball then skips running it again
# (CHECK_ARGS=--no-vignettes; CHECK_ARGS= checks it too) and fails on a WARNING or an ERROR.
CHECK_ARGS ?= --no-vignettes
check:
	sh ./configure
	rm -rf build/stemmap && mkdir -p build/stemmap
	git ls-files | grep -v -E '^(python|benchmarks|docs|\.ci)/' | tar -cf - -T - | tar -xf - -C build/stemmap
	cp -r inst/python build/stemmap/inst/
	cd build && rm -f stemmap_*.tar.gz && R CMD build stemmap && \
	  _R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual $(CHECK_ARGS) stemmap_*.tar.gz && \
	  ! grep -E '^Status:.*(WARNING|ERROR)' stemmap.Rcheck/00check.log

clean:
	rm -rf inst/python stemmap_*.tar.gz stemmap.Rcheck out build
