"""The Cost chapter's tables and figure, from made-up bench results and from the committed ones."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from apalu.report import cost_report

BENCH = Path(__file__).resolve().parents[2] / "data" / "bench"
MACHINE = {"cpu": "Test CPU", "torch_threads": 2, "small_threads": 1, "date_utc": "2026-12-03 12:00 UTC",
           "loadavg_before": [0.5, 0.4, 0.3], "loadavg_after": [0.6, 0.5, 0.4],
           "command": "python -m apalu.bench --out X"}


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "machine.json").write_text(json.dumps({"cpu": MACHINE}))
    pd.DataFrame([
        {"device": "cpu", "group": "small tensors", "ratio": "APALU / PReLU", "value": 1.1,
         "measured": "1.10x", "target": "≤ 1.2x", "verdict": "met"},
        {"device": "cpu", "group": "large", "ratio": "APALU / GELU", "value": 1.3,
         "measured": "1.30x", "target": "≤ 1x", "verdict": "not met"},
        {"device": "cpu", "group": "large", "ratio": "hint", "value": 0.5, "measured": "0.50x",
         "target": "reported", "verdict": ""},
    ]).to_csv(tmp_path / "targets_cpu.csv", index=False)
    rows = []
    for n in (2048, 16384, 2**20):
        for act, params, us in (("gelu", "none", 10.0), ("relu", "none", 8.0), ("silu", "none", 9.0),
                                ("prelu", "scalar", 20.0), ("prelu", "per-channel", 25.0),
                                ("apalu", "scalar", 30.0), ("apalu", "per-channel", 30.0)):
            for d in ("forward", "forward+backward"):
                rows.append({"activation": act, "params": params, "direction": d, "elements": n,
                             "median_us": us * n / 2048, "q1_us": us * 0.9 * n / 2048,
                             "q3_us": us * 1.1 * n / 2048, "ratio_to_prelu": 0.0})
    pd.DataFrame(rows).to_csv(tmp_path / "modules_cpu.csv", index=False)
    over = [{"version": v, "module": "apalu", "component": c, "us_per_call_estimated": us,
             "unprofiled_us_per_call": tot} for v, tot in (("abc123", 270.0), ("this tree", 90.0))
            for c, us in (("Python", tot * 0.4), ("dispatch", tot * 0.3), ("softplus", tot * 0.1),
                          ("kernel", tot * 0.2))]
    pd.DataFrame(over).to_csv(tmp_path / "overhead_cpu.csv", index=False)
    return tmp_path


def test_targets_markdown_heads_with_machine_and_counts(folder):
    text = cost_report.targets_markdown(folder, "cpu")
    assert "produced by `python -m apalu.bench --out X`" in text
    assert "1 of 2 targets met" in text
    assert "| large | APALU / GELU | 1.30x | ≤ 1x | not met |" in text


def test_missing_and_malformed_files_are_named(folder):
    with pytest.raises(FileNotFoundError, match="steps_cpu.csv|e2e_cpu.csv"):
        cost_report.steps_table(folder, "cpu")
    with pytest.raises(FileNotFoundError, match="targets_cuda.csv is missing"):
        cost_report.targets_table(folder, "cuda")
    bad = pd.read_csv(folder / "targets_cpu.csv", keep_default_na=False)
    bad.loc[0, "verdict"] = "almost"
    bad.to_csv(folder / "targets_cpu.csv", index=False)
    with pytest.raises(ValueError, match="unknown verdicts"):
        cost_report.targets_table(folder, "cpu")
    pd.DataFrame({"x": [1]}).to_csv(folder / "overhead_cpu.csv", index=False)
    with pytest.raises(ValueError, match="lacks the column"):
        cost_report.overhead_table(folder, "cpu")


def test_small_table_ratio(folder):
    t = cost_report.small_table(folder, "cpu")
    assert set(t["elements"]) == {2048, 16384}
    row = t[(t["params"] == "scalar") & (t["direction"] == "forward")].iloc[0]
    assert row["APALU / PReLU"] == pytest.approx(1.5)


def test_overhead_table_before_and_after(folder):
    t = cost_report.overhead_table(folder, "cpu").set_index("version")
    assert t.loc["abc123", "total (unprofiled)"] == 270.0
    assert t.loc["this tree", "kernel"] == pytest.approx(18.0)


def test_size_plot_draws_one_line_per_activation(folder):
    import matplotlib

    matplotlib.use("Agg")
    fig, ax = cost_report.size_plot(folder, "cpu")
    assert len(ax.get_lines()) == 5
    assert ax.get_xscale() == "log"


def test_committed_results_render():
    text = cost_report.targets_markdown(BENCH, "cpu")
    assert "produced by `python -m apalu.bench" in text
    table = cost_report.targets_table(BENCH, "cpu")
    judged = table[table["verdict"] != ""]
    assert len(judged) >= 10 and set(judged["verdict"]) <= {"met", "not met"}
    assert {"small tensors", "training step", "memory"} <= set(table["group"])
