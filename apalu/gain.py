r"""A variance-preserving initialization gain for APALU (light: no SymPy, only mpmath).

The derivation is in the book's chapter on depth and initialization and in :mod:`apalu.theory`;
this module holds only the numbers, so that ``import apalu`` stays cheap.
"""

from __future__ import annotations

import functools
import math

from .functional import K


__all__ = ["second_moment_constants", "second_moment", "init_gain", "moment_map", "fixed_point_slope"]

_DIGITS = 30

@functools.lru_cache(maxsize=None)
def second_moment_constants() -> tuple[float, float]:
    """(P, N) with E[f(z)²] = a²·P + b²·N for z ~ N(0, 1).

    ``N = e²Φ(−2) − 2√e·Φ(−1) + 1/2`` in closed form; ``P = E[z²(1 + σ(kz))² · 1{z ≥ 0}]`` has none
    that SymPy finds (the logistic–Gaussian integral), so it is a 30-digit mpmath quadrature.
    """
    import mpmath  # a dependency of torch (through sympy); imported only when a gain is computed

    with mpmath.workdps(_DIGITS):
        k = mpmath.mpf(repr(K))  # exact at this precision: 1.702 as a decimal
        phi = lambda z: mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
        P = mpmath.quad(lambda z: z * z * (1 + 1 / (1 + mpmath.exp(-k * z))) ** 2 * phi(z), [0, 4, mpmath.inf])
        ncdf = lambda t: mpmath.erfc(-t / mpmath.sqrt(2)) / 2  # noqa: E731
        N = mpmath.e**2 * ncdf(-2) - 2 * mpmath.sqrt(mpmath.e) * ncdf(-1) + mpmath.mpf(1) / 2
        return float(P), float(N)


def _mean_square(v) -> float:
    try:
        import torch

        if isinstance(v, torch.Tensor):
            return float(v.detach().double().pow(2).mean())
    except ImportError:  # pragma: no cover
        pass
    return float(v) ** 2


def second_moment(a_, b_) -> float:
    """E[f(z)²] for z ~ N(0, 1); per-channel a, b (tensors) are averaged over channels."""
    P, N = second_moment_constants()
    return _mean_square(a_) * P + _mean_square(b_) * N


def init_gain(a_=None, b_=None) -> float:
    r"""Variance-preserving gain for a layer followed by APALU, like ``calculate_gain('relu') = √2``.

    For pre-activations ``z ~ N(0, 1)``, the next layer's pre-activation has second moment
    ``fan_in · Var(w) · E[f(z)²]``; with ``std(w) = gain / √fan_in`` it stays 1 when

    .. math:: \mathrm{gain}(a, b) = \frac{1}{\sqrt{a^2 P + b^2 N}},

    with the constants of :func:`second_moment_constants` (P ≈ 1.8205, N ≈ 0.1449).

    Args:
        a_: ``a`` (float or tensor of per-channel values), or an :class:`apalu.APALU` module, in
            which case its effective ``a`` and ``b`` are used and ``b_`` must be omitted.
        b_: ``b`` (float or tensor).

    Returns:
        The gain, a float. Use it as ``std = gain / sqrt(fan_in)``, e.g.
        ``torch.nn.init.normal_(layer.weight, 0.0, init_gain(act) / math.sqrt(fan_in))``, or
        ``torch.nn.init.kaiming_normal_(w, a=...)``-style code that takes a gain.

    Example:
        >>> round(init_gain(1.0, 1.0), 4)
        0.7133
    """
    if a_ is not None and hasattr(a_, "a") and hasattr(a_, "b") and b_ is None:
        a_, b_ = a_.a, a_.b
    if a_ is None or b_ is None:
        raise ValueError("init_gain needs a and b (or an APALU module)")
    m = second_moment(a_, b_)
    if not m > 0 or not math.isfinite(m):
        raise ValueError(f"init_gain: E[f(z)^2] = {m} must be positive and finite (a={a_}, b={b_})")
    return 1.0 / math.sqrt(m)


def moment_map(q: float, a_: float, b_: float) -> float:
    """E[f(√q·z)²] for z ~ N(0, 1): the second moment after APALU of an N(0, q) pre-activation."""
    import mpmath

    with mpmath.workdps(20):
        k = mpmath.mpf(repr(K))  # exact at this precision: 1.702 as a decimal
        r = mpmath.sqrt(q)
        phi = lambda z: mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
        pos = mpmath.quad(lambda z: (r * z * (1 + 1 / (1 + mpmath.exp(-k * r * z)))) ** 2 * phi(z), [0, 4, mpmath.inf])
        neg = mpmath.quad(lambda z: mpmath.expm1(r * z) ** 2 * phi(z), [-mpmath.inf, -4, 0])
        return float(a_**2 * pos + b_**2 * neg)


def fixed_point_slope(a_: float, b_: float) -> float:
    r"""λ = d log E[f(√q z)²] / d log q at q = 1.

    With ``gain = init_gain(a, b)`` the layer-to-layer map of the second moment,
    ``q ↦ gain²·E[f(√q z)²]``, has the fixed point q = 1 and, near it, ``q_{l+1} − 1 ≈ λ (q_l − 1)``.
    ReLU has λ = 1 (positively homogeneous: deviations neither grow nor shrink); λ > 1 means
    deviations from q = 1 grow with depth, λ < 1 that they decay.
    """
    h = 1e-4  # central difference in log q (the quadratures are good to ~1e-18)
    up, down = moment_map(math.exp(h), a_, b_), moment_map(math.exp(-h), a_, b_)
    return (math.log(up) - math.log(down)) / (2 * h)
