"""The compiled CPU kernel (apalu/csrc/apalu_cpu.cpp) against a float64 reference, and the same
checks on the path without it (ATen eagerly, inductor under compile): both must compute the
same function to float32 accuracy, on every layout the kernel takes and at the special points.
"""

from __future__ import annotations

import shutil

import pytest
import torch

import apalu._ext as ext
from apalu.functional import _backward_math, _forward_math, apalu, apalu_without_kernel

torch.set_num_threads(2)

SPECIAL = [0.0, -0.0, 1e-8, -1e-8, -1e-20, -1e-30, -0.3, -0.35, -0.36, 0.5, -20.0, -87.0,
           -87.5, -88.0, -100.0, -103.9, -104.0, -110.0, -1e30, 1e30, 20.0, 1e4, 2e4]
IMPLS = {"kernel": apalu, "without kernel": apalu_without_kernel}


def test_kernel_builds_where_a_compiler_exists():
    if not ext.enabled():
        pytest.skip(f"{ext.ENV_SWITCH}=0 in the environment")
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    assert ext.available(), ext.status()
    assert "compiled CPU kernel (" in ext.status()


def _reference(x, a, b, g):
    """Float64 values and gradients; a and b shaped to broadcast against x."""
    xd, ad, bd, gd = (t.double() for t in (x, a, b, g))
    y = _forward_math(xd, ad, bd)
    gx, ga, gb = _backward_math(gd, xd, ad, bd, (True, True, True))
    return y, gx, ga.sum_to_size(a.shape), gb.sum_to_size(b.shape)


def _assert_close_f32(got, want, what, ulps):
    """Within ``ulps`` float32 ulp (2⁻²⁴ each) of the float64 reference where it is a normal
    float32; within a few of the smallest subnormal steps below."""
    want32 = want.float().double()
    normal = want.abs() >= torch.finfo(torch.float32).tiny
    err = (got.double() - want).abs()
    rel = err[normal] / want[normal].abs()
    assert torch.all(rel <= ulps * 2.0**-24), f"{what}: max rel {rel.max().item():.3g}"
    assert torch.all(err[~normal] <= 4 * 2.0**-149), f"{what}: subnormal error"
    assert torch.equal(got.isnan(), want32.isnan()), what


CASES = [
    ("scalar 1-D", (1000,), 1),
    ("scalar 4-D, tail", (3, 5, 7, 9), 1),
    ("per-channel (N, C)", (37, 19), 19),
    ("per-channel (N, C, L), short runs", (4, 6, 5), 6),
    ("per-channel (N, C, H, W)", (2, 8, 9, 11), 8),
    ("per-channel 1-D", (21,), 21),
    ("scalar 0-d", (), 1),
]


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("name,shape,channels", CASES, ids=[c[0] for c in CASES])
def test_values_and_gradients_float32(grads, impl, name, shape, channels):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=gen) * 4
    flat = x.view(-1)
    k = min(len(SPECIAL), flat.numel())
    flat[:k] = torch.tensor(SPECIAL[:k])
    g = torch.randn(shape, generator=gen)
    a = torch.rand(channels, generator=gen) + 0.3
    b = torch.rand(channels, generator=gen) + 0.3
    got = grads(IMPLS[impl], x, a, b, g)
    shape = [] if channels == 1 else [channels] + [1] * max(x.dim() - 2, 0)
    want = _reference(x, a.view(shape), b.view(shape), g)
    # the kernel rounds once per formula; the ATen path composes several rounded kernels (and is
    # what the default takes when the kernel is off: APALU_CPU_KERNEL=0, or no compiler)
    ulps = 4 if impl == "kernel" and ext.available() else 12
    for u, v, what in zip(got[:2], want[:2], ("value", "grad x")):
        _assert_close_f32(u, v, f"{impl} {name} {what}", ulps)
    # parameter gradients are sums of float32-rounded terms
    for u, v, what in zip(got[2:], want[2:], ("grad a", "grad b")):
        torch.testing.assert_close(u.double().view(-1), v.view(-1), rtol=1e-5, atol=1e-5,
                                   msg=f"{impl} {name} {what}")


