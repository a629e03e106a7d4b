import math

import pandas as pd
import pytest

from apalu.lab.tuning import arm_frame, at_best_lr, best_lr


def _runs(values: dict) -> pd.DataFrame:
    return pd.DataFrame([{"activation": a, "lr": lr, "seed": s, "metric": "val_accuracy", "value": v}
                         for (a, lr), vs in values.items() for s, v in enumerate(vs)])


def test_best_lr_per_arm_on_validation():
    runs = _runs({("apalu", 0.1): [0.9, 0.8], ("apalu", 0.01): [0.7, 0.7],
                  ("relu", 0.1): [0.5, 0.6], ("relu", 0.01): [0.8, 0.9]})
    assert best_lr(runs, "val_accuracy", higher_is_better=True) == {"apalu": 0.1, "relu": 0.01}
    assert best_lr(runs, "val_accuracy", higher_is_better=False) == {"apalu": 0.01, "relu": 0.1}


def test_a_diverged_seed_makes_its_rate_the_worst():
    runs = _runs({("apalu", 0.1): [0.99, math.nan], ("apalu", 0.01): [0.5, 0.5]})
    assert best_lr(runs, "val_accuracy", higher_is_better=True) == {"apalu": 0.01}


def test_at_best_lr_keeps_only_the_chosen_runs():
    runs = _runs({("apalu", 0.1): [0.9], ("apalu", 0.01): [0.7], ("relu", 0.1): [0.5]})
    kept = at_best_lr(runs, {"apalu": 0.01, "relu": 0.1})
    assert sorted(zip(kept.activation, kept.lr)) == [("apalu", 0.01), ("relu", 0.1)]


def test_arm_frame_shape_and_errors():
    runs = _runs({("apalu", 0.1): [0.9, 0.8]})
    f = arm_frame(runs, "val_accuracy")
    assert list(f.columns) == ["arm", "seed", "val_accuracy"] and len(f) == 2
    with pytest.raises(ValueError, match="test_accuracy"):
        arm_frame(runs, "test_accuracy")
    with pytest.raises(ValueError, match="val_mse"):
        best_lr(runs, "val_mse", higher_is_better=False)
