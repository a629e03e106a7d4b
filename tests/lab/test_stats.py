import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apalu.lab.stats import bootstrap_ci, diff_ci, mean_ci, summarize, t_ci


def test_t_ci_known_value():
    m, lo, hi = t_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and lo == pytest.approx(2 - 4.302652729911275 / math.sqrt(3)) and hi == pytest.approx(4 - lo)


def test_nan_and_small_samples():
    r = mean_ci([1.0, float("nan"), 3.0])
    assert r["n"] == 2 and r["n_nan"] == 1 and r["mean"] == 2.0
    assert math.isnan(mean_ci([1.0])["low"]) and math.isnan(mean_ci([])["mean"])


def test_bootstrap_deterministic_and_covers():
    x = np.random.default_rng(0).normal(5, 1, 40)
    a, b = bootstrap_ci(x, seed=1), bootstrap_ci(x, seed=1)
    assert a == b and a[1] < 5.0 < a[2]


def test_coverage_t_ci_roughly_95():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        _, lo, hi = t_ci(rng.normal(0, 1, 8))
        hits += lo < 0 < hi
    assert 0.91 < hits / 400 < 0.99


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=20))
def test_ci_contains_mean(xs):
    for method in ("t", "bootstrap"):
        r = mean_ci(xs, method=method)
        assert r["low"] <= r["mean"] + 1e-9 and r["mean"] <= r["high"] + 1e-9


def test_diff_ci():
    r = diff_ci([10, 11, 12, 10.5], [1, 2, 1.5, 2.5])
    assert r["excludes_zero"] and r["low"] > 0 and r["diff"] == pytest.approx(9.125)
    r0 = diff_ci([1, 2, 3], [1, 2, 3])
    assert not r0["excludes_zero"]
    p = diff_ci([1, 2, 3], [0, 1, 2], paired=True)
    assert p["diff"] == 1 and p["low"] == p["high"] == 1  # constant differences: zero width
    with pytest.raises(ValueError):
        diff_ci([1, 2], [1], paired=True)
    with pytest.raises(ValueError):
        mean_ci([1, 2], method="magic")


def test_summarize():
    df = pd.DataFrame({"g": ["a", "a", "b", "b"], "value": [1.0, 3.0, 5.0, 7.0]})
    s = summarize(df, "g")
    assert list(s["g"]) == ["a", "b"] and list(s["mean"]) == [2.0, 6.0] and list(s["n"]) == [2, 2]
