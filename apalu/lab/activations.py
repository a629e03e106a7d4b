"""Lab-only activations (controls for the experiments), registered next to the library's.

* ``apalu_frozen`` — APALU with a and b fixed at their init (not trained): separates "a
  trainable shape" from "this shape";
* ``relu_scaled`` — ReLU times APALU's mean positive-side slope at the paper's mean init
  (a = 1): separates APALU's shape from its larger gain (its slope is 1.5a at 0+ and tends
  to 2a), which partly undoes PyTorch's shrinking default weight init.

:data:`LAB_ACTIVATIONS` is the library's :data:`apalu.registry.ACTIVATIONS` plus these; the
lab's models and parameter checks take names from it. The library never sees them.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from ..functional import K
from ..module import APALU
from ..registry import ACTIVATIONS, ActivationInfo, Registry

__all__ = ["FrozenAPALU", "ScaledReLU", "apalu_mean_slope", "LAB_ACTIVATIONS", "check_lab_activation",
           "make_lab_activation", "is_apalu"]


class FrozenAPALU(APALU):
    """APALU whose a and b keep their initial values (``requires_grad=False``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.a_raw.requires_grad_(False)
        self.b_raw.requires_grad_(False)


@functools.lru_cache(maxsize=None)
def apalu_mean_slope(a: float = 1.0) -> float:
    """E[f'(z) | z > 0] for z ~ N(0, 1) and APALU's positive branch f(x) = a(x + x·σ(1.702x)).

    A trapezoid rule on [0, 10] with 20,001 points (the tail beyond 10 weighs < 1e-22).
    """
    z = np.linspace(0.0, 10.0, 20001)
    s = 1.0 / (1.0 + np.exp(-K * z))
    slope = a * (1.0 + s + K * z * s * (1.0 - s))
    phi = np.exp(-z**2 / 2)
    return float(np.trapezoid(slope * phi, z) / np.trapezoid(phi, z))


class ScaledReLU(nn.Module):
    """``scale · relu(x)``; the default scale is :func:`apalu_mean_slope` at a = 1 (≈ 1.91)."""

    def __init__(self, scale: float | None = None):
        super().__init__()
        self.scale = float(apalu_mean_slope() if scale is None else scale)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"ScaledReLU needs a finite scale > 0, got {scale!r}")

    def forward(self, x):
        return torch.relu(x) * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4f}"


class _LabActivations(Registry[ActivationInfo]):
    """The library's activations plus the lab's, read live (an activation registered in the
    library later is seen here too)."""

    def __init__(self, extra: dict[str, ActivationInfo]):
        self.kind = "activation"
        self._extra = dict(extra)

    @property
    def _entries(self) -> dict[str, ActivationInfo]:  # type: ignore[override]
        return {**ACTIVATIONS._entries, **self._extra}


LAB_ACTIVATIONS: Registry[ActivationInfo] = _LabActivations({
    "apalu_frozen": ActivationInfo(FrozenAPALU, per_channel=True, no_decay=True),
    "relu_scaled": ActivationInfo(ScaledReLU),
})


def check_lab_activation(name: str) -> str:
    """``name`` if the library or the lab knows it, else ValueError listing the known ones."""
    return LAB_ACTIVATIONS.check(name)


def make_lab_activation(name: str, **kwargs) -> nn.Module:
    return LAB_ACTIVATIONS.make(name, **kwargs)


def is_apalu(name: str) -> bool:
    """True for the activations built on APALU (they draw a and b at construction)."""
    return issubclass(LAB_ACTIVATIONS[check_lab_activation(name)].module_type, APALU)
