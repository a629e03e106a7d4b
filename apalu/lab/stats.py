"""Means with 95% confidence intervals (Student t or percentile bootstrap), and differences.

>>> from apalu.stats import mean_ci
>>> r = mean_ci([1.0, 2.0, 3.0])
>>> round(r["mean"], 4), round(r["low"], 4), round(r["high"], 4)
(2.0, -0.4841, 4.4841)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["mean_ci", "t_ci", "bootstrap_ci", "diff_ci", "summarize", "METHODS"]

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
