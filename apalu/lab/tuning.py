"""Per-arm learning-rate choice on the validation split, for fair comparisons of activations.

Every arm (activation) is trained at every learning rate of one shared grid, on the same seeds;
each arm keeps the rate with the best mean validation metric over those seeds, and only the runs
at that rate enter the test-set comparison. The choice never looks at test data.

>>> runs = pd.DataFrame({"activation": ["a", "a", "b", "b"], "lr": [0.1, 0.01, 0.1, 0.01],
...                      "seed": 0, "metric": "val_mse", "value": [1.0, 2.0, 3.0, 0.5]})
>>> best_lr(runs, "val_mse", higher_is_better=False)
{'a': 0.1, 'b': 0.01}
"""

from __future__ import annotations

import pandas as pd

__all__ = ["best_lr", "at_best_lr", "arm_frame"]


def best_lr(runs: pd.DataFrame, val_metric: str, *, higher_is_better: bool) -> dict[str, float]:
    """Per activation, the ``lr`` whose runs have the best mean ``val_metric`` (ties: the smaller
    rate). A rate whose runs diverged (NaN) for any seed counts as the worst."""
    if "lr" not in runs or val_metric not in set(runs["metric"]):
        raise ValueError(f"best_lr needs runs with an 'lr' column and metric {val_metric!r}")
    val = runs[runs["metric"] == val_metric]
    worst = float("-inf") if higher_is_better else float("inf")
    mean = val.groupby(["activation", "lr"])["value"].agg(lambda v: v.mean() if v.notna().all() else worst)
    chosen = {}
    for arm, per_lr in mean.groupby(level="activation", sort=True):
        per_lr = per_lr.droplevel("activation").sort_index()
        chosen[arm] = float(per_lr.idxmax() if higher_is_better else per_lr.idxmin())
    return chosen


def at_best_lr(runs: pd.DataFrame, chosen: dict[str, float]) -> pd.DataFrame:
    """The rows of ``runs`` trained at each activation's chosen rate."""
    keep = runs["activation"].map(chosen) == runs["lr"]
    return runs[keep].reset_index(drop=True)


def arm_frame(runs: pd.DataFrame, metric: str, keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """The long frame :func:`apalu.lab.protocol.decide` reads: columns ``arm``, ``seed``, the
    extra ``keys`` and ``metric`` (one row per arm, seed and key). Diverged runs give NaN."""
    rows = runs[runs["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no rows with metric {metric!r}")
    out = rows[["activation", "seed", *keys, "value"]].rename(columns={"activation": "arm", "value": metric})
    return out.reset_index(drop=True)
