r"""Functional APALU: ``f(x) = a·(x + x·σ(kx))`` for ``x ≥ 0`` and ``b·(eˣ − 1)`` for ``x < 0``.

``k = 1.702`` (the sigmoid approximation of GELU). ``a`` and ``b`` are the *effective*
(positive) parameters; the module :class:`apalu.APALU` maps its raw parameters to them.

The implementations are backends (:data:`BACKENDS`), each a forward/backward pair on effective
parameters, and one function chooses between them per call (:func:`choose_backend`; see
:func:`describe_backends`):

* ``reference`` — plain autograd on the safe formulas below: any dtype and device, ``torch.func``,
  double backward, ``torch.export``/ONNX (standard ops only); the test oracle.
* ``aten`` — a few fused ATen kernels with in-place updates, saving only ``x``, ``a``, ``b``
  (float64, half types, GPUs without Triton, ``APALU_CPU_KERNEL=0``).
* ``kernel`` — the C++ operator ``apalu::apalu`` of :mod:`apalu._ext` on a CPU in float32: one
  pass over memory per direction, its autograd in C++; :func:`apalu_raw` (the module) also
  hands it the raw parameters, so a layer's call is one operator call, softplus included.
* ``compiled`` / ``compiled-kernel`` — inside ``torch.compile``: the single-exp form fused by
  inductor, or the C++ kernel as opaque custom ops.
* ``triton`` — CUDA tensors, when ``apalu.triton_kernel`` is available (imported lazily).

Public entry points: :func:`apalu` (chosen backend), :func:`apalu_without_kernel` (the same with
the C++ kernel off), :func:`apalu_reference`, :func:`apalu_compiled` (``torch.compile``) and
:func:`apalu_raw` (a module's raw parameters). With ``create_graph`` every backward is the
reference's, written in differentiable ops.

Numerics: each branch is evaluated on an input clamped to its own half-line
(``max(x, 0)`` and ``min(x, 0)``), so the branch not taken never produces ``inf`` and can not put
NaN into a gradient (the ``torch.where`` trap). ``expm1`` keeps the relative accuracy of the
negative branch near ``0⁻``; ``1 − σ(kx)`` is computed as ``σ(−kx)``. The positive branch is
scaled before it is summed, ``(a·x)·(1 + σ(kx))`` (and ``(g·x)·(1 + σ)`` for the gradient of
``a``): ``x + x·σ`` overflows for x ≳ 1.7e38 in float32 although ``a·(x + x·σ)`` fits for
``a < 0.5``. Where ``kx`` itself could overflow (``σ``'s argument, ``kx·σ(−kx)``, SiLU of ``kx``)
``x`` is first capped at :data:`SATURATE`, beyond which those terms are exact constants. Half-
precision inputs are computed in float32 and returned in their own dtype.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from . import _ext

K = 1.702  # GELU's sigmoid-approximation slope: GELU(x) ≈ x·σ(1.702x)
# Beyond this x, σ(kx) is exactly 1 and kx·σ(−kx), x·σ(−kx) are exactly 0 in float32 and float64
# (e^-17020 underflows), so capping x here changes no value; it keeps kx (which overflows float32
# for x > 2e38) and inf·0 out of the sigmoid/SiLU terms.
SATURATE = 1e4

__all__ = [
    "BACKENDS", "K", "apalu", "apalu_compiled", "apalu_raw", "apalu_reference",
    "apalu_without_kernel", "choose_backend", "compute_dtype", "describe_backends", "expand_param",
]


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
    # σ of the capped x: the same value, and autograd's σ' path (g·a·x·σ(1−σ)) never meets inf·0
    s = torch.sigmoid(K * xp.clamp(max=SATURATE))
    # elu(x) is expm1(x) on x <= 0 with autograd's derivative exp(x); expm1's is expm1(x) + 1,
    # which is 0 in float32 for x < -17 (b·g·eˣ lost entirely)
    return torch.where(pos, (a * xp) * (1 + s), b * torch.nn.functional.elu(xn))


def _backward_math(
    grad: Tensor, x: Tensor, a: Tensor, b: Tensor, need: tuple[bool, bool, bool]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Gradients for (x, a, b), in differentiable ops so that double backward works."""
    pos, xp, xn = _branches(x)
    xc = xp.clamp(max=SATURATE)
    s = torch.sigmoid(K * xc)
    grad_x = grad_a = grad_b = None
    if need[0]:
        # d/dx [x + x·σ(kx)] = 1 + σ(kx) + kx·σ(kx)·σ(−kx); σ(−kx) avoids 1 − σ cancellation.
        dpos = a * (1 + s + K * xc * s * torch.sigmoid(-K * xc))
        grad_x = grad * torch.where(pos, dpos, b * torch.exp(xn))
    if need[1]:
        grad_a = torch.where(pos, (grad * xp) * (1 + s), torch.zeros_like(grad))
        grad_a = grad_a.sum_to_size(a.shape)
    if need[2]:
        grad_b = torch.where(pos, torch.zeros_like(grad), grad * torch.expm1(xn))
        grad_b = grad_b.sum_to_size(b.shape)
    return grad_x, grad_a, grad_b


