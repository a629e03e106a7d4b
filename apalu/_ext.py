"""The compiled CPU kernel (``csrc/apalu_cpu.cpp``): built on first use, cached, optional.

:func:`kernel` returns the loaded extension, or ``None`` when it is disabled
(``APALU_CPU_KERNEL=0``) or can not be built here (no C++ compiler, no ninja); then APALU runs on
its ATen and inductor paths and warns once. The build takes about 40 s on a 2-core machine, once
per build of the source: the extension's name and folder carry a hash of the C++ source, the ISA
flags, torch's version and the compiler's and ninja's versions (:func:`build_key`), so checkouts
and toolchains never rebuild over each other's cache, under ``$TORCH_EXTENSIONS_DIR/apalu/``
(default ``~/.cache/torch_extensions``; ``make`` uses ``_build/.cache/torch_extensions``).
A build prints one line to stderr; ``python -m apalu._ext --build`` (``make kernel``) builds
ahead of timed runs and prints that line only when it builds.

The library defines the operator ``apalu::apalu`` (forward, with its autograd in C++) and
``apalu::apalu_backward`` (see the source's header); eagerly, :func:`eager_entry` calls the
former without the Python ``torch.ops`` wrapper. Under ``torch.compile`` the kernel is
reached through two Python custom ops, ``apalu::forward_cpu`` and ``apalu::backward_cpu``, which
the compiler keeps as opaque calls (no graph break).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
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


def _tool_version(*cmd: str) -> str:
    """The first line ``cmd`` prints (its version), or why there is none."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{cmd[0]}: {type(err).__name__}"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""


def _flags(isa: str) -> list[str]:
    # -fopenmp: at::parallel_for is inline OpenMP code (serial without it); -lgomp resolves to
    # the libgomp.so.1 torch has already loaded (inductor links its kernels the same way).
    return ["-O3", "-fopenmp", *_ISA_FLAGS.get(isa, [])]


def build_key(isa: str) -> str:
    """12 hex digits of SHA-256 over what the built kernel depends on: the C++ source, the
    flags, torch's version and the compiler's and ninja's versions (as found on PATH)."""
    cxx = os.environ.get("CXX", "c++")
    parts = [SOURCE.read_bytes().decode(), " ".join(_flags(isa)), torch.__version__,
             _tool_version(cxx, "--version"), _tool_version("ninja", "--version")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def build_dir(name: str) -> Path:
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / "apalu" / name


BUILD_MESSAGE = "building the APALU CPU kernel, once, about 40 s"


def _build():
    """Load the kernel, compiling it first (with one line on stderr) when this build of the
    source has no cached library yet."""
    from torch.utils import cpp_extension

    isa = torch.backends.cpu.get_cpu_capability()
    name = f"apalu_cpu_{isa.lower()}_{build_key(isa)}"
    folder = build_dir(name)
    if not (folder / f"{name}.so").is_file():
        print(f"apalu: {BUILD_MESSAGE} ({folder})", file=sys.stderr, flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(
        name=name, sources=[str(SOURCE)], extra_cflags=_flags(isa),
        extra_ldflags=["-lgomp"], build_directory=str(folder), verbose=False,
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
                    _STATE["eager"] = getattr(_STATE["module"], "apalu_raw", None)
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


def loaded() -> bool:
    """:func:`available` without the compile-time wrapper: the per-call check of the eager path
    (builds on the first call like :func:`kernel`)."""
    if not _STATE["tried"]:
        return kernel() is not None
    return _STATE["module"] is not None and os.environ.get(ENV_SWITCH) != "0"


def eager_entry():
    """The extension's eager entry ``apalu_raw(x, a_raw, b_raw, k, softplus, floor)``, or None
    until the kernel has loaded (or when it is unavailable).

    It calls the operator ``apalu::apalu`` through the dispatcher from C++, skipping the Python
    ``torch.ops`` wrapper (a few µs per call), and answers None where the general path of
    :func:`apalu.functional.apalu_raw` must choose (not a plain CPU float32 tensor, a functorch
    transform, a TorchScript trace, a torch-function mode, ``APALU_CPU_KERNEL=0``). The caller
    checks ``torch.compile`` and ``torch.export``.
    """
    return _STATE.get("eager")


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
# (eagerly, apalu::apalu, defined in C++ with its autograd, is called directly)


@torch.library.custom_op("apalu::forward_cpu", mutates_args=())
def forward_cpu(x: Tensor, a: Tensor, b: Tensor, k: float, inner: int) -> Tensor:
    kernel()  # loads the library that defines apalu::apalu
    return torch.ops.apalu.apalu(x, a, b, k, inner, False, 0.0)


@forward_cpu.register_fake
def _(x, a, b, k, inner):
    return torch.empty_like(x)


@torch.library.custom_op("apalu::backward_cpu", mutates_args=())
def backward_cpu(grad: Tensor, x: Tensor, a: Tensor, b: Tensor, k: float, inner: int,
                 need_x: bool) -> tuple[Tensor, Tensor, Tensor]:
    kernel()
    return torch.ops.apalu.apalu_backward(grad, x, a, b, k, inner, False, 0.0, need_x, True)


@backward_cpu.register_fake
def _(grad, x, a, b, k, inner, need_x):
    gx = torch.empty_like(x) if need_x else x.new_empty(0)
    return gx, torch.empty_like(a), torch.empty_like(b)


def main(argv: list[str] | None = None) -> int:
    """``python -m apalu._ext --build``: build (or find) the kernel ahead of timed runs."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m apalu._ext", description=__doc__.splitlines()[0])
    p.add_argument("--build", action="store_true", help="build the kernel now if needed")
    args = p.parse_args(argv)
    if not args.build:
        print(status())
        return 0
    if kernel() is None:  # no compiler: APALU runs on its other paths (warned); not an error
        print(f"apalu: {status()}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # python -m apalu._ext: run the package's instance (its custom ops)
    from apalu import _ext as _package_ext

    sys.exit(_package_ext.main())
