r"""Functional APALU: ``f(x) = a·(x + x·σ(kx))`` for ``x ≥ 0`` and ``b·(eˣ − 1)`` for ``x < 0``.

``k = 1.702`` (the sigmoid approximation of GELU). ``a`` and ``b`` are the *effective*
(positive) parameters; the module :class:`apalu.APALU` maps its raw parameters to them.

Two implementations share one definition:

* :func:`apalu` — the default: an :class:`torch.autograd.Function` that saves only ``x``, ``a``
  and ``b`` for backward and recomputes the rest. Its backward is written in differentiable
  torch ops, so double backward, ``torch.func`` transforms and ``torch.compile(fullgraph=True)``
  work.
* :func:`apalu_compiled` — :func:`apalu` under ``torch.compile`` (one switch; see also
  ``APALU(..., compile=True)``).
* :func:`apalu_reference` — plain autograd on the same safe formulas, for tests and for the
  cost comparison; it saves several tensors per call.

Numerics: each branch is evaluated on an input clamped to its own half-line
(``max(x, 0)`` and ``min(x, 0)``), so the branch not taken never produces ``inf`` and can not put
NaN into a gradient (the ``torch.where`` trap). ``expm1`` keeps the relative accuracy of the
negative branch near ``0⁻``; ``1 − σ(kx)`` is computed as ``σ(−kx)``. Half-precision inputs are
computed in float32 and returned in their own dtype.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

K = 1.702  # GELU's sigmoid-approximation slope: GELU(x) ≈ x·σ(1.702x)

__all__ = ["K", "apalu", "apalu_compiled", "apalu_reference", "compute_dtype", "expand_param"]


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


# ---------------------------------------------------------------------------------------------
# Fast paths (same function, same saved tensors; chosen per call, see _APALUFunction).
# ---------------------------------------------------------------------------------------------
#
# Eager CPU: elementwise code in eager PyTorch is dominated by its temporaries. A fresh
# input-sized tensor is a new mmap and one page fault per 4 KiB on first touch (glibc returns
# big blocks to the OS on free), which costs more than the arithmetic. The eager fast path
# therefore walks the input in blocks of BLOCK elements that fit in the L2 cache and reuses a
# few block-sized scratch buffers: the only input-sized allocation is the result (as for any
# built-in activation), and every intermediate pass reads and writes cache, not DRAM.
#
# Compiled (torch.compile / inductor): one fused kernel per direction from a single exp
# (see _forward_fused). Inductor's vectorised CPU expm1 is exp(x) - 1, which loses all
# relative accuracy near 0⁻; _expm1_fused replaces it by a polynomial there.

BLOCK = 1 << 20  # elements per block of the eager CPU path (4 MiB in float32)

# Taylor polynomial of expm1 on [-EXPM1_CUT, 0]; exp(t) - 1 beyond it. Degree 8 on a quarter:
# truncation error t^8/9! < 5e-11 relative, and exp(t) - 1 for t <= -1/4 is within 3 float32 ulp.
EXPM1_CUT = 0.25
_EXPM1_COEFFS = [1.0 / math.factorial(k) for k in range(2, 9)]  # 1/2!, ..., 1/8!


def _expm1_fused(t: Tensor, e: Tensor) -> Tensor:
    """expm1(t) given e = exp(t), accurate near 0⁻ also where inductor turns expm1 into exp - 1."""
    if t.dtype == torch.float64 and t.device.type == "cpu":
        return torch.expm1(t)  # inductor's float64 CPU expm1 is the accurate libm one
    poly = _EXPM1_COEFFS[-1]
    for c in reversed(_EXPM1_COEFFS[:-1]):
        poly = poly * t + c
    poly = t + t * t * poly
    return torch.where(t > -EXPM1_CUT, poly, e - 1)


def _forward_fused(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """The single-exp form, for a fusing compiler.

    t = min(x, -kx) is -kx on x >= 0 and x on x < 0, always <= 0, so e = exp(t) never
    overflows; σ(kx) = 1/(1+e) on x >= 0 and eˣ - 1 = e - 1 on x < 0.
    """
    t = torch.minimum(x, -K * x)
    e = torch.exp(t)
    pos = x >= 0
    return torch.where(pos, a * x * (1 + 1 / (1 + e)), b * _expm1_fused(t, e))


def _backward_fused(
    grad: Tensor, x: Tensor, a: Tensor, b: Tensor, need: tuple[bool, bool, bool]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    t = torch.minimum(x, -K * x)
    e = torch.exp(t)
    pos = x >= 0
    s = 1 / (1 + e)  # σ(kx) on x >= 0; 1 - σ(kx) = e·s without cancellation
    grad_x = grad_a = grad_b = None
    if need[0]:
        # kx·e·s² -> 0 as x -> +inf; clamp x so that inf·0 can not appear at x = +inf
        kx = K * x.clamp(max=1e4)
        grad_x = grad * torch.where(pos, a * (1 + s + kx * e * s * s), b * e)
    if need[1]:
        grad_a = torch.where(pos, grad * x * (1 + s), 0.0).sum_to_size(a.shape)
    if need[2]:
        grad_b = torch.where(pos, 0.0, grad * _expm1_fused(t, e)).sum_to_size(b.shape)
    return grad_x, grad_a, grad_b


def _plain_cpu(*ts: Tensor) -> bool:
    """True when the blocked in-place eager path applies: plain strided CPU tensors, no
    torch.func wrappers, not being traced by a compiler."""
    if torch.compiler.is_compiling():
        return False
    for t in ts:
        if (
            type(t) not in (Tensor, torch.nn.Parameter)
            or t.device.type != "cpu"
            or t.layout != torch.strided
            or torch._C._functorch.is_functorch_wrapped_tensor(t)
        ):
            return False
    return True


def _rows(x: Tensor, p: Tensor) -> tuple[int, int, Tensor] | None:
    """Layout of ``x`` as an (M, L) matrix with one value of ``p`` per row, or None.

    A one-element ``p`` gives (1, numel, scalar); a per-channel ``p`` (shape 1..C..1 along
    dim 1, or (C,) for a 1-D ``x``) gives M = N·C rows of L = H·W... elements and the
    per-row values as an (M, 1) column.
    """
    if p.numel() == 1:
        return 1, x.numel(), p.reshape(())
    cd = 1 if x.dim() >= 2 else 0
    want = [1] * x.dim()
    want[cd] = x.shape[cd] if x.dim() else 1
    if x.dim() == 0 or list(p.shape) != want:
        return None
    m = math.prod(x.shape[: cd + 1])
    rows = p.reshape(1, -1).expand(m // p.numel(), p.numel()).reshape(m, 1)
    return m, x.numel() // m, rows


def _blocked_layout(x: Tensor, a: Tensor, b: Tensor):
    """(M, L, a_rows, b_rows) for the blocked path, or None when it does not apply."""
    if not x.is_contiguous() or x.numel() == 0:
        return None
    la, lb = _rows(x, a), _rows(x, b)
    if la is None or lb is None:
        return None
    (ma, l_a, ar), (mb, l_b, br) = la, lb
    if ma != mb:  # one scalar, one per channel: broadcast the scalar to the rows
        m, ll = (ma, l_a) if ma > mb else (mb, l_b)
        ar = ar.expand(m, 1) if ma == 1 else ar
        br = br.expand(m, 1) if mb == 1 else br
        return m, ll, ar, br
    return ma, l_a, ar, br


def _blocks(m: int, ll: int):
    """Row/column slices of an (M, L) matrix into contiguous blocks of about BLOCK elements."""
    rb = max(1, BLOCK // ll)
    cb = min(ll, BLOCK)
    for r0 in range(0, m, rb):
        rs = slice(r0, min(m, r0 + rb))
        for c0 in range(0, ll, cb):
            yield rs, slice(c0, min(ll, c0 + cb))


def _param_block(p: Tensor, rs: slice) -> Tensor:
    return p if p.dim() == 0 else p[rs]


def _forward_blocked(x: Tensor, a: Tensor, b: Tensor, layout) -> Tensor:
    m, ll, ar, br = layout
    work = compute_dtype(x.dtype)
    ar, br = ar.to(work), br.to(work)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    x2, o2 = x.view(m, ll), out.view(m, ll)
    k_max = min(BLOCK, m * ll)  # the largest block (see _blocks)
    buf = torch.empty(3 * k_max, dtype=work)
    for rs, cs in _blocks(m, ll):
        xb, ob = x2[rs, cs], o2[rs, cs]
        shape, k = xb.shape, xb.numel()
        w1 = buf[:k].view(shape) if ob.dtype != work else ob
        w2 = buf[k : 2 * k].view(shape)
        if xb.dtype != work:
            xb = buf[2 * k : 3 * k].view(shape).copy_(xb)
        a_b, b_b = _param_block(ar, rs), _param_block(br, rs)
        torch.clamp(xb, min=0, out=w1)  # p = max(x, 0)
        torch.mul(w1, K, out=w2)
        torch.nn.functional.silu(w2, inplace=True)  # kp·σ(kp)
        w1.add_(w2, alpha=1.0 / K).mul_(a_b)  # a·p·(1 + σ(kp)); 0 on x < 0
        torch.clamp(xb, max=0, out=w2)  # min(x, 0)
        w2.expm1_()
        w1.addcmul_(w2, b_b)  # + b·expm1(min(x, 0)); 0 on x >= 0
        if w1 is not ob:
            ob.copy_(w1)
    return out


def _backward_blocked(
    grad: Tensor, x: Tensor, a: Tensor, b: Tensor, need: tuple[bool, bool, bool], layout
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    m, ll, ar, br = layout
    work = compute_dtype(x.dtype)
    ar, br = ar.to(work), br.to(work)
    x2 = x.view(m, ll)
    try:
        g2 = grad.view(m, ll)
    except RuntimeError:
        g2 = grad.reshape(m, ll)
    gx = torch.empty_like(x, memory_format=torch.contiguous_format) if need[0] else None
    gx2 = gx.view(m, ll) if need[0] else None
    acc_a = torch.zeros(m, dtype=work) if need[1] else None
    acc_b = torch.zeros(m, dtype=work) if need[2] else None
    per_row = m > 1
    k_max = min(BLOCK, m * ll)  # the largest block (see _blocks)
    buf = torch.empty(6 * k_max, dtype=work)
    mask_buf = torch.empty(k_max, dtype=torch.bool)
    for rs, cs in _blocks(m, ll):
        xb, gb = x2[rs, cs], g2[rs, cs]
        shape, k = xb.shape, xb.numel()
        w = [buf[i * k : (i + 1) * k].view(shape) for i in range(6)]
        if xb.dtype != work:
            xb = w[4].copy_(xb)
        if gb.dtype != work:
            gb = w[5].copy_(gb)
        a_b, b_b = _param_block(ar, rs), _param_block(br, rs)
        w1, w2, w3 = w[0], w[1], w[2]
        torch.clamp(xb, min=0, out=w1)  # p
        torch.mul(w1, K, out=w2)  # kp
        if need[0]:
            gxb = gx2[rs, cs]
            pos = mask_buf[:k].view(shape)
            torch.ge(xb, 0, out=pos)
            # g·d/dp[p·σ(kp)] = silu'(kp)·g; positive branch: a·g·(1 + silu'(kp))
            torch.ops.aten.silu_backward.grad_input(gb, w2, grad_input=w3)
            w3.add_(gb).mul_(a_b)
        if need[1]:
            torch.nn.functional.silu(w2, inplace=True)
            w1.add_(w2, alpha=1.0 / K)  # p·(1 + σ(kp)); 0 on x < 0
            _accumulate(acc_a, rs, w1, gb, per_row)
        torch.clamp(xb, max=0, out=w2)  # n = min(x, 0)
        if need[2]:
            torch.expm1(w2, out=w1)  # expm1(n); 0 on x >= 0
            _accumulate(acc_b, rs, w1, gb, per_row)
        if need[0]:
            w2.exp_().mul_(gb).mul_(b_b)  # negative branch: b·eⁿ·g
            if gxb.dtype == work:
                torch.where(pos, w3, w2, out=gxb)
            else:
                gxb.copy_(torch.where(pos, w3, w2, out=w1))
    grad_a = grad_b = None
    if need[1]:
        grad_a = _reduce_rows(acc_a, a)
    if need[2]:
        grad_b = _reduce_rows(acc_b, b)
    return gx, grad_a, grad_b


def _accumulate(acc: Tensor, rs: slice, h: Tensor, g: Tensor, per_row: bool) -> None:
    """acc += Σ h·g over each row of the block (one pass, no product tensor)."""
    if not per_row:
        if h.is_contiguous() and g.is_contiguous():
            acc.add_(torch.dot(h.view(-1), g.view(-1)))
        else:
            acc.add_(torch.mul(h, g).sum())
    else:
        acc[rs].add_(torch.bmm(h.unsqueeze(1), g.unsqueeze(2)).view(-1))


def _reduce_rows(acc: Tensor, p: Tensor) -> Tensor:
    """Per-row sums -> the gradient of ``p`` (its own shape)."""
    if p.numel() == 1:
        return acc.sum().reshape(p.shape)
    return acc.view(-1, p.numel()).sum(dim=0).reshape(p.shape)


class _APALUFunction(torch.autograd.Function):
    """Saves only (x, a, b); recomputes the branches in backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        work = compute_dtype(x.dtype)
        if torch.compiler.is_compiling():
            return _forward_fused(x.to(work), a.to(work), b.to(work)).to(x.dtype)
        if _plain_cpu(x, a, b):
            layout = _blocked_layout(x, a, b)
            if layout is not None:
                return _forward_blocked(x, a, b, layout)
        out = _forward_math(x.to(work), a.to(work), b.to(work))
        return out.to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, a, b = inputs
        ctx.save_for_backward(x, a, b)
        # decided here: the backward of a compiled graph is traced where is_compiling() is False
        ctx.fused = torch.compiler.is_compiling()

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, a, b = ctx.saved_tensors
        work = compute_dtype(x.dtype)
        need = tuple(ctx.needs_input_grad)
        gx = ga = gb = None
        if ctx.fused or torch.compiler.is_compiling():
            gx, ga, gb = _backward_fused(grad.to(work), x.to(work), a.to(work), b.to(work), need)
            need = (False, False, False)
        elif not torch.is_grad_enabled() and _plain_cpu(grad, x, a, b):
            # (with create_graph the differentiable _backward_math below is used)
            layout = _blocked_layout(x, a, b)
            if layout is not None:
                gx, ga, gb = _backward_blocked(grad, x, a, b, need, layout)
                need = (False, False, False)
        if any(need):
            gx, ga, gb = _backward_math(grad.to(work), x.to(work), a.to(work), b.to(work), need)
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


