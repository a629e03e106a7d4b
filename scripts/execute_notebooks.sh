#!/usr/bin/env bash
# The record command (`make record`): re-execute notebooks in place (their stored outputs are
# what nbval checks), in book order, and publish their verdicts into data/ledger/
# (APALU_RECORD=1: nothing else writes there), with the ledger page last since it reads them.
# Usage: scripts/execute_notebooks.sh [notebook.ipynb ...]   (default: every notebook in _toc.yml)
# JOBS=N runs N notebooks at a time (default 2; each pins torch to 1-2 threads).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-2}
if [ $# -eq 0 ]; then
  mapfile -t nbs < <($PY -c "
from pathlib import Path
from apalu.report.rerun import toc_notebooks
print('\n'.join(str(p) for p in toc_notebooks(Path('.')) if p.stem != 'ledger'))")
  nbs+=(notebooks/ledger.ipynb)
else
  nbs=("$@")
fi
export PYDEVD_DISABLE_FILE_VALIDATION=1 APALU_RECORD=1 PY
run_one() {
  local nb=$1 start; start=$(date +%s)
  (cd "$(dirname "$nb")" && ../$PY -m papermill "$(basename "$nb")" "$(basename "$nb")" -k python3 --no-progress-bar >/dev/null)
  echo "$nb: $(( $(date +%s) - start )) s"
}
export -f run_one
# everything but the ledger page, JOBS at a time; then the ledger page, which reads their records
others=(); last=()
for nb in "${nbs[@]}"; do if [ "$(basename "$nb")" = ledger.ipynb ]; then last+=("$nb"); else others+=("$nb"); fi; done
if [ ${#others[@]} -gt 0 ]; then printf '%s\n' "${others[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}; fi
for nb in "${last[@]}"; do run_one "$nb"; done
