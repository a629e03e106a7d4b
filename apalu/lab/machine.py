"""Which machine produced a result: one description, with the same keys, for bench and sweep records."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import socket
from pathlib import Path
from typing import Any

__all__ = ["describe_machine", "machine_summary"]

_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_PARTITION",
               "CUDA_VISIBLE_DEVICES")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


@functools.lru_cache(maxsize=1)
def _static() -> dict[str, Any]:
    try:
        cpus = len(os.sched_getaffinity(0))  # the CPUs this process may use
    except AttributeError:
        cpus = os.cpu_count()
    desc: dict[str, Any] = {"host": socket.gethostname(), "platform": platform.platform(), "cpu": _cpu_model(),
                            "logical_cpus": cpus, "memory_gib": _memory_gib(), "python": platform.python_version()}
    try:
        import torch

        desc["torch"] = torch.__version__
        desc["cuda"] = torch.version.cuda
        desc["gpus"] = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                        if torch.cuda.is_available() else [])
    except Exception:  # torch missing or broken: describe the rest
        desc["gpus"] = []
    return desc


def describe_machine() -> dict[str, Any]:
    """Host, platform, CPU model, usable CPUs, memory (GiB), Python, torch, CUDA, GPUs, torch's
    thread count, and the Slurm job variables that are set."""
    desc = dict(_static())
    with contextlib.suppress(Exception):
        import torch

        desc["torch_threads"] = torch.get_num_threads()
    desc.update({var.lower(): os.environ[var] for var in _SLURM_VARS if os.environ.get(var)})
    return desc


def machine_summary(desc: dict) -> str:
    """One line: 'CPU (n CPUs, m GB), GPU; torch x, Python y'. Reads records from before 0.2.0
    too, whose keys were ``cpus`` and ``memory_gb``."""
    gpus = desc.get("gpus") or []
    gpu = ", ".join(sorted(set(gpus))) if gpus else "no GPU"
    if gpus and len(gpus) > 1:
        gpu = f"{len(gpus)} x {gpu}"
    cpus = desc.get("logical_cpus", desc.get("cpus", "?"))
    memory = desc.get("memory_gib", desc.get("memory_gb", "?"))
    return (f"{desc.get('cpu', '?')} ({cpus} CPUs, {memory} GB), "
            f"{gpu}; torch {desc.get('torch', '?')}, Python {desc.get('python', '?')}")
