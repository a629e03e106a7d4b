"""Correctness of the functional APALU: values, gradients, numerics, dtypes, transforms."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from apalu.functional import K, apalu, apalu_reference, apalu_without_kernel

torch.set_num_threads(1)

GRID = [0.0, 1e-8, -1e-8, 1e-3, -1e-3, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 20.0, -20.0,
        1e4, -1e4, 1e30, -1e30]
F32_1E30 = float(torch.tensor(1e30, dtype=torch.float32))  # 1e30 as float32 represents it
AB = [(1.0, 1.0), (0.3, 1.7), (1.9, 0.05), (2.0 / 3.0, 1.0)]
IMPLEMENTATIONS = [apalu, apalu_without_kernel, apalu_reference]
# the lean Function with and without the C++ CPU kernel (float32 on a CPU uses it by default)
LEAN = [apalu, apalu_without_kernel]


def ref_value(x: float, a: float, b: float) -> float:
    """Plain math-module reference (float64), written independently of the package."""
    if x >= 0:
        s = 1.0 / (1.0 + math.exp(-K * x)) if K * x < 700 else 1.0
        return a * (x + x * s)
    return b * math.expm1(x)


def ref_grads(x: float, a: float, b: float) -> tuple[float, float, float]:
    """(df/dx, df/da, df/db) with the right-hand derivative at 0 (x >= 0 is the positive branch)."""
    if x >= 0:
        s = 1.0 / (1.0 + math.exp(-K * x)) if K * x < 700 else 1.0
        one_minus_s = 1.0 / (1.0 + math.exp(K * x)) if K * x < 700 else 0.0
        return a * (1 + s + K * x * s * one_minus_s), x + x * s, 0.0
    return b * math.exp(x), 0.0, math.expm1(x)


def _leaf(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype, requires_grad=True)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("a,b", AB)
def test_values_and_gradients_match_float64_reference(impl, a, b):
    x = _leaf(GRID)
    ta, tb = _leaf(a), _leaf(b)
    y = impl(x, ta, tb)
    y.sum().backward()
    for i, xi in enumerate(GRID):
        want = ref_value(xi, a, b)
        gx, ga, gb = ref_grads(xi, a, b)
        assert y[i].item() == pytest.approx(want, rel=1e-12, abs=1e-300), xi
        # (the reference's negative branch is elu, whose autograd derivative is exp(x); autograd's
        # expm1 backward, expm1(x) + 1, lost all relative accuracy far left)
        assert x.grad[i].item() == pytest.approx(gx, rel=1e-12, abs=1e-300), xi
    # parameter gradients are sums over all elements
    assert ta.grad.item() == pytest.approx(sum(ref_grads(xi, a, b)[1] for xi in GRID), rel=1e-12)
    assert tb.grad.item() == pytest.approx(sum(ref_grads(xi, a, b)[2] for xi in GRID), rel=1e-12)


@pytest.mark.parametrize("impl", LEAN)
def test_relative_accuracy_near_zero_from_below_float32(impl):
    # expm1, not exp(x) - 1: f(-1e-8) must not collapse to 0
    x = torch.tensor([-1e-8, -1e-7, -1e-20], dtype=torch.float32)
    y = impl(x, 1.0, 1.0)
    assert torch.allclose(y.double(), torch.expm1(x.double()), rtol=1e-6, atol=0)


@pytest.mark.parametrize("impl", LEAN)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_finite_inputs_give_finite_values_and_gradients(dtype, impl):
    x = _leaf([0.0, 1e-8, -1e-8, 20, -20, 1e4, -1e4, 1e30, -1e30, 88.0, 89.0, -104.0, 710.0],
              dtype=dtype)
    a, b = _leaf(1.3, dtype), _leaf(0.7, dtype)
    y = impl(x, a, b)
    y.sum().backward()
    for t in (y, x.grad, a.grad, b.grad):
        assert torch.isfinite(t).all(), t


@pytest.mark.parametrize("impl", LEAN)
def test_special_values(impl):
    x = torch.tensor([float("nan"), float("inf"), float("-inf")])
    y = impl(x, 1.5, 0.8)
    assert math.isnan(y[0].item())
    assert y[1].item() == math.inf
    assert y[2].item() == pytest.approx(-0.8)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_no_spurious_overflow_when_the_true_value_fits_float32(impl):
    """x + x·σ(kx) overflows float32 for x > 1.7e38, a·(x + x·σ) need not: scale first."""
    fmax = torch.finfo(torch.float32).max
    x = torch.tensor([3e38, 3.4e38, fmax, 2.1e38], requires_grad=True)
    a = torch.tensor(1e-6, requires_grad=True)
    b = torch.tensor(0.7, requires_grad=True)
    y = impl(x, a, b)
    y.backward(torch.full_like(y, 1e-6))
    xd, ad = x.detach().double(), float(a.detach())
    torch.testing.assert_close(y.detach().double(), 2 * ad * xd, rtol=1e-6, atol=0)
    torch.testing.assert_close(x.grad.double(), torch.full_like(xd, 2 * ad * 1e-6), rtol=1e-6, atol=0)
    assert a.grad.item() == pytest.approx(2e-6 * xd.sum().item(), rel=1e-6)  # Σ g·x·(1 + σ)
    assert b.grad.item() == 0.0
    # where the true value itself is beyond float32, inf is the right answer
    assert impl(torch.tensor([3e38]), 10.0, 1.0).item() == math.inf


@settings(max_examples=200, deadline=None)
@given(
    xs=st.lists(st.floats(min_value=-F32_1E30, max_value=F32_1E30, width=32),
                min_size=1, max_size=16),
    a=st.floats(min_value=1e-3, max_value=5.0),
    b=st.floats(min_value=1e-3, max_value=5.0),
)
def test_fuzz_finite_inputs_never_give_non_finite_values_or_gradients(xs, a, b):
    for impl in LEAN:
        x = torch.tensor(xs, dtype=torch.float32, requires_grad=True)
        ta = torch.tensor(a, requires_grad=True)
        tb = torch.tensor(b, requires_grad=True)
        y = impl(x, ta, tb)
        (y * 1e-8).sum().backward()  # scaled so the sum itself cannot overflow
        assert torch.isfinite(y).all(), impl.__name__
        assert torch.isfinite(x.grad).all() and torch.isfinite(ta.grad) and torch.isfinite(tb.grad)


@pytest.mark.parametrize("per_channel", [False, True])
def test_gradcheck_and_gradgradcheck_float64(per_channel):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 4, 5, generator=g, dtype=torch.float64) * 2).requires_grad_()
    with torch.no_grad():  # keep points away from the kink at 0, where the derivative jumps
        x[x.abs() < 1e-2] += 0.1
    n = 4 if per_channel else 1
    a = (torch.rand(n, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    b = (torch.rand(n, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(apalu, (x, a, b))
    assert torch.autograd.gradgradcheck(apalu, (x, a, b))


def test_per_channel_matches_scalar_per_channel():
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    a = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64)
    b = torch.tensor([1.2, 0.3, 2.0], dtype=torch.float64)
    y = apalu(x, a, b)
    for c in range(3):
        torch.testing.assert_close(y[:, c], apalu(x[:, c], a[c], b[c]))


def test_per_channel_size_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="per-channel APALU parameter has 3 values"):
        apalu(torch.randn(2, 4), torch.ones(3), torch.ones(3))


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match="floating-point"):
        apalu(torch.arange(3), 1.0, 1.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_compute_in_float32(dtype):
    x32 = torch.linspace(-6, 6, 101)
    x = x32.to(dtype).requires_grad_()
    a = torch.tensor(1.2, requires_grad=True)
    y = apalu(x, a, 0.9)
    assert y.dtype == dtype
    want = apalu(x.detach().float(), 1.2, 0.9)
    torch.testing.assert_close(y.float(), want, rtol=1e-2, atol=1e-2)
    y.float().sum().backward()
    assert x.grad.dtype == dtype and a.grad.dtype == torch.float32
    assert torch.isfinite(x.grad.float()).all()


def test_autocast_bfloat16():
    layer = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8)
    a = torch.tensor(1.0, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = layer(x)
        y = apalu(h, a, 1.0)
    assert h.dtype == torch.bfloat16 and y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad)
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


@pytest.mark.parametrize("impl", LEAN)
def test_saves_only_the_input_for_backward(impl):
    x = torch.randn(64, 32, requires_grad=True)
    a = torch.tensor(1.0, requires_grad=True)
    b = torch.tensor(1.0, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        impl(x, a, b)
    big = [t for t in saved if t.numel() > 1]
    assert len(big) == 1 and big[0].shape == x.shape
    assert sum(t.numel() for t in saved) == x.numel() + 2  # x, a, b


def test_reference_saves_more_than_lean():
    """The comparison point: plain autograd keeps several input-sized tensors."""
    x = torch.randn(64, 32, requires_grad=True)
    counts = {}
    for impl in IMPLEMENTATIONS:
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            impl(x, torch.tensor(1.0, requires_grad=True), torch.tensor(1.0, requires_grad=True))
        counts[impl.__name__] = sum(t.numel() for t in saved if t.numel() > 1) // x.numel()
    assert counts["apalu"] == counts["apalu_without_kernel"] == 1 and counts["apalu_reference"] > 1


def test_torch_func_grad_vmap_jacrev():
    from torch.func import grad, jacrev, vmap

    a = torch.tensor(1.1, dtype=torch.float64)
    b = torch.tensor(0.6, dtype=torch.float64)
    xs = torch.tensor([-2.0, -0.1, 0.3, 4.0], dtype=torch.float64)
    dfdx = vmap(grad(lambda x: apalu(x, a, b)))(xs)
    want = torch.tensor([ref_grads(v, 1.1, 0.6)[0] for v in xs.tolist()], dtype=torch.float64)
    torch.testing.assert_close(dfdx, want)
    jac = jacrev(lambda x: apalu(x, a, b))(xs)
    torch.testing.assert_close(jac, torch.diag(want))
    dfda = grad(lambda a_: apalu(xs, a_, b).sum())(a)
    assert dfda.item() == pytest.approx(sum(ref_grads(v, 1.1, 0.6)[1] for v in xs.tolist()))


@pytest.mark.parametrize("impl", LEAN)
def test_torch_compile_fullgraph_matches_eager(impl):
    x = torch.randn(4, 3, 8, requires_grad=True)
    a = torch.rand(3, requires_grad=True)
    b = torch.rand(3, requires_grad=True)
    compiled = torch.compile(impl, fullgraph=True)  # default (inductor) backend
    y = compiled(x, a, b)
    y.sum().backward()
    grads = [t.grad.clone() for t in (x, a, b)]
    for t in (x, a, b):
        t.grad = None
    y_eager = impl(x, a, b)
    y_eager.sum().backward()
    torch.testing.assert_close(y, y_eager)
    for g, t in zip(grads, (x, a, b)):
        torch.testing.assert_close(g, t.grad)
