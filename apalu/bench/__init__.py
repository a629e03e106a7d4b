"""What APALU costs: timings, saved memory, op counts and an end-to-end step, side by side.

Run ``python -m apalu.bench --help``. One run times every activation in the same process,
interleaved (round r times every case once before round r+1 starts), so slow drifts of the
machine's load hit all cases alike; it reports medians, the interquartile range and the ratio
to GELU (ratio of medians, and the median and IQR of the per-round ratios). With ``--out DIR``
it writes ``ops_<device>.csv``, ``memory_<device>.csv``, ``e2e_<device>.csv``,
``compile_<device>.csv``, ``flops.csv`` and merges a description of the machine (CPU model,
threads, torch version, load averages before and after) into ``machine.json``.

``--device cuda`` times with CUDA events and otherwise runs unchanged on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _ext
from ..lab.machine import describe_machine
from .. import functional as AF
from ..functional import apalu, apalu_compiled, apalu_reference, apalu_without_kernel

__all__ = [
    "Case",
    "activation_cases",
    "bytes_bound",
    "flop_table",
    "machine_info",
    "main",
    "memory_table",
    "run_cases",
    "saved_bytes_mlp",
    "time_rounds",
]

# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------


class _Timer:
    """Wall-clock on the CPU; CUDA events (with a synchronise) on a GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Callable[[], object]) -> float:
        """Seconds taken by one call of ``fn``."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def _quantiles(v: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return q[0], statistics.median(v), q[2]


def time_rounds(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Interleaved timing: ``warmup`` untimed calls of each, then ``repeats`` rounds in which
    every function runs once. Returns the seconds of each call, per name, in round order."""
    timer = _Timer(device)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            out[k].append(timer(fn))
    return out


# ---------------------------------------------------------------------------------------------
# the activations
# ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One activation implementation: ``make(x)`` returns (fn, params) for an input like x."""

    name: str  # activation family, e.g. "apalu"
    impl: str  # implementation, e.g. "lean eager"
    params: str  # "none", "scalar" or "per-channel"
    make: Callable[[Tensor], tuple[Callable[[Tensor], Tensor], list[Tensor]]]
    compiled: bool = False
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext  # around each call

    @property
    def label(self) -> str:
        p = "" if self.params == "none" else f", {self.params}"
        return f"{self.name} ({self.impl}{p})"


def _native(fn: Callable[[Tensor], Tensor]):
    return lambda x: (fn, [])


def _prelu(per_channel: bool):
    def make(x):
        w = torch.full((x.shape[1] if per_channel else 1,), 0.25, device=x.device, requires_grad=True)
        return (lambda t: F.prelu(t, w)), [w]

    return make


def _apalu(fn, per_channel: bool):
    def make(x):
        n = x.shape[1] if per_channel else 1
        g = torch.Generator().manual_seed(0)
        a = (torch.rand(n, generator=g) + 0.5).to(x.device).requires_grad_()
        b = (torch.rand(n, generator=g) + 0.5).to(x.device).requires_grad_()
        return (lambda t: fn(t, a, b)), [a, b]

    return make


def _compiled_native(fn):
    def make(x):
        return torch.compile(fn, fullgraph=True), []

    return make


def activation_cases(compile: bool = True, device: torch.device = torch.device("cpu")) -> list[Case]:
    """Every activation the bench times, GELU first (the reference of the ratios)."""
    cases = [
        Case("gelu", "native", "none", _native(F.gelu)),
        Case("relu", "native", "none", _native(F.relu)),
        Case("leaky_relu", "native", "none", _native(F.leaky_relu)),
        Case("prelu", "native", "scalar", _prelu(False)),
        Case("prelu", "native", "per-channel", _prelu(True)),
        Case("elu", "native", "none", _native(F.elu)),
        Case("gelu_tanh", "native", "none", _native(lambda t: F.gelu(t, approximate="tanh"))),
        Case("silu", "native", "none", _native(F.silu)),
    ]
    # "lean eager" and "compiled" are the defaults (apalu, apalu_compiled): on a CPU in float32
    # they run the C++ kernel when it built (machine.json says); "ATen eager" and "inductor
    # compiled" are the same Function without it.
    inductor = torch.compile(apalu_without_kernel, fullgraph=True) if compile else None
    for pc in (False, True):
        p = "per-channel" if pc else "scalar"
        cases += [
            Case("apalu", "reference eager", p, _apalu(apalu_reference, pc)),
            Case("apalu", "ATen eager", p, _apalu(apalu_without_kernel, pc)),
            Case("apalu", "lean eager", p, _apalu(apalu, pc)),
        ]
        if not pc and device.type == "cpu" and _ext.available():  # what the huge-page advice is worth
            cases.append(Case("apalu", "lean eager, no huge pages", p, _apalu(apalu, pc),
                              context=lambda: _ext.huge_page_advice(False)))
        if compile:
            cases += [
                Case("apalu", "inductor compiled", p, _apalu(inductor, pc), compiled=True),
                Case("apalu", "compiled", p, _apalu(apalu_compiled, pc), compiled=True),
            ]
    if compile:
        cases.append(Case("gelu", "compiled", "none", _compiled_native(F.gelu), compiled=True))
    return cases


