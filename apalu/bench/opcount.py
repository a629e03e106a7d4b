"""Operations per element, counted in the ATen graph, and the bytes an elementwise op must move."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import functional as AF
from ..functional import apalu_reference, apalu_without_kernel

__all__ = ["bytes_bound", "count_ops", "flop_table"]

# Elementwise cost model on the aten graph: one arithmetic op per element for each of these ...
_ARITH = {
    "add", "sub", "mul", "div", "neg", "where", "clamp", "clamp_min", "clamp_max", "maximum",
    "minimum", "ge", "gt", "le", "lt", "eq", "ne", "relu", "abs", "sign", "reciprocal", "sum",
    "addcmul", "pow", "square", "rsub", "bitwise_not", "logical_not", "masked_fill", "fill",
    "bitwise_or", "bitwise_and", "logical_or", "logical_and",
}
# ... and one transcendental (plus the arithmetic noted) for these:
_TRANS = {"exp": 0, "expm1": 0, "log": 0, "log1p": 0, "erf": 0, "tanh": 0, "sigmoid": 2}
# Not work: memory layout, allocation and copies.
_FREE = {
    "alias", "view", "_unsafe_view", "reshape", "slice", "select", "empty", "full", "zeros",
    "ones", "scalar_tensor", "detach", "expand", "copy", "clone", "_to_copy", "t", "permute",
    "unsqueeze", "squeeze", "zeros_like", "ones_like", "full_like", "empty_like", "lift_fresh_copy",
    "sum_to_size", "as_strided", "new_empty", "new_zeros", "new_full",
}


def _op_name(target) -> str:
    name = str(target).split(".")[1] if str(target).startswith("aten.") else str(target)
    return name.rstrip("_")


def count_ops(fn: Callable, args: tuple, numel: int) -> dict:
    """Elementwise operations per element in the aten graph of ``fn(*args)`` (traced with
    ``make_fx``; composite activations and their backwards decomposed into primitives).

    An op counts when its output (or, for a reduction, its input) has ``numel`` elements."""
    from torch._decomp import get_decompositions
    from torch.fx.experimental.proxy_tensor import make_fx

    aten = torch.ops.aten
    table = get_decompositions([
        aten.gelu, aten.gelu_backward, aten.elu, aten.elu_backward, aten.silu, aten.silu_backward,
        aten.leaky_relu, aten.leaky_relu_backward, aten._prelu_kernel, aten._prelu_kernel_backward,
        aten.threshold_backward, aten.sigmoid_backward, aten.tanh_backward, aten.silu_,
        aten.addcmul, aten.addcmul_, aten.hardtanh_backward,
    ])
    gm = make_fx(fn, decomposition_table=table)(*args)
    arith = trans = 0
    unknown = set()
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        val = node.meta.get("val")
        n_out = val.numel() if isinstance(val, Tensor) else 0
        n_in = max((a.meta["val"].numel() for a in node.args
                    if isinstance(a, torch.fx.Node) and isinstance(a.meta.get("val"), Tensor)), default=0)
        if name in _FREE or not (n_out == numel or (name == "sum" and n_in == numel) or
                                 (name == "dot" and n_in == numel) or (name == "bmm" and n_in == numel)):
            continue
        if name in _TRANS:
            trans += 1
            arith += _TRANS[name]
        elif name in _ARITH:
            arith += 1
        elif name in ("dot", "bmm"):
            arith += 2  # a multiply and an add per element
        else:
            unknown.add(name)
    return {"arith": arith, "transcendental": trans, "unknown": ",".join(sorted(unknown))}


def flop_table(numel: int = 24) -> list[dict]:
    """Counted elementwise operations per element, forward and forward+backward, for each
    activation and APALU implementation (the fused form is what ``torch.compile`` fuses)."""
    x = torch.randn(2, 3, numel // 6)
    g = torch.randn_like(x)
    rows = []

    def _lean_scalar(t):
        pa = torch.tensor(1.1, requires_grad=True)
        pb = torch.tensor(0.8, requires_grad=True)
        _lean_scalar.params = (pa, pb)
        return apalu_without_kernel(t, pa, pb)

    def fb_fn(fn, nparams):
        def h(x, g, *ps):
            x = x.detach().requires_grad_()
            ps = [p.detach().requires_grad_() for p in ps]
            y = fn(x, *ps)
            extra = list(getattr(fn, "params", ()))  # parameters created inside fn
            return torch.autograd.grad(y, [x, *ps, *extra], g)
        return h

    def fused_fb(x, g, a, b):
        ae, be = AF.expand_param(a, x), AF.expand_param(b, x)
        AF._forward_fused(x, ae, be)
        return AF._backward_fused(g, x, ae, be, (True, True, True))

    a, b = torch.tensor([1.1]), torch.tensor([0.8])
    w = torch.tensor([0.25])
    specs = [
        ("relu", lambda t: F.relu(t), ()), ("leaky_relu", lambda t: F.leaky_relu(t), ()),
        ("prelu", lambda t, w: F.prelu(t, w), (w,)), ("elu", lambda t: F.elu(t), ()),
        ("gelu", lambda t: F.gelu(t), ()),
        ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh"), ()), ("silu", lambda t: F.silu(t), ()),
        ("apalu (reference eager)", apalu_reference, (a, b)),
        # the ATen path (the C++ kernel is opaque to the tracer). a, b made inside the trace
        # (constants): the scalar route reads them as Python floats
        ("apalu (ATen eager)", _lean_scalar, ()),
        ("apalu (ATen eager, per-channel)", apalu_without_kernel,
         (torch.tensor([1.1, 0.9, 1.2]), torch.tensor([0.8, 0.7, 0.6]))),
    ]
    for name, fn, ps in specs:
        fwd = count_ops(lambda x, *p: fn(x, *p), (x, *ps), x.numel())
        both = count_ops(fb_fn(fn, len(ps)), (x, g, *ps), x.numel())
        rows.append({"activation": name, "forward_arith": fwd["arith"], "forward_transcendental":
                     fwd["transcendental"], "fwdbwd_arith": both["arith"],
                     "fwdbwd_transcendental": both["transcendental"],
                     "unknown_ops": ",".join(filter(None, [fwd["unknown"], both["unknown"]]))})
    fwd = count_ops(lambda x, a, b: AF._forward_fused(x, AF.expand_param(a, x), AF.expand_param(b, x)),
                    (x, a, b), x.numel())
    both = count_ops(fused_fb, (x, g, a, b), x.numel())
    rows.append({"activation": "apalu (single-exp form, inductor)", "forward_arith": fwd["arith"],
                 "forward_transcendental": fwd["transcendental"], "fwdbwd_arith": both["arith"],
                 "fwdbwd_transcendental": both["transcendental"],
                 "unknown_ops": ",".join(filter(None, [fwd["unknown"], both["unknown"]]))})
    return rows


def bytes_bound(elements: int, itemsize: int = 4) -> dict:
    """Bytes an elementwise activation must move at least: forward reads x and writes y;
    backward reads x (saved) and the incoming gradient and writes the gradient of x."""
    return {"forward": 2 * elements * itemsize, "forward+backward": 5 * elements * itemsize}
