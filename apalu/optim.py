"""Optimizer parameter groups: no weight decay on activation parameters, biases and norms."""

from __future__ import annotations

from torch import nn

from .registry import no_decay_types

__all__ = ["param_groups", "NORM_MODULES", "no_decay_modules"]

# Norm scales and biases are excluded as usual; which activations are exempt (APALU, PReLU:
# decaying a or b pulls them to 0) is the activation registry's ``no_decay``.
NORM_MODULES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
)


def no_decay_modules() -> tuple[type[nn.Module], ...]:
    """Module types whose own parameters get no weight decay: the registry's ``no_decay``
    activations, then the normalization layers."""
    return no_decay_types() + NORM_MODULES


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups for ``torch.optim``: decayed weights, and everything exempt from decay.

    Exempt: the parameters of the activations the registry marks ``no_decay`` (APALU, PReLU) and
    of normalization layers, and every parameter with fewer than 2 dimensions (biases). Shared
    parameters appear once.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    exempt: set[int] = set()
    exempt_types = no_decay_modules()
    for module in model.modules():
        if isinstance(module, exempt_types):
            exempt.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        (no_decay if id(p) in exempt or p.dim() < 2 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
