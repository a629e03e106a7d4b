"""What produced the numbers: the machine description shared with the sweeps, and the run."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone

import torch

from .. import _ext
from ..lab.machine import describe_machine

__all__ = ["machine_info"]


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
