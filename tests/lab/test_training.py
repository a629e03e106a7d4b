import math

import pytest
import torch

from apalu.lab.data import load_dataset, one_class
from apalu.lab.models import MLP, DeepSVDDEncoder, GRURegressor
from apalu.lab.training import evaluate, fit, resolve_device

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", n_train=300, n_test=200)


def _mlp(ds, act="apalu", seed=0, **kw):
    torch.manual_seed(seed)
    return MLP(ds.in_features, ds.n_outputs, width=16, depth=2, activation=act, **kw)


def test_classification_learns_and_logs(digits):
    res = fit(_mlp(digits), digits, epochs=3, lr=1e-2, seed=0, device="cpu")
    h = res.history
    assert list(h["epoch"]) == [0, 1, 2, 3]
    assert h["val_accuracy"].iloc[-1] > h["val_accuracy"].iloc[0] + 0.3
    assert res.final["test_accuracy"] > 0.5 and not res.diverged
    assert res.final["steps"] == 3 * math.ceil(300 / 64)
    # a, b logged per layer and epoch: 2 APALU layers x 4 logs
    assert len(res.act_params) == 8 and set(res.act_params["layer_index"]) == {0, 1}
    assert {"train_accuracy", "test_loss", "wall_s"} <= set(res.final)


def test_deterministic_on_cpu(digits):
    a = fit(_mlp(digits), digits, epochs=2, seed=3, device="cpu", log_steps=True)
    b = fit(_mlp(digits), digits, epochs=2, seed=3, device="cpu", log_steps=True)
    assert a.steps["loss"].tolist() == b.steps["loss"].tolist()
    assert a.final["test_accuracy"] == b.final["test_accuracy"]
    c = fit(_mlp(digits), digits, epochs=2, seed=4, device="cpu", log_steps=True)
    assert a.steps["loss"].tolist() != c.steps["loss"].tolist()


def test_divergence_recorded_not_raised(digits):
    res = fit(_mlp(digits, "relu"), digits, epochs=3, lr=1e4, optimizer="sgd", seed=0, device="cpu",
              divergence_threshold=50.0)
    assert res.diverged and res.final["diverged_step"] >= 0
    assert math.isnan(res.final["test_accuracy"])
    rows = res.rows(activation="relu")
    assert {"metric": "diverged", "value": 1.0, "activation": "relu"} in rows


def test_max_steps_and_log_params_every(digits):
    res = fit(_mlp(digits, per_channel=True), digits, epochs=5, max_steps=7, seed=0, device="cpu",
              log_params_every=2, log_steps=True)
    assert res.final["steps"] == 7 and len(res.steps) == 7
    assert sorted(res.act_params["step"].unique()) == [0, 2, 4, 6]
    assert res.act_params["channel"].max() == 15


def test_regression_gru():
    ds = load_dataset("stocks")
    torch.manual_seed(0)
    res = fit(GRURegressor(1, 1, hidden=8, width=8, activation="tanh"), ds, epochs=3, lr=1e-2, device="cpu")
    assert res.final["test_mse"] == pytest.approx(res.final["test_loss"])
    assert res.history["val_mse"].iloc[-1] < res.history["val_mse"].iloc[0]


def test_one_class_auc():
    ds = one_class(load_dataset("digits", n_train=600), 0)
    torch.manual_seed(0)
    res = fit(DeepSVDDEncoder(1, rep_dim=8, activation="apalu", width=8, input_size=8), ds, epochs=2, device="cpu")
    assert 0.5 < res.final["test_auc"] <= 1.0
    assert res.model.center.shape == (8,)


def test_evaluate_accuracy(digits):
    class Const(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 3] = 1
            return out

    r = evaluate(Const(), digits.X_test, digits.y_test, "classification")
    assert r["accuracy"] == pytest.approx(float((digits.y_test == 3).float().mean()))


def test_bad_arguments(digits):
    with pytest.raises(ValueError, match="epochs"):
        fit(_mlp(digits), digits, epochs=0)
    with pytest.raises(ValueError, match="unknown device"):
        fit(_mlp(digits), digits, device="tpu")
    with pytest.raises(ValueError, match="unknown optimizer"):
        fit(_mlp(digits), digits, optimizer="lion", device="cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


def test_progress_bar_runs(digits, capsys):
    res = fit(_mlp(digits), digits, epochs=1, device="cpu", progress=True)
    assert res.final["steps"] > 0


def test_early_stopping_restores_the_best_validation_epoch(digits):
    # a learning rate high enough that the validation loss stops improving within the budget
    res = fit(_mlp(digits, act="relu"), digits, epochs=40, lr=0.05, seed=0, device="cpu", patience=2)
    h = res.history
    best = res.final["best_epoch"]
    assert best == int(h["val_loss"].iloc[1:].idxmin()) and res.final["epochs_run"] < 40
    assert res.final["epochs_run"] - best == 2  # stopped after `patience` epochs without improvement
    assert res.final["val_loss"] == h["val_loss"].iloc[best]
    from apalu.lab.training import evaluate as ev

    restored = ev(res.model, digits.X_val, digits.y_val, "classification")
    assert restored["loss"] == pytest.approx(h["val_loss"].iloc[best], rel=1e-6)  # the best weights are back
    with pytest.raises(ValueError, match="patience"):
        fit(_mlp(digits), digits, epochs=1, patience=1, eval_split="test")


def test_tune_lr_picks_the_lowest_validation_loss_on_the_same_start(digits):
    from apalu.lab.training import tune_lr

    lrs = [1e-4, 1e-2, 10.0]
    best, table = tune_lr(lambda: MLP(64, 10, width=16, depth=2, activation="relu"), digits, lrs, seed=99,
                          fit_kw={"epochs": 2})
    assert list(table["lr"]) == lrs and best == table.loc[table["val_loss"].idxmin(), "lr"]
    assert best == 1e-2  # too slow and too fast both lose at this budget
    again, table2 = tune_lr(lambda: MLP(64, 10, width=16, depth=2, activation="relu"), digits, lrs, seed=99,
                            fit_kw={"epochs": 2})
    assert again == best and table2.equals(table)
    with pytest.raises(ValueError, match="learning rates"):
        tune_lr(lambda: MLP(64, 10), digits, [], seed=0)


def test_make_optimizer_fuses_the_update_for_every_arm():
    from apalu.lab.models import MLP
    from apalu.lab.training import make_optimizer

    for act in ("relu", "prelu", "apalu"):
        model = MLP(8, 3, width=4, depth=2, activation=act)
        for name in ("adam", "adamw", "sgd"):
            opt = make_optimizer(model, name, lr=1e-3, weight_decay=1e-4)
            assert all(g["fused"] for g in opt.param_groups), (act, name)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        make_optimizer(MLP(8, 3, width=4), "lbfgs", lr=1e-3)