# ---------------------------------------------------------------------------------------------
# Fast paths (same function, same saved tensors; chosen per call, see _APALUFunction).
# ---------------------------------------------------------------------------------------------
#
# CPU float32: the C++ kernel of apalu._ext (csrc/apalu_cpu.cpp), directly when eager and as a
# custom op under torch.compile. What follows is the path without it (float64, CUDA, no
# compiler, apalu_without_kernel).
#
# Eager CPU: elementwise code in eager PyTorch is dominated by its passes over memory and its
# temporaries. A fresh input-sized tensor is a new mmap and one page fault per 4 KiB on first
# touch (glibc returns big blocks to the OS on free), which costs more than the arithmetic.
# The eager fast path therefore uses few fused ATen kernels (elu with its scale arguments,
# silu, silu_backward, elu_backward) and in-place updates: forward 4 passes and one scratch
# tensor, backward one scratch tensor and a bool mask besides the gradient.
#
# Compiled (torch.compile / inductor): one fused kernel per direction from a single exp
# (see _forward_fused). Inductor's vectorised CPU expm1 is exp(x) - 1, which loses all
# relative accuracy near 0⁻; _expm1_fused replaces it by a polynomial there.

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
    # (a·x) first: x·(1 + σ) overflows for x > 1.7e38 where a·x·(1 + σ) may fit
    return torch.where(pos, (a * x) * (1 + 1 / (1 + e)), b * _expm1_fused(t, e))


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
        kx = K * x.clamp(max=SATURATE)
        grad_x = grad * torch.where(pos, a * (1 + s + kx * e * s * s), b * e)
    if need[1]:
        grad_a = torch.where(pos, (grad * x) * (1 + s), 0.0).sum_to_size(a.shape)
    if need[2]:
        grad_b = torch.where(pos, 0.0, grad * _expm1_fused(t, e)).sum_to_size(b.shape)
    return grad_x, grad_a, grad_b


def _eager_scalars(x: Tensor, a: Tensor, b: Tensor) -> tuple[float, float] | None:
    """(a, b) as Python floats when both are one-element, else None (per-channel)."""
    if a.numel() == 1 and b.numel() == 1:
        try:
            return float(a), float(b)
        except RuntimeError:  # a tracer (make_fx) that can not read values: tensor arithmetic
            return None
    return None


_TINY = {torch.float32: 2.0**-149, torch.float64: 2.0**-1074}  # smallest subnormals


def _kcap(x: Tensor, sign: float = 1.0) -> Tensor:
    """±k·min(max(x, 0), SATURATE) into the scratch tensor: the SiLU argument, finite for every x
    (k·x overflows float32 for x > 2e38; SiLU and its slope are exact constants past the cap).
    ``aten.elu(x, 0, k)`` would evaluate exp on x < 0."""
    return torch.clamp(x, min=0, max=SATURATE).mul_(sign * K)


