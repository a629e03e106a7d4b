"""How far APALU's a and b travel in training: per run, the share of values that turned negative.

A run logs a and b of every APALU layer (and channel) at many steps
(:func:`apalu.lab.experiments.run_trainings` with a ``trajectories`` writer). The unit of the
statistics is the run (one seed of one setting): its share of (layer, channel) values whose
minimum over training fell below 0 (or below ``near_zero``). Shares are then summarised over
seeds per setting with a t interval, so ten seeds give ten independent shares.

>>> traj = pd.DataFrame({"run": ["r"] * 4, "constraint": "none", "per_channel": False, "lr": 0.1,
...                      "seed": 0, "layer_index": [0, 0, 1, 1], "channel": 0, "step": [0, 1, 0, 1],
...                      "a": [1.0, -0.1, 1.0, 0.9], "b": [1.0, 1.0, 1.0, 0.01]})
>>> run_shares(traj, near_zero=0.05)[["negative", "near_zero"]].values.tolist()
[[0.5, 1.0]]
"""

from __future__ import annotations

import pandas as pd

from .stats import mean_ci

__all__ = ["SETTING", "run_shares", "setting_summary"]

SETTING = ("constraint", "per_channel", "lr")  # what distinguishes the runs besides the seed


def run_shares(traj: pd.DataFrame, near_zero: float) -> pd.DataFrame:
    """One row per run: its setting, seed, and the shares of (layer, channel) values whose
    minimum of min(a, b) over training was below 0 (``negative``) and below ``near_zero``."""
    if near_zero <= 0:
        raise ValueError(f"near_zero must be > 0, got {near_zero}")
    need = {"run", *SETTING, "seed", "layer_index", "channel", "a", "b"}
    if not need <= set(traj.columns):
        raise ValueError(f"trajectories need columns {sorted(need)}, got {sorted(traj.columns)}")
    low = (traj.assign(low=traj[["a", "b"]].min(axis=1))
           .groupby(["run", *SETTING, "seed", "layer_index", "channel"])["low"].min().reset_index())
    low["negative"], low["near_zero"] = low["low"] < 0, low["low"] < near_zero
    return low.groupby(["run", *SETTING, "seed"])[["negative", "near_zero"]].mean().reset_index()


def setting_summary(shares: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per setting: the number of runs, how many had a negative value, and the mean share of
    negative values with its t interval over the seeds."""
    rows = []
    for key, g in shares.groupby(list(SETTING), sort=True):
        ci = mean_ci(g["negative"].to_numpy(float), level)
        rows.append({**dict(zip(SETTING, key)), "runs": len(g), "runs_with_negative": int((g["negative"] > 0).sum()),
                     "negative_share": ci["mean"], "low": ci["low"], "high": ci["high"],
                     "near_zero_share": float(g["near_zero"].mean())})
    return pd.DataFrame(rows)