def _bench_fns(case: Case, x: Tensor, g: Tensor) -> tuple[Callable, Callable]:
    fn, params = case.make(x)
    xl = x.detach().clone().requires_grad_()

    def fwd():
        with torch.no_grad(), case.context():
            return fn(x)

    def fwdbwd():
        xl.grad = None
        for p in params:
            p.grad = None
        with case.context():
            fn(xl).backward(g)

    return fwd, fwdbwd


def run_cases(
    cases: list[Case], shape: tuple[int, ...], repeats: int, warmup: int, device: torch.device,
    dtype: torch.dtype = torch.float32, seed: int = 0,
) -> list[dict]:
    """Time forward (no grad) and forward+backward of each case on a tensor of ``shape``.

    Rows carry median, quartiles, IQR (ms), the ratio of medians to GELU (native) in the same
    run, and the median/IQR of the per-round ratio."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    g = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    fns: dict[tuple[str, str], Callable] = {}
    for c in cases:
        fwd, fb = _bench_fns(c, x, g)
        fns[(c.label, "forward")] = fwd
        fns[(c.label, "forward+backward")] = fb
    # memory-bound references: a copy into a preallocated tensor, and a fresh clone
    dst = torch.empty_like(x)
    fns[("copy (preallocated)", "forward")] = lambda: dst.copy_(x)
    fns[("clone (fresh allocation)", "forward")] = lambda: x.clone()
    keys = list(fns)
    times = time_rounds({f"{k[0]}|{k[1]}": fns[k] for k in keys}, repeats, warmup, device)
    base = {d: times[f"{cases[0].label}|{d}"] for d in ("forward", "forward+backward")}
    meta = {c.label: c for c in cases}
    rows = []
    for k in keys:
        t = times[f"{k[0]}|{k[1]}"]
        q1, med, q3 = _quantiles(t)
        ref = base[k[1]]
        per_round = [u / v for u, v in zip(t, ref)]
        r1, rmed, r3 = _quantiles(per_round)
        c = meta.get(k[0])
        rows.append({
            "activation": c.name if c else k[0], "impl": c.impl if c else "memory",
            "params": c.params if c else "none", "label": k[0], "direction": k[1],
            "median_ms": med * 1e3, "q1_ms": q1 * 1e3, "q3_ms": q3 * 1e3, "iqr_ms": (q3 - q1) * 1e3,
            "ratio_to_gelu": med / statistics.median(ref),
            "round_ratio_median": rmed, "round_ratio_iqr": r3 - r1,
            "repeats": len(t), "shape": "x".join(map(str, shape)), "dtype": str(dtype).replace("torch.", ""),
            "elements": x.numel(), "device": device.type, "threads": torch.get_num_threads(),
        })
    return rows


# ---------------------------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------------------------


def _count_saved(fn: Callable[[], Tensor]) -> tuple[int, int, set]:
    """(number, bytes, storages) of the tensors autograd saves while ``fn`` runs."""
    saved: list[Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    storages = {(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in saved}
    del out
    return len(saved), sum(t.numel() * t.element_size() for t in saved), storages


class _MLP(nn.Module):
    def __init__(self, width: int, depth: int, act: Callable[[int], nn.Module]):
        super().__init__()
        self.lins = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.acts = nn.ModuleList(act(width) for _ in range(depth))

    def forward(self, x):
        for lin, act in zip(self.lins, self.acts):
            x = act(lin(x))
        return x


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _memory_acts(compile: bool):
    from ..module import APALU

    acts = {
        "identity": lambda w: nn.Identity(),
        "relu": lambda w: nn.ReLU(),
        "gelu": lambda w: nn.GELU(),
        "silu": lambda w: nn.SiLU(),
        "elu": lambda w: nn.ELU(),
        "prelu (per-channel)": lambda w: nn.PReLU(w),
        "apalu (reference eager)": lambda w: _Fn(lambda t, m=APALU(): apalu_reference(t, m.a, m.b)),
        "apalu (ATen eager)": lambda w: _Fn(lambda t, m=APALU(): apalu_without_kernel(t, m.a, m.b)),
        "apalu (lean eager)": lambda w: APALU(),
        "apalu (lean eager, per-channel)": lambda w: APALU(w),
    }
    if compile:
        acts["apalu (compiled)"] = lambda w: APALU(compile=True)
    return acts


def saved_bytes_mlp(act: Callable[[int], nn.Module], width: int = 256, depth: int = 20,
                    batch: int = 64, device: torch.device = torch.device("cpu")) -> dict:
    """Saved-for-backward memory of a ``depth``-layer MLP with activation ``act``.

    Counts every tensor the autograd graph saves (saved_tensors_hooks): their total bytes and
    the bytes of distinct storages (a ReLU's saved output is the next Linear's saved input: one
    storage, counted once)."""
    torch.manual_seed(0)
    model = _MLP(width, depth, act).to(device)
    x = torch.randn(batch, width, device=device)
    n, total, storages = _count_saved(lambda: model(x))
    return {"saved_tensors": n, "saved_bytes": total, "unique_bytes": sum(s[1] for s in storages)}


def memory_table(width: int = 256, depth: int = 20, batch: int = 64,
                 device: torch.device = torch.device("cpu"), compile: bool = True) -> list[dict]:
    """Per-layer saved memory of each activation in a ``depth``-layer MLP, in bytes and in units
    of one activation input (batch × width × 4 bytes), net of the same MLP with no activation."""
    acts = _memory_acts(compile)
    res = {k: saved_bytes_mlp(v, width, depth, batch, device) for k, v in acts.items()}
    unit = batch * width * 4
    base = res["identity"]
    rows = []
    for k, r in res.items():
        if k == "identity":
            continue
        per_layer = (r["saved_bytes"] - base["saved_bytes"]) / depth
        unique = (r["unique_bytes"] - base["unique_bytes"]) / depth
        rows.append({
            "activation": k, "depth": depth, "width": width, "batch": batch,
            "saved_bytes_per_layer": per_layer, "saved_inputs_per_layer": per_layer / unit,
            "extra_unique_bytes_per_layer": unique, "extra_unique_inputs_per_layer": unique / unit,
            "device": device.type,
        })
    return rows


# ---------------------------------------------------------------------------------------------
# operation counts
# ---------------------------------------------------------------------------------------------

# Elementwise cost model on the aten graph: one arithmetic op per element for each of these ...
_ARITH = {
    "add", "sub", "mul", "div", "neg", "where", "clamp", "clamp_min", "clamp_max", "maximum",
    "minimum", "ge", "gt", "le", "lt", "eq", "ne", "relu", "abs", "sign", "reciprocal", "sum",
    "addcmul", "pow", "square", "rsub", "bitwise_not", "logical_not", "masked_fill", "fill",
    "bitwise_or", "bitwise_and", "logical_or", "logical_and",
}
# ... and one transcendental (plus the arithmetic noted) for these:
_TRANS = {"exp": 0, "expm1": 0, "log": 0, "log1p": 0, "erf": 0, "tanh": 0, "sigmoid": 2}
# Not work: memory layout, allocation and copies.
_FREE = {
    "alias", "view", "_unsafe_view", "reshape", "slice", "select", "empty", "full", "zeros",
    "ones", "scalar_tensor", "detach", "expand", "copy", "clone", "_to_copy", "t", "permute",
    "unsqueeze", "squeeze", "zeros_like", "ones_like", "full_like", "empty_like", "lift_fresh_copy",
    "sum_to_size", "as_strided", "new_empty", "new_zeros", "new_full",
}


def _op_name(target) -> str:
    name = str(target).split(".")[1] if str(target).startswith("aten.") else str(target)
    return name.rstrip("_")


def count_ops(fn: Callable, args: tuple, numel: int) -> dict:
    """Elementwise operations per element in the aten graph of ``fn(*args)`` (traced with
    ``make_fx``; composite activations and their backwards decomposed into primitives).

    An op counts when its output (or, for a reduction, its input) has ``numel`` elements."""
    from torch._decomp import get_decompositions
    from torch.fx.experimental.proxy_tensor import make_fx

    aten = torch.ops.aten
    table = get_decompositions([
        aten.gelu, aten.gelu_backward, aten.elu, aten.elu_backward, aten.silu, aten.silu_backward,
        aten.leaky_relu, aten.leaky_relu_backward, aten._prelu_kernel, aten._prelu_kernel_backward,
        aten.threshold_backward, aten.sigmoid_backward, aten.tanh_backward, aten.silu_,
        aten.addcmul, aten.addcmul_, aten.hardtanh_backward,
    ])
    gm = make_fx(fn, decomposition_table=table)(*args)
    arith = trans = 0
    unknown = set()
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        val = node.meta.get("val")
        n_out = val.numel() if isinstance(val, Tensor) else 0
        n_in = max((a.meta["val"].numel() for a in node.args
                    if isinstance(a, torch.fx.Node) and isinstance(a.meta.get("val"), Tensor)), default=0)
        if name in _FREE or not (n_out == numel or (name == "sum" and n_in == numel) or
                                 (name == "dot" and n_in == numel) or (name == "bmm" and n_in == numel)):
            continue
        if name in _TRANS:
            trans += 1
            arith += _TRANS[name]
        elif name in _ARITH:
            arith += 1
        elif name in ("dot", "bmm"):
            arith += 2  # a multiply and an add per element
        else:
            unknown.add(name)
    return {"arith": arith, "transcendental": trans, "unknown": ",".join(sorted(unknown))}


def flop_table(numel: int = 24) -> list[dict]:
    """Counted elementwise operations per element, forward and forward+backward, for each
    activation and APALU implementation (the fused form is what ``torch.compile`` fuses)."""
    x = torch.randn(2, 3, numel // 6)
    g = torch.randn_like(x)
    rows = []

    def _lean_scalar(t):
        pa = torch.tensor(1.1, requires_grad=True)
        pb = torch.tensor(0.8, requires_grad=True)
        _lean_scalar.params = (pa, pb)
        return apalu_without_kernel(t, pa, pb)

    def fb_fn(fn, nparams):
        def h(x, g, *ps):
            x = x.detach().requires_grad_()
            ps = [p.detach().requires_grad_() for p in ps]
            y = fn(x, *ps)
            extra = list(getattr(fn, "params", ()))  # parameters created inside fn
            return torch.autograd.grad(y, [x, *ps, *extra], g)
        return h

    def fused_fb(x, g, a, b):
        ae, be = AF.expand_param(a, x), AF.expand_param(b, x)
        AF._forward_fused(x, ae, be)
        return AF._backward_fused(g, x, ae, be, (True, True, True))

    a, b = torch.tensor([1.1]), torch.tensor([0.8])
    w = torch.tensor([0.25])
    specs = [
        ("relu", lambda t: F.relu(t), ()), ("leaky_relu", lambda t: F.leaky_relu(t), ()),
        ("prelu", lambda t, w: F.prelu(t, w), (w,)), ("elu", lambda t: F.elu(t), ()),
        ("gelu", lambda t: F.gelu(t), ()),
        ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh"), ()), ("silu", lambda t: F.silu(t), ()),
        ("apalu (reference eager)", apalu_reference, (a, b)),
        # the ATen path (the C++ kernel is opaque to the tracer). a, b made inside the trace
        # (constants): the scalar route reads them as Python floats
        ("apalu (ATen eager)", _lean_scalar, ()),
        ("apalu (ATen eager, per-channel)", apalu_without_kernel,
         (torch.tensor([1.1, 0.9, 1.2]), torch.tensor([0.8, 0.7, 0.6]))),
    ]
    for name, fn, ps in specs:
        fwd = count_ops(lambda x, *p: fn(x, *p), (x, *ps), x.numel())
        both = count_ops(fb_fn(fn, len(ps)), (x, g, *ps), x.numel())
        rows.append({"activation": name, "forward_arith": fwd["arith"], "forward_transcendental":
                     fwd["transcendental"], "fwdbwd_arith": both["arith"],
                     "fwdbwd_transcendental": both["transcendental"],
                     "unknown_ops": ",".join(filter(None, [fwd["unknown"], both["unknown"]]))})
    fwd = count_ops(lambda x, a, b: AF._forward_fused(x, AF.expand_param(a, x), AF.expand_param(b, x)),
                    (x, a, b), x.numel())
    both = count_ops(fused_fb, (x, g, a, b), x.numel())
    rows.append({"activation": "apalu (single-exp form, inductor)", "forward_arith": fwd["arith"],
                 "forward_transcendental": fwd["transcendental"], "fwdbwd_arith": both["arith"],
                 "fwdbwd_transcendental": both["transcendental"],
                 "unknown_ops": ",".join(filter(None, [fwd["unknown"], both["unknown"]]))})
    return rows


def bytes_bound(elements: int, itemsize: int = 4) -> dict:
    """Bytes an elementwise activation must move at least: forward reads x and writes y;
    backward reads x (saved) and the incoming gradient and writes the gradient of x."""
    return {"forward": 2 * elements * itemsize, "forward+backward": 5 * elements * itemsize}


# ---------------------------------------------------------------------------------------------
# end to end
# ---------------------------------------------------------------------------------------------


def _cnn(activation: str, per_channel: bool, device, act_kwargs=None):
    from ..lab.models import SmallCNN

    torch.manual_seed(0)
    return SmallCNN(in_channels=3, n_classes=10, width=32, depth=4, activation=activation,
                    per_channel=per_channel, input_size=32, act_kwargs=act_kwargs).to(device)


def e2e_table(batch: int, repeats: int, warmup: int, device: torch.device, compile: bool = True) -> list[dict]:
    """One SGD training step of :class:`apalu.models.SmallCNN` (4 conv blocks, width 32, 3×32×32
    input): ReLU vs APALU (scalar, per-channel), eager and with ``torch.compile(model)``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    variants = [("relu", False), ("apalu", False), ("apalu", True)]
    steps = {}
    for mode in ("eager", "compiled") if compile else ("eager",):
        for act, pc in variants:
            model = _cnn(act, pc, device)
            run = torch.compile(model) if mode == "compiled" else model
            opt = torch.optim.SGD(model.parameters(), lr=0.01)

            def step(run=run, opt=opt):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(run(x), y).backward()
                opt.step()

            steps[(mode, act, pc)] = step
    times = time_rounds({f"{k}": v for k, v in steps.items()}, repeats, warmup, device)
    rows = []
    for (mode, act, pc), fn in steps.items():
        t = times[f"{(mode, act, pc)}"]
        ref = times[f"{(mode, 'relu', False)}"]
        q1, med, q3 = _quantiles(t)
        r1, rmed, r3 = _quantiles([u / v for u, v in zip(t, ref)])
        rows.append({
            "mode": mode, "activation": act, "params": "per-channel" if pc else ("scalar" if act == "apalu" else "none"),
            "median_ms": med * 1e3, "iqr_ms": (q3 - q1) * 1e3,
            "ratio_to_relu": med / statistics.median(ref), "round_ratio_median": rmed,
            "round_ratio_iqr": r3 - r1, "batch": batch, "repeats": len(t), "device": device.type,
            "threads": torch.get_num_threads(),
        })
    return rows


