# apalu-book: build the book and run every check from a fresh clone with only python3.
#
#   make book    build the HTML book (warnings are errors); prints where index.html is
#   make test    unit tests + nbval over notebooks/ + book build + headless-browser test
#   make lock    refreeze requirements.lock from .venv
#   make clean   remove _build (HTML, execution cache, tool caches)
#
# The venv is (re)installed only when requirements.lock or pyproject.toml change
# (stamp file .venv/.installed).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUILD  := _build
HTML   := $(BUILD)/html
CACHE  := $(BUILD)/.cache
# make test REQUIRE_BROWSER=0 skips the browser test when chromium is missing.
REQUIRE_BROWSER ?= 1

# Keep tools out of ~ (pitfall 13): everything they write goes under _build/.cache.
export MPLCONFIGDIR        := $(CURDIR)/$(CACHE)/matplotlib
export IPYTHONDIR          := $(CURDIR)/$(CACHE)/ipython
export JUPYTER_RUNTIME_DIR := $(CURDIR)/$(CACHE)/jupyter-runtime
export JUPYTER_DATA_DIR    := $(CURDIR)/$(CACHE)/jupyter-data
export TORCH_EXTENSIONS_DIR := $(CURDIR)/$(CACHE)/torch_extensions
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export PIP_DISABLE_PIP_VERSION_CHECK  := 1
export PYTHONDONTWRITEBYTECODE        := 1

