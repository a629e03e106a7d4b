"""The Cost chapter's closing table: the bench's stored ratios against the performance targets.

Reads what ``python -m apalu.bench --out DIR`` wrote (``ops_<device>.csv``, ``memory_<device>.csv``,
``e2e_<device>.csv``, ``machine.json``) and says of each target whether it is met.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

# targets of the performance issue: ratio ≤ target
COMPILED_VS_GELU = 1.05
EAGER_VS_GELU = 3.0
PER_CHANNEL_VS_SCALAR = 1.25
SAVED_INPUTS_PER_LAYER = 1.0
SAVED_SLACK = 0.01  # a and b are saved alongside x
COMPILED_STEP_VS_RELU = 1.10

# rows reported without a target: (implementation, what it is)
REPORTED = (("lean eager, no huge pages", "the kernel without the huge-page advice"),
            ("ATen eager", "without the kernel"), ("inductor compiled", "without the kernel"))


def _fmt(v: float, unit: str) -> str:
    return f"{v:.2f}{unit}"


def target_rows(ops: pd.DataFrame, memory: pd.DataFrame | None = None,
                e2e: pd.DataFrame | None = None) -> list[dict]:
    """One dict per line of the table: ratio (what), measured (text), target (text), verdict
    ("met", "not met" or "" for reported-only lines)."""
    rows: list[dict] = []

    def add(what: str, value: float, target: float, unit: str = "x", slack: float = 0.0) -> None:
        rows.append({"ratio": what, "measured": _fmt(value, unit), "target": f"≤ {target:g}{unit}",
                     "verdict": "met" if value <= target + slack else "not met"})

    def report(what: str, measured: str, note: str = "(reported)") -> None:
        rows.append({"ratio": what, "measured": measured, "target": note, "verdict": ""})

    fb = ops[ops["direction"] == "forward+backward"].set_index("label")
    fw = ops[ops["direction"] == "forward"].set_index("label")
    r = lambda label: fb.loc[label, "ratio_to_gelu"]  # noqa: E731
    if "apalu (compiled, scalar)" in fb.index:
        add("compiled APALU fwd+bwd / native GELU", r("apalu (compiled, scalar)"), COMPILED_VS_GELU)
    add("lean eager APALU fwd+bwd / native GELU", r("apalu (lean eager, scalar)"), EAGER_VS_GELU)
    report("reference eager APALU fwd+bwd / native GELU",
           _fmt(r("apalu (reference eager, scalar)"), "x"), "(baseline)")
    for label, note in REPORTED:
        if f"apalu ({label}, scalar)" in fb.index:
            report(f"{label} APALU fwd+bwd / native GELU ({note})", _fmt(r(f"apalu ({label}, scalar)"), "x"))
    gelu_fw = fw.loc["gelu (native)", "median_ms"]
    for label in ("lean eager", "compiled"):  # inference: forward only, with its quartiles
        if f"apalu ({label}, scalar)" in fw.index:
            row = fw.loc[f"apalu ({label}, scalar)"]
            report(f"{label} APALU forward only / native GELU (quartiles)",
                   f"{row['ratio_to_gelu']:.2f}x ({row['q1_ms'] / gelu_fw:.2f}x–{row['q3_ms'] / gelu_fw:.2f}x)")
    for label in ("lean eager", "compiled"):
        if f"apalu ({label}, per-channel)" in fb.index:
            add(f"per-channel / scalar, {label}", fb.loc[f"apalu ({label}, per-channel)", "median_ms"]
                / fb.loc[f"apalu ({label}, scalar)", "median_ms"], PER_CHANNEL_VS_SCALAR)
    if memory is not None:
        mem = memory.set_index("activation")
        for label, name in (("lean eager", "lean"), ("compiled", "compiled")):
            if f"apalu ({label})" in mem.index:
                add(f"saved for backward per layer, {name} APALU (inputs)",
                    mem.loc[f"apalu ({label})", "saved_inputs_per_layer"], SAVED_INPUTS_PER_LAYER, "",
                    slack=SAVED_SLACK)
    if e2e is not None:
        e = e2e.set_index(["mode", "activation", "params"])
        if ("compiled", "apalu", "scalar") in e.index:
            add("CNN training step, compiled: APALU / ReLU", e.loc[("compiled", "apalu", "scalar"), "ratio_to_relu"],
                COMPILED_STEP_VS_RELU)
        report("CNN training step, eager: APALU / ReLU", _fmt(e.loc[("eager", "apalu", "scalar"), "ratio_to_relu"], "x"))
    return rows


def targets_markdown(results_dir: Path | str, device: str) -> str:
    """The closing table for one device's stored results, headed by the machine and command."""
    folder = Path(results_dir)
    m = json.loads((folder / "machine.json").read_text())[device]
    optional = {name: folder / f"{name}_{device}.csv" for name in ("memory", "e2e")}
    rows = target_rows(pd.read_csv(folder / f"ops_{device}.csv"),
                       *(pd.read_csv(p) if p.exists() else None for p in optional.values()))
    head = (f"**{device}** ({m.get('gpu', m['cpu'])}, {m['torch_threads']} threads, {m['date_utc']}, "
            f"load {m['loadavg_before'][0]:.2f} before / {m['loadavg_after'][0]:.2f} after), "
            f"produced by `{m['command']}`:\n\n| ratio | measured | target | |\n|---|---:|---:|---|\n")
    return head + "\n".join(f"| {r['ratio']} | {r['measured']} | {r['target']} | {r['verdict']} |" for r in rows)