# ---------------------------------------------------------------------------------------------
# compile cost
# ---------------------------------------------------------------------------------------------

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
    root = Path(__file__).resolve().parent.parent
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


# ---------------------------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------------------------


def machine_info(device: torch.device) -> dict:
    """What produced the numbers: the machine (:func:`apalu.lab.machine.describe_machine`, the keys
    sweep records use too), the device, the APALU kernel, the allocator settings, date and command."""
    info = {
        **describe_machine(),
        "device": device.type,
        "allocator_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "apalu_cpu_kernel": _ext.status(),
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m apalu.bench " + " ".join(sys.argv[1:]),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def _table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    cells = [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m apalu.bench",
        description="Time APALU against ReLU, LeakyReLU, PReLU, ELU, GELU (exact, tanh), SiLU: "
        "forward and forward+backward, interleaved, medians, IQR and ratios to GELU; saved memory "
        "per layer; op counts; one training step of a small CNN; compile cost.",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--shape", default="64,256,32,32", help="input shape (default: 64,256,32,32)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds (default: 15)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per case first (default: 2)")
    p.add_argument("--batch", type=int, default=64, help="batch of the end-to-end CNN step (default: 64)")
    p.add_argument("--e2e-repeats", type=int, default=None, help="rounds of the CNN step (default: --repeats)")
    p.add_argument("--no-compile", action="store_true", help="skip every torch.compile case")
    p.add_argument("--skip", default="", help="comma list of parts to skip: ops,memory,flops,e2e,compile-cost")
    p.add_argument("--out", default=None, help="directory for the CSVs and machine.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    dev = args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(dev)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(int(s) for s in args.shape.split(","))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    compile = not args.no_compile
    info = machine_info(device)
    info["loadavg_before"] = list(os.getloadavg())
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    tag = device.type
    results: dict[str, list[dict]] = {}
    print(f"# {info['cpu']} | {info['torch_threads']} threads | torch {info['torch']} | device {tag}"
          + (f" ({info['gpu']})" if "gpu" in info else "") + f" | load {info['loadavg_before']}")

    if "ops" not in skip:
        rows = run_cases(activation_cases(compile, device), shape, args.repeats, args.warmup, device)
        bound = bytes_bound(rows[0]["elements"])
        copy = next(r for r in rows if r["label"] == "copy (preallocated)")
        bw = 2 * rows[0]["elements"] * 4 / (copy["median_ms"] / 1e3)  # bytes/s of the copy
        for r in rows:
            r["bytes_bound_ms"] = bound[r["direction"]] / bw * 1e3
            r["fraction_of_bound"] = r["bytes_bound_ms"] / r["median_ms"]
        results["ops"] = rows
        print(f"\n## elementwise cost, shape {args.shape}, {args.repeats} rounds "
              f"(copy bandwidth {bw / 1e9:.1f} GB/s)")
        print(_table(rows, ["label", "direction", "median_ms", "iqr_ms", "ratio_to_gelu",
                            "round_ratio_iqr", "fraction_of_bound"]))
    if "memory" not in skip:
        results["memory"] = memory_table(device=device, compile=compile)
        print("\n## saved for backward, 20-layer MLP (width 256, batch 64), per activation layer")
        print(_table(results["memory"], ["activation", "saved_inputs_per_layer", "extra_unique_inputs_per_layer"]))
    if "flops" not in skip:
        results["flops"] = flop_table()
        print("\n## elementwise operations per element (counted in the aten graph)")
        print(_table(results["flops"], ["activation", "forward_arith", "forward_transcendental",
                                        "fwdbwd_arith", "fwdbwd_transcendental"]))
    if "e2e" not in skip:
        reps = args.e2e_repeats or args.repeats
        results["e2e"] = e2e_table(args.batch, reps, args.warmup, device, compile)
        print(f"\n## one training step, SmallCNN, batch {args.batch}")
        print(_table(results["e2e"], ["mode", "activation", "params", "median_ms", "iqr_ms", "ratio_to_relu"]))
    if compile and "compile-cost" not in skip:
        results["compile"] = compile_cost(shape, device) + compile_cost(shape, device, per_channel=True)
        print("\n## compile cost of the compiled APALU (forward+backward), fresh process")
        print(_table(results["compile"], ["cache", "params", "first_call_s", "second_call_s"]))
    info["loadavg_after"] = list(os.getloadavg())
    print(f"\n# load average after: {info['loadavg_after']}")
    if out:
        for part, rows in results.items():
            _write_csv(out / (f"{part}.csv" if part == "flops" else f"{part}_{tag}.csv"), rows)
        mpath = out / "machine.json"
        machines = json.loads(mpath.read_text()) if mpath.exists() else {}
        machines[tag] = info
        mpath.write_text(json.dumps(machines, indent=2, sort_keys=True) + "\n")
        print(f"# wrote {', '.join(sorted(results))} to {out}")
    return 0
