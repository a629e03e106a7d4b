"""Where the time of one small APALU call goes: Python, dispatch, softplus, kernel.

:func:`breakdown` profiles ``module(x).backward(g)`` (or the forward alone under
``torch.inference_mode``) on a 64 × 32 input with :mod:`torch.profiler` and sorts each
operator's *self* time into

* **softplus**: the parameters' constraint, ``softplus(ρ) + 1e-6``, forward and backward;
* **kernel**: the elementwise work on the input (the C++ kernel's ``apalu::`` ops, or any ATen
  op that reads an input-sized tensor);
* **dispatch**: every other operator and autograd node (views, allocations, the gradient
  accumulation of the parameters, the autograd engine);
* **Python**: the rest of the wall time of the call, outside every operator.

The profiler adds its own cost to every operator, so the shares are read against the
unprofiled time per call, reported alongside. This module imports only torch and
:class:`apalu.module.APALU`, so ``python overhead.py`` can run against another version of the
library (``PYTHONPATH`` pointing at its tree): :func:`breakdown_at_ref` measures a git revision
that way, the *before* of the Cost chapter.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

__all__ = ["COMPONENTS", "breakdown", "breakdown_at_ref"]

COMPONENTS = ("Python", "dispatch", "softplus", "kernel")
SHAPE = (64, 32)


def _module(name: str) -> nn.Module:
    if name == "prelu":
        return nn.PReLU()
    from apalu.module import APALU  # absolute: this file also runs as a script (see above)

    return APALU(generator=torch.Generator().manual_seed(0))


def _component(event, numel: int) -> str:
    name = event.name.lower()
    if "softplus" in name:
        return "softplus"
    if name.startswith("apalu::"):
        return "kernel"
    shapes = getattr(event, "input_shapes", None) or []
    if any(isinstance(s, list) and s and _numel(s) == numel for s in shapes):
        return "kernel"
    return "dispatch"


def _numel(shape: list) -> int:
    n = 1
    for d in shape:
        if not isinstance(d, int):
            return -1
        n *= d
    return n


DIRECTIONS = ("forward+backward", "forward")


def breakdown(module_name: str = "apalu", calls: int = 300, repeats: int = 15,
              direction: str = "forward+backward") -> list[dict]:
    """Microseconds per call of ``module_name`` ("apalu" or "prelu"), per component, with the
    unprofiled median per call (``repeats`` samples of ``calls`` calls). ``direction``:
    "forward+backward" (gradients of the input and the parameters) or "forward" (under
    ``torch.inference_mode``)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; known: {', '.join(DIRECTIONS)}")
    torch.manual_seed(0)
    m = _module(module_name)
    x = torch.randn(SHAPE, requires_grad=direction != "forward")
    g = torch.randn(SHAPE)
    params = [x, *m.parameters()]

    def fwdbwd():
        for p in params:
            p.grad = None
        m(x).backward(g)

    def fwd():
        with torch.inference_mode():
            m(x)

    call = fwd if direction == "forward" else fwdbwd

    for _ in range(50):
        call()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - t0) / calls)
    acts = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=acts, record_shapes=True) as prof:
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        wall = time.perf_counter() - t0
    per = dict.fromkeys(COMPONENTS, 0.0)
    numel = x.numel()
    for ev in prof.events():
        per[_component(ev, numel)] += ev.self_cpu_time_total  # µs
    ops = per["dispatch"] + per["softplus"] + per["kernel"]
    per["Python"] = max(0.0, wall * 1e6 - ops)
    profiled = wall * 1e6 / calls
    unprofiled = statistics.median(samples) * 1e6
    return [{"module": module_name, "direction": direction, "component": c, "us_per_call_profiled": per[c] / calls,
             "share": per[c] / calls / profiled, "us_per_call_estimated": per[c] / calls / profiled * unprofiled,
             "unprofiled_us_per_call": unprofiled, "profiled_us_per_call": profiled,
             "shape": "x".join(map(str, SHAPE)), "threads": torch.get_num_threads(),
             "torch": torch.__version__} for c in COMPONENTS]


def breakdown_at_ref(ref: str, repo: Path | str, calls: int = 300, repeats: int = 15) -> list[dict]:
    """:func:`breakdown` of APALU as it was at git revision ``ref`` of ``repo``: that revision's
    ``apalu/`` is extracted (``git archive``) into a temporary folder and this file runs against
    it in a fresh process. Rows carry ``version`` = the revision."""
    repo = Path(repo)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "src.tar"
        res = subprocess.run(["git", "-C", str(repo), "archive", "-o", str(archive), ref, "apalu"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"git archive {ref!r} failed: {res.stderr.strip()}")
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "tree", filter="data")
        env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "tree"))
        code = [sys.executable, str(Path(__file__).resolve()), "--calls", str(calls),
                "--repeats", str(repeats), "--threads", str(torch.get_num_threads())]
        res = subprocess.run(code, env=env, capture_output=True, text=True, cwd=tmp)
        if res.returncode != 0:
            raise RuntimeError(f"overhead breakdown at {ref!r} failed:\n{res.stderr[-2000:]}")
        rows = json.loads(res.stdout.strip().splitlines()[-1])
    return [{**r, "version": ref} for r in rows]


if __name__ == "__main__":  # run against whichever apalu is first on sys.path
    import argparse

    p = argparse.ArgumentParser(description="per-call overhead breakdown (JSON on stdout)")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import apalu

    rows = [r for d in DIRECTIONS for r in breakdown("apalu", a.calls, a.repeats, d)]
    print(json.dumps([{**r, "apalu_path": str(Path(apalu.__file__).parent)} for r in rows]))
