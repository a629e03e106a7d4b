"""Deep SVDD comparisons with the normal class as the independent unit.

Deep SVDD is trained once per (normal class, activation, seed). Runs of one class share its
data, so the classes — not the class × seed pairs — are the independent units: each arm's AUC is
first averaged over seeds within a class, and the paired test runs over the classes (n = number
of normal classes). :func:`per_class_frame` gives that frame in the shape
:func:`apalu.lab.protocol.decide` reads, with the class in the ``seed`` column (decide's pairing
key; the evidence must name the unit).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["per_class_frame", "UNIT"]

UNIT = "normal class (AUC averaged over seeds within each class)"


def per_class_frame(runs: pd.DataFrame, metric: str = "test_auc", name: str = "auc") -> pd.DataFrame:
    """One row per (arm, normal class): the mean of ``metric`` over that class's seeds, in
    column ``name`` (the protocol's metric). The class is in column ``seed`` (the pairing key
    of :func:`apalu.lab.protocol.decide`) and also in ``normal_class``. A class whose runs of
    an arm have any NaN gives NaN (decide counts that pair as incomplete)."""
    need = {"normal_class", "activation", "seed", "metric", "value"}
    if not need <= set(runs.columns):
        raise ValueError(f"per_class_frame needs columns {sorted(need)}, got {sorted(runs.columns)}")
    rows = runs[runs["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no rows with metric {metric!r}")
    mean = rows.groupby(["activation", "normal_class"])["value"].agg(
        lambda v: v.mean() if v.notna().all() else float("nan"))
    out = mean.rename(name).reset_index().rename(columns={"activation": "arm"})
    out["seed"] = out["normal_class"]
    return out[["arm", "seed", "normal_class", name]]
