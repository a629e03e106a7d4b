"""Optimizer parameter groups: no weight decay on activation parameters, biases and norms."""

from __future__ import annotations

from torch import nn

from .module import APALU

__all__ = ["param_groups", "NO_DECAY_MODULES"]

# Decaying a or b pulls them to 0 (PReLU's docs advise against weight decay on its weight);
# norm scales and biases are excluded as usual.
NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    APALU, nn.PReLU,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups for ``torch.optim``: decayed weights, and everything exempt from decay.

    Exempt: the parameters of APALU, PReLU and normalization layers, and every parameter with
    fewer than 2 dimensions (biases). Shared parameters appear once.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    exempt: set[int] = set()
    for module in model.modules():
        if isinstance(module, NO_DECAY_MODULES):
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
