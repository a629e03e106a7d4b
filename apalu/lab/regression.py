"""Reference forecasts for the regression experiments.

A learned forecaster is only worth comparing with another when it beats the naive one: for a
series of prices, "next month equals this month" (persistence, the random-walk forecast). The
stocks windows are standardized per symbol with its training months
(:func:`apalu.lab.data.load_dataset` ``"stocks"``), so the persistence forecast of a window is
its last standardized value and its MSE is on the same scale as the models'.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd
import torch

from .data import Dataset

__all__ = ["persistence_mse", "persistence_rows"]

SPLITS = ("train", "val", "test")


def persistence_mse(ds: Dataset, split: str = "test") -> float:
    """MSE of predicting each window's last value, on ``split`` of a sequence regression set."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if ds.task != "regression" or ds.X_train.dim() != 3:
        raise ValueError(f"persistence needs a sequence regression dataset (N, T, F), got {ds!r}")
    X, y = getattr(ds, f"X_{split}"), getattr(ds, f"y_{split}")
    if len(X) == 0:
        raise ValueError(f"dataset {ds.name!r} has an empty {split} split")
    return float(torch.nn.functional.mse_loss(X[:, -1, : y.shape[-1]], y))


def persistence_rows(ds: Dataset, seeds: Iterable[int]) -> pd.DataFrame:
    """Tidy rows (as :func:`apalu.lab.experiments.run_trainings` gives) for the arm
    ``"persistence"``: the same val and test MSE for every seed, so it pairs with each run."""
    val, test = persistence_mse(ds, "val"), persistence_mse(ds, "test")
    return pd.DataFrame([{"activation": "persistence", "seed": s, "metric": m, "value": v}
                         for s in seeds for m, v in (("val_mse", val), ("test_mse", test))])
