r"""Backward criticality: how the squared gradient norm changes per layer at initialization.

Mean-field theory of wide random networks (Poole et al. 2016; Schoenholz et al. 2017): with
weights ``W ~ N(0, g²/fan_in)`` and pre-activations ``z ~ N(0, q*)`` at the fixed point of the
forward variance map ``q ↦ g²·E[f(√q·z)²]``, backpropagation multiplies the expected squared
norm of the error signal by

.. math:: \chi_1 = g^2\,E\bigl[f'(z)^2\bigr]

per layer, so after ``L`` layers the squared gradient norm scales as ``χ₁^L`` and the norm as
``χ₁^{L/2}``. ``χ₁ > 1``: gradients grow towards the input (exploding); ``< 1``: they vanish.

**Convention** (the one that gives the referee's 1.019, 1.031 and 1.093): every activation gets
its own variance-preserving gain ``g = 1/√E[f(z)²]``, z ~ N(0, 1) (``apalu.init_gain(a, b)`` for
APALU, √2 for ReLU), so ``q* = 1`` is the fixed point by construction and ``z ~ N(0, 1)``.

For APALU both moments split into the two branches, ``E[f(z)²] = a²P + b²N`` and
``E[f'(z)²] = a²P' + b²N'`` with four constants, so

.. math:: \chi_1(a, b) = \frac{a^2 P' + b^2 N'}{a^2 P + b^2 N}

depends on the ratio ``ρ = b/a`` alone and lies between ``P'/P`` (ρ → 0) and ``N'/N`` (ρ → ∞).
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np

from ..functional import K
from ..gain import second_moment_constants

__all__ = ["derivative_moment_constants", "chi1_apalu", "chi1_apalu_limits", "chi1", "chi1_monte_carlo",
           "predicted_log10_ratio", "within_depth_fit", "variance_gain",
           "gradient_growth_log10", "BASELINE_DERIVATIVES"]

_DIGITS = 30


@functools.lru_cache(maxsize=None)
def derivative_moment_constants() -> tuple[float, float]:
    """(P', N') with E[f'(z)²] = a²P' + b²N' for z ~ N(0, 1).

    ``N' = E[e^{2z}·1{z < 0}] = e²Φ(−2)`` in closed form; ``P' = E[h(z)²·1{z ≥ 0}]`` with
    ``h = 1 + σ(kz) + kzσ(kz)(1 − σ(kz))`` (f'/a on the positive side) by 30-digit quadrature.
    """
    with mpmath.workdps(_DIGITS):
        k = mpmath.mpf(repr(K))
        phi = lambda z: mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
        sig = lambda t: 1 / (1 + mpmath.exp(-t))  # noqa: E731
        h = lambda z: 1 + sig(k * z) + k * z * sig(k * z) * (1 - sig(k * z))  # noqa: E731
        p_prime = mpmath.quad(lambda z: h(z) ** 2 * phi(z), [0, 4, mpmath.inf])
        n_prime = mpmath.e**2 * mpmath.erfc(2 / mpmath.sqrt(2)) / 2
        return float(p_prime), float(n_prime)


def chi1_apalu(a_, b_) -> float | np.ndarray:
    """χ₁ of APALU(a, b) under its own variance-preserving gain ``init_gain(a, b)``, z ~ N(0, 1).

    Vectorised over arrays of a and b (one value per layer, e.g.); a, b must be positive.
    """
    a_arr, b_arr = np.asarray(a_, dtype=float), np.asarray(b_, dtype=float)
    if not (np.all(np.isfinite(a_arr)) and np.all(np.isfinite(b_arr))) or np.any(a_arr <= 0) or np.any(b_arr <= 0):
        raise ValueError(f"chi1_apalu needs finite a, b > 0, got a={a_!r}, b={b_!r}")
    P, N = second_moment_constants()
    Pd, Nd = derivative_moment_constants()
    a2, b2 = a_arr**2, b_arr**2
    out = (a2 * Pd + b2 * Nd) / (a2 * P + b2 * N)
    return float(out) if out.ndim == 0 else out


def chi1_apalu_limits() -> tuple[float, float]:
    """(χ₁ as b/a → 0, χ₁ as b/a → ∞) = (P'/P, N'/N): χ₁ is monotone in b/a between them."""
    P, N = second_moment_constants()
    Pd, Nd = derivative_moment_constants()
    return Pd / P, Nd / N


def _normal_pdf(z):
    return np.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _normal_cdf(z):
    from scipy.special import ndtr

    return ndtr(z)


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(z / 2))


# (f, f') of the fixed baselines, in NumPy (ELU with α = 1, GELU exact, SiLU = x·σ(x))
BASELINE_DERIVATIVES = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "elu": (lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
            lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0)))),
    "gelu": (lambda z: z * _normal_cdf(z), lambda z: _normal_cdf(z) + z * _normal_pdf(z)),
    "silu": (lambda z: z * _sigmoid(z), lambda z: _sigmoid(z) * (1 + z * (1 - _sigmoid(z)))),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
}


def _gauss_expectation(fn) -> float:
    """E[fn(z)], z ~ N(0, 1), by adaptive quadrature split at the kink 0."""
    from scipy.integrate import quad

    integrand = lambda z: float(fn(np.asarray(z))) * _normal_pdf(z)  # noqa: E731
    left = quad(integrand, -np.inf, 0.0, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
    right = quad(integrand, 0.0, np.inf, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
    return left + right


@functools.lru_cache(maxsize=None)
def _chi1_baseline(name: str) -> tuple[float, float]:
    f, df = BASELINE_DERIVATIVES[name]
    gain2 = 1.0 / _gauss_expectation(lambda z: f(z) ** 2)
    return gain2 * _gauss_expectation(lambda z: df(z) ** 2), math.sqrt(gain2)


def chi1(activation: str, a_: float = 1.0, b_: float = 1.0) -> float:
    """χ₁ of ``activation`` under its own variance-preserving gain (a, b for APALU only)."""
    if activation == "apalu":
        return chi1_apalu(a_, b_)
    if activation not in BASELINE_DERIVATIVES:
        raise ValueError(f"no χ₁ for {activation!r}; known: apalu, {', '.join(BASELINE_DERIVATIVES)}")
    return _chi1_baseline(activation)[0]


def variance_gain(activation: str) -> float:
    """The variance-preserving gain 1/√E[f(z)²] this module uses for a fixed activation."""
    if activation not in BASELINE_DERIVATIVES:
        raise ValueError(f"no gain for {activation!r}; known: {', '.join(BASELINE_DERIVATIVES)}")
    return _chi1_baseline(activation)[1]


def chi1_monte_carlo(a_: float, b_: float, n: int = 1_000_000, seed: int = 0) -> tuple[float, float]:
    """(χ₁, its standard error) by sampling z ~ N(0, 1) and differentiating the implementation
    (:func:`apalu.functional.apalu`) by autograd, with the sampled E[f(z)²] for the gain."""
    import torch

    from ..functional import apalu

    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator=gen, dtype=torch.float64, requires_grad=True)
    y = apalu(z, a_, b_)
    (d,) = torch.autograd.grad(y.sum(), z)
    fy2, d2 = y.detach().pow(2), d.pow(2)
    m_f, m_d = float(fy2.mean()), float(d2.mean())
    chi = m_d / m_f
    # delta method for a ratio of two means of the same samples
    cov = np.cov(np.stack([d2.numpy(), fy2.numpy()]))
    var = (cov[0, 0] / m_f**2 - 2 * m_d * cov[0, 1] / m_f**3 + m_d**2 * cov[1, 1] / m_f**4) / n
    return chi, math.sqrt(var)


def gradient_growth_log10(chi: float | np.ndarray, layers: int | np.ndarray, squared: bool = False):
    """Predicted log10 growth of the gradient norm over ``layers`` layers: (layers/2)·log10 χ₁
    (``squared=True``: of the squared norm, layers·log10 χ₁)."""
    return np.asarray(layers) * np.log10(chi) * (1.0 if squared else 0.5)


def _second_moment(activation: str, a_: float, b_: float) -> float:
    """E[f(z)²], z ~ N(0, 1) (= 1/g²): the squared norm per unit of a layer's output at q* = 1."""
    if activation == "apalu":
        P, N = second_moment_constants()
        return a_**2 * P + b_**2 * N
    return variance_gain(activation) ** -2


def predicted_log10_ratio(ratios):
    """χ₁'s prediction of each run's log10(‖∇W₁‖/‖∇W_L‖), up to a constant shared by all arms.

    ∇W_l = δ_l h_{l−1}ᵀ: between δ_L and δ₁ the backward signal crosses layers 1..L−1, each
    multiplying its squared norm by χ₁ of its activation (APALU: of that layer's own a, b);
    W₁ sees the data (the same for every arm) and W_L sees h_{L−1} = f(z), whose squared
    norm per unit is E[f(z)²] = 1/g². So the prediction is
    Σ_{l<L} ½·log10 χ₁,l − ½·log10 E[f_{L−1}(z)²]. ``ratios`` is
    :func:`apalu.lab.gradient_flow.layer_ratios`' frame; returns it with ``log10_pred_chi1``."""
    preds = []
    for act, depth, a_l, b_l in zip(ratios["activation"], ratios["depth"], ratios["a_layers"], ratios["b_layers"]):
        if act == "apalu":
            a_arr, b_arr = np.asarray(a_l[: depth - 1], dtype=float), np.asarray(b_l[: depth - 1], dtype=float)
            ok = np.isfinite(a_arr).all() and np.isfinite(b_arr).all() and (a_arr > 0).all() and (b_arr > 0).all()
            pred = (float(0.5 * np.log10(chi1_apalu(a_arr, b_arr)).sum())
                    - 0.5 * math.log10(_second_moment(act, a_arr[-1], b_arr[-1]))) if ok else math.nan
        else:
            pred = float(gradient_growth_log10(chi1(act), depth - 1)) - 0.5 * math.log10(_second_moment(act, 1, 1))
        preds.append(pred)
    return ratios.assign(log10_pred_chi1=preds)


def within_depth_fit(ratios, activation: str = "apalu"):
    """Does χ₁ predict the measured ratio *within* a depth? Per (depth, stage): Pearson r across
    seeds between predicted and measured (scipy.stats.pearsonr; runs with a non-finite value
    left out and counted), and the mean of each. Pooling depths would let depth alone drive r."""
    import pandas as pd
    from scipy import stats

    df = predicted_log10_ratio(ratios[ratios["activation"] == activation])
    rows = []
    for (depth, stage), g in df.groupby(["depth", "stage"], sort=True):
        ok = g[np.isfinite(g["log10_grad_ratio"]) & np.isfinite(g["log10_pred_chi1"])]
        if len(ok) >= 3 and ok["log10_pred_chi1"].std() > 0 and ok["log10_grad_ratio"].std() > 0:
            res = stats.pearsonr(ok["log10_pred_chi1"], ok["log10_grad_ratio"])
            r, p = float(res.statistic), float(res.pvalue)
        else:
            r = p = math.nan
        rows.append({"depth": depth, "stage": stage, "runs": len(ok), "left_out": len(g) - len(ok),
                     "mean_measured": float(ok["log10_grad_ratio"].mean()),
                     "mean_predicted": float(ok["log10_pred_chi1"].mean()), "pearson_r": r, "p": p})
    return pd.DataFrame(rows)
