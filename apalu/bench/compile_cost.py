"""What compiling the compiled APALU costs on its first call, in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

__all__ = ["compile_cost"]

_COMPILE_SNIPPET = r"""
import json, sys, time, torch
torch.set_num_threads({threads})
from apalu.functional import apalu_compiled
x = torch.randn({shape}, device="{device}", requires_grad=True)
n = x.shape[1] if {per_channel} else 1
a = torch.rand(n, device="{device}", requires_grad=True); b = torch.rand(n, device="{device}", requires_grad=True)
t0 = time.perf_counter()
apalu_compiled(x, a, b).sum().backward()
if "{device}" == "cuda": torch.cuda.synchronize()
t1 = time.perf_counter()
apalu_compiled(x, a, b).sum().backward()
if "{device}" == "cuda": torch.cuda.synchronize()
t2 = time.perf_counter()
from apalu import _ext
print(json.dumps({{"first_call_s": t1 - t0, "second_call_s": t2 - t1, "kernel": _ext.status()}}))
"""


def compile_cost(shape: tuple[int, ...], device: torch.device, per_channel: bool = False) -> list[dict]:
    """First-call time of the compiled APALU (forward+backward) in a fresh process: cold (empty
    inductor cache and empty C++ extension cache, so the CPU kernel is built too) and warm (the
    same caches again), and the time of the call after it."""
    rows = []
    code = _COMPILE_SNIPPET.format(threads=torch.get_num_threads(), shape=tuple(shape),
                                   device=device.type, per_channel=per_channel)
    root = Path(__file__).resolve().parents[2]  # the repository: this tree's apalu
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache, PYTHONPATH=str(root),
                   TORCH_EXTENSIONS_DIR=str(Path(cache) / "torch_extensions"))
        for state in ("cold", "warm"):
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                raise RuntimeError(f"compile-cost subprocess failed:\n{res.stderr[-2000:]}")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append({"cache": state, "params": "per-channel" if per_channel else "scalar",
                         "first_call_s": r["first_call_s"], "second_call_s": r["second_call_s"],
                         "process_wall_s": wall, "kernel": r["kernel"], "shape": "x".join(map(str, shape)), "device": device.type})
    return rows
