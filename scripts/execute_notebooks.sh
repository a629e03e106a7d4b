#!/usr/bin/env bash
# The record command (`make record`): re-execute notebooks in place (their stored outputs are
# what nbval checks), in book order, and publish their verdicts into data/ledger/
# (APALU_RECORD=1: nothing else writes there), with the ledger page last since it reads them.
# Usage: scripts/execute_notebooks.sh [notebook.ipynb ...]   (default: every notebook in _toc.yml)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ $# -eq 0 ]; then
  mapfile -t nbs < <($PY -c "
from pathlib import Path
from apalu.rerun import toc_notebooks
nbs = [p for p in toc_notebooks(Path('.')) if p.stem != 'ledger'] + [Path('notebooks/ledger.ipynb')]
print('\n'.join(map(str, nbs)))")
else
  nbs=("$@")
fi
export PYDEVD_DISABLE_FILE_VALIDATION=1 APALU_RECORD=1
for nb in "${nbs[@]}"; do
  start=$(date +%s)
  (cd "$(dirname "$nb")" && ../$PY -m papermill "$(basename "$nb")" "$(basename "$nb")" -k python3 --no-progress-bar >/dev/null)
  echo "$nb: $(( $(date +%s) - start )) s"
done
