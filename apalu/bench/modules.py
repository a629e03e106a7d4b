"""What a user's layer costs, by tensor size: the ``nn.Module`` of each activation, forward
(under ``torch.inference_mode``) and forward+backward (gradients of the input and of the
layer's parameters), from 2k to 16M elements.

Small tensors are where per-call overhead (Python, dispatch, the parameters' softplus) shows,
large ones where memory traffic does. The input is ``(n / 32, 32)``: 32 channels, so the
per-channel layers have 32 parameters (a and b each for APALU).
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from .. import _ext
from .timing import ratio_summary, time_rounds

__all__ = ["CALLS_NOTE", "CHANNELS", "MODULES", "SIZES", "calls_note", "module_table"]

# How each side is called, printed with the table (the rule: name what only one side gets).
CALLS_NOTE = ("how the layers are called: the built-in layers reach their ATen kernels through "
              "torch's C++ argument parser; APALU (CPU float32, eager) reaches its operator "
              "apalu::apalu through its extension's eager entry, a pybind function calling the "
              "dispatcher (apalu._ext.eager_entry), so neither side pays the Python torch.ops "
              "wrapper. Both skip autograd under inference_mode; no allocation advice for any "
              "side in these rows.")


def calls_note() -> str:
    """:data:`CALLS_NOTE`, or why APALU takes its general path here (no kernel)."""
    if _ext.eager_entry() is None and not _ext.available():
        return f"how the layers are called: APALU without its C++ kernel ({_ext.status()})"
    return CALLS_NOTE

CHANNELS = 32
SIZES = (2**11, 2**14, 2**17, 2**20, 2**22, 2**24)  # 2k, 16k, 128k, 1M, 4M, 16M elements


def _apalu(per_channel: bool) -> Callable[[], nn.Module]:
    def make():
        from ..module import APALU

        return APALU(CHANNELS if per_channel else 1, generator=torch.Generator().manual_seed(0))

    return make


# (activation, params) -> module builder; the reference of each APALU row is the PReLU with
# the same kind of parameters
MODULES: dict[tuple[str, str], Callable[[], nn.Module]] = {
    ("relu", "none"): nn.ReLU,
    ("gelu", "none"): nn.GELU,
    ("silu", "none"): nn.SiLU,
    ("prelu", "scalar"): nn.PReLU,
    ("prelu", "per-channel"): lambda: nn.PReLU(CHANNELS),
    ("apalu", "scalar"): _apalu(False),
    ("apalu", "per-channel"): _apalu(True),
}


def _inner(numel: int) -> int:
    """Calls per timed sample: about 2^16 elements' worth, so a sample is not a single 20 µs call."""
    return max(1, 2**16 // numel)


def _fns(module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[Callable, Callable]:
    xl = x.detach().clone().requires_grad_()
    params = list(module.parameters())

    def fwd():
        with torch.inference_mode():
            return module(x)

    def fwdbwd():
        xl.grad = None
        for p in params:
            p.grad = None
        module(xl).backward(g)

    return fwd, fwdbwd


def _advice_off() -> contextlib.AbstractContextManager:
    """Like for like: the C++ kernel's huge-page advice off (the built-in layers have none)."""
    switch = getattr(_ext, "huge_page_advice", None)
    return switch(False) if switch is not None else contextlib.nullcontext()


def module_table(sizes: tuple[int, ...] = SIZES, repeats: int = 15, warmup: int = 2,
                 device: torch.device = torch.device("cpu"), seed: int = 0) -> list[dict]:
    """Time every module of :data:`MODULES` at each size (interleaved within a size). Rows give
    the median, quartiles, and ratios to GELU and to PReLU with the same kind of parameters
    (scalar for the parameter-free activations). No allocation advice for any of them."""
    rows = []
    for numel in sizes:
        gen = torch.Generator().manual_seed(seed)
        shape = (numel // CHANNELS, CHANNELS)
        x = torch.randn(shape, generator=gen).to(device)
        g = torch.randn(shape, generator=gen).to(device)
        fns = {}
        for key, make in MODULES.items():
            fwd, fb = _fns(make().to(device), x, g)
            fns[(key, "forward")], fns[(key, "forward+backward")] = fwd, fb
        with _advice_off():
            times = time_rounds({str(k): v for k, v in fns.items()}, repeats, warmup, device,
                                _inner(numel))
        for (act, params), direction in fns:
            t = times[str(((act, params), direction))]
            gelu = times[str((("gelu", "none"), direction))]
            prelu = times[str((("prelu", "per-channel" if params == "per-channel" else "scalar"), direction))]
            s, sp = ratio_summary(t, gelu), ratio_summary(t, prelu)
            rows.append({"activation": act, "params": params, "direction": direction,
                         "elements": numel, "shape": f"{shape[0]}x{shape[1]}",
                         "median_us": s["median_ms"] * 1e3, "q1_us": s["q1_ms"] * 1e3,
                         "q3_us": s["q3_ms"] * 1e3, "ratio_to_gelu": s["ratio"],
                         "ratio_to_prelu": sp["ratio"], "round_ratio_to_prelu_iqr": sp["round_ratio_iqr"],
                         "calls_per_sample": _inner(numel), "repeats": s["repeats"],
                         "device": device.type, "threads": torch.get_num_threads()})
    return rows
