"""Means with 95% confidence intervals (Student t or percentile bootstrap), and differences.

>>> from apalu.stats import mean_ci
>>> r = mean_ci([1.0, 2.0, 3.0])
>>> round(r["mean"], 4), round(r["low"], 4), round(r["high"], 4)
(2.0, -0.4841, 4.4841)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

__all__ = ["mean_ci", "t_ci", "bootstrap_ci", "diff_ci", "summarize", "METHODS", "PairedComparison",
           "paired_comparison", "holm", "mde_paired", "with_holm", "PAIRED_TEST"]

METHODS = ("t", "bootstrap")


def _clean(values) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def _too_few(x: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high) of fewer than two values: no interval (NaN), and no mean of nothing."""
    return (float(x.mean()) if len(x) else math.nan), math.nan, math.nan


def t_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) from Student's t; NaN bounds with fewer than two finite values."""
    from scipy import stats

    x = _clean(values)
    if len(x) < 2:
        return _too_few(x)
    m = float(x.mean())
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - half, m + half


def bootstrap_ci(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap of the mean, seeded (same input → same interval)."""
    x = _clean(values)
    if len(x) < 2:
        return _too_few(x)
    m = float(x.mean())
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return m, float(lo), float(hi)


def mean_ci(values, level: float = 0.95, method: str = "t", **kw) -> dict:
    """{"mean", "low", "high", "n"} for the finite values (NaN runs, e.g. diverged, are dropped
    and counted in ``n_nan``)."""
    if method not in METHODS:
        raise ValueError(f"unknown CI method {method!r}; known: {', '.join(METHODS)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    raw = np.asarray(values, dtype=float).ravel()
    m, lo, hi = (t_ci(raw, level) if method == "t" else bootstrap_ci(raw, level, **kw))
    n = int(np.isfinite(raw).sum())
    return {"mean": m, "low": lo, "high": hi, "n": n, "n_nan": int(len(raw) - n)}


def diff_ci(x, y, level: float = 0.95, method: str = "t", paired: bool = False, n_boot: int = 2000,
            seed: int = 0) -> dict:
    """Mean(x) − mean(y) with a CI: Welch's t (or paired t), or a (paired) bootstrap.

    Returns {"diff", "low", "high", "n_x", "n_y", "excludes_zero"}.
    """
    from scipy import stats

    if method not in METHODS:
        raise ValueError(f"unknown CI method {method!r}; known: {', '.join(METHODS)}")
    if paired:
        xa, ya = np.asarray(x, float), np.asarray(y, float)
        if xa.shape != ya.shape:
            raise ValueError("paired differences need x and y of the same length")
        r = mean_ci(xa - ya, level, method, **({"n_boot": n_boot, "seed": seed} if method == "bootstrap" else {}))
        out = {"diff": r["mean"], "low": r["low"], "high": r["high"], "n_x": r["n"], "n_y": r["n"]}
    else:
        xa, ya = _clean(x), _clean(y)
        d = float(xa.mean() - ya.mean()) if len(xa) and len(ya) else math.nan
        lo = hi = math.nan
        if len(xa) >= 2 and len(ya) >= 2:
            if method == "t":
                vx, vy = xa.var(ddof=1) / len(xa), ya.var(ddof=1) / len(ya)
                se = math.sqrt(vx + vy)
                if se == 0:
                    lo = hi = d
                else:
                    dof = (vx + vy) ** 2 / (vx**2 / (len(xa) - 1) + vy**2 / (len(ya) - 1))
                    half = float(stats.t.ppf(0.5 + level / 2, dof) * se)
                    lo, hi = d - half, d + half
            else:
                rng = np.random.default_rng(seed)
                bx = xa[rng.integers(0, len(xa), (n_boot, len(xa)))].mean(1)
                by = ya[rng.integers(0, len(ya), (n_boot, len(ya)))].mean(1)
                lo, hi = (float(v) for v in np.quantile(bx - by, [(1 - level) / 2, (1 + level) / 2]))
        out = {"diff": d, "low": lo, "high": hi, "n_x": len(xa), "n_y": len(ya)}
    out["excludes_zero"] = bool(np.isfinite(out["low"]) and (out["low"] > 0 or out["high"] < 0))
    return out


def summarize(df: pd.DataFrame, by, value: str = "value", level: float = 0.95, method: str = "t") -> pd.DataFrame:
    """Group ``df`` by ``by`` and give mean, low, high, n, n_nan of ``value`` per group."""
    by = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, g in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **mean_ci(g[value].to_numpy(), level, method)})
    return pd.DataFrame(rows)


# --- Paired comparisons (the protocol's statistics) ---------------------------------------
# Arms trained from the same seed share data order and every non-activation weight, so the
# comparison is on the per-seed differences: scipy's paired t test, its interval, Holm within
# a claim, TOST against an equivalence margin, and the minimal detectable effect (MDE).

PAIRED_TEST = "paired t (scipy.stats.ttest_rel)"


@dataclass(frozen=True)
class PairedComparison:
    """Treatment − baseline on one metric, over seeds; ``effect > 0`` means treatment better.

    ``p`` is the two-sided paired t test, ``p_adjusted`` the same after Holm within the claim
    (equal to ``p`` until :func:`with_holm` sets it), ``mde`` the smallest true effect the test
    detects with 80% power at α = 0.05 (two-sided), ``tost_p`` the larger of the two one-sided
    p values against ±``margin`` (None without a margin). Fields are NaN when n < 2.
    """

    treatment: str
    baseline: str
    metric: str
    n: int
    effect: float
    ci_low: float
    ci_high: float
    p: float
    p_adjusted: float
    mde: float
    test: str
    tost_p: float | None
    margin: float | None


def mde_paired(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired t test on ``n`` pairs, whose
    differences have standard deviation ``sd``, detects with probability ``power``.

    Exact (noncentral t), not the normal approximation: with 10 pairs the difference is ~10%.
    NaN for n < 2 or a non-finite sd; 0 when sd is 0.
    """
    from scipy import optimize, stats

    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie in (0, 1), got alpha={alpha}, power={power}")
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(nc: float) -> float:  # power at noncentrality nc, minus the target
        wrong_tail = float(np.nan_to_num(stats.nct.cdf(-crit, df, nc)))  # NaN when ~0 far out
        return float(stats.nct.sf(crit, df, nc)) + wrong_tail - power

    high = crit + 4.0  # doubled until the power is reached (nct is NaN far out, so no huge bracket)
    while shortfall(high) < 0:
        high *= 2
    nc = optimize.brentq(shortfall, 0.0, high, xtol=1e-12)
    return float(nc * sd / math.sqrt(n))


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p values, in the input order (NaN stays NaN, and is not
    counted among the hypotheses)."""
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    running = 0.0
    for rank, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def paired_comparison(treatment, baseline, *, treatment_name: str = "apalu", baseline_name: str,
                      metric: str, higher_is_better: bool = True, margin: float | None = None,
                      level: float = 0.95) -> PairedComparison:
    """Compare two arms seed by seed: ``treatment[i]`` and ``baseline[i]`` come from seed i.

    Pairs where either value is not finite (a diverged or missing run) are dropped; ``n``
    counts the complete pairs, so the caller can refuse too few.
    """
    from scipy import stats

    t, b = np.asarray(treatment, dtype=float).ravel(), np.asarray(baseline, dtype=float).ravel()
    if t.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {len(t)} ({treatment_name}) and "
                         f"{len(b)} ({baseline_name})")
    if margin is not None and not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    sign = 1.0 if higher_is_better else -1.0
    keep = np.isfinite(t) & np.isfinite(b)
    t, b = sign * t[keep], sign * b[keep]
    d = t - b
    n = len(d)
    nan = math.nan
    base = dict(treatment=treatment_name, baseline=baseline_name, metric=metric, n=n, test=PAIRED_TEST,
                margin=margin)
    if n < 2:
        return PairedComparison(**base, effect=float(d.mean()) if n else nan, ci_low=nan, ci_high=nan, p=nan,
                                p_adjusted=nan, mde=nan, tost_p=None if margin is None else nan)
    effect, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:  # identical differences: no spread to test against; the sign decides
        p = 1.0 if effect == 0 else 0.0
        lo = hi = effect
        tost = None if margin is None else (0.0 if abs(effect) < margin else 1.0)
    else:
        res = stats.ttest_rel(t, b)
        p = float(res.pvalue)
        ci = res.confidence_interval(level)
        lo, hi = float(ci.low), float(ci.high)
        tost = None
        if margin is not None:
            above = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
            below = stats.ttest_1samp(d, margin, alternative="less").pvalue
            tost = float(max(above, below))
    return PairedComparison(**base, effect=effect, ci_low=lo, ci_high=hi, p=p, p_adjusted=p,
                            mde=mde_paired(sd, n), tost_p=tost)


def with_holm(comparisons: list[PairedComparison]) -> list[PairedComparison]:
    """The same comparisons with ``p_adjusted`` set by Holm across all of them."""
    adjusted = holm([c.p for c in comparisons])
    return [replace(c, p_adjusted=a) for c, a in zip(comparisons, adjusted)]
