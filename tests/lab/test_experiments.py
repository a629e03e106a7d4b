import numpy as np
import pandas as pd
import pytest
import torch

from apalu.lab.data import load_dataset
from apalu.lab.experiments import ResultsWriter, grid, one_class_runs, resolve_output_dir, run_key, run_trainings

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", n_train=200, n_test=150)


def test_writer_keeps_rows_and_replaces_own(tmp_path):
    w = ResultsWriter(tmp_path, "r")
    w.add("a", [{"metric": "m", "value": 1.0}])
    w.add("b", [{"metric": "m", "value": 2.0}])
    w2 = ResultsWriter(tmp_path, "r")  # a later execution
    w2.add("a", [{"metric": "m", "value": 3.0}])
    saved = pd.read_csv(tmp_path / "r.csv").sort_values("run")
    assert saved["value"].tolist() == [3.0, 2.0] and len(w2.frame()) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_writer_survives_failed_run(tmp_path):
    w = ResultsWriter(tmp_path, "r")
    configs = [{"activation": "relu", "seed": 0}, {"activation": "relu", "seed": 1}]

    def boom():
        raise RuntimeError("run failed")

    w.run(configs[0], lambda: [{"metric": "x", "value": 1.0}])
    with pytest.raises(RuntimeError):
        w.run(configs[1], boom)
    assert pd.read_csv(tmp_path / "r.csv")["run"].tolist() == [run_key(configs[0])]


def test_writer_resume(tmp_path):
    calls = []
    cfg = {"seed": 0}
    for _ in range(2):
        w = ResultsWriter(tmp_path, "r", resume=True)
        w.run(cfg, lambda: calls.append(1) or [{"metric": "x", "value": 1.0}])
        assert len(w.frame()) == 1
    assert len(calls) == 1


def test_resolve_output_dir(tmp_path):
    assert resolve_output_dir(str(tmp_path / "x"), "nb") == tmp_path / "x" and (tmp_path / "x").is_dir()


def test_grid_and_run_key():
    g = grid(a=[1, 2], b=["x"])
    assert g == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert run_key({"b": 1, "a": "z"}) == run_key({"a": "z", "b": 1}) == 'a="z";b=1'


def test_run_trainings_rows_and_csv(digits, tmp_path):
    w = ResultsWriter(tmp_path, "runs")
    configs = grid(activation=["apalu", "relu"], seed=[0, 1, 2], init=["0,2"], constraint=["none"])
    df = run_trainings(digits, configs, model="mlp", model_kw={"width": 16, "depth": 1},
                       fit_kw={"epochs": 2, "lr": 1e-2}, writer=w, curves=True)
    acc = df[df.metric == "test_accuracy"]
    assert len(acc) == 6 and (acc["value"] > 0.3).all()
    assert (df.metric == "step_loss").sum() == 6 * 2 * 4
    n_params = df[df.metric == "n_params"].groupby("activation")["value"].first()
    assert n_params["apalu"] == n_params["relu"] + 2
    assert len(pd.read_csv(tmp_path / "runs.csv")) == len(df)


def test_run_trainings_n_train_and_trajectories(digits, tmp_path):
    tw = ResultsWriter(tmp_path, "traj")
    df = run_trainings(digits, [{"activation": "apalu", "seed": 0, "n_train": 50, "per_channel": True}],
                       model_kw={"width": 4, "depth": 2}, fit_kw={"epochs": 1, "log_params_every": 1},
                       trajectories=tw)
    assert df[df.metric == "steps"]["value"].iloc[0] == 1  # 50 samples, batch 64
    t = tw.frame()
    assert set(t["channel"]) == {0, 1, 2, 3} and set(t["step"]) == {0, 1}


def test_one_class_runs(digits):
    df = one_class_runs(digits, [0, 1], ["relu"], [0], model_kw={"rep_dim": 8},
                        fit_kw={"epochs": 1})
    auc = df[df.metric == "test_auc"]
    assert len(auc) == 2 and auc["value"].between(0, 1).all()


def test_fair_runs_tune_each_arm_then_pair_by_seed():
    from apalu.lab.data import load_dataset
    from apalu.lab.experiments import fair_runs, mean_step_loss, per_seed_metric

    ds = load_dataset("digits", n_train=200, n_test=100)
    runs, tuning = fair_runs(ds, ["apalu", "relu"], [0, 1], lrs=[1e-3, 1e-1], model_kw={"width": 8, "depth": 1},
                             fit_kw={"epochs": 1, "batch_size": 50}, curves=True)
    assert set(tuning["activation"]) == {"apalu", "relu"} and tuning["chosen"].sum() == 2
    chosen = tuning[tuning["chosen"]].set_index("activation")["lr"]
    acc = runs[runs.metric == "test_accuracy"]
    assert all(acc[acc.activation == a]["lr"].eq(chosen[a]).all() for a in ("apalu", "relu"))
    frame = per_seed_metric(runs, "test_accuracy", "test_acc")
    assert list(frame.columns) == ["arm", "seed", "test_acc"] and len(frame) == 4
    auc = mean_step_loss(runs)
    assert len(auc) == 4 and auc["loss_auc"].notna().all()
    with pytest.raises(ValueError, match="tune_seed"):
        fair_runs(ds, ["relu"], [0, 1], lrs=[1e-3], tune_seed=1)
    inits = {"u02": {"activation": "apalu", "init": "0,2"}, "fixed11": {"activation": "apalu", "init": "fixed:1,1"}}
    runs, tuning = fair_runs(ds, inits, [0], lrs=[1e-2], model_kw={"width": 8, "depth": 1}, fit_kw={"epochs": 1})
    assert set(tuning["arm"]) == set(inits) and set(per_seed_metric(runs, "test_accuracy")["arm"]) == set(inits)
