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


# --- paired comparisons -----------------------------------------------------------------

from scipy import stats as sps  # noqa: E402

from apalu.lab.stats import holm, mde_paired, paired_comparison, with_holm  # noqa: E402

T = np.array([0.91, 0.93, 0.90, 0.95, 0.92, 0.94, 0.91, 0.96, 0.93, 0.92])
B = np.array([0.90, 0.92, 0.91, 0.93, 0.90, 0.94, 0.89, 0.94, 0.93, 0.90])


def test_paired_comparison_matches_scipy_ttest_rel():
    c = paired_comparison(T, B, baseline_name="relu", metric="acc")
    ref = sps.ttest_rel(T, B)
    ci = ref.confidence_interval(0.95)
    assert c.n == 10 and c.effect == pytest.approx((T - B).mean())
    assert c.p == pytest.approx(ref.pvalue, rel=1e-12) and c.p_adjusted == c.p
    assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert c.tost_p is None and c.margin is None and c.test.startswith("paired t")
    welch = sps.ttest_ind(T, B, equal_var=False).pvalue
    assert c.p < welch  # pairing removes the seed-to-seed spread the unpaired test suffers from


def test_lower_is_better_flips_the_sign_so_positive_means_treatment_better():
    up = paired_comparison(T, B, baseline_name="relu", metric="acc")
    down = paired_comparison(B, T, baseline_name="relu", metric="loss", higher_is_better=False)
    assert up.effect > 0 and up.effect == pytest.approx(down.effect) and up.p == pytest.approx(down.p)
    assert (up.ci_low, up.ci_high) == (pytest.approx(down.ci_low), pytest.approx(down.ci_high))


def test_tost_both_ways():
    rng = np.random.default_rng(0)
    base = rng.normal(0.9, 0.02, 20)
    close = base + rng.normal(0.0, 0.001, 20)
    far = base + 0.01 + rng.normal(0.0, 0.001, 20)
    inside = paired_comparison(close, base, baseline_name="b", metric="acc", margin=0.005)
    outside = paired_comparison(far, base, baseline_name="b", metric="acc", margin=0.005)
    assert inside.tost_p < 0.05 < outside.tost_p
    d = close - base
    want = max(sps.ttest_1samp(d, -0.005, alternative="greater").pvalue,
               sps.ttest_1samp(d, 0.005, alternative="less").pvalue)
    assert inside.tost_p == pytest.approx(want)


def test_non_finite_pairs_are_dropped_and_counted():
    t, b = T.copy(), B.copy()
    t[0], b[3] = np.nan, np.inf
    c = paired_comparison(t, b, baseline_name="relu", metric="acc")
    assert c.n == 8 and c.p == pytest.approx(sps.ttest_rel(np.delete(T, [0, 3]), np.delete(B, [0, 3])).pvalue)
    one = paired_comparison([0.9], [0.8], baseline_name="relu", metric="acc")
    assert one.n == 1 and math.isnan(one.p) and math.isnan(one.mde)


def test_identical_differences_decide_by_sign():
    same = paired_comparison(B + 0.01, B, baseline_name="relu", metric="acc", margin=0.005)
    assert same.p == 0.0 and same.effect == pytest.approx(0.01) and same.tost_p == 1.0 and same.mde == 0.0
    tie = paired_comparison(B, B, baseline_name="relu", metric="acc")
    assert tie.p == 1.0 and tie.effect == 0.0


@pytest.mark.parametrize("kw,match", [({"margin": 0.0}, "margin"), ({"level": 1.0}, "level")])
def test_paired_comparison_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        paired_comparison(T, B, baseline_name="relu", metric="acc", **kw)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_comparison(T, B[:5], baseline_name="relu", metric="acc")


def test_holm_textbook_example():
    # m = 4: sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, then max(0.06, 0.04·1) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([0.01, float("nan"), 0.02])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    comps = with_holm([paired_comparison(T, B, baseline_name=n, metric="acc") for n in ("a", "b")])
    assert [c.p_adjusted for c in comps] == pytest.approx([2 * comps[0].p] * 2)


def test_mde_detects_with_80_percent_power_by_simulation():
    n, sd = 10, 1.3
    mde = mde_paired(sd, n)
    rng = np.random.default_rng(1)
    d = rng.normal(mde, sd, size=(20000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    power = np.mean(np.abs(t) > sps.t.ppf(0.975, n - 1))
    assert power == pytest.approx(0.8, abs=0.015)
    # the normal approximation undershoots at n = 10, the exact answer does not
    assert mde > (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * sd / math.sqrt(n)
    assert mde_paired(1.0, 40) < mde_paired(1.0, 10) < mde_paired(1.0, 3)
    assert mde_paired(0.0, 10) == 0.0 and math.isnan(mde_paired(1.0, 1))
    with pytest.raises(ValueError, match="alpha"):
        mde_paired(1.0, 10, alpha=0.0)