@pytest.mark.parametrize("impl", list(IMPLS))
def test_special_values_float32(impl):
    x = torch.tensor([float("nan"), float("inf"), float("-inf"), 0.0, -0.0])
    x.requires_grad_()
    a, b = torch.tensor(1.5, requires_grad=True), torch.tensor(0.8, requires_grad=True)
    y = IMPLS[impl](x, a, b)
    y.backward(torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0]))
    assert y[0].isnan() and y[1].item() == float("inf") and y[2].item() == pytest.approx(-0.8)
    assert y[3].item() == 0.0 and y[4].item() == 0.0
    assert x.grad[0].isnan()
    assert x.grad[1].item() == pytest.approx(2 * 1.5)  # a·(1 + σ + kx·σ(−kx)) -> 2a at +inf
    assert x.grad[2].item() == 0.0  # b·e^-inf
    assert x.grad[3].item() == pytest.approx(1.5 * 1.5) and x.grad[4].item() == pytest.approx(2.25)


def test_kernel_near_zero_from_below_keeps_relative_accuracy():
    x = -torch.logspace(-30, 0, 200)
    y = apalu(x, 1.0, 1.0)
    torch.testing.assert_close(y.double(), torch.expm1(x.double()), rtol=3e-7, atol=0)


def test_kernel_is_deterministic_and_thread_count_only_reorders_sums(grads):
    gen = torch.Generator().manual_seed(2)
    x, g = torch.randn(64, 16, 33, 33, generator=gen), torch.randn(64, 16, 33, 33, generator=gen)
    a, b = torch.rand(16, generator=gen) + 0.5, torch.rand(16, generator=gen) + 0.5
    first, second = grads(apalu, x, a, b, g), grads(apalu, x, a, b, g)
    for u, v in zip(first, second):
        assert torch.equal(u, v)
    torch.set_num_threads(1)
    try:
        single = grads(apalu, x, a, b, g)
    finally:
        torch.set_num_threads(2)
    assert torch.equal(first[0], single[0]) and torch.equal(first[1], single[1])
    for u, v in zip(first[2:], single[2:]):
        torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-4)


def test_compiled_graph_calls_the_kernel_without_graph_break(grads):
    if not ext.available():
        pytest.skip(ext.status())
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()
    fn = torch.compile(apalu, fullgraph=True)  # fullgraph: a graph break would raise
    x = torch.randn(4, 3, 5, requires_grad=True)
    a, b = torch.rand(3) + 0.5, torch.rand(3) + 0.5
    a.requires_grad_(), b.requires_grad_()
    _, code = run_and_get_code(lambda: fn(x, a, b).sum().backward())
    joined = "\n".join(code)
    assert "apalu.forward_cpu" in joined and "apalu.backward_cpu" in joined
    want = grads(apalu_without_kernel, x.detach(), a.detach(), b.detach(), torch.ones(4, 3, 5))
    for u, v in zip((x.grad, a.grad, b.grad), want[1:]):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv(ext.ENV_SWITCH, "0")
    assert ext.kernel() is None and "disabled" in ext.status()
    y = apalu(torch.tensor([-1.0, 1.0]), 1.0, 1.0)  # the ATen path still answers
    torch.testing.assert_close(y, torch.tensor([-0.6321205, 1.8457958]))


def test_huge_page_advice_changes_memory_layout_only(grads):
    if not ext.available():
        pytest.skip(ext.status())
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 8, 256, 256, generator=gen)  # 8 MiB: large enough for the advice
    g = torch.randn(x.shape, generator=gen)
    a, b = torch.tensor([1.2]), torch.tensor([0.7])
    with_advice = grads(apalu, x, a, b, g)
    with ext.huge_page_advice(False):
        without = grads(apalu, x, a, b, g)
    for u, v in zip(with_advice, without):
        assert torch.equal(u, v)
