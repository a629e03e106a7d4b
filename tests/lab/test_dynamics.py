import pandas as pd
import pytest

from apalu.lab.dynamics import run_shares, setting_summary


def _traj(seed: int, lows: list[float], constraint: str = "none") -> pd.DataFrame:
    rows = []
    for layer, low in enumerate(lows):
        for step, a in ((0, 1.0), (1, low)):
            rows.append({"run": f"{constraint}-{seed}", "constraint": constraint, "per_channel": False, "lr": 0.1,
                         "seed": seed, "layer_index": layer, "channel": 0, "step": step, "a": a, "b": 1.0})
    return pd.DataFrame(rows)


def test_a_value_counts_once_by_its_minimum_over_training():
    s = run_shares(_traj(0, [-0.5, 0.02, 0.5, 0.9]), near_zero=0.05)
    assert s["negative"].item() == 0.25 and s["near_zero"].item() == 0.5


def test_seeds_are_the_units_of_the_summary():
    traj = pd.concat([_traj(0, [-1.0, 1.0]), _traj(1, [1.0, 1.0]), _traj(2, [-1.0, -1.0])])
    out = setting_summary(run_shares(traj, near_zero=0.05)).iloc[0]
    assert out.runs == 3 and out.runs_with_negative == 2
    assert out.negative_share == pytest.approx(0.5) and out.low < 0.5 < out.high


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="near_zero"):
        run_shares(_traj(0, [1.0]), near_zero=0)
    with pytest.raises(ValueError, match="columns"):
        run_shares(pd.DataFrame({"a": [1.0]}), near_zero=0.05)
