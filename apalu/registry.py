"""Activations by name (in the spirit of timm's ``get_act_layer``) and swapping them in a model."""

from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

from .module import APALU

__all__ = ["ACTIVATIONS", "ACTIVATION_TYPES", "make_activation", "replace_activations", "check_activation"]

ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "apalu": APALU,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "gelu_tanh": partial(nn.GELU, approximate="tanh"),
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

# Modules that replace_activations treats as activations: the registry's and torch's other
# pointwise nonlinearities. Everything else (linear, conv, norm, dropout, ...) is left alone.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    APALU, nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
    nn.ReLU6, nn.SELU, nn.CELU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus,
)


def check_activation(name: str) -> str:
    """Return ``name`` if it is a known activation, else raise ValueError listing the known ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}")
    return name


def make_activation(name: str, **kwargs) -> nn.Module:
    """A fresh activation module by name, e.g. ``make_activation("apalu", num_parameters=64)``.

    Keyword arguments go to the constructor (``APALU``'s ``init``/``constraint``, PReLU's
    ``num_parameters``, LeakyReLU's ``negative_slope``, ...).
    """
    return ACTIVATIONS[check_activation(name)](**kwargs)


def replace_activations(
    model: nn.Module,
    name: str,
    targets: tuple[type[nn.Module], ...] = ACTIVATION_TYPES,
    **kwargs,
) -> int:
    """Replace every activation module in ``model`` (at any depth) by ``make_activation(name, **kwargs)``.

    Each replaced position gets its own new module (its own a and b for APALU). A module
    instance shared by several parents is replaced everywhere by one new module, so weight
    sharing is kept. ``model`` itself is never replaced. Returns the number of positions replaced.
    """
    check_activation(name)
    replaced_by: dict[int, nn.Module] = {}
    count = 0
    for parent in list(model.modules()):
        # _modules, not named_children(): the latter skips a second position of a shared module
        for child_name, child in list(parent._modules.items()):
            if isinstance(child, targets):
                if id(child) not in replaced_by:
                    replaced_by[id(child)] = make_activation(name, **kwargs)
                setattr(parent, child_name, replaced_by[id(child)])
                count += 1
    return count