def _forward_eager(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Forward in a few fused ATen kernels with in-place updates (eager CPU/GPU).

    ``x·(1 + σ(kx)) = 2x − x·σ(−kx)`` on x >= 0, where ``x·σ(−kx) = −silu(−kx)/k`` is at most
    x/2 (no cancellation; the result is at least 1.5x) and exactly 0 past :data:`SATURATE`, so
    its argument can be capped: nothing overflows unless the result does (the earlier
    ``a·x + (a/k)·silu(kx)`` turned kx into inf for x > 2e38).
    ``aten.elu(x, α, scale)`` is ``scale·x`` on x > 0 and ``α·scale·expm1(x)`` on x <= 0: with
    α = b/2a, scale = 2a it gives both linear parts at once. Scalar a, b: 5 passes, 2
    input-sized allocations (the result and one temporary).
    """
    ab = _eager_scalars(x, a, b)
    if ab is not None and ab[0] != 0.0:
        af, bf = ab
        p = _kcap(x, -1.0)  # −k·x⁺ (capped)
        y = torch.ops.aten.elu(x, bf / (2 * af), 2 * af, 1.0)  # 2a·x on x > 0, b·expm1(x) on x <= 0
        torch.nn.functional.silu(p, inplace=True)  # −kx·σ(−kx) on x >= 0, 0 elsewhere
        return y.add_(p, alpha=af / K)
    # per-channel: b·expm1(min(x, 0)) + 2a·x⁺ + (a/k)·silu(−kx⁺), no cancellation between a and b
    y = torch.clamp(x, max=0).expm1_().mul_(b)
    p = torch.clamp(x, min=0)
    y.addcmul_(p, a + a)  # p·(2a): 1·p is exact, so only the product can overflow
    p.clamp_(max=SATURATE).mul_(-K)
    torch.nn.functional.silu(p, inplace=True)
    return y.addcmul_(p, a / K)


def _has_zeros(x: Tensor) -> bool:
    """Whether x holds an exact ±0 (True when a tracer can not read the count)."""
    try:
        return torch.count_nonzero(x).item() < x.numel()
    except RuntimeError:
        return True


def _dot(h: Tensor, g: Tensor, p: Tensor, scratch: Tensor | None = None) -> Tensor:
    """Σ h·g reduced to the shape of ``p``: a dot product for a one-element ``p``, else the
    product (written into ``scratch``, or into ``h`` when no scratch is given) summed."""
    if p.numel() == 1 and h.is_contiguous() and g.is_contiguous():
        return torch.dot(h.view(-1), g.view(-1)).reshape(p.shape)
    prod = torch.mul(h, g, out=scratch) if scratch is not None else h.mul_(g)
    total = prod.sum_to_size(p.shape)
    # sum_to_size returns the tensor itself when there is nothing to sum: the buffer is reused
    return total.clone() if total.data_ptr() == prod.data_ptr() else total


def _backward_eager(
    grad: Tensor, x: Tensor, a: Tensor, b: Tensor, need: tuple[bool, bool, bool]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Backward in fused ATen kernels: ``silu_backward`` gives the positive-branch slope,
    ``elu_backward`` the negative one (b·eˣ, exact), one ``where`` joins them at x >= 0.
    Σ g·(x + x·σ(kx)) for a is 2·Σ g·x⁺ + Σ g·silu(−kx⁺)/k (see _forward_eager; kx⁺ capped):
    two dot products, no product tensor for scalar a and b."""
    ab = _eager_scalars(x, a, b)
    g = grad
    gx = ga = gb = None
    if need[0] or need[1]:
        gx = torch.empty_like(x)
    if need[1]:
        kp = torch.clamp(x, min=0)  # x⁺, uncapped
        ga = _dot(kp, g, a, scratch=gx)
        kp.clamp_(max=SATURATE).mul_(K)
    else:
        kp = _kcap(x)  # k·x⁺, capped: silu'(kx) is exactly 1 past the cap
    if need[0]:
        torch.ops.aten.silu_backward.grad_input(g, kp, grad_input=gx)  # g·silu'(kx⁺)
    if need[1]:
        torch.nn.functional.silu(kp.neg_(), inplace=True)  # −kx·σ(−kx) on x >= 0, else 0
        ga = 2 * ga + _dot(kp, g, a) / K
    if need[0] and ab is not None and ab[0] != 0.0:
        af, bf = ab
        gx.add_(g)  # G = g·(1 + silu'(kx⁺)): the positive slope over a; exactly 1.5·g on x < 0
        # elu_backward is G·a on x > 0 and G·(b/1.5a)·a·eˣ = b·g·eˣ on x <= 0: both branches in
        # one pass. Only x == 0 (±0.0) lands on the wrong side; fixed below when present.
        torch.ops.aten.elu_backward.grad_input(gx, bf / (1.5 * af), af, 1.0, False, x, grad_input=gx)
        if _has_zeros(x):  # one read; exact zeros are rare
            zero = x == 0
            torch.where(zero, g * (1.5 * af), gx, out=gx)
    elif need[0]:
        aten = torch.ops.aten
        af, bf = ab if ab is not None else (a, 1.0)
        gx.add_(g)  # g·(1 + silu'(kx)): the positive branch over a
        # zero it on x < 0 (x <= -tiny; x = -0.0 stays on the positive side, as x >= 0 does)
        aten.threshold_backward.grad_input(gx, x, -_TINY[x.dtype], grad_input=gx)
        neg = aten.elu_backward.grad_input(g, bf, 1.0, 1.0, False, x, grad_input=kp)  # b·g·eˣ, x <= 0
        aten.hardtanh_backward.grad_input(neg, x, -math.inf, 0.0, grad_input=neg)  # 0 on x >= 0
        if ab is None:
            gx.mul_(a).add_(neg.mul_(b))
        else:
            gx.mul_(af).add_(neg)
    else:
        gx = None
    if need[2]:
        n = torch.clamp(x, max=0, out=kp).expm1_()  # expm1(min(x, 0)): 0 on x >= 0
        gb = _dot(n, g, b)
    return gx, ga, gb


def _kernel_layout(x: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, int] | None:
    """(a, b) flattened and the run length ``inner`` of one channel when the compiled CPU kernel
    can take this layout: scalar, or one value per channel of one dimension of ``x``. None
    otherwise (then the ATen or inductor path runs)."""
    if a.numel() == 1 and b.numel() == 1:
        return a.reshape(1), b.reshape(1), 1
    if a.shape != b.shape or a.dim() > x.dim():
        return None
    shape = [1] * (x.dim() - a.dim()) + list(a.shape)
    dims = [d for d, n in enumerate(shape) if n != 1]
    if not dims:
        inner = 1
    elif len(dims) == 1 and shape[dims[0]] == x.shape[dims[0]]:
        inner = math.prod(x.shape[dims[0] + 1:])
    else:
        return None
    return a.reshape(-1).contiguous(), b.reshape(-1).contiguous(), inner


# ---------------------------------------------------------------------------------------------
# Backends: one forward/backward pair each; choose_backend below is the only policy.
# ---------------------------------------------------------------------------------------------


def _forward_compiled_kernel(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    fa, fb, inner = _kernel_layout(x, a, b)
    return torch.ops.apalu.forward_cpu(x.contiguous(), fa, fb, K, inner)


def _backward_compiled_kernel(
    grad: Tensor, x: Tensor, a: Tensor, b: Tensor, need: tuple[bool, bool, bool]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    fa, fb, inner = _kernel_layout(x, a, b)
    gx, ga, gb = torch.ops.apalu.backward_cpu(grad.contiguous(), x.contiguous(), fa, fb, K, inner,
                                              need[0])
    return (gx if need[0] else None), ga.view(a.shape), gb.view(b.shape)


def _forward_kernel(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """The C++ operator ``apalu::apalu``: its autograd is C++ (no Python in either direction)."""
    fa, fb, inner = _kernel_layout(x, a, b)
    return torch.ops.apalu.apalu(x, fa, fb, K, inner, False, 0.0)


def _backward_kernel(
    grad: Tensor, x: Tensor, a: Tensor, b: Tensor, need: tuple[bool, bool, bool]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    fa, fb, inner = _kernel_layout(x, a, b)
    gx, ga, gb = torch.ops.apalu.apalu_backward(grad, x, fa, fb, K, inner, False, 0.0, need[0],
                                                need[1] or need[2])
    return ((gx if need[0] else None), ga.view(a.shape) if need[1] else None,
            gb.view(b.shape) if need[2] else None)


def _triton():
    """apalu.triton_kernel, imported on first use on a GPU only (it imports triton)."""
    from . import triton_kernel

    return triton_kernel


def _forward_triton(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return _triton().forward(x, a, b)


def _backward_triton(
    grad: Tensor, x: Tensor, a: Tensor, b: Tensor, need: tuple[bool, bool, bool]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    gx, ga, gb = _triton().backward(grad, x, a, b)
    return (gx if need[0] else None, ga.sum_to_size(a.shape) if need[1] else None,
            gb.sum_to_size(b.shape) if need[2] else None)


@dataclass(frozen=True)
class Backend:
    """One implementation of APALU: ``forward(x, a, b) -> y`` and ``backward(grad, x, a, b,
    need) -> (grad x, grad a, grad b)`` (``None`` where ``need`` is False) on effective
    parameters already shaped to broadcast against ``x``."""

    name: str
    forward: Callable[[Tensor, Tensor, Tensor], Tensor]
    backward: Callable[..., tuple[Tensor | None, Tensor | None, Tensor | None]]
    description: str


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("reference", _forward_math, _backward_math,
                "plain autograd on the safe formulas; any dtype and device, torch.func, export; "
                "the test oracle (saves several tensors per call)"),
        Backend("aten", _forward_eager, _backward_eager,
                "a few fused ATen kernels eagerly (CPU float64, GPU without Triton, "
                f"{_ext.ENV_SWITCH}=0); saves only x, a, b"),
        Backend("kernel", _forward_kernel, _backward_kernel,
                "the C++ operator apalu::apalu (CPU float32): one pass per direction, autograd "
                "in C++, softplus of the module's raw parameters inside"),
        Backend("compiled", _forward_fused, _backward_fused,
                "inside torch.compile: the single-exp form, fused by inductor"),
        Backend("compiled-kernel", _forward_compiled_kernel, _backward_compiled_kernel,
                "inside torch.compile on CPU float32: the C++ kernel as opaque custom ops"),
        Backend("triton", _forward_triton, _backward_triton,
                "CUDA: the Triton kernel of apalu.triton_kernel, when it is available"),
    )
}


_TRITON: dict[str, bool] = {}


def _triton_available(with_backward: bool) -> bool:
    """Whether apalu.triton_kernel imports and says it can run (asked once per process), and
    has a backward when gradients are needed."""
    if "ok" not in _TRITON:
        try:
            module = _triton()
            _TRITON["ok"] = bool(module.available())
            _TRITON["backward"] = callable(getattr(module, "backward", None))
        except Exception:  # not installed, no GPU driver, module absent: ATen instead
            _TRITON["ok"] = False
    return _TRITON["ok"] and (not with_backward or _TRITON.get("backward", False))


_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _triton_takes(x: Tensor, a: Tensor, b: Tensor) -> bool:
    """The Triton kernel's layouts: one value each, or one per channel of dim 1 (dim 0 of a 1-D
    x), as expand_param shapes them."""
    if a.numel() == 1 and b.numel() == 1:
        return True
    if a.shape != b.shape:
        return False
    cd = 1 if x.dim() >= 2 else 0
    at = cd - x.dim() + a.dim()  # x's channel dim in a's shape, broadcast from the right
    return x.dim() >= 1 and at >= 0 and a.numel() == x.shape[cd] == a.shape[at]


def _kernel_enabled(env: Mapping[str, str] | None) -> bool:
    if env is not None and env.get(_ext.ENV_SWITCH, "1") == "0":
        return False
    return _ext.loaded()


def _kernel_takes(x: Tensor, a: Tensor, b: Tensor) -> bool:
    """Whether the kernel's layouts cover (a, b): one value each, a module's raw 1-D parameters
    (prelu's channel rule, checked in C++), or one channel dimension of ``x``."""
    if a.numel() == 1 and b.numel() == 1:
        return True
    if a.dim() == 1 and b.dim() == 1 and a.numel() == b.numel():
        return True
    return _kernel_layout(x, a, b) is not None


def exporting() -> bool:
    """Whether a graph is being captured for deployment: torch.export (also under the dynamo
    ONNX exporter) or a TorchScript trace (the TorchScript ONNX exporter)."""
    return torch.compiler.is_exporting() or torch._C._get_tracing_state() is not None


_FLOAT32 = torch.float32
_PLAIN = (Tensor, torch.nn.Parameter)


def choose_backend(
    x: Tensor,
    a: Tensor,
    b: Tensor,
    *,
    requires_grad: bool,
    compiled: bool,
    env: Mapping[str, str] | None = None,
    exporting: bool = False,
    device_type: str | None = None,
) -> str:
    """The name of the :data:`BACKENDS` entry that computes ``apalu(x, a, b)``.

    The only policy in this module. ``a``, ``b`` as passed to the backend (effective values
    shaped against ``x``, or the module's raw 1-D parameters). ``requires_grad``: whether
    autograd records the call (torch.func transforms then need the reference, whose ops they
    know). ``compiled``: inside ``torch.compile``. ``env``: environment overrides (``{"APALU_CPU_
    KERNEL": "0"}`` switches the C++ kernel off; ``os.environ`` is always consulted too).
    ``exporting``: capturing for deployment (standard ops only). ``device_type``: overrides
    ``x.device.type`` (to test the GPU choice on a CPU).
    """
    if exporting:
        return "reference"  # standard ATen ops: torch.export and the ONNX exporters know them
    device = device_type or ("cpu" if x.is_cpu else x.device.type)
    kernel_dtype = x.dtype is _FLOAT32 and a.dtype is _FLOAT32 and b.dtype is _FLOAT32
    if compiled:
        if device == "cpu" and kernel_dtype and _kernel_enabled(env) and _kernel_takes(x, a, b):
            return "compiled-kernel"
        return "compiled"
    if type(x) not in _PLAIN or torch._C._functorch.is_functorch_wrapped_tensor(x):
        return "reference"  # torch.func transforms, tracers and subclasses know its ATen ops
    if device == "cuda":
        if x.dtype in _TRITON_DTYPES and _triton_takes(x, a, b):
            return "triton" if _triton_available(with_backward=requires_grad) else "aten"
        return "aten"
    if device != "cpu":
        return "reference"
    if kernel_dtype and _kernel_enabled(env) and _kernel_takes(x, a, b):
        return "kernel"
    return "aten"


def describe_backends() -> str:
    """A few lines for reports: each backend, what it is, and which one a CPU float32 call and
    a float64 call take here."""
    x32, x64 = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64)
    one32, one64 = torch.ones(1), torch.ones(1, dtype=torch.float64)
    lines = [f"{b.name:16s} {b.description}" for b in BACKENDS.values()]
    lines.append(f"here: CPU float32 -> {choose_backend(x32, one32, one32, requires_grad=True, compiled=False)}, "
                 f"CPU float64 -> {choose_backend(x64, one64, one64, requires_grad=True, compiled=False)} "
                 f"({_ext.status()})")
    return "\n".join(lines)


class _APALUFunction(torch.autograd.Function):
    """The Python-side backends under autograd: saves only (x, a, b), recomputes the rest.

    ``backend`` names the pair that runs both directions. A backward that is itself recorded
    (``create_graph=True``) runs the reference backward, written in differentiable ops, so
    double backward and ``torch.func`` work; inside a compiled graph the compiled pair's
    backward is traced as it is."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, a: Tensor, b: Tensor, backend: str) -> Tensor:
        work = compute_dtype(x.dtype)
        if work is x.dtype:
            return BACKENDS[backend].forward(x, a.to(work), b.to(work))
        return BACKENDS[backend].forward(x.to(work), a.to(work), b.to(work)).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, a, b, backend = inputs
        ctx.save_for_backward(x, a, b)
        ctx.backend = backend

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, a, b = ctx.saved_tensors
        work = compute_dtype(x.dtype)
        need = tuple(ctx.needs_input_grad[:3])  # (x, a, b); the backend name is not a tensor
        name = ctx.backend
        if torch.is_grad_enabled() and not name.startswith("compiled"):
            name = "reference"
        gx, ga, gb = BACKENDS[name].backward(grad.to(work), x.to(work), a.to(work), b.to(work),
                                             need)
        return (
            None if gx is None else gx.to(x.dtype),
            None if ga is None else ga.to(a.dtype),
            None if gb is None else gb.to(b.dtype),
            None,
        )


def _run(name: str, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``apalu`` on effective parameters shaped against ``x``, by the backend ``name``."""
    if name == "kernel":
        return _forward_kernel(x, a, b)  # autograd in C++
    if name == "reference":
        work = compute_dtype(x.dtype)
        return _forward_math(x.to(work), a.to(work), b.to(work)).to(x.dtype)
    return _APALUFunction.apply(x, a, b, name)


def _records(*ts: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


def _prepare(x: Tensor, a: Tensor | float, b: Tensor | float) -> tuple[Tensor, Tensor]:
    if not x.is_floating_point():
        raise TypeError(f"APALU needs a floating-point input, got {x.dtype}")
    return expand_param(a, x), expand_param(b, x)


def _apalu(x: Tensor, a: Tensor | float, b: Tensor | float, env: Mapping[str, str] | None) -> Tensor:
    a_, b_ = _prepare(x, a, b)
    name = choose_backend(x, a_, b_, requires_grad=_records(x, a_, b_),
                          compiled=torch.compiler.is_compiling(), env=env, exporting=exporting())
    return _run(name, x, a_, b_)


def apalu(x: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    r"""APALU on effective parameters, with a lean backward.

    .. math::
        f(x) = \begin{cases} a\,(x + x\,\sigma(k\,x)) & x \ge 0 \\
                             b\,(e^{x} - 1) & x < 0 \end{cases} \qquad k = 1.702

    The backend is chosen per call by :func:`choose_backend` (the C++ kernel on a CPU in
    float32, ATen elsewhere, the fused form under ``torch.compile``, standard ops when
    exporting); all compute the same function.

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
    return _apalu(x, a, b, None)


_NO_KERNEL = {_ext.ENV_SWITCH: "0"}


def apalu_without_kernel(x: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    """:func:`apalu` without the compiled CPU kernel: the ATen path eagerly, the inductor-generated
    kernel under ``torch.compile``. The same function and the same saved tensors; for comparison
    and for machines where the kernel can not be built."""
    return _apalu(x, a, b, _NO_KERNEL)


def apalu_reference(x: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    """The same function through plain autograd (saves every intermediate; the test oracle)."""
    a_, b_ = _prepare(x, a, b)
    return _run("reference", x, a_, b_)


def apalu_raw(x: Tensor, a_raw: Tensor, b_raw: Tensor, *, softplus: bool, floor: float) -> Tensor:
    """APALU on a module's raw 1-D parameters: ``a = softplus(a_raw) + floor`` when ``softplus``,
    else ``a = a_raw`` (and the same for b).

    On the C++ kernel this is one operator call: the softplus is applied inside it and its
    gradient chained there, so a module's forward and backward never pass through Python.
    Eagerly, on plain CPU float32 tensors, the operator is called from C++ through the
    extension's eager entry (:func:`apalu._ext.eager_entry`), without the ``torch.ops`` wrapper
    and :func:`choose_backend`; everything else (other dtypes and devices, ``torch.compile``,
    ``torch.export``, ``torch.func``, traces, ``APALU_CPU_KERNEL=0``) takes the general path.
    """
    # The eager entry: the kernel's operator called from C++ (no torch.ops wrapper, no
    # choose_backend); it answers None for anything but plain CPU float32 tensors outside
    # transforms and traces. torch.compile and torch.export are asked first, here.
    eager = _ext.eager_entry()
    if (eager is not None and not torch.compiler.is_compiling()
            and not torch.compiler.is_exporting() and type(x) is Tensor):
        y = eager(x, a_raw, b_raw, K, softplus, floor)
        if y is not None:
            return y
    if not x.is_floating_point():
        raise TypeError(f"APALU needs a floating-point input, got {x.dtype}")
    compiling = torch.compiler.is_compiling()
    if not compiling and choose_backend(
        x, a_raw, b_raw, requires_grad=True, compiled=False, exporting=exporting()
    ) == "kernel":
        return torch.ops.apalu.apalu(x, a_raw, b_raw, K, -1, softplus, floor)
    if softplus:
        a_raw = torch.nn.functional.softplus(a_raw) + floor
        b_raw = torch.nn.functional.softplus(b_raw) + floor
    return apalu(x, a_raw, b_raw)


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
