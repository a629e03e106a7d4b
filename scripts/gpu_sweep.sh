#!/usr/bin/env bash
# Run one sweep spec on a bare GPU machine: Python and a CUDA build of torch, nothing of ours.
#
#   scripts/gpu_sweep.sh SPEC [WHEELS_DIR] [-- extra 'apalu sweep' options]
#
#   SPEC        a sweep spec, e.g. sweeps/mnist_quickstart_gpu.yaml
#   WHEELS_DIR  a folder of wheels to install from without an index (pip --no-index
#               --find-links): the notebooks' dependencies and setuptools>=77 (the build
#               backend of this package's editable install); without it, pip uses the
#               package index when there is one
#
# Steps: (1) checks that torch imports and sees CUDA, and stops at once with a clear message
# otherwise (before installing or running anything); (2) installs this book's package with the
# extras the notebooks need ('lab', 'sweep', 'data'; ipykernel, seaborn) into the current
# Python, keeping the machine's torch; (3) registers the python3 kernel the runs use;
# (4) runs `apalu sweep SPEC --record --jobs $APALU_GPU_JOBS` (default 1 run at a time per GPU);
# (5) runs `apalu collect` on the sweep folder. The run folders are the ones `apalu sweep`
# writes anywhere, so `apalu collect` reads them unchanged, here or after copying
# data/results/<sweep>/ back. Re-running the same command resumes the sweep.
#
# Environment: PYTHON (default python3), APALU_GPU_JOBS (runs at a time, default 1),
# APALU_SKIP_INSTALL=1 (the package is installed already).
# Before a GPU run, prove the spec on any CPU: `apalu sweep SPEC --smoke` (its tiny 'smoke'
# overrides, same arms; see apalu.sweep.smoke); `apalu sweep SPEC --estimate` prints its
# GPU-minutes from this machine's measured step costs.
set -euo pipefail

die() { echo "gpu_sweep.sh: $*" >&2; exit 2; }

[[ $# -ge 1 ]] || die "usage: scripts/gpu_sweep.sh SPEC [WHEELS_DIR] [-- apalu sweep options]"
SPEC=$1; shift
WHEELS=""
if [[ $# -ge 1 && $1 != "--" ]]; then WHEELS=$1; shift; fi
[[ ${1:-} == "--" ]] && shift
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${APALU_GPU_JOBS:-1}

[[ -f $SPEC ]] || die "spec '$SPEC' not found"
[[ -z $WHEELS || -d $WHEELS ]] || die "wheels folder '$WHEELS' is not a folder"
command -v "$PY" >/dev/null || die "no '$PY' on PATH (set PYTHON=/path/to/python)"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "APALU_GPU_JOBS='$JOBS' is not a positive integer"

# (1) CUDA before anything else: a sweep of GPU specs on a CPU would take days.
"$PY" - <<'EOF' || die "CUDA is not usable here (see above); nothing installed or run"
import sys
try:
    import torch
except ImportError as exc:
    sys.exit(f"torch does not import ({exc}); install a CUDA build of torch first")
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device (CUDA build: {torch.version.cuda}); "
             "check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES")
names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
print(f"gpu_sweep.sh: torch {torch.__version__}, CUDA {torch.version.cuda}: {', '.join(names)}")
EOF

# (2)-(3) the package and the notebooks' dependencies, torch left as it is
if [[ ${APALU_SKIP_INSTALL:-0} != 1 ]]; then
  PIP=("$PY" -m pip install --quiet)
  [[ -n $WHEELS ]] && PIP+=(--no-index --find-links "$WHEELS")
  # the notebooks' imports beyond the 'lab' extra: the kernel, IPython.display, seaborn, the
  # generated datasets ('data'); never the book's build tools
  "${PIP[@]}" -e "$ROOT[lab,sweep,data]" "ipykernel>=7.0" "ipython>=8" "seaborn>=0.13" \
    || die "installing apalu[lab,sweep,data] and the kernel failed${WHEELS:+ from $WHEELS}"
  "$PY" -m ipykernel install --user --name python3 >/dev/null || die "registering the python3 kernel failed"
fi
"$PY" -c "import torch; assert torch.cuda.is_available()" \
  || die "torch lost CUDA after the install (a CPU torch came in with the dependencies?)"

# (4)-(5) the sweep, then its tables and verdicts
cd "$ROOT"
status=0
"$PY" -m apalu sweep "$SPEC" --record --jobs "$JOBS" "$@" || status=$?
name=$("$PY" - "$SPEC" <<'EOF'
import sys, pathlib, yaml
spec = yaml.safe_load(pathlib.Path(sys.argv[1]).read_text())
print(spec.get("name") or pathlib.Path(sys.argv[1]).stem)
EOF
)
if [[ -d data/results/$name ]]; then
  "$PY" -m apalu collect "data/results/$name" || status=$?
fi
exit $status
