"""The fast paths compute the same function: the in-place eager CPU path, the fused (compiled)
path and the compile switch, against the plain-autograd reference.

The compiled path's accuracy near 0⁻ is tested explicitly: inductor vectorises ``expm1`` as
``exp(x) - 1`` on the CPU, which turns f(-1e-8) into 0 unless the code guards against it.
"""

from __future__ import annotations

import math

import pytest
import torch

import apalu.functional as AF
from apalu import APALU
from apalu.functional import apalu, apalu_compiled, apalu_reference, apalu_without_kernel

torch.set_num_threads(1)


def _case(shape, per_channel, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype)
    n = shape[1] if (per_channel and len(shape) >= 2) else (shape[0] if per_channel else 1)
    a = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    b = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    g = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    return x, a.to(torch.promote_types(dtype, torch.float32)), b.to(torch.promote_types(dtype, torch.float32)), g


SHAPES = [(7,), (3, 5), (2, 3, 4, 5), (2, 4, 33)]


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_eager_fast_path_matches_reference(assert_same_as, shape, per_channel):
    x, a, b, g = _case(shape, per_channel)
    ae, be = AF.expand_param(a, x), AF.expand_param(b, x)
    assert AF.choose_backend(x, ae, be, requires_grad=True, compiled=False) == "aten"
    assert_same_as(apalu, apalu_reference, x, a, b, g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eager_fast_path_special_points(grads, dtype):
    x = torch.tensor([0.0, -0.0, 1e-8, -1e-8, 20.0, -20.0, 1e30, -1e30, float("inf"), float("-inf")],
                     dtype=dtype)
    a, b = torch.tensor(1.3, dtype=dtype), torch.tensor(0.7, dtype=dtype)
    g = torch.ones_like(x)
    got = grads(apalu, x, a, b, g)
    # reference in float64 (autograd's float32 gradient of the sigmoid forms 1 − σ by subtraction)
    want = [t.to(dtype) for t in grads(apalu_reference, x.double(), a.double(), b.double(), g.double())]
    torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=0)
    fin = torch.isfinite(x)
    torch.testing.assert_close(got[1][fin], want[1][fin], rtol=1e-6, atol=0)
    assert got[1][0].item() == pytest.approx(1.5 * 1.3)  # right-hand slope at 0 (and at -0.0)
    assert got[1][1].item() == pytest.approx(1.5 * 1.3)


def test_eager_mixed_scalar_and_per_channel_and_zero_a(assert_same_as):
    x, a, b, g = _case((2, 3, 4), True)
    for pa, pb in ((a[:1], b), (a, b[:1]), (torch.zeros(1, dtype=a.dtype), b[:1])):
        assert_same_as(apalu, apalu_reference, x, pa, pb, g, rtol=1e-10, atol=1e-12)


