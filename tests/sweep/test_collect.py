"""apalu.sweep.collect and `apalu collect`: tidy table, per-run table, summaries with 95% CIs.

The sweep folders here are written by hand (no kernel), in the layout apalu.sweep publishes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from apalu.sweep import collect as co

REPO = Path(__file__).resolve().parents[2]


def make_run(sweep: Path, rid: str, params: dict, status: str = "complete", rows: list[dict] | None = None,
             csv: str = "results.csv", wall: float = 1.5) -> Path:
    d = sweep / rid
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps({"run_id": rid, "sweep": sweep.name, "notebook": "nb/x.ipynb",
                                               "parameters": params}))
    (d / "status.json").write_text(json.dumps({"run_id": rid, "status": status, "wall_s": wall,
                                               "error": None if status == "complete" else "E: x",
                                               "attempt": 1}))
    (d / "machine.json").write_text(json.dumps({"host": "h1", "cpu": "TestCPU", "cpus": 2, "memory_gb": 4.0,
                                                "gpus": [], "torch": "2.x", "python": "3.11"}))
    if rows is not None:
        pd.DataFrame(rows).to_csv(d / csv, index=False)
    return d


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    """lr in {0.1, 0.2} x seeds {0, 1, 2}, two metrics; a failed run, a killed one, a figure."""
    s = tmp_path / "results" / "demo"
    s.mkdir(parents=True)
    (s / "sweep.yaml").write_text("name: demo\nnotebook: nb/x.ipynb\ngrid: {lr: [0.1, 0.2]}\nseeds: [0, 1, 2]\n")
    vals = {(0.1, 0): 0.90, (0.1, 1): 0.92, (0.1, 2): 0.94, (0.2, 0): 0.80, (0.2, 1): 0.86}
    for i, ((lr, seed), acc) in enumerate(vals.items()):
        rows = [{"run": f"activation=apalu;seed={seed}", "activation": "apalu", "seed": seed,
                 "metric": "acc", "value": acc},
                {"run": f"activation=apalu;seed={seed}", "activation": "apalu", "seed": seed,
                 "metric": "loss", "value": 1 - acc}]
        make_run(s, f"r{i}", {"lr": lr, "seeds": [seed], "epochs": 2}, rows=rows)
    make_run(s, "rfail", {"lr": 0.2, "seeds": [2], "epochs": 2}, status="failed")
    staging = s / ".staging" / "rkilled.host.123"  # a run killed midway: not a result
    staging.mkdir(parents=True)
    pd.DataFrame([{"metric": "acc", "value": 99.0}]).to_csv(staging / "results.csv", index=False)
    (s / "r0" / "figure.png").write_bytes(b"\x89PNG")
    return s


def test_runs_table(sweep):
    runs = co.load_runs(sweep)
    assert sorted(runs["run_id"]) == ["r0", "r1", "r2", "r3", "r4", "rfail"]
    assert dict(zip(runs["run_id"], runs["status"]))["rfail"] == "failed"
    assert set(runs["p.lr"]) == {0.1, 0.2} and set(runs["p.seeds"]) == {"[0]", "[1]", "[2]"}
    assert runs["machine"].str.contains("TestCPU").all() and (runs["wall_s"] == 1.5).all()


def test_results_table_is_tidy_and_complete_runs_only(sweep):
    res = co.load_results(sweep)
    assert len(res) == 5 * 2
    assert set(res["run_id"]) == {"r0", "r1", "r2", "r3", "r4"}
    assert (res["file"] == "results.csv").all()
    assert 99.0 not in set(res["value"])  # the killed run's staging output is not collected
    assert {"lr", "epochs", "seed", "metric", "value", "activation"} <= set(res.columns)
    assert "seeds" not in res  # a one-item list parameter the CSV already reports as `seed`
    assert set(res.loc[res["run_id"] == "r3", "lr"]) == {0.2}


def test_summary_means_and_t_intervals(sweep):
    summ = co.summarize(co.load_results(sweep))
    # Setting = the columns that vary (lr, metric); seed, run keys and constants are not settings.
    assert list(summ.columns[:2]) == ["metric", "lr"] and "seed" not in summ and "epochs" not in summ
    assert len(summ) == 4
    row = summ[(summ["metric"] == "acc") & (summ["lr"] == 0.1)].iloc[0]
    x = [0.90, 0.92, 0.94]
    mean = sum(x) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in x) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(mean) and row["std"] == pytest.approx(sd)
    assert row["ci95"] == pytest.approx(half, rel=1e-6)
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((mean - half, mean + half), rel=1e-6)
    two = summ[(summ["metric"] == "acc") & (summ["lr"] == 0.2)].iloc[0]
    assert two["n"] == 2 and two["ci95"] == pytest.approx(12.706204736 * math.sqrt(0.0018) / math.sqrt(2), rel=1e-6)


def test_mean_ci_edge_cases():
    one = co.mean_ci([0.5])
    assert one["n"] == 1 and one["mean"] == 0.5 and math.isnan(one["ci95"])
    assert co.mean_ci([])["n"] == 0
    r = co.mean_ci([1.0, float("nan"), 3.0])  # a diverged run does not poison the mean
    assert r["n"] == 2 and r["mean"] == 2.0


def test_summary_drops_rows_without_value_and_keeps_metric():
    df = pd.DataFrame({"run_id": ["a", "b", "c"], "metric": ["m", "m", "m"], "value": [1.0, 3.0, None],
                       "a_traj": [None, None, 0.5]})
    summ = co.summarize(df)
    assert list(summ["metric"]) == ["m"] and summ["n"].tolist() == [2] and summ["mean"].tolist() == [2.0]


def test_collect_writes_csvs(sweep, tmp_path):
    out = co.collect(sweep)
    for name in co.OUTPUT_FILES:
        assert (sweep / name).exists()
        assert (sweep / name).stat().st_mode & 0o044 == 0o044  # readable by group and others
    assert len(pd.read_csv(sweep / "results.csv")) == len(out["results"]) == 10
    assert len(pd.read_csv(sweep / "summary.csv")) == 4
    # Collecting again reads the same runs (its own CSVs at the top are not results).
    again = co.collect(sweep)
    assert len(again["results"]) == 10
    assert co.list_sweeps(sweep.parent) == [sweep]


def test_cli_collect(sweep, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "apalu", "collect", str(sweep), "--out", str(tmp_path / "o"),
                        "--print"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "6 runs (5 complete)" in r.stdout and "ci95" in r.stdout
    assert (tmp_path / "o" / "summary.csv").exists() and not (sweep / "summary.csv").exists()
    bad = subprocess.run([sys.executable, "-m", "apalu", "collect", str(tmp_path / "nope")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2


# ------------------------------------------------------------- bad arguments: refused, nothing written


def _cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "apalu", "collect", *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_cli_collect_value_typo_exits_2_and_keeps_summary(sweep):
    co.collect(sweep)
    before = {n: (sweep / n).read_bytes() for n in co.OUTPUT_FILES}
    r = _cli(sweep, "--value", "vlaue")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--value 'vlaue' is not a column of the results; numeric columns:" in r.stderr
    assert "value" in r.stderr.split("numeric columns:")[1]
    assert {n: (sweep / n).read_bytes() for n in co.OUTPUT_FILES} == before  # untouched
    assert len(pd.read_csv(sweep / "summary.csv")) == 4


def test_collect_exclude_typo_refused(sweep):
    with pytest.raises(co.CollectError, match=r"--exclude 'activaton': not a column of the results"):
        co.collect(sweep, exclude=["activaton"])
    assert not (sweep / "summary.csv").exists()


def test_collect_refuses_a_folder_without_sweep_yaml(sweep):
    parent = sweep.parent  # data/results itself, say
    r = _cli(parent)
    assert r.returncode == 2 and "is not a sweep folder (no sweep.yaml)" in r.stderr
    assert not any((parent / n).exists() for n in co.OUTPUT_FILES)
    (sweep / "sweep.yaml").unlink()
    with pytest.raises(co.CollectError, match="no sweep.yaml"):
        co.collect(sweep, write=False)


def test_collect_with_no_results_writes_nothing(sweep):
    co.collect(sweep)
    before = (sweep / "summary.csv").read_bytes()
    for d in sweep.glob("r[0-9]"):
        (d / "status.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(co.CollectError, match="no complete run with CSV results"):
        co.collect(sweep)
    assert (sweep / "summary.csv").read_bytes() == before
    assert co.collect(sweep, write=False)["summary"].empty  # the book's chapter reads without writing


def test_collect_write_is_atomic(sweep, monkeypatch):
    """A failure while writing summary.csv leaves the previous file whole and no temporary file."""
    (sweep / "summary.csv").write_text("the previous summary\n")
    before = (sweep / "summary.csv").read_bytes()
    real_fsync = os.fsync

    def failing_fsync(fd):
        if "summary.csv" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError("disk full")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        co.collect(sweep, value="value")
    assert (sweep / "summary.csv").read_bytes() == before
    assert not [p.name for p in sweep.iterdir() if p.name.startswith(".summary.csv")]
