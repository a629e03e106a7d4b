"""The Cost chapter's tables and figure, from what ``python -m apalu.bench --out DIR`` wrote.

The bench judges every target in the run that measured it (``targets_<device>.csv``, see
:mod:`apalu.bench.targets`); this module only reads and presents: the met/not-met table headed by
the machine and the command, the cost of each layer against tensor size, the small-tensor and
training-step ratios, and the per-call overhead before and after. It checks what it reads and
names the file when something is missing or malformed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["load", "overhead_table", "size_plot", "small_table", "steps_table", "targets_markdown",
           "targets_table"]

TARGET_COLUMNS = ("group", "ratio", "measured", "target", "verdict")
SWEEP_ACTIVATIONS = ("relu", "gelu", "silu", "prelu", "apalu")


def load(folder: Path | str, part: str, device: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """``<part>_<device>.csv`` of ``folder``, with a clear error when it is missing or lacks
    ``columns``."""
    path = Path(folder) / f"{part}_{device}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m apalu.bench --device {device} "
                                f"--out {folder}` (it writes every part)")
    df = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}: written by an older bench? re-run it")
    return df


def machine(folder: Path | str, device: str) -> dict:
    path = Path(folder) / "machine.json"
    machines = json.loads(path.read_text())
    if device not in machines:
        raise KeyError(f"{path} describes no {device!r} run (has: {sorted(machines)})")
    return machines[device]


def targets_table(folder: Path | str, device: str) -> pd.DataFrame:
    """The stored target lines: group, ratio, measured, target, verdict ("" = reported only)."""
    df = load(folder, "targets", device, TARGET_COLUMNS)
    bad = set(df["verdict"]) - {"met", "not met", ""}
    if bad:
        raise ValueError(f"targets_{device}.csv has unknown verdicts {sorted(bad)}")
    return df[list(TARGET_COLUMNS)]


def targets_markdown(folder: Path | str, device: str) -> str:
    """The met/not-met table for one device, headed by the machine, load and command."""
    m = machine(folder, device)
    rows = targets_table(folder, device)
    head = (f"**{device}** ({m.get('gpu', m['cpu'])}, {m['torch_threads']} threads; layers, MLP step "
            f"and overhead at {m.get('small_threads', m['torch_threads'])}; {m['date_utc']}, load "
            f"{m['loadavg_before'][0]:.2f} before / {m['loadavg_after'][0]:.2f} after), produced by "
            f"`{m['command']}`. {(rows['verdict'] == 'met').sum()} of "
            f"{(rows['verdict'] != '').sum()} targets met.\n\n"
            "| group | ratio | measured | target | verdict |\n|---|---|---:|---:|---|\n")
    return head + "\n".join(f"| {r.group} | {r.ratio} | {r.measured} | {r.target} | {r.verdict} |"
                            for r in rows.itertuples())


def small_table(folder: Path | str, device: str) -> pd.DataFrame:
    """APALU and PReLU layers at 2k and 16k elements: µs per call and APALU / PReLU."""
    df = load(folder, "modules", device, ("activation", "params", "direction", "elements",
                                          "median_us", "ratio_to_prelu"))
    df = df[df["elements"].isin([2**11, 2**14]) & df["activation"].isin(["apalu", "prelu"])]
    wide = df.pivot_table(index=["elements", "params", "direction"], columns="activation",
                          values="median_us", sort=False)
    wide["APALU / PReLU"] = wide["apalu"] / wide["prelu"]
    return wide.rename(columns={"apalu": "APALU (µs)", "prelu": "PReLU (µs)"}).reset_index()


def steps_table(folder: Path | str, device: str) -> pd.DataFrame:
    """The MLP and CNN training steps: ms per step and the ratio to ReLU (and, where the run
    timed it, the MLP's Adam update alone and the number of parameter tensors it updates)."""
    parts = []
    for part in ("steps", "e2e"):
        path = Path(folder) / f"{part}_{device}.csv"
        if path.exists():
            parts.append(load(folder, part, device, ("mode", "activation", "params", "median_ms",
                                                     "ratio_to_relu", "model")))
    if not parts:
        raise FileNotFoundError(f"no steps_{device}.csv or e2e_{device}.csv in {folder}")
    df = pd.concat(parts, ignore_index=True)
    # the MLP rows of newer runs also time Adam's update alone, with its parameter tensors
    extra = [c for c in ("update_ms", "param_tensors") if c in df.columns]
    return df[["model", "optimizer", "mode", "activation", "params", "median_ms", "iqr_ms",
               "ratio_to_relu", *extra]]


def overhead_table(folder: Path | str, device: str) -> pd.DataFrame:
    """µs per 64 × 32 call by component (estimated: profiled shares of the unprofiled time), per
    version (the git revision before, this tree), module and direction (forward+backward, and
    the forward under inference_mode where the run measured it)."""
    df = load(folder, "overhead", device, ("version", "module", "component", "us_per_call_estimated",
                                           "unprofiled_us_per_call"))
    if "direction" not in df.columns:  # runs before the forward-only breakdown
        df = df.assign(direction="forward+backward")
    keys = ["version", "module", "direction"]
    wide = df.pivot_table(index=keys, columns="component", values="us_per_call_estimated",
                          sort=False)
    total = df.groupby(keys, sort=False)["unprofiled_us_per_call"].first()
    wide["total (unprofiled)"] = total
    return wide.reset_index()


def size_plot(folder: Path | str, device: str, direction: str = "forward+backward"):
    """Time per call against tensor size (log-log) for ReLU, GELU, SiLU, PReLU and APALU
    (scalar parameters), with the interquartile range as a band; returns (fig, ax)."""
    from . import style

    df = load(folder, "modules", device, ("activation", "params", "direction", "elements",
                                          "median_us", "q1_us", "q3_us"))
    df = df[(df["direction"] == direction) & df["params"].isin(["none", "scalar"])
            & df["activation"].isin(SWEEP_ACTIVATIONS)]
    fig, ax = style.new_figure("wide")
    for act in style.order(SWEEP_ACTIVATIONS):
        g = df[df["activation"] == act].sort_values("elements")
        ax.plot(g["elements"], g["median_us"] / g["elements"] * 1e3, **style.line(act))
        ax.fill_between(g["elements"], g["q1_us"] / g["elements"] * 1e3,
                        g["q3_us"] / g["elements"] * 1e3, color=style.color(act), alpha=0.2, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    style.finish(ax, xlabel="tensor size (elements, log scale)",
                 ylabel=f"{direction} time per element (ns)", legend="outside")
    return fig, ax
