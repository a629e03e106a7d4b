"""The compiled CPU kernel (``csrc/apalu_cpu.cpp``): built on first use, cached, optional.

:func:`kernel` returns the loaded extension, or ``None`` when it is disabled
(``APALU_CPU_KERNEL=0``) or can not be built here (no C++ compiler, no ninja); then APALU runs on
its ATen and inductor paths and warns once. The build takes about 40 s on a 2-core machine, once
per machine and ISA: torch caches it under ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``).

Under ``torch.compile`` the kernel is reached through two custom ops, ``apalu::forward_cpu`` and
``apalu::backward_cpu``, which the compiler keeps as opaque calls (no graph break).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

SOURCE = Path(__file__).parent / "csrc" / "apalu_cpu.cpp"
ENV_SWITCH = "APALU_CPU_KERNEL"  # "0" disables the compiled CPU kernel

_LOCK = threading.Lock()
_STATE: dict = {"tried": False, "module": None, "error": None}

# the ISA flags for ATen's at::vec, as inductor uses them (torch/_inductor/cpu_vec_isa.py)
_ISA_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mfma",
               "-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"],
}


def enabled() -> bool:
    """Whether the environment allows the compiled CPU kernel (``APALU_CPU_KERNEL`` not "0")."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


def _build():
    from torch.utils import cpp_extension

    isa = torch.backends.cpu.get_cpu_capability()
    # -fopenmp: at::parallel_for is inline OpenMP code (serial without it); -lgomp resolves to
    # the libgomp.so.1 torch has already loaded (inductor links its kernels the same way).
    flags = ["-O3", "-fopenmp", *_ISA_FLAGS.get(isa, [])]
    return cpp_extension.load(
        name=f"apalu_cpu_{isa.lower()}", sources=[str(SOURCE)], extra_cflags=flags,
        extra_ldflags=["-lgomp"], verbose=False,
    )


def kernel():
    """The loaded extension module, or None (disabled, or the build failed: warned once)."""
    if not enabled():
        return None
    if not _STATE["tried"]:
        with _LOCK:
            if not _STATE["tried"]:
                try:
                    _STATE["module"] = _build()
                except Exception as err:  # no compiler, no ninja, ...: the other paths still work
                    lines = str(err).strip().splitlines() or [type(err).__name__]
                    first = next((ln for ln in lines if "error" in ln.lower()), lines[-1])
                    _STATE["error"] = f"{type(err).__name__}: {first.strip()[:300]}"
                    warnings.warn(
                        f"apalu: the compiled CPU kernel could not be built ({_STATE['error']}); "
                        f"APALU uses its ATen/inductor paths (set {ENV_SWITCH}=0 to skip the build)",
                        stacklevel=3,
                    )
                _STATE["tried"] = True
    return _STATE["module"]


@torch.compiler.assume_constant_result
def available() -> bool:
    """Whether the kernel is enabled and built (a constant to ``torch.compile``: no graph break)."""
    return kernel() is not None


def status() -> str:
    """One line for reports: which CPU kernel APALU uses here."""
    if not enabled():
        return f"compiled CPU kernel disabled ({ENV_SWITCH}=0)"
    mod = kernel()
    if mod is None:
        return f"compiled CPU kernel unavailable ({_STATE['error']})"
    return f"compiled CPU kernel ({torch.backends.cpu.get_cpu_capability()})"


@contextlib.contextmanager
def huge_page_advice(on: bool):
    """Within the block, the kernel does (or does not) advise transparent huge pages for its
    large outputs (default: it does); for measuring what the advice is worth."""
    mod = kernel()
    if mod is None:
        yield
        return
    mod.set_huge_pages(on)
    try:
        yield
    finally:
        mod.set_huge_pages(True)


# ---- custom ops: the same kernel as opaque calls inside torch.compile graphs ----------------


@torch.library.custom_op("apalu::forward_cpu", mutates_args=())
def forward_cpu(x: Tensor, a: Tensor, b: Tensor, inner: int) -> Tensor:
    return kernel().forward(x, a, b, inner)


@forward_cpu.register_fake
def _(x, a, b, inner):
    return torch.empty_like(x)


@torch.library.custom_op("apalu::backward_cpu", mutates_args=())
def backward_cpu(grad: Tensor, x: Tensor, a: Tensor, b: Tensor, inner: int,
                 need_x: bool) -> tuple[Tensor, Tensor, Tensor]:
    gx, ga, gb = kernel().backward(grad, x, a, b, inner, need_x)
    return gx, ga, gb


@backward_cpu.register_fake
def _(grad, x, a, b, inner, need_x):
    gx = torch.empty_like(x) if need_x else x.new_empty(0)
    return gx, torch.empty_like(a), torch.empty_like(b)
