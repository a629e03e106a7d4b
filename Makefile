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
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export PIP_DISABLE_PIP_VERSION_CHECK  := 1
export PYTHONDONTWRITEBYTECODE        := 1

NOTEBOOKS = $(wildcard notebooks/*.ipynb)

JB_FLAGS := -W -n --keep-going --all

.PHONY: help venv dirs book book-stored test test-unit test-nbval test-ledger test-browser lock clean distclean

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

book: $(STAMP) dirs
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo
	@echo "Book built: $(CURDIR)/$(HTML)/index.html"

# Runs every stage even after a failure, so one run reports all of them.
# The book build here renders notebooks/*.ipynb from their committed outputs, which nbval
# has just re-executed and compared (executing them twice would double the run time);
# `make test TEST_BOOK=book` builds with full execution instead, as `make book` does.
TEST_BOOK ?= book-stored

test: $(STAMP)
	@failed=""; \
	$(MAKE) --no-print-directory test-unit  || failed="$$failed unit-tests"; \
	$(MAKE) --no-print-directory test-nbval || failed="$$failed nbval"; \
	$(MAKE) --no-print-directory test-ledger || failed="$$failed ledger"; \
	if $(MAKE) --no-print-directory $(TEST_BOOK); then \
	  $(MAKE) --no-print-directory test-browser || failed="$$failed browser"; \
	else failed="$$failed book-build(browser-test-not-run)"; fi; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: all checks passed"

# Same build, but notebooks/*.ipynb are rendered from their stored outputs (not executed).
book-stored: $(STAMP) dirs
	$(BIN)/python scripts/book_config.py --stored 'notebooks/*.ipynb' -o $(BUILD)/_config.stored.yml
	$(BIN)/jupyter-book build . --config $(BUILD)/_config.stored.yml $(JB_FLAGS)
	@echo
	@echo "Book built (notebooks from stored outputs): $(CURDIR)/$(HTML)/index.html"

test-unit: $(STAMP)
	@mkdir -p $(MPLCONFIGDIR) $(IPYTHONDIR) $(JUPYTER_RUNTIME_DIR) $(JUPYTER_DATA_DIR)
	$(BIN)/python -m pytest tests/ -p no:cacheprovider

# Strict nbval: every stored output must be reproduced (modulo tests/nbval_sanitize.cfg).
# Notebooks run NBVAL_WORKERS at a time (pytest-xdist; each notebook stays on one worker);
# they pin torch to 1-2 threads, so 2 workers use both cores. NBVAL_WORKERS=0: one at a time.
NBVAL_WORKERS ?= 2

test-nbval: $(STAMP)
	@mkdir -p $(MPLCONFIGDIR) $(IPYTHONDIR) $(JUPYTER_RUNTIME_DIR) $(JUPYTER_DATA_DIR)
	@if [ -z "$(NOTEBOOKS)" ]; then echo "nbval: no notebooks under notebooks/, nothing to check"; exit 0; fi; \
	$(BIN)/python -m pytest --nbval $(NOTEBOOKS) --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=300 \
	  -n $(NBVAL_WORKERS) --dist loadscope -p no:cacheprovider -o addopts="-ra"

# nbval has just re-run every notebook, and each rewrote its ledger records: if any record now
# differs from the committed one, the book's verdicts are stale (or not reproducible).
test-ledger:
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  changed=$$(git status --porcelain -- data/ledger); \
	  if [ -n "$$changed" ]; then echo "$$changed"; git --no-pager diff -- data/ledger | head -40; \
	    echo "data/ledger differs from the committed records after re-running the notebooks:"; \
	    echo "run scripts/execute_notebooks.sh and commit notebooks/ and data/ledger/"; exit 1; fi; \
	  echo "ledger: the re-run notebooks reproduce every committed verdict"; \
	else echo "ledger: not a git checkout, check skipped"; fi

test-browser: $(STAMP)
	@test -f $(HTML)/index.html || { echo "no built book: run 'make book' first"; exit 1; }
	APALU_REQUIRE_BROWSER=$(REQUIRE_BROWSER) $(BIN)/python -m pytest tests/test_browser.py \
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
