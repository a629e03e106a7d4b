"""The Cost chapter's closing table, from the committed bench results and from made-up ones."""

from pathlib import Path

import pandas as pd

from apalu.report.cost_report import target_rows, targets_markdown

BENCH = Path(__file__).resolve().parents[2] / "data" / "bench"


def _ops(compiled_fb: float) -> pd.DataFrame:
    rows = []
    for label, fb, fwd in (("gelu (native)", 10.0, 5.0), ("apalu (reference eager, scalar)", 100.0, 40.0),
                           ("apalu (lean eager, scalar)", 20.0, 6.0), ("apalu (lean eager, per-channel)", 30.0, 7.0),
                           ("apalu (compiled, scalar)", compiled_fb, 5.0)):
        for direction, ms in (("forward", fwd), ("forward+backward", fb)):
            rows.append({"label": label, "direction": direction, "median_ms": ms, "q1_ms": ms * 0.9,
                         "q3_ms": ms * 1.1, "ratio_to_gelu": ms / (10.0 if direction != "forward" else 5.0)})
    return pd.DataFrame(rows)


def test_each_target_is_judged_against_its_threshold():
    rows = {r["ratio"]: r for r in target_rows(_ops(compiled_fb=10.4))}
    assert rows["compiled APALU fwd+bwd / native GELU"]["verdict"] == "met"  # 1.04 <= 1.05
    assert rows["lean eager APALU fwd+bwd / native GELU"]["verdict"] == "met"  # 2.0 <= 3
    assert rows["per-channel / scalar, lean eager"]["verdict"] == "not met"  # 1.5 > 1.25
    assert rows["per-channel / scalar, lean eager"]["measured"] == "1.50x"
    assert rows["lean eager APALU forward only / native GELU (quartiles)"]["measured"] == "1.20x (1.08x–1.32x)"
    assert rows["reference eager APALU fwd+bwd / native GELU"]["verdict"] == ""
    slow = {r["ratio"]: r for r in target_rows(_ops(compiled_fb=10.6))}
    assert slow["compiled APALU fwd+bwd / native GELU"]["verdict"] == "not met"  # 1.06 > 1.05


def test_memory_and_end_to_end_targets():
    memory = pd.DataFrame({"activation": ["apalu (lean eager)", "apalu (compiled)"],
                           "saved_inputs_per_layer": [1.0002, 1.5]})
    e2e = pd.DataFrame({"mode": ["eager", "compiled"], "activation": ["apalu", "apalu"],
                        "params": ["scalar", "scalar"], "ratio_to_relu": [1.3, 1.12]})
    rows = {r["ratio"]: r for r in target_rows(_ops(10.0), memory, e2e)}
    assert rows["saved for backward per layer, lean APALU (inputs)"]["verdict"] == "met"
    assert rows["saved for backward per layer, compiled APALU (inputs)"]["verdict"] == "not met"
    assert rows["CNN training step, compiled: APALU / ReLU"]["verdict"] == "not met"
    assert rows["CNN training step, eager: APALU / ReLU"]["measured"] == "1.30x"


def test_committed_results_render_with_machine_and_command():
    text = targets_markdown(BENCH, "cpu")
    assert "produced by `python -m apalu.bench" in text and "| ratio | measured | target |" in text
    assert text.count("| met |") + text.count("| not met |") == 7  # every target judged