NOTEBOOKS = $(wildcard notebooks/*.ipynb)

JB_FLAGS := -W -n --keep-going --all

.PHONY: help venv dirs kernel book book-stored record test test-unit test-nbval test-ledger test-browser test-tracked \
        test-configs browser-deps lock clean distclean

help:
	@echo "make book    build the book into $(HTML) (warnings are errors)"
	@echo "make test    unit tests, nbval, book build, browser test (screenshots: artifacts/screenshots/)"
	@echo "make lock    refreeze requirements.lock from $(VENV)"
	@echo "make clean   remove $(BUILD) (incl. the notebook execution cache)"

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q -e . --no-deps
	$(BIN)/python -c "import torch; assert torch.version.cuda is None, 'expected the CPU build of torch'; print('torch', torch.__version__, '(CPU)')"
	@touch $@

# The tools' folders under _build/.cache. (The notebook execution cache is cleared when apalu/
# or the lock changed by the book's Sphinx extension, scripts/sphinx_ext/book_provenance.py.)
dirs:
	@mkdir -p $(MPLCONFIGDIR) $(IPYTHONDIR) $(JUPYTER_RUNTIME_DIR) $(JUPYTER_DATA_DIR)

# The APALU CPU kernel, built once per build of its source before anything timed runs
# (a line says when it builds; without a compiler APALU warns and uses its other paths).
kernel: $(STAMP)
	$(BIN)/python -m apalu._ext --build

book: $(STAMP) dirs kernel
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo
	@echo "Book built: $(CURDIR)/$(HTML)/index.html"

# Runs every stage even after a failure, so one run reports all of them.
# The book build here renders notebooks/*.ipynb from their committed outputs, which nbval
# has just re-executed and compared (executing them twice would double the run time);
# `make test TEST_BOOK=book` builds with full execution instead, as `make book` does.
TEST_BOOK ?= book-stored

test: $(STAMP)
	@$(MAKE) --no-print-directory browser-deps
	@mkdir -p $(BUILD); $(TRACKED_STATE) > $(BUILD)/.tracked-before
	@failed=""; \
	$(MAKE) --no-print-directory test-unit  || failed="$$failed unit-tests"; \
	$(MAKE) --no-print-directory test-nbval || failed="$$failed nbval"; \
	$(MAKE) --no-print-directory test-ledger || failed="$$failed ledger"; \
	if $(MAKE) --no-print-directory $(TEST_BOOK); then \
	  $(MAKE) --no-print-directory test-browser || failed="$$failed browser"; \
	else failed="$$failed book-build(browser-test-not-run)"; fi; \
	$(MAKE) --no-print-directory test-tracked || failed="$$failed tracked-files-changed"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: all checks passed"

# Nothing tracked may change while the book is built or tested (committed results are written
# only by `make record`): compare git's view of tracked files with the one taken at the start.
TRACKED_STATE = { git status --porcelain --untracked-files=no; git diff HEAD --binary | sha256sum; } 2>/dev/null

test-tracked:
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  $(TRACKED_STATE) > $(BUILD)/.tracked-after; \
	  if ! cmp -s $(BUILD)/.tracked-before $(BUILD)/.tracked-after; then \
	    echo "tracked files changed during make test:"; git status --porcelain --untracked-files=no; exit 1; fi; \
	  echo "tracked files: unchanged by the tests"; else echo "tracked files: not a git checkout, check skipped"; fi

# The browser test needs Chromium: install it where we can (root with apt), else stop at once
# with the command to run (REQUIRE_BROWSER=0 skips the browser test instead).
browser-deps:
	@if [ "$(REQUIRE_BROWSER)" = 0 ] || command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Chromium for the browser test (apt-get, once)"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else echo "make test: Chromium is missing. Install it:  sudo apt-get install -y chromium"; \
	  echo "           (or skip the browser test:  make test REQUIRE_BROWSER=0)"; exit 1; fi

# The reproducibility contract under settings that stand in for another machine: torch's AVX2
# kernels instead of AVX512, APALU without its C++ kernel, one thread instead of two.
# (make test itself runs the machine's defaults.)
PORTABILITY_CONFIGS ?= ATEN_CPU_CAPABILITY=avx2 APALU_CPU_KERNEL=0 OMP_NUM_THREADS=1

test-configs: $(STAMP)
	@failed=""; for cfg in $(PORTABILITY_CONFIGS); do \
	  echo "== nbval and ledger under $$cfg"; \
	  env $$cfg $(MAKE) --no-print-directory test-nbval test-ledger || failed="$$failed $$cfg"; done; \
	if [ -n "$$failed" ]; then echo "make test-configs: FAILED under:$$failed"; exit 1; fi; \
	echo "make test-configs: the contract holds under $(PORTABILITY_CONFIGS)"

# The one command that writes committed results: re-executes every notebook in place (their
# stored outputs are what nbval compares) and publishes their verdicts into data/ledger/.
# Commit notebooks/ and data/ledger/ afterwards, with a CHANGELOG entry for any changed verdict.
record: $(STAMP) dirs
	scripts/execute_notebooks.sh

# Same build, but notebooks/*.ipynb are rendered from their stored outputs (not executed).
book-stored: $(STAMP) dirs kernel
	$(BIN)/python scripts/book_config.py --stored 'notebooks/*.ipynb' -o $(BUILD)/_config.stored.yml
	$(BIN)/jupyter-book build . --config $(BUILD)/_config.stored.yml $(JB_FLAGS)
	@echo
	@echo "Book built (notebooks from stored outputs): $(CURDIR)/$(HTML)/index.html"

test-unit: $(STAMP) dirs kernel
	$(BIN)/python -m pytest tests/ -p no:cacheprovider

# Strict nbval: every stored output must be reproduced (modulo tests/nbval_sanitize.cfg).
# Notebooks run NBVAL_WORKERS at a time (pytest-xdist; each notebook stays on one worker);
# they pin torch to 1-2 threads, so 2 workers use both cores. NBVAL_WORKERS=0: one at a time.
NBVAL_WORKERS ?= 2

test-nbval: $(STAMP) dirs kernel
	@if [ -z "$(NOTEBOOKS)" ]; then echo "nbval: no notebooks under notebooks/, nothing to check"; exit 0; fi; \
	rm -rf $(BUILD)/results/*/ledger; \
	PYTHONPATH=tests $(BIN)/python -m pytest --nbval $(NOTEBOOKS) --nbval-current-env -p nbval_tolerance \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=300 \
	  -n $(NBVAL_WORKERS) --dist loadscope -p no:cacheprovider -o addopts="-ra"

# nbval has just re-run every notebook, each writing its verdicts next to its outputs
# (_build/results/<notebook>/ledger): they must reproduce the committed records in data/ledger,
# the verdicts exactly and the evidence within the contract (apalu/report/reproduce.py).
test-ledger: $(STAMP)
	$(BIN)/python -m apalu.report.reproduce

test-browser: $(STAMP)
	@test -f $(HTML)/index.html || { echo "no built book: run 'make book' first"; exit 1; }
	APALU_REQUIRE_BROWSER=$(REQUIRE_BROWSER) $(BIN)/python -m pytest tests/docs/test_browser.py \
	  -m browser -p no:cacheprovider

lock:
	@test -x $(BIN)/python || { echo "no $(VENV): create it (python3 -m venv $(VENV); pip install -r requirements.in)"; exit 1; }
	@{ echo "# Frozen environment for make book / make test. Regenerate with: make lock"; \
	   echo "# (direct dependencies: requirements.in and pyproject.toml)"; \
	   $(BIN)/python -m pip freeze --exclude-editable | grep -viE '^(apalu)([=@ ]|$$)'; } > requirements.lock.tmp
	@mv requirements.lock.tmp requirements.lock
	@echo "requirements.lock: $$(grep -vc '^#' requirements.lock) packages"

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(VENV) artifacts
