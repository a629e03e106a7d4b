"""χ₁ (backward criticality) of APALU and the baselines, against sampling and the referee's values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from apalu.gain import init_gain
from apalu.lab.models import variance_preserving_gain
from apalu.registry import make_activation
from apalu.theory import criticality as C


@pytest.mark.parametrize("a, b, referee", [(1.0, 1.0, 1.019), (1.0, 1.5, 1.031), (0.5, 2.0, 1.093)])
def test_chi1_reproduces_the_referee_and_sampling(a, b, referee):
    chi = C.chi1_apalu(a, b)
    assert abs(chi - referee) < 5e-4
    mc, se = C.chi1_monte_carlo(a, b, n=400_000, seed=1)
    assert abs(chi - mc) < 4 * se and se < 0.01


@pytest.mark.parametrize("a, b", [(1.0, 1.0), (0.3, 1.7), (1.9, 0.2)])
def test_chi1_is_gain_squared_times_derivative_moment(a, b):
    # direct 1-d quadrature of f'(z)² with the library's gain, independent of the constants
    z = np.linspace(-12, 12, 400_001)
    t = torch.tensor(z, requires_grad=True)
    from apalu.functional import apalu

    (d,) = torch.autograd.grad(apalu(t, a, b).sum(), t)
    w = np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    direct = init_gain(a, b) ** 2 * np.trapezoid(d.numpy() ** 2 * w, z)
    assert abs(C.chi1_apalu(a, b) - direct) < 1e-4


def test_chi1_depends_on_b_over_a_only_and_stays_within_its_limits():
    lo, hi = C.chi1_apalu_limits()
    rho = np.geomspace(1e-3, 1e3, 61)
    chi = C.chi1_apalu(np.ones_like(rho), rho)
    assert np.allclose(chi, C.chi1_apalu(3 * np.ones_like(rho), 3 * rho))
    assert np.all(np.diff(chi) > 0) and lo < chi.min() and chi.max() < hi
    assert lo > 1  # every APALU has growing gradients under its own gain


def test_baselines_match_the_lab_gain_and_relu_is_critical():
    assert C.chi1("relu") == pytest.approx(1.0, abs=1e-10)
    for name in ("relu", "gelu", "silu", "elu"):
        assert C.variance_gain(name) == pytest.approx(variance_preserving_gain(make_activation(name)), rel=2e-3)
    assert C.chi1("elu") > 1 and C.chi1("gelu") > 1


def test_growth_and_errors():
    assert C.gradient_growth_log10(10.0, 4) == pytest.approx(2.0)
    assert C.gradient_growth_log10(10.0, 4, squared=True) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="a, b > 0"):
        C.chi1_apalu(-1.0, 1.0)
    with pytest.raises(ValueError, match="no χ₁"):
        C.chi1("nope")


def test_prediction_per_run_and_within_depth_fit():
    import pandas as pd

    a1, b1 = (1.0, 0.5, 2.0), (1.0, 2.0, 1.0)
    rows = [{"activation": "relu", "depth": 3, "seed": 0, "stage": "init", "log10_grad_ratio": 0.1,
             "a_layers": (math.nan,) * 3, "b_layers": (math.nan,) * 3},
            {"activation": "apalu", "depth": 3, "seed": 0, "stage": "init", "log10_grad_ratio": 0.1,
             "a_layers": a1, "b_layers": b1}]
    p = C.predicted_log10_ratio(pd.DataFrame(rows))["log10_pred_chi1"].tolist()
    assert p[0] == pytest.approx(0.5 * math.log10(2.0), abs=1e-9)  # ReLU: χ₁ = 1, 1/g² = 1/2
    # layers 1 and 2 lie between W_3 and W_1; W_3 sees layer 2's output; layer 3's a, b do not enter
    second = 1 / init_gain(0.5, 2.0) ** 2
    assert p[1] == pytest.approx(0.5 * (math.log10(C.chi1_apalu(1.0, 1.0)) + math.log10(C.chi1_apalu(0.5, 2.0)))
                                 - 0.5 * math.log10(second))
    # a measurement that follows the prediction gives r near 1 within the depth, noise gives r near 0
    rng = np.random.default_rng(0)
    rows = []
    for s in range(12):
        rho = rng.uniform(0.1, 10, size=5)
        pred = 0.5 * np.log10(C.chi1_apalu(np.ones(4), rho[:4])).sum() + math.log10(init_gain(1.0, rho[3]))
        rows.append({"activation": "apalu", "depth": 5, "seed": s, "stage": "init",
                     "log10_grad_ratio": pred + rng.normal(0, 1e-4), "a_layers": (1.0,) * 5,
                     "b_layers": tuple(rho)})
        rows.append({**rows[-1], "stage": "trained", "log10_grad_ratio": rng.normal()})
    fit = C.within_depth_fit(pd.DataFrame(rows)).set_index("stage")
    assert fit.loc["init", "pearson_r"] > 0.99 and abs(fit.loc["trained", "pearson_r"]) < 0.9
    assert (fit["runs"] == 12).all()