def test_eager_expanded_and_noncontiguous_inputs(assert_same_as):
    x = torch.randn(4, 6, dtype=torch.float64).t()  # non-contiguous
    a = torch.tensor(1.3, dtype=torch.float64)
    b = torch.tensor(0.6, dtype=torch.float64)
    g = torch.ones((), dtype=torch.float64).expand(6, 4)  # stride-0 gradient, as from .sum()
    for xx in (x, x.contiguous()):
        assert_same_as(apalu, apalu_reference, xx, a, b, g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_matches_reference(grads, dtype):
    x, a, b, g = _case((2, 3, 9), True, dtype=dtype)
    got = grads(apalu, x, a, b, g)
    want = grads(apalu_reference, x, a, b, g)
    assert got[0].dtype == dtype and got[1].dtype == dtype
    for u, v in zip(got, want):
        torch.testing.assert_close(u.float(), v.float(), rtol=1e-2, atol=1e-2)


def test_only_needed_gradients(grads):
    x, a, b, g = _case((2, 3, 5), True)
    xl = x.clone().requires_grad_()
    y = apalu(xl, a, b)  # a, b without grad
    y.backward(g)
    want = grads(apalu_reference, x, a, b, g)
    torch.testing.assert_close(xl.grad, want[1])
    al = a.clone().requires_grad_()
    (ga,) = torch.autograd.grad(apalu(x, al, b), al, g)
    torch.testing.assert_close(ga, want[2])
    bl = b.clone().requires_grad_()
    (gb,) = torch.autograd.grad(apalu(x, a, bl), bl, g)
    torch.testing.assert_close(gb, want[3])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_math_matches_reference(grads, dtype):
    """The single-exp form (what the compiler sees), run eagerly."""
    x, a, b, g = _case((3, 4, 50), True, dtype=dtype)
    x[0, 0, :5] = torch.tensor([0.0, -1e-8, 1e-8, -0.25, -0.2500001], dtype=dtype)
    ae, be = AF.expand_param(a, x), AF.expand_param(b, x)
    y = AF._forward_fused(x, ae, be)
    gx, ga, gb = AF._backward_fused(g, x, ae, be, (True, True, True))
    want = grads(apalu_reference, x, a, b, g)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for u, v in zip((y, gx, ga.reshape(-1), gb.reshape(-1)), want):
        torch.testing.assert_close(u, v, **tol)


def test_expm1_polynomial_relative_accuracy_float32():
    t = -torch.logspace(-30, math.log10(AF.EXPM1_CUT * 1.5), 2000, dtype=torch.float64)
    got = AF._expm1_fused(t.float(), torch.exp(t.float())).double()
    rel = ((got - torch.expm1(t)) / torch.expm1(t)).abs()
    assert rel.max().item() < 5e-7


def _compiled(which: str):
    """The compiled path with the C++ CPU kernel (the default) or the inductor-generated one."""
    if which == "kernel":
        return apalu_compiled
    return torch.compile(apalu_without_kernel, fullgraph=True)


@pytest.fixture(scope="module", params=["kernel", "inductor"])
def compiled_grads(request):
    """One compiled call on points near 0⁻ (and a few others), float32, per-element grads."""
    torch._dynamo.reset()
    fn = _compiled(request.param)
    x = torch.tensor([-1e-8, -1e-7, -1e-5, -1e-3, -0.1, -0.3, -3.0, 0.0, 1e-8, 0.5, 3.0, 30.0])
    a = torch.tensor(1.3)
    b = torch.tensor(0.7)
    xl, al, bl = (t.clone().requires_grad_() for t in (x, a, b))
    y = fn(xl, al, bl)
    # per-element gradient for b: d f(x_i) / d b = expm1(x_i) on x_i < 0
    gb = torch.stack([torch.autograd.grad(y[i], bl, retain_graph=True)[0] for i in range(len(x))])
    y.sum().backward()
    return x, y.detach(), xl.grad, gb


def test_compiled_relative_accuracy_near_zero_from_below(compiled_grads):
    x, y, gx, gb = compiled_grads
    xd = x.double()
    want = torch.where(xd >= 0, 1.3 * (xd + xd * torch.sigmoid(AF.K * xd)), 0.7 * torch.expm1(xd))
    neg = xd < 0
    rel = ((y.double() - want) / want)[neg].abs()
    assert rel[0].item() < 1e-5, "f(-1e-8) compiled"  # the bar from the issue
    assert rel.max().item() < 1e-6
    relb = ((gb.double() - torch.expm1(xd)) / torch.expm1(xd))[neg].abs()
    assert relb.max().item() < 1e-6, "per-element grad for b near 0⁻ (exp(x)-1 gave 19%)"
    want_gx = torch.where(neg, 0.7 * torch.exp(xd), torch.full_like(xd, float("nan")))
    torch.testing.assert_close(gx.double()[neg], want_gx[neg], rtol=1e-6, atol=0)


@pytest.mark.parametrize("which", ["kernel", "inductor"])
def test_compiled_matches_eager_per_channel_and_infinity(grads, which):
    torch._dynamo.reset()
    x, a, b, g = _case((2, 3, 16), True, dtype=torch.float32)
    x[0, 0, 0] = float("inf")
    got = grads(_compiled(which), x, a, b, g)
    want = grads(apalu, x, a, b, g)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[2], want[2], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got[3], want[3], rtol=1e-5, atol=1e-4)
    gx_finite = got[1].clone()
    assert torch.isfinite(gx_finite).all(), "grad x at +inf is finite on the compiled path"
    torch.testing.assert_close(got[1][torch.isfinite(x)], want[1][torch.isfinite(x)], rtol=1e-5, atol=1e-5)


def test_module_compile_switch_and_whole_model_compile_without_graph_break():
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = APALU(num_parameters=4, init={"a": 1.1, "b": 0.9})
    comp = APALU(num_parameters=4, init={"a": 1.1, "b": 0.9}, compile=True)
    assert comp.use_compiled and not eager.use_compiled
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(comp(x), eager(x))
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 4, 3, padding=1), APALU(4), torch.nn.Conv1d(4, 2, 1))
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    compiled = torch.compile(model, fullgraph=True)
    compiled(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