_COMPILED = None  # the torch.compile'd apalu, built on first use


def apalu_compiled(x: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    """:func:`apalu` through ``torch.compile(fullgraph=True)``: one fused kernel per direction.

    The compiled graph uses the single-exp form with the accurate small-|x| expm1 (see
    :func:`_expm1_fused`). Compilation happens on the first call for each new input signature
    (seconds on a CPU); if ``torch.compile`` is unavailable or fails, it warns once and falls
    back to the eager :func:`apalu`. ``torch.compile(model)`` on a model that contains
    :class:`apalu.APALU` layers gives the same kernels with no graph break.
    """
    global _COMPILED
    if _COMPILED is None:
        try:
            _COMPILED = torch.compile(apalu, fullgraph=True)
        except Exception as err:  # pragma: no cover - platform without a working compiler
            warnings.warn(f"torch.compile unavailable ({err}); APALU runs eagerly", stacklevel=2)
            _COMPILED = apalu
    if _COMPILED is apalu:
        return apalu(x, a, b)
    try:
        return _COMPILED(x, a, b)
    except Exception as err:  # pragma: no cover - e.g. no C++ compiler for inductor
        if isinstance(err, (TypeError, ValueError)):
            raise  # the caller's mistake, not the compiler's
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); APALU runs eagerly",
                      stacklevel=2)
        _COMPILED = apalu
        return apalu(x, a, b)
