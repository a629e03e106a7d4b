import math

import pandas as pd
import pytest

from apalu.lab.anomaly import per_class_frame


def _runs(values: dict) -> pd.DataFrame:
    return pd.DataFrame([{"normal_class": c, "activation": a, "seed": s, "metric": "test_auc", "value": v}
                         for (c, a), vs in values.items() for s, v in enumerate(vs)])


def test_seeds_are_averaged_within_each_class():
    f = per_class_frame(_runs({(0, "apalu"): [0.8, 0.9], (0, "relu"): [0.7, 0.7], (1, "apalu"): [0.6, 0.6]}))
    got = {(r.arm, r.seed): r.auc for r in f.itertuples()}
    assert got == {("apalu", 0): pytest.approx(0.85), ("relu", 0): pytest.approx(0.70),
                   ("apalu", 1): pytest.approx(0.60)}
    assert (f.seed == f.normal_class).all() and len(f) == 3  # one unit per class, not per class x seed


def test_a_nan_run_makes_its_class_nan():
    f = per_class_frame(_runs({(0, "apalu"): [0.8, math.nan]}))
    assert math.isnan(f.auc.iloc[0])


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="normal_class"):
        per_class_frame(pd.DataFrame({"activation": ["apalu"], "seed": [0], "metric": ["test_auc"], "value": [1.0]}))
