"""At-scale verdicts: a collected sweep decided by the pre-registered protocol, with provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from apalu.lab.protocol import PROTOCOLS
from apalu.sweep.collect import collect
from apalu.sweep.verdicts import check_decide, load_at_scale, protocol_frame

CLAIM = "exp-cifar10"  # arms apalu and relu only, 10 seeds, claimed +0.37 pp


def _sweep(root: Path, effect: float, seeds: int, expected: int | None = None,
           failed: int = 0, name: str = "cifar-test") -> Path:
    """A published sweep folder as ``apalu sweep`` leaves it: one run per seed with both arms."""
    sweep = root / "data" / "results" / name
    sweep.mkdir(parents=True)
    spec = {"name": name, "source": f"sweeps/{name}.yaml", "notebook": "nb/x.ipynb",
            "fixed": {"activations": ["apalu", "relu"], "epochs": 3}, "seeds": expected or seeds,
            "seed_param": "seeds", "decide": {CLAIM: {"metric": "test_accuracy"}}}
    (sweep / "sweep.yaml").write_text(yaml.safe_dump(spec))
    rng = np.random.default_rng(1)
    for s in range(seeds):
        run = sweep / f"run{s:03d}"
        run.mkdir()
        ok = s >= failed
        (run / "status.json").write_text(json.dumps({"status": "complete" if ok else "failed",
                                                     "finished": f"2026-12-0{1 + s % 3}T10:00:00"}))
        (run / "params.json").write_text(json.dumps({"commit": "abc123", "env": {"APALU_CPU_KERNEL": "0"},
                                                     "parameters": {"seeds": [s]}}))
        (run / "machine.json").write_text(json.dumps({"host": "h", "cpu": "x", "cpus": 2}))
        if ok:
            base = 0.9 + 0.01 * rng.standard_normal()
            rows = [{"activation": a, "seed": s, "metric": "test_accuracy",
                     "value": base + (effect + 0.001 * rng.standard_normal() if a == "apalu" else 0)}
                    for a in ("apalu", "relu")]
            pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    return sweep


def test_a_clear_effect_is_supported_with_provenance(tmp_path):
    sweep = _sweep(tmp_path, effect=0.01, seeds=10)
    res = collect(sweep)
    rec = res["verdicts"][CLAIM]
    assert rec["verdict"] == "supported"
    assert rec["fields"]["n_seeds"] == 10 and rec["fields"]["unit"] == "pp"
    assert rec["fields"]["effect"] == pytest.approx(1.0, abs=0.2)  # 0.01 accuracy = 1 pp
    prov = rec["provenance"]
    assert prov["commits"] == ["abc123"] and prov["sweep_complete"] and prov["runs_complete"] == 10
    assert prov["spec"] == "sweeps/cifar-test.yaml" and prov["date"] == "2026-12-03"
    assert prov["numerics_env"] == ["APALU_CPU_KERNEL=0"]
    assert (sweep / "verdicts.json").is_file()
    assert load_at_scale(tmp_path)[CLAIM]["verdict"] == "supported"


def test_too_few_seeds_and_failed_runs_decide_nothing(tmp_path):
    sweep = _sweep(tmp_path, effect=0.01, seeds=10, failed=3)
    rec = collect(sweep)["verdicts"][CLAIM]
    assert rec["verdict"] == "incomplete (7 of 10 seeds)"
    assert rec["evidence"].startswith("Sweep incomplete (7 of 10 runs complete, 3 failed)")
    assert not rec["provenance"]["sweep_complete"]


def test_missing_runs_are_counted(tmp_path):
    rec = collect(_sweep(tmp_path, effect=0.0, seeds=10, expected=12))["verdicts"][CLAIM]
    assert rec["provenance"]["runs_missing"] == 2 and not rec["provenance"]["sweep_complete"]
    assert rec["evidence"].startswith("Sweep incomplete (10 of 12 runs complete")


def test_the_sweep_with_more_complete_runs_wins(tmp_path):
    _sweep(tmp_path, effect=0.01, seeds=10, name="a-big")
    _sweep(tmp_path, effect=0.01, seeds=4, name="b-small")
    for d in sorted((tmp_path / "data" / "results").iterdir()):
        collect(d)
    rec = load_at_scale(tmp_path / "data" / "results")[CLAIM]
    assert rec["provenance"]["sweep"] == "a-big" and rec["also_decided_by"] == ["b-small"]


def test_a_setting_varying_within_arm_and_seed_is_refused():
    results = pd.DataFrame({"activation": ["apalu", "apalu", "relu", "relu"], "seed": [0] * 4,
                            "lr": [0.1, 0.01, 0.1, 0.01], "metric": ["test_accuracy"] * 4,
                            "value": [0.9, 0.8, 0.9, 0.8]})
    with pytest.raises(ValueError, match="lr vary within an arm and seed"):
        protocol_frame(results, PROTOCOLS[CLAIM], {"metric": "test_accuracy"})
    frame = protocol_frame(results, PROTOCOLS[CLAIM], {"metric": "test_accuracy", "where": {"lr": 0.1}})
    assert list(frame.columns) == ["arm", "seed", "test_acc"] and len(frame) == 2


def test_decide_section_is_checked():
    assert check_decide({"no-such-claim": {"metric": "m"}})[0].startswith("decide.no-such-claim: no pre-registered")
    assert "needs metric" in check_decide({CLAIM: {"arm": "activation"}})[0]
    assert check_decide({CLAIM: {"metric": "test_accuracy", "arm": "activation"}}) == []


def test_committed_sweep_verdicts_load():
    """The committed CPU sweep carries at-scale verdicts the book renders without re-running."""
    root = Path(__file__).resolve().parents[2]
    records = load_at_scale(root)
    assert records, "no committed verdicts.json under data/results"
    for rec in records.values():
        assert rec["provenance"]["commits"] and rec["provenance"]["runs_expected"] >= 1
        assert rec["verdict"] and rec["evidence"]


def test_files_and_average_choose_the_rows():
    rows = [{"file": f, "activation": a, "seed": s, "metric": "test_accuracy", "value": 0.5}
            for f in ("cifar10_mobilenet.csv", "cifar10_inception.csv", "classification.csv")
            for a in ("apalu", "relu") for s in range(2)]
    results = pd.DataFrame(rows)
    how = {"metric": "test_accuracy"}
    with pytest.raises(ValueError, match="several CSV files per arm and seed"):
        protocol_frame(results, PROTOCOLS[CLAIM], how)
    frame = protocol_frame(results, PROTOCOLS[CLAIM], {**how, "files": ["cifar10_*.csv"],
                                                       "average": ["file"]})
    assert len(frame) == 8
    with pytest.raises(ValueError, match="no 'loss_auc' rows.*metrics found: test_accuracy"):
        protocol_frame(results, PROTOCOLS[CLAIM], {"metric": "loss_auc"})


def test_a_runs_own_recorded_verdict_is_taken_with_provenance(tmp_path):
    sweep = _sweep(tmp_path, effect=0.01, seeds=1, name="one-run")
    spec = yaml.safe_load((sweep / "sweep.yaml").read_text())
    spec.pop("decide")
    spec["claims"] = ["exp-faster-convergence"]
    (sweep / "sweep.yaml").write_text(yaml.safe_dump(spec))
    (sweep / "run000" / "ledger").mkdir()
    (sweep / "run000" / "ledger" / "exp-faster-convergence.json").write_text(json.dumps(
        {"id": "exp-faster-convergence", "verdict": "inconclusive", "evidence": "Primary: x.",
         "n_seeds": 20, "effect": 0.01, "unit": "nats"}))
    rec = collect(sweep)["verdicts"]["exp-faster-convergence"]
    assert rec["verdict"] == "inconclusive" and rec["fields"]["n_seeds"] == 20
    assert rec["provenance"]["decided_in_run"] == "run000" and rec["provenance"]["commits"]
