"""Every GPU spec proven on the CPU: it validates, keeps every arm its claims compare, states its
MDE and GPU-minutes with their bases, dry-runs, and its ``smoke`` runs end to end on this CPU
through ``apalu collect`` and the at-scale verdict step (a verdict of the vocabulary each; an
incomplete or underpowered smoke is fine, a crash is not)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apalu import sweep as sw
from apalu.lab.protocol import INIT_ARMS, PROTOCOLS, is_verdict
from apalu.sweep.collect import collect
from apalu.sweep.smoke import ARM_PARAMETERS, _placeholders, apply_smoke, smoke_spec

REPO = Path(__file__).resolve().parents[2]
GPU_SPECS = sorted((REPO / "sweeps").glob("*_gpu.yaml"))
IDS = [p.stem for p in GPU_SPECS]


def _arms(spec) -> set[str]:
    """The arms a spec's runs compare, in the protocols' names (inits by their arm names)."""
    params = {k: v for r in sw.expand(spec) for k, v in r.parameters.items()}
    arms: set[str] = set()
    for key in ARM_PARAMETERS:
        values = params.get(key)
        if values is None and key in spec.param_info:  # the notebook's default
            from apalu.sweep.spec import _literal

            values = _literal(spec.param_info[key]["default"])
        by_spec = {v: k for k, v in INIT_ARMS.items()}
        arms |= {by_spec.get(v, v) for v in values or []}
    return arms


@pytest.mark.parametrize("path", GPU_SPECS, ids=IDS)
def test_gpu_spec_keeps_its_arms_and_states_mde_and_gpu_minutes(path):
    spec = sw.load_spec(path)
    raw = yaml.safe_load(path.read_text())
    expect = raw.get("expect") or {}
    assert expect.get("gpu_minutes", 0) > 0 and "measured" in expect.get("gpu_minutes_basis", "")
    assert "smoke" in raw, f"{path.name}: no smoke section (the CPU proof of the spec)"
    assert not set(raw["smoke"]) & set(ARM_PARAMETERS), "a smoke keeps every arm"
    smoked = _placeholders(apply_smoke(raw, spec.seed_param), lambda param, kind: "generated")
    small = sw.validate_spec(smoked, root=REPO, source=str(path))
    for claim in spec.claims:
        protocol = PROTOCOLS.get(claim)
        if protocol is None:  # an assumption check (exp-ab-stay-positive): no arms, no MDE
            continue
        needed = {protocol.treatment, protocol.primary, *protocol.secondary}
        assert needed <= _arms(spec), f"{claim}: arms {needed - _arms(spec)} missing"
        assert needed <= _arms(small), f"{claim}: the smoke drops {needed - _arms(small)}"
        assert expect.get("mde", 0) > 0 and "mde_paired" in expect.get("mde_basis", "")


@pytest.mark.parametrize("path", GPU_SPECS, ids=IDS)
def test_gpu_spec_dry_runs(path, tmp_path, capsys):
    from apalu.sweep.cli import main

    for extra in ([], ["--smoke", "--out", str(tmp_path)]):
        assert main(["sweep", str(path), "--dry-run", *extra]) == 0
        out = capsys.readouterr().out
        assert "runs of notebooks/" in out and "pending" in out
        assert ("-smoke: " in out) == bool(extra) and ('"device": "cpu"' in out) == bool(extra)


def test_smoke_refuses_the_committed_results_folder(capsys):
    from apalu.sweep.cli import main

    assert main(["sweep", str(GPU_SPECS[0]), "--smoke", "--out", str(REPO / "data" / "results")]) == 2
    assert "not under" in capsys.readouterr().err


def test_smoke_section_is_validated(tmp_path):
    raw = yaml.safe_load((REPO / "sweeps" / "exp_small_data_gpu.yaml").read_text())
    for smoke, message in (({"device": "cpu", "activations": ["apalu"]}, "keeps every comparison arm"),
                           ({"max_steps": 5}, "smoke.device: must be 'cpu'"),
                           ({"device": "cpu", "max_steps": -1}, "smoke: fixed.max_steps"),
                           ({"device": "cpu", "nope": 1}, "smoke: fixed.nope"),
                           ({"device": "cpu", "x": "generated:mnist"}, "unknown generated kind")):
        with pytest.raises(sw.SpecError, match=message.replace(".", r"\.")):
            sw.validate_spec({**raw, "smoke": smoke}, root=REPO)


@pytest.mark.parametrize("path", GPU_SPECS, ids=IDS)
def test_gpu_spec_smoke_runs_through_collect_and_verdicts(path, tmp_path):
    """The regression test of the shrunk exp_small_data run, among others: with fewer seeds
    than the protocol needs, its notebook formatted a missing interaction p-value and failed."""
    spec = smoke_spec(sw.load_spec(path), tmp_path / "data")
    summary = sw.run_sweep(spec, results_root=tmp_path, progress=False, log=lambda *a: None)
    sweep_dir = tmp_path / spec.name
    errors = [json.loads(f.read_text()).get("error") for f in sweep_dir.glob("*/status.json")]
    assert summary["complete"] == summary["runs"] and summary["failed"] == 0, errors
    res = collect(sweep_dir)
    assert (sweep_dir / "results.csv").is_file() and len(res["results"])
    # every claim of the spec gets an at-scale verdict: pooled by its decide section, or the
    # one its run's notebook recorded (assumption checks such as exp-ab-stay-positive too)
    assert set(res["verdicts"]) == set(spec.claims)
    for claim, rec in res["verdicts"].items():
        assert is_verdict(rec["verdict"]), f"{claim}: {rec['verdict']!r}"
        assert rec["provenance"]["sweep"] == spec.name and rec["provenance"]["sweep_complete"]
    assert json.loads((sweep_dir / "verdicts.json").read_text()).keys() == set(spec.claims)


def test_gpu_sweep_script_stops_at_once_without_cuda(tmp_path):
    """On a machine without CUDA (this one) the script stops before installing or running
    anything, with a message that says so."""
    import os
    import time

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = GPU_SPECS[0]
    name = yaml.safe_load(spec.read_text())["name"]
    t0 = time.perf_counter()
    r = subprocess.run(["bash", str(REPO / "scripts" / "gpu_sweep.sh"), str(spec)], capture_output=True,
                       text=True, env={**os.environ, "PYTHON": sys.executable}, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and time.perf_counter() - t0 < 60
    assert "sees no CUDA device" in r.stderr and "CUDA is not usable here" in r.stderr
    assert "nothing installed or run" in r.stderr and not (REPO / "data" / "results" / name).exists()


def test_estimate_counts_the_steps_and_measures_them():
    """GPU-minutes = Σ steps × max(ops × per-op time, FLOPs / rate), the steps counted as the
    notebooks train (fair_runs: one run per tuning lr and per seed, for every arm)."""
    from apalu.sweep.estimate import GPU_FLOP_PER_S, GPU_S_PER_OP, estimate_spec, measure_step, workloads

    p = {"datasets": ["digits", "mnist1d"], "sizes": [50, 1294, 50_000], "activations": ["apalu", "relu"],
         "model": "mlp", "width": 8, "depth": 2, "seeds": [0, 1, 2], "lrs": [0.01, 0.1],
         "max_steps": 7, "batch_size": 5}
    loads = workloads("exp_small_data", p)
    # digits has 1,294 training examples (50,000 is skipped); mnist1d has every size
    assert [w.steps for w in loads] == [2 * 5 * 7] * 2 + [3 * 5 * 7] * 2
    cost = measure_step("mlp", "digits", "apalu", batch_size=5, model_kw={"width": 8}, steps=1)
    assert cost.ops > 20 and cost.flops > 0 and cost.cpu_s > 0
    assert cost.gpu_s == max(cost.ops * GPU_S_PER_OP, cost.flops / GPU_FLOP_PER_S)
    assert cost.scaled(10).flops == 2 * cost.flops and cost.scaled(10).ops == cost.ops
    spec = sw.load_spec(REPO / "sweeps" / "exp_init_sensitivity_gpu.yaml")
    est = estimate_spec(spec, steps=1)
    assert est["steps"] == 5 * (20 + 6) * 10 * 29 and 0 < est["gpu_minutes"] < spec.raw["expect"]["gpu_minutes"]


def test_estimate_command_prints_the_basis(capsys):
    from apalu.sweep.cli import main

    assert main(["sweep", str(REPO / "sweeps" / "exp_init_sensitivity_gpu.yaml"), "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "ops_per_step" in out and "37,700 training steps" in out and "assumed, not measured" in out


def test_a_run_its_notebook_would_refuse_as_too_long_is_refused_up_front():
    """exp_small_data refuses parameters far beyond its defaults' work without
    confirm_long_run; the GPU spec (540x) said so only once running on the GPU."""
    raw = yaml.safe_load((REPO / "sweeps" / "exp_small_data_gpu.yaml").read_text())
    assert raw["fixed"].pop("confirm_long_run") is True
    with pytest.raises(sw.SpecError, match=r"about \d+x the work of the notebook's defaults.*"
                                           r"set confirm_long_run: true"):
        sw.validate_spec(raw, root=REPO)
    with pytest.raises(sw.SpecError, match="confirm_long_run: must be true or false"):
        sw.validate_spec({**raw, "fixed": {**raw["fixed"], "confirm_long_run": "yes"}}, root=REPO)
