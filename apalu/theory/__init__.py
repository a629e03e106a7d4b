r"""The analysis of APALU in SymPy, and the numeric facts derived from it.

Everything the theory chapters of the book state is computed here, so that the notebooks only
narrate and assert, and ``tests/theory/test_theory.py`` can check each result against the PyTorch
implementation (:func:`apalu.functional.apalu`) by autograd.

Notation: ``x`` the pre-activation, ``a, b > 0`` the APALU parameters, ``k = 1.702`` (kept exact as
the rational 851/500), ``σ(t) = 1/(1 + e^{-t})``:

.. math::
    f(x) = \begin{cases} a\,(x + x\,\sigma(kx)) & x \ge 0 \\ b\,(e^{x} - 1) & x < 0 \end{cases}

Main entry points:

* :func:`branches`, :func:`piecewise` — the two branches and ``f`` as a SymPy ``Piecewise``;
* :func:`one_sided_derivatives`, :func:`c1_condition` — smoothness at 0;
* :func:`derivative_extremum` — where ``f'`` peaks on ``x > 0`` (``t·tanh(t/2) = 2``, by nsolve);
* :func:`second_moment_constants`, :func:`init_gain` — a variance-preserving init gain;
* :func:`activation_properties` — the comparison table (smoothness, monotonicity, bounds).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import mpmath
import sympy as sp

from ..functional import K as _K_FLOAT
from ..gain import fixed_point_slope, init_gain, moment_map, second_moment, second_moment_constants

__all__ = [
    "K",
    "x",
    "a",
    "b",
    "sigmoid",
    "branches",
    "piecewise",
    "lambdify_piecewise",
    "limits",
    "one_sided_derivatives",
    "c1_condition",
    "second_derivative_jump",
    "derivative_positive_closed_form",
    "derivative_extremum",
    "DerivativeExtremum",
    "lipschitz_constant",
    "parameter_gradients",
    "depth_gain_probability",
    "second_moment_constants",
    "second_moment",
    "init_gain",
    "nonpolynomial_certificate",
    "ACTIVATION_PIECES",
    "activation_pieces",
    "activation_properties",
]

K = sp.Rational(repr(_K_FLOAT))  # the library's k (1.702) as an exact rational: 851/500
x = sp.Symbol("x", real=True)
a = sp.Symbol("a", positive=True)
b = sp.Symbol("b", positive=True)
_DIGITS = 30  # working precision (decimal digits) for numeric solves and integrals


def sigmoid(t: sp.Expr) -> sp.Expr:
    """The logistic function as a SymPy expression."""
    return 1 / (1 + sp.exp(-t))


def branches(a_: sp.Expr = a, b_: sp.Expr = b) -> tuple[sp.Expr, sp.Expr]:
    """(positive branch, negative branch) of APALU as expressions in :data:`x`."""
    return a_ * (x + x * sigmoid(K * x)), b_ * (sp.exp(x) - 1)


def piecewise(a_: sp.Expr = a, b_: sp.Expr = b, order: int = 0) -> sp.Piecewise:
    """The ``order``-th derivative of f as a Piecewise (the positive branch owns x = 0)."""
    pos, neg = branches(a_, b_)
    return sp.Piecewise((sp.diff(neg, x, order), x < 0), (sp.diff(pos, x, order), True))


def lambdify_piecewise(order: int = 0, wrt: sp.Symbol | None = None):
    """A NumPy function ``g(x, a, b)`` for the ``order``-th x-derivative of f (then d/d``wrt``)."""
    expr = piecewise(order=order)
    if wrt is not None:
        expr = sp.diff(expr, wrt)
    return sp.lambdify((x, a, b), expr, modules="numpy")


def limits() -> dict[str, sp.Expr]:
    """Asymptotics: f(−∞), lim f(x)/x at +∞, lim (f(x) − 2a·x) at +∞, and f(0)."""
    pos, neg = branches()
    return {
        "f(-oo)": sp.limit(neg, x, -sp.oo),
        "f(x)/x at +oo": sp.limit(pos / x, x, sp.oo),
        "f(x)-2ax at +oo": sp.limit(pos - 2 * a * x, x, sp.oo),
        "f(0)": pos.subs(x, 0),
    }


def one_sided_derivatives(order: int, a_: sp.Expr = a, b_: sp.Expr = b) -> tuple[sp.Expr, sp.Expr]:
    """(f^(order)(0⁺), f^(order)(0⁻)), simplified; ``order = 0`` gives the one-sided values."""
    pos, neg = branches(a_, b_)
    right = sp.simplify(sp.diff(pos, x, order).subs(x, 0))
    left = sp.simplify(sp.diff(neg, x, order).subs(x, 0))
    return right, left


def c1_condition() -> list[sp.Expr]:
    """The values of b that make f differentiable at 0 (solutions of f'(0⁺) = f'(0⁻))."""
    right, left = one_sided_derivatives(1)
    return sp.solve(sp.Eq(right, left), b)


def second_derivative_jump(b_: sp.Expr = b) -> sp.Expr:
    """f''(0⁺) − f''(0⁻), optionally with b replaced (e.g. by 3a/2)."""
    right, left = one_sided_derivatives(2, a, b_)
    return sp.simplify(right - left)


def derivative_positive_closed_form() -> tuple[sp.Expr, sp.Expr]:
    """(f' on x > 0 as SymPy differentiates it, the stated form a·(1 + σ + kxσ(1 − σ)))."""
    pos, _ = branches()
    s = sigmoid(K * x)
    return sp.diff(pos, x), a * (1 + s + K * x * s * (1 - s))


@dataclass(frozen=True)
class DerivativeExtremum:
    """Where f' peaks on x > 0: ``t* = k·x*`` solves ``t·tanh(t/2) = 2``; f'(x*) = ``c_max``·a."""

    t_star: mpmath.mpf  # in units of k·x
    x_star: mpmath.mpf
    c_max: mpmath.mpf  # f'(x*) / a
    residual: mpmath.mpf  # |f''(x*)| / a at the solution


@functools.lru_cache(maxsize=None)
def derivative_extremum() -> DerivativeExtremum:
    """Solve f''(x) = 0 on x > 0 with nsolve at 30 digits (the maximum of f', and f's inflection)."""
    t = sp.Symbol("t", positive=True)
    # f''(x) = a·k·σ(1−σ)·(2 + kx(1 − 2σ)): the only zero on x > 0 is where t·(2σ(t) − 1) = 2.
    eq = t * sp.tanh(t / 2) - 2
    t_star = sp.nsolve(eq, t, 2.4, prec=_DIGITS)
    pos, _ = branches(1, 1)
    d1, d2 = sp.diff(pos, x), sp.diff(pos, x, 2)
    x_star = t_star / K
    with mpmath.workdps(_DIGITS):
        c_max = mpmath.mpf(str(sp.N(d1.subs(x, x_star), _DIGITS)))
        residual = abs(mpmath.mpf(str(sp.N(d2.subs(x, x_star), _DIGITS))))
        return DerivativeExtremum(
            mpmath.mpf(str(t_star)), mpmath.mpf(str(sp.N(x_star, _DIGITS))), c_max, residual
        )


def lipschitz_constant(a_: float, b_: float) -> float:
    """sup |f'| = max(c_max·a, b) (f' ∈ [3a/2, c_max·a] on x ≥ 0, f' ∈ (0, b) on x < 0)."""
    return max(float(derivative_extremum().c_max) * a_, b_)


def parameter_gradients() -> dict[str, sp.Piecewise]:
    """∂f/∂a and ∂f/∂b as Piecewise expressions in x."""
    f = piecewise()
    return {"a": sp.piecewise_fold(sp.diff(f, a)), "b": sp.piecewise_fold(sp.diff(f, b))}


def depth_gain_probability(low: sp.Expr = 0, high: sp.Expr = 2) -> sp.Expr:
    """P(3a/2 > 1) for a ~ U(low, high): the chance that the positive-side gain exceeds 1."""
    u = sp.Symbol("u", real=True)
    lo, hi = sp.sympify(low), sp.sympify(high)
    threshold = sp.Rational(2, 3)
    start = sp.Max(lo, threshold)
    return sp.simplify(sp.integrate(1 / (hi - lo), (u, start, sp.Max(hi, start))))


# ---------------------------------------------------------------- initialization gain
_Z = sp.Symbol("z", real=True)
_PHI = sp.exp(-_Z**2 / 2) / sp.sqrt(2 * sp.pi)


@functools.lru_cache(maxsize=None)
def negative_moment_closed_form() -> sp.Expr:
    """E[(e^z − 1)² · 1{z < 0}] for z ~ N(0, 1), integrated by SymPy."""
    return sp.simplify(sp.integrate(sp.expand((sp.exp(_Z) - 1) ** 2) * _PHI, (_Z, -sp.oo, 0)))


# ---------------------------------------------------------------- universal approximation
def nonpolynomial_certificate() -> dict[str, object]:
    """Why f is not a polynomial: on x < 0 every derivative of order ≥ 1 is b·eˣ, never 0.

    By induction: the first derivative of the negative branch is b·eˣ (base case) and
    d/dx(b·eˣ) = b·eˣ (step), so d^{n+1}f/dx^{n+1} = b·eˣ ≠ 0 on x < 0 for every n ≥ 0, while a
    polynomial of degree n has an identically zero (n+1)-th derivative.
    """
    _, neg = branches()
    first = sp.diff(neg, x)
    return {
        "first_derivative": first,
        "step_is_fixed_point": sp.simplify(sp.diff(first, x) - first) == 0,
        "zeros": sp.solve(sp.Eq(first, 0), x),
        "explicit": [sp.simplify(sp.diff(neg, x, n + 1)) for n in range(8)],
    }


# ---------------------------------------------------------------- comparison table
# Each activation as pieces (expression, lower end, upper end) on ℝ; a breakpoint belongs to
# the piece on its right (as in the implementations: relu'(0) = 0 is a convention we don't use).
ACTIVATION_PIECES = {
    "relu": lambda: [(sp.Integer(0), -sp.oo, 0), (x, 0, sp.oo)],
    "leaky_relu": lambda: [(x / 100, -sp.oo, 0), (x, 0, sp.oo)],
    "elu": lambda: [(sp.exp(x) - 1, -sp.oo, 0), (x, 0, sp.oo)],
    "gelu": lambda: [(x / 2 * (1 + sp.erf(x / sp.sqrt(2))), -sp.oo, sp.oo)],
    "silu": lambda: [(x * sigmoid(x), -sp.oo, sp.oo)],
}


def activation_pieces(name: str, a_: float | sp.Expr = 1, b_: float | sp.Expr = 1) -> list:
    """The pieces of an activation (APALU with the given a, b)."""
    if name == "apalu":
        pos, neg = branches(sp.nsimplify(a_), sp.nsimplify(b_))
        return [(neg, -sp.oo, 0), (pos, 0, sp.oo)]
    if name not in ACTIVATION_PIECES:
        raise ValueError(f"no symbolic form for {name!r}; known: apalu, {', '.join(ACTIVATION_PIECES)}")
    return ACTIVATION_PIECES[name]()


def _critical_points(expr: sp.Expr, lo, hi, span: float = 12.0, n: int = 481) -> list[float]:
    """Zeros of ``expr`` in (lo, hi): sign changes on a grid (infinite ends clipped), refined by nsolve."""
    if expr.is_zero or not expr.has(x):
        return []
    left = float(lo) if lo != -sp.oo else -span
    right = float(hi) if hi != sp.oo else span
    g = sp.lambdify(x, expr, modules="mpmath")
    grid = [left + (right - left) * i / (n - 1) for i in range(n)][1:-1]
    vals = [g(v) for v in grid]
    roots = []
    for (u, gu), (v, gv) in zip(zip(grid, vals), zip(grid[1:], vals[1:])):
        if gu == 0:
            roots.append(u)
        elif gu * gv < 0:
            roots.append(float(sp.nsolve(expr, x, (u, v), solver="bisect", prec=_DIGITS)))
    return roots


def _extremes(expr: sp.Expr, pieces_range, right_owned: bool):
    """(value, attained) candidates for inf/sup of ``expr`` over (lo, hi) (hi, lo excluded/included)."""
    lo, hi = pieces_range
    out = []
    if not expr.has(x):
        return [(float(expr), True)]
    for end, direction in ((lo, "+"), (hi, "-")):
        val = sp.limit(expr, x, end, dir=direction) if end not in (sp.oo, -sp.oo) else sp.limit(expr, x, end)
        attained = end not in (sp.oo, -sp.oo) and (end == lo and right_owned)
        out.append((float(val), attained))
    for c in _critical_points(sp.diff(expr, x), lo, hi):
        out.append((float(expr.subs(x, c).evalf(_DIGITS)), True))
    return out


def _interval(cands) -> tuple[float, float, str]:
    lo = min(cands, key=lambda c: (c[0], not c[1]))
    hi = max(cands, key=lambda c: (c[0], c[1]))
    lo_att = any(v == lo[0] and att for v, att in cands)
    hi_att = any(v == hi[0] and att for v, att in cands)
    fmt = lambda v: "−∞" if v == -math.inf else ("+∞" if v == math.inf else f"{v:.4f}")  # noqa: E731
    text = f"{'[' if lo_att else '('}{fmt(lo[0])}, {fmt(hi[0])}{']' if hi_att else ')'}"
    return lo[0], hi[0], text


def activation_properties(name: str, a_: float = 1, b_: float = 1, max_order: int = 4) -> dict:
    """Computed properties of one activation: smoothness class, monotonicity, inf f, f' range, Lipschitz.

    Smoothness: the largest m such that the one-sided derivatives of orders 0..m agree at every
    breakpoint (``C^∞`` when there is no breakpoint: each piece is analytic). Derivative range:
    limits at the ends of each piece and values at the zeros of f'' (nsolve), so an infimum reached
    only as x → ±∞ is reported as not attained.
    """
    pieces = activation_pieces(name, a_, b_)
    breaks = [p[2] for p in pieces[:-1]]
    smooth = math.inf
    for i, bp in enumerate(breaks):
        left, right = pieces[i][0], pieces[i + 1][0]
        m = -1
        for order in range(max_order + 1):
            gap = sp.simplify(sp.diff(right, x, order).subs(x, bp) - sp.diff(left, x, order).subs(x, bp))
            if gap != 0:
                break
            m = order
        smooth = min(smooth, m)
    d_cands, f_cands, flat_zero = [], [], False
    for i, (expr, lo, hi) in enumerate(pieces):
        d = sp.diff(expr, x)
        flat_zero |= d.is_zero is True
        d_cands += _extremes(d, (lo, hi), right_owned=i > 0)
        f_cands += _extremes(expr, (lo, hi), right_owned=i > 0)
    d_lo, d_hi, d_text = _interval(d_cands)
    f_lo, _, f_text = _interval(f_cands)
    if d_lo < 0:
        monotone = "no"
    elif flat_zero:
        monotone = "non-decreasing"
    else:
        monotone = "strictly increasing"
    klass = "C^∞" if smooth == math.inf else ("discontinuous" if smooth < 0 else f"C^{smooth}")
    return {
        "activation": name if name != "apalu" else f"apalu (a={a_:g}, b={b_:g})",
        "smoothness": klass,
        "smoothness_order": smooth,
        "monotone": monotone,
        "inf_f": f_lo,
        "bounded_below": f_lo > -math.inf,
        "range": f_text,
        "inf_df": d_lo,
        "sup_df": d_hi,
        "derivative_range": d_text,
        "lipschitz": max(abs(d_lo), abs(d_hi)),
    }
