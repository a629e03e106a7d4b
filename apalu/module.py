"""The APALU layer, in the style of :class:`torch.nn.PReLU`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional import apalu_compiled, apalu_raw
from .init import InitSpec, parse_init

__all__ = ["APALU", "CONSTRAINTS"]

CONSTRAINTS = ("softplus", "none")
# Floor on the effective a, b under the softplus constraint: softplus(ρ) underflows to exactly 0
# in float32 for ρ < -104, and the paper needs a, b > 0 strictly.
MIN_VALUE = 1e-6


def _softplus_inverse(v: Tensor) -> Tensor:
    """ρ with softplus(ρ) + MIN_VALUE = v, for v > MIN_VALUE (stable for large v too)."""
    y = (v - MIN_VALUE).clamp(min=1e-12)
    return y + torch.log(-torch.expm1(-y))


class APALU(nn.Module):
    r"""Adaptive Parametric Activation Linear Unit (arXiv 2402.08244).

    .. math::
        \mathrm{APALU}(x) = \begin{cases} a\,(x + x\,\sigma(1.702\,x)) & x \ge 0 \\
                                          b\,(e^{x} - 1) & x < 0 \end{cases}

    with trainable :math:`a, b > 0`. The positive branch is :math:`a` times
    :math:`x + \mathrm{GELU}_\sigma(x)`, the negative branch an ELU of slope :math:`b`.
    Note :math:`f'(0^+) = 3a/2` and :math:`f'(0^-) = b`: f is differentiable at 0 only when
    :math:`b = 3a/2`.

    Args:
        num_parameters: 1 (one a and one b for the layer) or the number of channels (dim 1 of
            the input; dim 0 for a 1-D input), one a and one b per channel.
        init: ``(low, high)`` to draw a and b independently from U(low, high) (the paper's
            ``(0, 2)``, the default), ``{"a": .., "b": ..}`` for fixed values, or a string
            ``"0,2"``, ``"fixed:1,1.5"``, ``"c1:0,2"`` (b = 3a/2); see :mod:`apalu.init`.
        constraint: ``"softplus"`` (default) stores ρ and uses
            :math:`a = \mathrm{softplus}(\rho_a) + 10^{-6}`, so a and b stay positive whatever the
            optimizer does; ``"none"`` trains a and b directly, the unconstrained reading of
            the paper (they can reach 0 or go negative).
        generator: optional :class:`torch.Generator` for the initial draw.
        compile: route forward through :func:`apalu.functional.apalu_compiled` (``torch.compile``,
            one fused kernel per direction; compiles on first call, falls back to eager with a
            warning where compilation is unavailable). Default ``False``: the eager path.
            Compiling the whole model (``torch.compile(model)``) works as well, with no graph break,
            and so does :meth:`torch.nn.Module.compile` on this module. Stored as
            :attr:`use_compiled` (``compile`` stays the inherited method).
        inplace: accepted for drop-in use where activations are built as
            ``activation_layer(inplace=True)`` (torchvision's ``Conv2dNormActivation``, timm).
            APALU always computes out of place: the input is never modified and the result is
            the same for either value (its backward needs the input, so an in-place version
            would save nothing).
        device, dtype: of the parameters (``factory_kwargs``, as in :class:`torch.nn.PReLU`).

    Shape:
        - Input: :math:`(*)`, any shape; with ``num_parameters = C > 1``, :math:`(N, C, *)`.
        - Output: same shape and dtype as the input.

    Attributes:
        a, b: the effective (positive) values, tensors of shape ``(num_parameters,)``.
        a_raw, b_raw: the trainable parameters (ρ under ``"softplus"``, a and b under ``"none"``).

    Example::

        >>> m = APALU(init={"a": 1.0, "b": 1.0})
        >>> m(torch.tensor([-1.0, 0.0, 1.0])).detach()
        tensor([-0.6321,  0.0000,  1.8458])
        >>> APALU(16, init="c1:0,2")  # one a and b per channel of an (N, 16, *) input
        APALU(num_parameters=16, init='c1:0,2', constraint='softplus', compile=False, inplace=False)
    """

    def __init__(
        self,
        num_parameters: int = 1,
        init: InitSpec = (0.0, 2.0),
        constraint: str = "softplus",
        generator: torch.Generator | None = None,
        compile: bool = False,
        inplace: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not isinstance(num_parameters, int) or isinstance(num_parameters, bool) or num_parameters < 1:
            raise ValueError(f"num_parameters must be a positive int, got {num_parameters!r}")
        if constraint not in CONSTRAINTS:
            raise ValueError(f"unknown APALU constraint {constraint!r}; known: {', '.join(CONSTRAINTS)}")
        self.num_parameters = num_parameters
        self.init = parse_init(init)
        self.constraint = constraint
        # not ``self.compile``: that would shadow nn.Module.compile()
        self.use_compiled = bool(compile)
        self.inplace = bool(inplace)  # accepted, not used: APALU computes out of place
        factory = {"device": device, "dtype": dtype}
        self.a_raw = nn.Parameter(torch.empty(num_parameters, **factory))
        self.b_raw = nn.Parameter(torch.empty(num_parameters, **factory))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        a, b = self.init.sample(self.num_parameters, generator)
        if self.constraint == "softplus":
            a, b = _softplus_inverse(a), _softplus_inverse(b)
        self.a_raw.copy_(a)
        self.b_raw.copy_(b)

    @property
    def _softplus(self) -> bool:
        return self.constraint == "softplus"

    def _effective(self, raw: Tensor) -> Tensor:
        return F.softplus(raw) + MIN_VALUE if self.constraint == "softplus" else raw

    @property
    def a(self) -> Tensor:
        return self._effective(self.a_raw)

    @property
    def b(self) -> Tensor:
        return self._effective(self.b_raw)

    def forward(self, x: Tensor) -> Tensor:
        if self.use_compiled:
            return apalu_compiled(x, self.a, self.b)
        # The parameters straight from _parameters (where torch.func.functional_call puts its
        # tensors too): nn.Module.__getattr__ costs about 1 µs each, a third of a small call.
        # Anything that moved them out (torch.nn.utils.parametrize) is found as an attribute.
        params = self._parameters
        a_raw, b_raw = params.get("a_raw"), params.get("b_raw")
        if a_raw is None or b_raw is None:
            a_raw, b_raw = self.a_raw, self.b_raw
        # one operator call on the C++ kernel (softplus applied inside), else a, b then apalu
        return apalu_raw(x, a_raw, b_raw, softplus=self.constraint == "softplus", floor=MIN_VALUE)

    def extra_repr(self) -> str:
        return (f"num_parameters={self.num_parameters}, init='{self.init}', constraint={self.constraint!r}, "
                f"compile={self.use_compiled}, inplace={self.inplace}")

    def __setstate__(self, state: dict) -> None:
        # modules pickled whole before the rename stored the switch as ``compile``
        if "compile" in state and isinstance(state["compile"], bool):
            state = dict(state)
            state["use_compiled"] = state.pop("compile")
        state.setdefault("inplace", False)
        super().__setstate__(state)

