"""The targets: each line judged against its threshold, on made-up rows (met and not met)."""

from __future__ import annotations

import pytest

from apalu.bench.targets import TARGETS, judge


def _modules(ratio: float) -> list[dict]:
    return [{"activation": "apalu", "params": p, "direction": d, "elements": n, "ratio_to_prelu": ratio}
            for p in ("scalar", "per-channel") for d in ("forward", "forward+backward")
            for n in (2048, 16384)]


def _ops(lean_fb: float, compiled: float, gelu_compiled: float) -> list[dict]:
    rows = []
    for label, fwd, fb in (("gelu (native)", 5.0, 10.0), ("apalu (lean eager, scalar)", 4.0, lean_fb),
                           ("apalu (lean eager, per-channel)", 4.5, lean_fb * 1.5),
                           ("apalu (compiled, scalar)", 5.0, compiled), ("gelu (compiled)", 5.0, gelu_compiled),
                           ("apalu (lean eager, huge-page hint, scalar)", 3.0, 8.0),
                           ("copy (preallocated)", 2.0, None)):
        for d, ms in (("forward", fwd), ("forward+backward", fb)):
            if ms is None:
                continue
            ref = 5.0 if d == "forward" else 10.0
            rows.append({"label": label, "direction": d, "median_ms": ms, "ratio_to_gelu": ms / ref,
                         "elements": 2**24, "copy_gb_per_s": 10.0, "fraction_of_bound": 0.5})
    return rows


def _lines(**results) -> dict[str, dict]:
    return {r["ratio"]: r for r in judge(results, "cpu")}


def test_small_tensor_lines_at_the_threshold():
    met = _lines(modules=_modules(TARGETS["small_vs_prelu"]))
    assert len(met) == 8 and {r["verdict"] for r in met.values()} == {"met"}
    over = _lines(modules=_modules(1.21))
    assert {r["verdict"] for r in over.values()} == {"not met"}
    assert "APALU / PReLU, module fwd+bwd, 2k elements, scalar" in over
    assert over["APALU / PReLU, forward, inference_mode, 16k elements, per-channel"]["measured"] == "1.21x"


def test_large_like_for_like_compiled_and_huge_page_lines():
    lines = _lines(ops=_ops(lean_fb=9.0, compiled=10.4, gelu_compiled=9.0))
    g = "scalar (like for like)"
    assert lines[f"lean eager APALU / GELU, forward+backward, {g}"]["verdict"] == "met"  # 0.9
    assert lines["lean eager APALU / GELU, forward+backward, per-channel (like for like)"]["verdict"] == "not met"
    assert lines["compiled APALU / eager GELU, forward+backward, scalar"]["verdict"] == "met"  # 1.04
    assert lines["compiled APALU / compiled GELU, forward+backward, scalar"]["verdict"] == "not met"  # 1.16
    assert lines["per-channel / scalar APALU, lean eager, forward+backward"]["verdict"] == "not met"  # 1.5
    hint = lines["APALU with the huge-page hint / GELU, forward+backward"]
    assert hint["verdict"] == "" and "compacts memory" in hint["target"]
    fractions = [r for k, r in lines.items() if "copy bandwidth" in k]
    assert fractions and all(r["verdict"] == "" for r in fractions)


def test_training_step_lines():
    steps = [{"activation": a, "params": p, "model": "MLP 3x32", "batch": 64, "median_ms": ms,
              "ratio_to_relu": ms / 1.0} for a, p, ms in
             (("relu", "none", 1.0), ("prelu", "scalar", 1.2), ("apalu", "scalar", 1.25))]
    e2e = [{"mode": "compiled", "activation": "apalu", "params": "scalar", "ratio_to_relu": 1.11}]
    lines = _lines(steps=steps, e2e=e2e)
    assert lines["MLP 3x32 step (batch 64, Adam), scalar: APALU / ReLU"]["verdict"] == "met"
    assert lines["MLP 3x32 step (batch 64, Adam), scalar: APALU / PReLU"]["verdict"] == "not met"
    assert lines["CNN step (SGD), compiled, scalar: APALU / ReLU"]["verdict"] == "not met"
    assert not any("update" in k for k in lines)  # rows without the update timing: no breakdown
    for r, (ms, n) in zip(steps, ((0.4, 8), (0.5, 11), (0.6, 14))):
        r.update(update_ms=ms, param_tensors=n)
    lines = _lines(steps=steps)
    update = lines["MLP 3x32 step (batch 64, Adam), scalar: Adam update alone, APALU / PReLU"]
    assert update["value"] == pytest.approx(1.2) and update["verdict"] == ""
    assert "APALU 14, PReLU 11" in update["target"]
    rest = lines["MLP 3x32 step (batch 64, Adam), scalar: step without the update, APALU / PReLU"]
    assert rest["value"] == pytest.approx(0.65 / 0.7) and rest["verdict"] == ""


def test_memory_line_with_slack():
    mem = [{"activation": "apalu (lean eager)", "saved_inputs_per_layer": 1.005},
           {"activation": "apalu (compiled)", "saved_inputs_per_layer": 1.5}]
    lines = _lines(memory=mem)
    assert lines["saved for backward per layer, lean eager APALU (inputs)"]["verdict"] == "met"
    assert lines["saved for backward per layer, compiled APALU (inputs)"]["verdict"] == "not met"


def test_parts_that_did_not_run_give_no_lines():
    assert judge({}, "cpu") == []


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_device_is_carried(device):
    assert {r["device"] for r in judge({"modules": _modules(1.0)}, device)} == {device}
