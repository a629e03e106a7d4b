"""The SymPy results of apalu.theory, checked against the PyTorch implementation by autograd.

Every fact the theory chapters assert has a test here that compares the symbolic result
(lambdified) with ``apalu.functional.apalu`` / ``apalu.APALU`` on a grid of points and several
(a, b): if the implementation or a derivation changed, these fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

import apalu
from apalu import theory as T
from apalu.functional import apalu as f_torch

torch.set_num_threads(1)

PARAMS = [(1.0, 1.0), (0.3, 1.7), (1.9, 0.2), (2.0 / 3.0, 1.0), (1.0, 1.5)]
GRID = np.concatenate([np.linspace(-8.0, -1e-3, 301), np.linspace(1e-3, 8.0, 301)])


def _autograd(xs: np.ndarray, a: float, b: float, order: int = 1) -> np.ndarray:
    """The order-th x-derivative of the implementation, by (repeated) autograd, float64."""
    t = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = f_torch(t, a, b)
    for _ in range(order):
        (y,) = torch.autograd.grad(y.sum(), t, create_graph=True)
    return y.detach().numpy()


@pytest.mark.parametrize("a,b", PARAMS)
def test_values_and_derivatives_match_autograd(a, b):
    for order in range(3):
        sym = T.lambdify_piecewise(order)(GRID, a, b)
        np.testing.assert_allclose(_autograd(GRID, a, b, order), sym, rtol=1e-10, atol=1e-12)


def test_stated_derivative_form_is_sympys():
    d, stated = T.derivative_positive_closed_form()
    assert sp.simplify(d - stated) == 0
    g = sp.lambdify((T.x, T.a), stated, "numpy")
    xs = GRID[GRID > 0]
    for a, b in PARAMS:
        np.testing.assert_allclose(g(xs, a), _autograd(xs, a, b), rtol=1e-12)


@pytest.mark.parametrize("a,b", PARAMS)
def test_limits_and_range(a, b):
    lim = T.limits()
    assert lim["f(-oo)"] == -T.b and lim["f(x)/x at +oo"] == 2 * T.a
    assert lim["f(x)-2ax at +oo"] == 0 and lim["f(0)"] == 0
    xs = torch.tensor([-60.0, -30.0, 0.0, 30.0, 60.0], dtype=torch.float64)
    y = f_torch(xs, a, b).numpy()
    assert y[0] == pytest.approx(-b, rel=1e-12) and y[2] == 0.0
    assert y[4] - 2 * a * 60.0 == pytest.approx(0.0, abs=1e-20)
    # range (−b, ∞): above −b everywhere on the grid
    assert (f_torch(torch.tensor(GRID), a, b).numpy() > -b).all()


@pytest.mark.parametrize("a,b", PARAMS)
def test_continuity_and_one_sided_derivatives(a, b):
    right0, left0 = T.one_sided_derivatives(0)
    assert sp.simplify(right0 - left0) == 0
    right, left = T.one_sided_derivatives(1)
    assert right == sp.Rational(3, 2) * T.a and left == T.b
    h = 1e-7
    xs = np.array([0.0, -h, h])
    d = _autograd(xs, a, b)
    assert d[0] == pytest.approx(1.5 * a, rel=1e-12)  # x = 0 belongs to the positive branch
    assert d[1] == pytest.approx(b, rel=1e-6) and d[2] == pytest.approx(1.5 * a, rel=1e-6)
    # difference quotients of the forward pass: the same one-sided slopes
    t = torch.tensor([-h, 0.0, h], dtype=torch.float64)
    y = f_torch(t, a, b).numpy()
    assert (y[1] - y[0]) / h == pytest.approx(b, rel=1e-6)
    assert (y[2] - y[1]) / h == pytest.approx(1.5 * a, rel=1e-6)


def test_c1_iff_b_is_three_halves_a_and_second_derivative_jumps():
    assert T.c1_condition() == [sp.Rational(3, 2) * T.a]
    jump = T.second_derivative_jump(sp.Rational(3, 2) * T.a)
    assert jump == -sp.Rational(649, 1000) * T.a
    for a in (0.5, 1.0, 1.7):
        d2 = _autograd(np.array([1e-9, -1e-9]), a, 1.5 * a, order=2)
        assert d2[0] - d2[1] == pytest.approx(float(jump.subs(T.a, a)), rel=1e-6)
        d1 = _autograd(np.array([1e-9, -1e-9]), a, 1.5 * a)
        assert d1[0] == pytest.approx(d1[1], rel=1e-6)


def test_derivative_maximum_location_and_value():
    e = T.derivative_extremum()
    assert e.residual < 1e-25
    assert float(e.c_max) == pytest.approx(2.0998393201288669, abs=1e-15)
    assert e.t_star * math.tanh(e.t_star / 2) == pytest.approx(2.0, abs=1e-14)
    for a, b in PARAMS:
        xs = np.linspace(0.0, 12.0, 120001)
        d = _autograd(xs, a, b)
        assert d.min() == pytest.approx(1.5 * a, rel=1e-12) and xs[d.argmin()] == 0.0
        assert d.max() == pytest.approx(float(e.c_max) * a, rel=1e-9)
        assert xs[d.argmax()] == pytest.approx(float(e.x_star), abs=2e-4)
        assert _autograd(np.array([40.0]), a, b)[0] == pytest.approx(2 * a, rel=1e-12)
        d2 = _autograd(xs, a, b, order=2)  # f'' changes sign once on x > 0, at x*
        flips = xs[1:][np.sign(d2[1:]) != np.sign(d2[:-1])]
        assert len(flips) == 1 and flips[0] == pytest.approx(float(e.x_star), abs=2e-4)


@pytest.mark.parametrize("a,b", PARAMS)
def test_negative_side_derivative_and_infimum(a, b):
    xs = np.linspace(-40.0, -1e-6, 4001)
    d = _autograd(xs, a, b)
    assert (d > 0).all() and (d < b).all()
    np.testing.assert_allclose(d, b * np.exp(xs), rtol=1e-12)
    assert d[0] < 1e-15 * b  # inf f' = 0, approached as x → −∞, never attained


@pytest.mark.parametrize("a,b", PARAMS)
def test_lipschitz_constant(a, b):
    L = T.lipschitz_constant(a, b)
    xs = np.concatenate([np.linspace(-20, -1e-9, 20001), np.linspace(0, 20, 200001)])
    d = np.abs(_autograd(xs, a, b))
    assert d.max() <= L * (1 + 1e-12)
    assert d.max() == pytest.approx(L, rel=1e-6)
    # secant slopes never exceed L
    t = torch.tensor(np.sort(np.random.default_rng(0).uniform(-10, 10, 5000)), dtype=torch.float64)
    y = f_torch(t, a, b)
    assert ((y[1:] - y[:-1]) / (t[1:] - t[:-1])).abs().max() <= L * (1 + 1e-9)


def test_monotone_iff_a_and_b_positive():
    xs = torch.tensor(np.linspace(-10, 10, 2001), dtype=torch.float64)
    for a, b in [(1.0, 1.0), (0.01, 2.0), (2.0, 0.01)]:
        assert (torch.diff(f_torch(xs, a, b)) > 0).all()
    for a, b in [(-1.0, 1.0), (1.0, -1.0), (0.0, 1.0), (1.0, 0.0)]:
        assert not (torch.diff(f_torch(xs, a, b)) > 0).all()
    # through the module with the unconstrained parameterization, as the paper trains it
    m = apalu.APALU(init={"a": 1.0, "b": 0.5}, constraint="none").double()
    with torch.no_grad():
        m.b_raw.fill_(-0.5)  # where an unconstrained optimizer can take it
    assert not (torch.diff(m(xs)) > 0).all()


def test_parameter_gradients_match_autograd():
    grads = T.parameter_gradients()
    ga = sp.lambdify((T.x, T.a, T.b), grads["a"], "numpy")
    gb = sp.lambdify((T.x, T.a, T.b), grads["b"], "numpy")
    xs = torch.tensor(GRID, dtype=torch.float64)
    for a, b in PARAMS:
        # one (a, b) per point (1-D per-channel parameters), so the gradients stay per point
        av = torch.full_like(xs, a, requires_grad=True)
        bv = torch.full_like(xs, b, requires_grad=True)
        f_torch(xs, av, bv).sum().backward()
        np.testing.assert_allclose(av.grad.numpy(), ga(GRID, a, b), rtol=1e-12)
        np.testing.assert_allclose(bv.grad.numpy(), gb(GRID, a, b), rtol=1e-12, atol=1e-300)
        assert (av.grad[xs < 0] == 0).all() and (bv.grad[xs >= 0] == 0).all()
    # and through the module (scalar a, b): the summed gradients
    m = apalu.APALU(init={"a": 1.2, "b": 0.7}, constraint="none").double()
    m(xs).sum().backward()
    assert float(m.a_raw.grad) == pytest.approx(ga(GRID, 1.2, 0.7).sum(), rel=1e-12)
    assert float(m.b_raw.grad) == pytest.approx(gb(GRID, 1.2, 0.7).sum(), rel=1e-12)


@pytest.mark.parametrize("a", [0.5, 2.0 / 3.0, 1.0, 1.9])
def test_depth_lower_bound(a):
    depth = 12
    xs = torch.tensor([1e-3, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    h = xs
    for _ in range(depth):
        h = f_torch(h, a, 1.0)
    (g,) = torch.autograd.grad(h.sum(), xs)
    assert (g >= (1.5 * a) ** depth * (1 - 1e-12)).all()
    assert (g <= (float(T.derivative_extremum().c_max) * a) ** depth * (1 + 1e-12)).all()


def test_depth_gain_probability_matches_sampling():
    p = T.depth_gain_probability()
    assert p == sp.Rational(2, 3)
    a = apalu.APALUInit("uniform", 0.0, 2.0).sample(200000, torch.Generator().manual_seed(0))[0]
    assert float((1.5 * a > 1).double().mean()) == pytest.approx(float(p), abs=5e-3)
    assert T.depth_gain_probability(1, 3) == 1 and T.depth_gain_probability(0, sp.Rational(1, 2)) == 0


def test_negative_moment_closed_form():
    N_sym = T.negative_moment_closed_form()
    assert not N_sym.has(sp.Integral)
    assert float(N_sym) == pytest.approx(T.second_moment_constants()[1], rel=1e-14)


@pytest.mark.parametrize("a,b", PARAMS)
def test_init_gain_against_monte_carlo(a, b):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2_000_000, generator=g, dtype=torch.float64)
    m2 = float(f_torch(z, a, b).pow(2).mean())
    assert apalu.init_gain(a, b) == pytest.approx(1 / math.sqrt(m2), rel=3e-3)


def test_init_gain_one_layer_and_module():
    torch.manual_seed(0)
    act = apalu.APALU(num_parameters=1, init={"a": 1.3, "b": 0.6}).double()
    gain = apalu.init_gain(act)
    assert gain == pytest.approx(apalu.init_gain(float(act.a.detach()), float(act.b.detach())), rel=1e-12)
    width = 1024
    h = torch.randn(4096, width, dtype=torch.float64)
    with torch.no_grad():
        w = torch.empty(width, width, dtype=torch.float64)
        torch.nn.init.normal_(w, 0.0, gain / math.sqrt(width))
        y = act(h) @ w.T
    assert float(y.pow(2).mean()) == pytest.approx(1.0, rel=0.02)
    assert T.init_gain(1.0, 1.0) < math.sqrt(2)  # APALU's positive side is steeper than ReLU's


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (1.3, 0.6), (0.5, 2.0), (1.0, 1.5)])
def test_moment_map_and_fixed_point_slope_against_monte_carlo(a, b):
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for q in (0.5, 1.0, 2.0):
        mc = float(f_torch(math.sqrt(q) * z, a, b).pow(2).mean())
        assert T.moment_map(q, a, b) == pytest.approx(mc, rel=5e-3)
    assert T.moment_map(1.0, a, b) == pytest.approx(T.second_moment(a, b), rel=1e-12)
    h = 0.1  # common random numbers make the finite difference of the MC estimate precise
    up = float(f_torch(math.exp(h / 2) * z, a, b).pow(2).mean())
    down = float(f_torch(math.exp(-h / 2) * z, a, b).pow(2).mean())
    assert T.fixed_point_slope(a, b) == pytest.approx((math.log(up) - math.log(down)) / (2 * h), abs=0.01)


def test_relu_like_slope_is_one_for_homogeneous_limit():
    # b → 0 and the sigmoid's saturation aside, the slope is near 1 only when b = 3a/2 balances the
    # super-linear positive side against the bounded negative side: check the sign pattern
    assert T.fixed_point_slope(1.0, 0.01) > 1.0 > T.fixed_point_slope(0.1, 2.0)


def test_init_gain_per_channel_and_errors():
    a = torch.tensor([0.5, 1.5]), torch.tensor([1.0, 1.0])
    P, N = T.second_moment_constants()
    assert apalu.init_gain(*a) == pytest.approx(1 / math.sqrt(P * 1.25 + N), rel=1e-12)
    with pytest.raises(ValueError):
        apalu.init_gain(0.0, 0.0)
    with pytest.raises(ValueError):
        apalu.init_gain(1.0)


def test_nonpolynomial_certificate_against_autograd():
    cert = T.nonpolynomial_certificate()
    assert cert["step_is_fixed_point"] and cert["zeros"] == []
    assert all(sp.simplify(e - T.b * sp.exp(T.x)) == 0 for e in cert["explicit"])
    xs = np.array([-3.0, -0.5, -1e-3])
    for order in range(1, 5):
        np.testing.assert_allclose(_autograd(xs, 1.0, 0.8, order), 0.8 * np.exp(xs), rtol=1e-12)


def test_approximation_error_falls_with_width():
    from apalu.theory.approx import fit_sup_error

    for act in ("apalu", "relu"):
        small = fit_sup_error("smooth", act, 2, steps=20)
        large = fit_sup_error("smooth", act, 64, steps=20)
        assert large < small / 10
    with pytest.raises(ValueError):
        fit_sup_error("nope", "apalu", 4)


_TORCH_ACTS = {
    "relu": torch.relu,
    "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.01),
    "elu": torch.nn.functional.elu,
    "gelu": torch.nn.functional.gelu,
    "silu": torch.nn.functional.silu,
    "apalu": lambda t: f_torch(t, 1.0, 1.0),
}


@pytest.mark.parametrize("name", list(_TORCH_ACTS))
def test_comparison_table_against_torch(name):
    props = T.activation_properties(name)
    xs = torch.linspace(-30, 30, 600001, dtype=torch.float64, requires_grad=True)
    y = _TORCH_ACTS[name](xs)
    (d,) = torch.autograd.grad(y.sum(), xs)
    d, y = d.numpy(), y.detach().numpy()
    assert d.min() >= props["inf_df"] - 1e-9 and d.max() <= props["sup_df"] + 1e-9
    assert d.max() == pytest.approx(props["sup_df"], abs=1e-6)
    assert d.min() == pytest.approx(props["inf_df"], abs=1e-6)
    assert y.min() >= props["inf_f"] - 1e-9
    if props["bounded_below"]:
        assert y.min() == pytest.approx(props["inf_f"], abs=1e-6)
    assert (np.diff(y) >= 0).all() == (props["monotone"] != "no")
    assert props["lipschitz"] == pytest.approx(np.abs(d).max(), abs=1e-6)


def test_comparison_smoothness_classes():
    expected = {"relu": 0, "leaky_relu": 0, "elu": 1, "gelu": math.inf, "silu": math.inf, "apalu": 0}
    got = {n: T.activation_properties(n)["smoothness_order"] for n in expected}
    assert got == expected
    assert T.activation_properties("apalu", 1.0, 1.5)["smoothness_order"] == 1
    # and by autograd: the one-sided second derivatives of ELU differ at 0, its first ones agree
    d2 = _autograd_act(torch.nn.functional.elu, np.array([-1e-8, 1e-8]), 2)
    assert abs(d2[0] - d2[1]) > 0.5


def _autograd_act(fn, xs, order):
    t = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = fn(t)
    for _ in range(order):
        (y,) = torch.autograd.grad(y.sum(), t, create_graph=True)
    return y.detach().numpy()
