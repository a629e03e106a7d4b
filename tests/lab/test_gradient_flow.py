"""apalu.lab.gradient_flow: per-layer gradient norms at init and after training, paired by seed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from apalu.lab import gradient_flow as G
from apalu.lab.data import Dataset


def _toy(n: int = 256, d: int = 12, classes: int = 3) -> Dataset:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 1).long()
    return Dataset("toy", "classification", X, y, X[:32], y[:32], X[:32], y[:32], n_outputs=classes)


def test_rows_stages_and_apalu_parameters():
    df = G.measure(_toy(), [3, 4], ["apalu", "relu"], [0, 1], width=8, steps=3, batch=16)
    assert len(df) == 2 * 2 * 2 * (3 + 4)  # activations × seeds × stages × layers
    assert set(df["stage"]) == set(G.STAGES)
    ap, re = df[df.activation == "apalu"], df[df.activation == "relu"]
    assert ap[["a", "b"]].gt(0).all().all() and re[["a", "b"]].isna().all().all()
    assert (df["grad_norm"] > 0).all() and (df.loc[df.stage == "trained", "steps_done"] == 3).all()
    # deterministic: the same call gives the same numbers
    again = G.measure(_toy(), [3, 4], ["apalu", "relu"], [0, 1], width=8, steps=3, batch=16)
    pd.testing.assert_frame_equal(df, again)


def test_training_changes_the_gradients_and_seeds_differ():
    df = G.measure(_toy(), [3], ["gelu"], [0, 1], width=8, steps=5, batch=16, lr=0.1)
    by = df.set_index(["seed", "stage", "layer"])["grad_norm"]
    assert not np.allclose(by.loc[0, "init"], by.loc[0, "trained"])
    assert not np.allclose(by.loc[0, "init"], by.loc[1, "init"])


def test_divergence_is_kept_as_nan():
    df = G.measure(_toy(), [3], ["relu"], [0], width=8, steps=20, batch=16, lr=1e6)
    trained = df[df.stage == "trained"]
    assert trained["grad_norm"].isna().all() and (trained["steps_done"] < 20).all()
    r = G.layer_ratios(df)
    assert math.isnan(r.loc[r.stage == "trained", "log10_grad_ratio"].iloc[0])


def test_layer_ratios_and_decision_frame():
    rows = [{"activation": "relu", "depth": 3, "seed": s, "stage": "init", "layer": l, "grad_norm": g,
             "a": math.nan, "b": math.nan}
            for s, norms in ((0, (100.0, 5.0, 1.0)), (1, (0.0, 1.0, 10.0)))
            for l, g in zip((1, 2, 3), norms)]
    r = G.layer_ratios(pd.DataFrame(rows))
    assert r.set_index("seed")["log10_grad_ratio"].tolist() == [2.0, -math.inf]
    d = G.decision_frame(r, 3, "init")
    assert list(d.columns) == ["arm", "seed", "log10_grad_ratio"] and len(d) == 2
    with pytest.raises(ValueError, match="no runs at depth 7"):
        G.decision_frame(r, 7, "init")
    with pytest.raises(ValueError, match="stage must be"):
        G.decision_frame(r, 3, "after")


def test_bad_input_is_refused_early():
    with pytest.raises(ValueError, match="depths must be >= 2"):
        G.measure(_toy(), [1], ["relu"], [0])
    with pytest.raises(ValueError, match="lr > 0"):
        G.measure(_toy(), [3], ["relu"], [0], lr=0.0)
    reg = _toy()
    reg = Dataset("r", "regression", reg.X_train, reg.y_train.float()[:, None], reg.X_val, reg.y_val,
                  reg.X_test, reg.y_test, n_outputs=1)
    with pytest.raises(ValueError, match="classification"):
        G.measure(reg, [3], ["relu"], [0])
