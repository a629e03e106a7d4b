"""The elementwise cases on one large tensor: every activation and APALU implementation,
forward and forward+backward, like for like.

Like for like: no case gets allocation advice. The C++ kernel can ask the operating system for
transparent huge pages on its large outputs (:func:`apalu._ext.huge_page_advice`); no built-in
activation does, so every APALU case runs with the advice off, and one extra, labelled case
(``lean eager, huge-page hint``) shows what the advice is worth.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _ext
from ..functional import apalu, apalu_compiled, apalu_reference, apalu_without_kernel
from .timing import ratio_summary, time_rounds

__all__ = ["Case", "activation_cases", "copy_bandwidth", "run_cases", "HUGE_PAGE_IMPL"]

HUGE_PAGE_IMPL = "lean eager, huge-page hint"


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


def _advice(on: bool) -> Callable[[], contextlib.AbstractContextManager]:
    """The C++ kernel's huge-page advice on or off around a call (nothing where it has none)."""
    switch = getattr(_ext, "huge_page_advice", None)
    return (lambda: switch(on)) if switch is not None else contextlib.nullcontext


def _native(fn: Callable[[Tensor], Tensor]):
    return lambda x: (fn, [])


def _prelu(per_channel: bool):
    def make(x):
        w = torch.full((x.shape[1] if per_channel else 1,), 0.25, device=x.device, dtype=x.dtype,
                       requires_grad=True)
        return (lambda t: F.prelu(t, w)), [w]

    return make


def _apalu(fn, per_channel: bool):
    def make(x):
        n = x.shape[1] if per_channel else 1
        g = torch.Generator().manual_seed(0)
        a = (torch.rand(n, generator=g) + 0.5).to(x.device, x.dtype).requires_grad_()
        b = (torch.rand(n, generator=g) + 0.5).to(x.device, x.dtype).requires_grad_()
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
    no_hint, hint = _advice(False), _advice(True)
    inductor = torch.compile(apalu_without_kernel, fullgraph=True) if compile else None
    for pc in (False, True):
        p = "per-channel" if pc else "scalar"
        cases += [
            Case("apalu", "reference eager", p, _apalu(apalu_reference, pc)),
            Case("apalu", "ATen eager", p, _apalu(apalu_without_kernel, pc)),
            Case("apalu", "lean eager", p, _apalu(apalu, pc), context=no_hint),
        ]
        if not pc and device.type == "cpu" and _ext.available() and hasattr(_ext, "huge_page_advice"):
            cases.append(Case("apalu", HUGE_PAGE_IMPL, p, _apalu(apalu, pc), context=hint))
        if device.type == "cuda":
            from .. import triton_kernel

            if triton_kernel.available():
                cases.append(Case("apalu", "triton", p, _apalu(triton_kernel.apalu_triton, pc)))
        if compile:
            cases += [
                Case("apalu", "inductor compiled", p, _apalu(inductor, pc), compiled=True),
                Case("apalu", "compiled", p, _apalu(apalu_compiled, pc), compiled=True,
                     context=no_hint),
            ]
    if compile:
        cases += [Case("gelu", "compiled", "none", _compiled_native(F.gelu), compiled=True),
                  Case("relu", "compiled", "none", _compiled_native(F.relu), compiled=True)]
    return cases


def _bench_fns(case: Case, x: Tensor, g: Tensor) -> tuple[Callable, Callable]:
    fn, params = case.make(x)
    xl = x.detach().clone().requires_grad_()

    def fwd():
        with torch.inference_mode(), case.context():
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
    """Time forward (under ``torch.inference_mode``) and forward+backward of each case on a
    tensor of ``shape``, with two memory references: a copy into a preallocated tensor (the
    machine's attainable bandwidth) and a fresh clone.

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
    dst = torch.empty_like(x)
    fns[("copy (preallocated)", "forward")] = lambda: dst.copy_(x)
    fns[("clone (fresh allocation)", "forward")] = lambda: x.clone()
    keys = list(fns)
    times = time_rounds({f"{k[0]}|{k[1]}": fns[k] for k in keys}, repeats, warmup, device)
    base = {d: times[f"{cases[0].label}|{d}"] for d in ("forward", "forward+backward")}
    meta = {c.label: c for c in cases}
    rows = []
    for k in keys:
        c = meta.get(k[0])
        s = ratio_summary(times[f"{k[0]}|{k[1]}"], base[k[1]])
        rows.append({
            "activation": c.name if c else k[0], "impl": c.impl if c else "memory",
            "params": c.params if c else "none", "label": k[0], "direction": k[1],
            "median_ms": s["median_ms"], "q1_ms": s["q1_ms"], "q3_ms": s["q3_ms"],
            "iqr_ms": s["iqr_ms"], "ratio_to_gelu": s["ratio"],
            "round_ratio_median": s["round_ratio_median"], "round_ratio_iqr": s["round_ratio_iqr"],
            "repeats": s["repeats"], "shape": "x".join(map(str, shape)),
            "dtype": str(dtype).replace("torch.", ""), "elements": x.numel(), "device": device.type,
            "threads": torch.get_num_threads(),
        })
    _add_bandwidth(rows, x.element_size())
    return rows


def copy_bandwidth(rows: list[dict], itemsize: int = 4) -> float:
    """Bytes per second of the preallocated copy (reads and writes one tensor) in ``rows``."""
    copy = next(r for r in rows if r["label"] == "copy (preallocated)")
    return 2 * copy["elements"] * itemsize / (copy["median_ms"] / 1e3)


def _add_bandwidth(rows: list[dict], itemsize: int) -> None:
    """Each row's bytes-moved bound at the copy's bandwidth, and the fraction of it reached."""
    from .opcount import bytes_bound

    bw = copy_bandwidth(rows, itemsize)
    bound = bytes_bound(rows[0]["elements"], itemsize)
    for r in rows:
        moved = bound[r["direction"]] if r["impl"] != "memory" else 2 * r["elements"] * itemsize
        r["bytes_bound_ms"] = moved / bw * 1e3
        r["fraction_of_bound"] = r["bytes_bound_ms"] / r["median_ms"]
        r["copy_gb_per_s"] = bw / 1e9
