"""What produced the numbers: the machine description shared with the sweeps, and the run."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from .. import _ext
from ..lab.machine import describe_machine

__all__ = ["machine_info", "source_state"]


def source_state() -> dict:
    """The git revision of this tree and the library files that differ from it (measured code
    that no commit holds would make the numbers irreproducible: say so)."""
    repo = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        try:
            res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return ""
        return res.stdout.strip() if res.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "apalu").splitlines()
               if "/" not in line[3:].removeprefix("apalu/") or line[3:].startswith("apalu/csrc/")]
    return {"git_commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "library_changed_since_commit": changed}


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
        **source_state(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
