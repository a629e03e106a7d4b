r"""Functional APALU: ``f(x) = a·(x + x·σ(kx))`` for ``x ≥ 0`` and ``b·(eˣ − 1)`` for ``x < 0``.

``k = 1.702`` (the sigmoid approximation of GELU). ``a`` and ``b`` are the *effective*
(positive) parameters; the module :class:`apalu.APALU` maps its raw parameters to them.

Two implementations share one definition:

* :func:`apalu` — the default: an :class:`torch.autograd.Function` that saves only ``x``, ``a``
  and ``b`` for backward and recomputes the rest. Its backward is written in differentiable
  torch ops, so double backward, ``torch.func`` transforms and ``torch.compile(fullgraph=True)``
  work.
* :func:`apalu_reference` — plain autograd on the same safe formulas, for tests and for the
  cost comparison; it saves several tensors per call.

Numerics: each branch is evaluated on an input clamped to its own half-line
(``max(x, 0)`` and ``min(x, 0)``), so the branch not taken never produces ``inf`` and can not put
NaN into a gradient (the ``torch.where`` trap). ``expm1`` keeps the relative accuracy of the
negative branch near ``0⁻``; ``1 − σ(kx)`` is computed as ``σ(−kx)``. Half-precision inputs are
computed in float32 and returned in their own dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

K = 1.702  # GELU's sigmoid-approximation slope: GELU(x) ≈ x·σ(1.702x)

__all__ = ["K", "apalu", "apalu_reference", "compute_dtype", "expand_param"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype APALU computes in: float32 for half types, the input's own otherwise."""
    return torch.promote_types(dtype, torch.float32)


def expand_param(p: Tensor | float, x: Tensor) -> Tensor:
    """Shape a parameter to broadcast against ``x``.

    A scalar or one-element tensor broadcasts everywhere; a 1-D tensor of ``C > 1`` values is
    per channel along dim 1 (dim 0 for a 1-D input), as in :func:`torch.nn.functional.prelu`.
    Any other tensor is used as given (it must broadcast against ``x``).
    """
    if not isinstance(p, Tensor):
        return torch.tensor(float(p), dtype=compute_dtype(x.dtype), device=x.device)
    if p.dim() == 1 and p.numel() > 1:
        channel_dim = 1 if x.dim() >= 2 else 0
        if x.dim() == 0 or x.shape[channel_dim] != p.numel():
            raise ValueError(
                f"per-channel APALU parameter has {p.numel()} values but the input has shape "
                f"{tuple(x.shape)} (channels are dim {channel_dim})"
            )
        shape = [1] * x.dim()
        shape[channel_dim] = p.numel()
        return p.view(shape)
    return p


def _branches(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-branch inputs that are always safe: (positive mask, max(x,0), min(x,0)).

    NaN fails ``x >= 0`` and propagates through the negative branch, so NaN in gives NaN out.
    """
    # clamp (not maximum) so the gradient at exactly 0 is not split between the two sides.
    return x >= 0, x.clamp(min=0), x.clamp(max=0)


def _forward_math(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    pos, xp, xn = _branches(x)
    return torch.where(pos, a * (xp + xp * torch.sigmoid(K * xp)), b * torch.expm1(xn))


def _backward_math(
    grad: Tensor, x: Tensor, a: Tensor, b: Tensor, need: tuple[bool, bool, bool]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Gradients for (x, a, b), in differentiable ops so that double backward works."""
    pos, xp, xn = _branches(x)
    s = torch.sigmoid(K * xp)
    grad_x = grad_a = grad_b = None
    if need[0]:
        # d/dx [x + x·σ(kx)] = 1 + σ(kx) + kx·σ(kx)·σ(−kx); σ(−kx) avoids 1 − σ cancellation.
        dpos = a * (1 + s + K * xp * s * torch.sigmoid(-K * xp))
        grad_x = grad * torch.where(pos, dpos, b * torch.exp(xn))
    if need[1]:
        grad_a = torch.where(pos, grad * (xp + xp * s), torch.zeros_like(grad))
        grad_a = grad_a.sum_to_size(a.shape)
    if need[2]:
        grad_b = torch.where(pos, torch.zeros_like(grad), grad * torch.expm1(xn))
        grad_b = grad_b.sum_to_size(b.shape)
    return grad_x, grad_a, grad_b


class _APALUFunction(torch.autograd.Function):
    """Saves only (x, a, b); recomputes the branches in backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        work = compute_dtype(x.dtype)
        out = _forward_math(x.to(work), a.to(work), b.to(work))
        return out.to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, a, b = inputs
        ctx.save_for_backward(x, a, b)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, a, b = ctx.saved_tensors
        work = compute_dtype(x.dtype)
        gx, ga, gb = _backward_math(
            grad.to(work), x.to(work), a.to(work), b.to(work), ctx.needs_input_grad
        )
        return (
            None if gx is None else gx.to(x.dtype),
            None if ga is None else ga.to(a.dtype),
            None if gb is None else gb.to(b.dtype),
        )


def _prepare(x: Tensor, a: Tensor | float, b: Tensor | float) -> tuple[Tensor, Tensor]:
    if not x.is_floating_point():
        raise TypeError(f"APALU needs a floating-point input, got {x.dtype}")
    return expand_param(a, x), expand_param(b, x)


def apalu(x: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    r"""APALU on effective parameters, with a lean backward.

    .. math::
        f(x) = \begin{cases} a\,(x + x\,\sigma(1.702\,x)) & x \ge 0 \\
                             b\,(e^{x} - 1) & x < 0 \end{cases}

    Args:
        x: input of any shape, floating point.
        a, b: positive scales; a float, a one-element tensor, or a 1-D tensor with one value per
            channel (dim 1 of ``x``, dim 0 if ``x`` is 1-D).

    Returns:
        A tensor of the shape and dtype of ``x``.

    Example:
        >>> import torch
        >>> from apalu.functional import apalu
        >>> apalu(torch.tensor([-1.0, 0.0, 1.0]), 1.0, 1.0)
        tensor([-0.6321,  0.0000,  1.8458])
    """
    a_, b_ = _prepare(x, a, b)
    return _APALUFunction.apply(x, a_, b_)


def apalu_reference(x: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    """The same function through plain autograd (saves every intermediate; for comparison)."""
    a_, b_ = _prepare(x, a, b)
    work = compute_dtype(x.dtype)
    return _forward_math(x.to(work), a_.to(work), b_.to(work)).to(x.dtype)
