"""APALU as Triton kernels: one fused pass per direction on a GPU, for eager use.

:func:`forward` computes ``y = a·x·(1 + σ(Kx))`` for x ≥ 0 and ``b·(eˣ − 1)`` for x < 0 in one
kernel; :func:`backward` computes the gradient of x and reduces the gradients of a and b in the
same pass (each program sums its block in float32 and adds it to a per-parameter accumulator with
one atomic add; per-channel parameters with fewer than one block per channel add per element).
``a`` and ``b`` are the effective, positive values: a scalar or a 1-element tensor, or one per
channel (dim 1 of the input; dim 0 of a 1-D input). float32, bfloat16 and float16 inputs are
computed in float32 and returned in their own dtype; the parameter gradients come back in the
parameters' dtype.

``eˣ − 1`` near 0⁻ uses its Taylor polynomial on [−1/4, 0] (``exp(x) − 1`` would lose every
digit there); x is capped at :data:`apalu.functional.SATURATE` where it feeds the sigmoid, as in
the CPU paths. K comes from :mod:`apalu.functional`, the library's one definition.

The kernels run on CUDA tensors; with ``TRITON_INTERPRET=1`` set before this module is imported,
Triton's interpreter runs them on CPU tensors (how the tests check their numerics here).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from .functional import K, SATURATE

__all__ = ["apalu_triton", "available", "backward", "forward", "interpreted"]

BLOCK = 1024


def interpreted() -> bool:
    """Whether Triton's interpreter runs the kernels (``TRITON_INTERPRET=1``: CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available() -> bool:
    """Whether the kernels can run on a GPU here: triton importable and a CUDA device present."""
    return triton is not None and torch.cuda.is_available()


try:  # an optional dependency (extra "gpu"); without it available() is False
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton is in the lock
    triton = None


def _kernels():
    """(triton, forward kernel, backward kernel); a clear error where triton is missing."""
    if triton is None:
        raise RuntimeError("the Triton APALU needs triton (pip install 'apalu[gpu]')")
    return triton, _fwd, _bwd


