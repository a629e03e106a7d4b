"""Things looked up by name: one :class:`Registry` style for activations here, and for the lab's
datasets (:data:`apalu.lab.data.DATASETS`) and models (:data:`apalu.lab.models.MODELS`).

Each kind is a name → builder mapping with ``check_<kind>(name)`` (the name, or a ValueError
``unknown <kind> 'x'; known: ...``) and ``make_<kind>(name, **kw)`` (a fresh object). The
activation entries (in the spirit of timm's ``get_act_layer``) also say what other code needs to
know about an activation: whether it takes ``num_parameters`` (one parameter per channel) and
whether :func:`apalu.param_groups` exempts its parameters from weight decay.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Callable, Generic, TypeVar

from torch import nn

from .module import APALU

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_TYPES",
    "ActivationInfo",
    "Registry",
    "check_activation",
    "make_activation",
    "no_decay_types",
    "per_channel_activations",
    "replace_activations",
]

T = TypeVar("T")


class Registry(Mapping, Generic[T]):
    """A read-only name → builder mapping for one ``kind`` of thing ("activation", "dataset", ...).

    ``check(name)`` returns ``name`` if it is known, else raises ``ValueError("unknown <kind>
    'x'; known: a, b, ...")`` (names sorted); ``make(name, *args, **kw)`` calls its builder.
    """

    def __init__(self, kind: str, entries: Mapping[str, T]):
        self.kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self._entries)})"

    def check(self, name: str) -> str:
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}")
        return name

    def make(self, name: str, *args, **kwargs):
        return self._entries[self.check(name)](*args, **kwargs)


@dataclass(frozen=True)
class ActivationInfo:
    """One activation: its builder and what the rest of the package needs to know about it.

    Attributes:
        builder: makes a fresh module; keyword arguments go to it.
        per_channel: it takes ``num_parameters`` (one parameter per channel); the lab's models
            pass the channel count when built with ``per_channel=True``.
        no_decay: :func:`apalu.param_groups` puts its parameters in the group without weight decay.
    """

    builder: Callable[..., nn.Module]
    per_channel: bool = False
    no_decay: bool = False

    def __call__(self, **kwargs) -> nn.Module:
        return self.builder(**kwargs)

    @property
    def module_type(self) -> type[nn.Module]:
        """The class the builder makes (through a :func:`functools.partial` too)."""
        b = self.builder
        while isinstance(b, partial):
            b = b.func
        return b


ACTIVATIONS: Registry[ActivationInfo] = Registry("activation", {
    # decaying a or b pulls them to 0 (PReLU's docs advise against weight decay on its weight)
    "apalu": ActivationInfo(APALU, per_channel=True, no_decay=True),
    "relu": ActivationInfo(nn.ReLU),
    "leaky_relu": ActivationInfo(nn.LeakyReLU),
    "prelu": ActivationInfo(nn.PReLU, per_channel=True, no_decay=True),
    "elu": ActivationInfo(nn.ELU),
    "gelu": ActivationInfo(nn.GELU),
    "gelu_tanh": ActivationInfo(partial(nn.GELU, approximate="tanh")),
    "silu": ActivationInfo(nn.SiLU),
    "tanh": ActivationInfo(nn.Tanh),
    "sigmoid": ActivationInfo(nn.Sigmoid),
})

# torch's other pointwise nonlinearities, not in the registry but replaced by replace_activations
_OTHER_POINTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU6, nn.SELU, nn.CELU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus,
)

# Modules that replace_activations treats as activations: the registry's and torch's other
# pointwise nonlinearities. Everything else (linear, conv, norm, dropout, ...) is left alone.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = tuple(
    dict.fromkeys(info.module_type for info in ACTIVATIONS.values())) + _OTHER_POINTWISE


def check_activation(name: str) -> str:
    """Return ``name`` if it is a known activation, else raise ValueError listing the known ones."""
    return ACTIVATIONS.check(name)


def make_activation(name: str, **kwargs) -> nn.Module:
    """A fresh activation module by name, e.g. ``make_activation("apalu", num_parameters=64)``.

    Keyword arguments go to the constructor (``APALU``'s ``init``/``constraint``, PReLU's
    ``num_parameters``, LeakyReLU's ``negative_slope``, ...).
    """
    return ACTIVATIONS.make(name, **kwargs)


def per_channel_activations() -> tuple[str, ...]:
    """Names of the activations that take ``num_parameters`` (one parameter per channel)."""
    return tuple(name for name, info in ACTIVATIONS.items() if info.per_channel)


def no_decay_types() -> tuple[type[nn.Module], ...]:
    """Activation classes whose parameters :func:`apalu.param_groups` exempts from weight decay."""
    return tuple(dict.fromkeys(info.module_type for info in ACTIVATIONS.values() if info.no_decay))


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
