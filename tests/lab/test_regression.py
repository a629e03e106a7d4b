import pandas as pd
import pytest
import torch

from apalu.lab.data import Dataset, load_dataset
from apalu.lab.regression import persistence_mse, persistence_rows


def _series(x_last: list[float], y: list[float]) -> Dataset:
    X = torch.zeros(len(y), 3, 1)
    X[:, -1, 0] = torch.tensor(x_last)
    Y = torch.tensor(y)[:, None]
    return Dataset("toy", "regression", X, Y, X, Y, X, Y, 1, {})


def test_persistence_is_the_last_value_forecast():
    ds = _series([0.0, 1.0, 2.0], [1.0, 1.0, 2.0])
    assert persistence_mse(ds) == pytest.approx((1 + 0 + 0) / 3)


def test_persistence_rows_pair_with_every_seed():
    rows = persistence_rows(_series([0.0, 1.0], [0.0, 3.0]), seeds=[0, 1, 2])
    assert set(rows.activation) == {"persistence"} and sorted(rows.seed.unique()) == [0, 1, 2]
    assert (rows[rows.metric == "test_mse"].value == 2.0).all()  # (0² + 2²) / 2


def test_persistence_on_the_stocks_table_is_finite_and_small():
    mse = persistence_mse(load_dataset("stocks", seed=0))
    assert 0 < mse < 1  # standardized log prices: persistence is far better than the mean forecast


def test_persistence_refuses_what_it_cannot_forecast():
    with pytest.raises(ValueError, match="sequence regression"):
        persistence_mse(load_dataset("diabetes", seed=0))
    with pytest.raises(ValueError, match="split"):
        persistence_mse(_series([0.0], [0.0]), "holdout")