if triton is not None:

    @triton.jit
    def _expm1_nonpositive(t):
        # eˣ − 1 for t ≤ 0: degree-8 Taylor polynomial on [−1/4, 0] (relative error < 1e-9;
        # exp(t) − 1 would lose every digit near 0⁻), exp(t) − 1 below (no cancellation there)
        p = t * (1.0 / 40320.0) + 1.0 / 5040.0
        p = p * t + 1.0 / 720.0
        p = p * t + 1.0 / 120.0
        p = p * t + 1.0 / 24.0
        p = p * t + 1.0 / 6.0
        p = p * t + 0.5
        p = p * t + 1.0
        return tl.where(t > -0.25, p * t, tl.exp(t) - 1.0)

    @triton.jit
    def _fwd(x_ptr, a_ptr, b_ptr, y_ptr, n, inner, C, k, sat, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        c = (offs // inner) % C
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        a = tl.load(a_ptr + c, mask=mask, other=1.0).to(tl.float32)
        b = tl.load(b_ptr + c, mask=mask, other=1.0).to(tl.float32)
        xp = tl.maximum(x, 0.0)
        s = tl.sigmoid(k * tl.minimum(xp, sat))
        pos = (a * xp) * (1.0 + s)
        t = tl.minimum(x, 0.0)
        em1 = _expm1_nonpositive(t)
        neg = b * em1
        y = tl.where(x >= 0.0, pos, neg)
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _bwd(g_ptr, x_ptr, a_ptr, b_ptr, gx_ptr, ga_ptr, gb_ptr, n, inner, C, k, sat,
             ROW_SUMS: tl.constexpr, BLOCK: tl.constexpr):
        # ROW_SUMS: the grid is (rows, blocks per row), a row being one channel's contiguous
        # slice of ``inner`` elements (or the whole tensor for scalar parameters): one atomic
        # add per program. Otherwise a flat grid with one atomic add per element.
        if ROW_SUMS:
            row = tl.program_id(0).to(tl.int64)
            j = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
            mask = j < inner
            offs = row * inner + j
            c = row % C
            a = tl.load(a_ptr + c).to(tl.float32)  # one channel per program
            b = tl.load(b_ptr + c).to(tl.float32)
        else:
            offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
            mask = offs < n
            c = (offs // inner) % C
            a = tl.load(a_ptr + c, mask=mask, other=1.0).to(tl.float32)
            b = tl.load(b_ptr + c, mask=mask, other=1.0).to(tl.float32)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        pos = x >= 0.0
        xp = tl.minimum(tl.maximum(x, 0.0), sat)
        s = tl.sigmoid(k * xp)
        t = tl.minimum(x, 0.0)
        em1 = _expm1_nonpositive(t)
        # d/dx: a·(1 + σ + kx·σ·(1 − σ)) on x ≥ 0, b·eˣ on x < 0
        dpos = a * (1.0 + s + (k * xp) * (s * (1.0 - s)))
        dneg = b * tl.exp(t)  # not em1 + 1: that rounds to 0 below x ≈ −17
        gx = g * tl.where(pos, dpos, dneg)
        tl.store(gx_ptr + offs, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        # d/da = x·(1 + σ) on x ≥ 0; d/db = eˣ − 1 on x < 0
        ga = tl.where(pos & mask, (g * tl.maximum(x, 0.0)) * (1.0 + s), 0.0)
        gb = tl.where((~pos) & mask, g * em1, 0.0)
        if ROW_SUMS:
            tl.atomic_add(ga_ptr + c, tl.sum(ga, axis=0))
            tl.atomic_add(gb_ptr + c, tl.sum(gb, axis=0))
        else:
            tl.atomic_add(ga_ptr + c, ga, mask=mask)
            tl.atomic_add(gb_ptr + c, gb, mask=mask)


def _layout(x: Tensor, a: Tensor | float, b: Tensor | float) -> tuple[Tensor, Tensor, Tensor, int, int]:
    """Contiguous x, flat float parameters on x's device, the channel count and ``inner``
    (elements per channel slice)."""
    if x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise TypeError(f"the Triton APALU takes float32, bfloat16 or float16, got {x.dtype}")
    a = torch.as_tensor(a, device=x.device).reshape(-1)
    b = torch.as_tensor(b, device=x.device).reshape(-1)
    if a.numel() != b.numel():
        raise ValueError(f"a and b need the same number of values, got {a.numel()} and {b.numel()}")
    C = a.numel()
    x = x.contiguous()
    if C == 1:
        return x, a.contiguous(), b.contiguous(), 1, max(x.numel(), 1)
    dim = 1 if x.dim() > 1 else 0
    if x.dim() == 0 or x.shape[dim] != C:
        raise ValueError(f"{C} per-channel parameters need an input with {C} channels in dim {dim}, "
                         f"got shape {tuple(x.shape)}")
    inner = 1
    for s in x.shape[dim + 1:]:
        inner *= s
    return x, a.contiguous(), b.contiguous(), C, inner


def forward(x: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    """APALU of ``x`` with positive ``a``, ``b`` (scalar or per channel), one fused kernel."""
    triton, fwd, _ = _kernels()
    x, a, b, C, inner = _layout(x, a, b)
    y = torch.empty_like(x)
    n = x.numel()
    if n:
        fwd[(triton.cdiv(n, BLOCK),)](x, a, b, y, n, inner, C, K, SATURATE, BLOCK=BLOCK)
    return y


def backward(grad_out: Tensor, x: Tensor, a: Tensor | float, b: Tensor | float
             ) -> tuple[Tensor, Tensor, Tensor]:
    """(grad_x, grad_a, grad_b) of APALU at ``x`` for the incoming ``grad_out``; grad_a and
    grad_b have a's and b's shape and dtype, reduced in the kernel."""
    triton, _, bwd = _kernels()
    shape_a = torch.as_tensor(a).shape
    shape_b = torch.as_tensor(b).shape
    pdtype = torch.as_tensor(a).dtype if isinstance(a, Tensor) else torch.float32
    x, a_, b_, C, inner = _layout(x, a, b)
    g = grad_out.to(x.dtype).contiguous()
    if g.shape != x.shape:
        raise ValueError(f"grad_out shape {tuple(grad_out.shape)} differs from x's {tuple(x.shape)}")
    gx = torch.empty_like(x)
    ga = torch.zeros(C, dtype=torch.float32, device=x.device)
    gb = torch.zeros(C, dtype=torch.float32, device=x.device)
    n = x.numel()
    if n:
        rows = n // inner
        if C == 1 or inner >= BLOCK:
            grid = (rows, triton.cdiv(inner, BLOCK))
            bwd[grid](g, x, a_, b_, gx, ga, gb, n, inner, C, K, SATURATE, ROW_SUMS=True, BLOCK=BLOCK)
        else:
            grid = (triton.cdiv(n, BLOCK),)
            bwd[grid](g, x, a_, b_, gx, ga, gb, n, inner, C, K, SATURATE, ROW_SUMS=False, BLOCK=BLOCK)
    return gx, ga.to(pdtype).reshape(shape_a), gb.to(pdtype).reshape(shape_b)


class _TritonAPALU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(x, a, b)
        return forward(x, a, b)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, a, b = ctx.saved_tensors
        gx, ga, gb = backward(grad, x, a, b)
        need = ctx.needs_input_grad
        return (gx if need[0] else None, ga if need[1] else None, gb if need[2] else None)


def apalu_triton(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """APALU through the Triton kernels, differentiable in x, a and b (a, b positive tensors)."""
    return _TritonAPALU.apply(x, a, b)
