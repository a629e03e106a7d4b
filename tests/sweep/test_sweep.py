"""apalu.sweep and the `apalu sweep` command: spec validation, run ids, the local executor end
to end, resume after kill -9, the slurm path through submitit's local executor, the sbatch script.

Every run here executes tests/fixtures/tiny.ipynb (about 1-4 s a run, mostly kernel start).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from apalu import sweep as sw
from apalu.lab.notebook import notebook_parameters
from apalu.sweep import executors, runs, spec as spec_module

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "tiny.ipynb"


def counts(counter: Path) -> dict[tuple, int]:
    """Executions per (x, seed), from the fixture's counter file."""
    out: dict[tuple, int] = {}
    if counter.exists():
        for line in counter.read_text().splitlines():
            _, x, _, seed = line.split(",")
            out[(int(x), int(seed))] = out.get((int(x), int(seed)), 0) + 1
    return out


# --------------------------------------------------------------------------- validation

BASE = {"notebook": "nb/tiny.ipynb", "fixed": {"name": "b"}, "grid": {"x": [1, 2]}, "seeds": [0, 1]}


def spec_error(book: Path, **changes) -> str:
    spec = {**BASE, **changes}
    spec = {k: v for k, v in spec.items() if v is not _DROP}
    with pytest.raises(sw.SpecError) as info:
        sw.load_spec(book.write_spec(spec))
    return str(info.value)


_DROP = object()


def test_valid_spec_loads(book):
    spec = sw.load_spec(book.write_spec(BASE))
    assert spec.name == "s" and spec.notebook == "nb/tiny.ipynb" and spec.root == book.resolve()
    assert spec.seed_param == "seed"
    assert len(sw.expand(spec)) == 4


def test_unknown_notebook_is_rejected(book):
    msg = spec_error(book, notebook="nb/missing.ipynb")
    assert "notebook:" in msg and "missing.ipynb" in msg and "does not exist" in msg


def test_notebook_without_parameters_cell_is_rejected(book):
    nb = json.loads(FIXTURE.read_text())
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("tags", None)
    (book / "nb" / "untagged.ipynb").write_text(json.dumps(nb))
    assert "no cell tagged 'parameters'" in spec_error(book, notebook="nb/untagged.ipynb")


def test_undefined_parameter_is_rejected_naming_it(book):
    msg = spec_error(book, fixed={"name": "b", "epochz": 3})
    assert "fixed.epochz" in msg and "does not define 'epochz'" in msg
    msg = spec_error(book, grid={"depth": [1, 2]})
    assert "grid.depth" in msg


def test_bad_type_is_rejected_naming_it(book):
    msg = spec_error(book, grid={"x": [1, "two"]})
    assert "grid.x" in msg and "'two'" in msg and "int" in msg
    assert "fixed.fail" in spec_error(book, fixed={"fail": "no"})
    assert "fixed.lr" not in spec_error(book, fixed={"lr": 1}, grid={"x": ["bad"]})  # int is a float


def test_empty_grid_is_rejected(book):
    assert "grid: empty" in spec_error(book, grid={})
    assert "grid.x: empty list" in spec_error(book, grid={"x": []})
    assert "grid: empty" in spec_error(book, grid=_DROP, seeds=_DROP)  # nothing varies
    assert "seeds: empty" in spec_error(book, seeds=[])


def test_other_spec_errors_name_their_key(book):
    assert "colour: unknown key" in spec_error(book, colour="red")
    assert "fixed.output_dir: reserved" in spec_error(book, fixed={"output_dir": "x"})
    assert "zip: lists of unequal length" in spec_error(book, grid=_DROP, zip={"x": [1, 2], "lr": [0.1]})
    assert "grid.x: also set in fixed" in spec_error(book, fixed={"x": 1})
    assert "seed_param" in spec_error(book, seed_param="rng")
    assert "resources.gpus_per_node" in spec_error(book, resources={"gpus_per_node": "one"})
    assert "resources.nodes: unknown" in spec_error(book, resources={"nodes": 2})
    msg = spec_error(book, colour="red", grid={"x": []})  # every problem is reported at once
    assert "colour" in msg and "grid.x" in msg


def test_book_value_rules_apply(book):
    pytest.importorskip("torch")
    assert "seeds: -1" in spec_error(book, seeds=[-1, 2])


def test_cli_rejects_bad_spec_with_exit_2(book):
    path = book.write_spec({**BASE, "grid": {"x": []}})
    r = subprocess.run([sys.executable, "-m", "apalu", "sweep", str(path), "--dry-run"],
                       capture_output=True, text=True, env=book.env(), cwd=book)
    assert r.returncode == 2 and "grid.x: empty list" in r.stderr


# --------------------------------------------------------------------------- ids and expansion


def test_run_ids_are_stable_and_parameter_order_free():
    # Pinned: changing the hashing would orphan every committed run folder.
    # The id is documented as SHA-256 of the canonical JSON of notebook path and parameters.
    canonical = b'{"notebook":"nb/tiny.ipynb","parameters":{"seed":0,"x":1}}'
    assert sw.run_id("nb/tiny.ipynb", {"x": 1, "seed": 0}) == "76d8c2275d05"
    assert __import__("hashlib").sha256(canonical).hexdigest()[:12] == "76d8c2275d05"
    assert sw.run_id("nb/tiny.ipynb", {"seed": 0, "x": 1}) == sw.run_id("nb/tiny.ipynb", {"x": 1, "seed": 0})
    assert sw.run_id("nb/tiny.ipynb", {"x": 1, "seed": 0, "output_dir": "a"}) == \
        sw.run_id("nb/tiny.ipynb", {"x": 1, "seed": 0})
    assert sw.run_id("nb/tiny.ipynb", {"x": 2, "seed": 0}) != sw.run_id("nb/tiny.ipynb", {"x": 1, "seed": 0})
    assert sw.run_id("nb/other.ipynb", {"x": 1, "seed": 0}) != sw.run_id("nb/tiny.ipynb", {"x": 1, "seed": 0})


def test_expand_grid_zip_seeds(book):
    spec = sw.load_spec(book.write_spec({
        "notebook": "nb/tiny.ipynb", "fixed": {"name": "z"}, "grid": {"x": [1, 2, 3]},
        "zip": {"lr": [0.1, 0.2], "fail": [False, True]}, "seeds": 2}))
    runs = sw.expand(spec)
    assert len(runs) == 3 * 2 * 2
    assert len({r.run_id for r in runs}) == len(runs)
    assert {(r.parameters["lr"], r.parameters["fail"]) for r in runs} == {(0.1, False), (0.2, True)}
    assert {r.parameters["seed"] for r in runs} == {0, 1}
    assert all(r.parameters["name"] == "z" for r in runs)
    assert [r.run_id for r in runs] == [r.run_id for r in sw.expand(spec)]  # same order every time
    assert all(r.run_dir == book.resolve() / "data" / "results" / "s" / r.run_id for r in runs)


def test_list_seed_parameter_gets_one_seed_lists(book):
    nb = json.loads(FIXTURE.read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cell["source"] = "seeds = [0, 1]\noutput_dir = ''\n"
    (book / "nb" / "seeds.ipynb").write_text(json.dumps(nb))
    spec = sw.load_spec(book.write_spec({"notebook": "nb/seeds.ipynb", "seeds": [3, 4]}))
    assert spec.seed_param == "seeds"
    assert [r.parameters for r in sw.expand(spec)] == [{"seeds": [3]}, {"seeds": [4]}]


# --------------------------------------------------------------------------- local executor


def test_local_executor_end_to_end(book):
    counter = book / "count.txt"
    spec = sw.load_spec(book.write_spec({
        "notebook": "nb/tiny.ipynb", "fixed": {"name": "e2e", "counter_file": str(counter)},
        "zip": {"x": [1, 2, 3], "fail": [False, False, True]}}))
    summary = sw.run_sweep(spec, jobs=2, progress=False, log=lambda *a: None)
    assert (summary["runs"], summary["complete"], summary["failed"], summary["pending"]) == (3, 2, 1, 0)

    sweep_dir = book / "data" / "results" / "s"
    runs = {r.parameters["x"]: r for r in sw.expand(spec)}
    for x in (1, 2):
        d = runs[x].run_dir
        st = json.loads((d / "status.json").read_text())
        assert st["status"] == "complete" and st["wall_s"] > 0 and st["error"] is None
        assert json.loads((d / "params.json").read_text())["parameters"] == runs[x].parameters
        assert (d / "metrics.csv").read_text().splitlines()[1] == f"e2e,score,{x * 0.1}"
        assert (d / "figure.svg").exists()
        assert "cpu" in json.loads((d / "machine.json").read_text())
        nb = json.loads((d / "notebook.ipynb").read_text())
        assert any("score=" in "".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    failed = json.loads((runs[3].run_dir / "status.json").read_text())
    assert failed["status"] == "failed" and "asked to fail (x=3)" in failed["error"]
    assert (runs[3].run_dir / "error.txt").exists() and (runs[3].run_dir / "notebook.ipynb").exists()
    assert (sweep_dir / "sweep.yaml").exists() and (sweep_dir / "invocations.jsonl").exists()
    assert not any((sweep_dir / ".staging").iterdir())
    assert counts(counter) == {(1, 0): 1, (2, 0): 1, (3, 0): 1}

    # Again: complete and failed runs are skipped.
    again = sw.run_sweep(spec, jobs=2, progress=False, log=lambda *a: None)
    assert again["executed"] == 0 and counts(counter) == {(1, 0): 1, (2, 0): 1, (3, 0): 1}
    # --retry-failed runs only the failed one, and counts the attempt.
    retry = sw.run_sweep(spec, jobs=2, retry_failed=True, progress=False, log=lambda *a: None)
    assert retry["executed"] == 1 and counts(counter) == {(1, 0): 1, (2, 0): 1, (3, 0): 2}
    assert json.loads((runs[3].run_dir / "status.json").read_text())["attempt"] == 2


def test_running_marker_is_not_a_result(book):
    """A staging folder (a run killed midway) counts for nothing and is cleaned up."""
    spec = sw.load_spec(book.write_spec({"notebook": "nb/tiny.ipynb", "grid": {"x": [5]}}))
    (run,) = sw.expand(spec)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = run.sweep_dir / ".staging" / f"{run.run_id}.{__import__('socket').gethostname()}.{dead.pid}"
    stale.mkdir(parents=True)
    (stale / "RUNNING.json").write_text("{}")
    (stale / "status.json").write_text('{"status": "complete"}')  # even a finished-looking one
    assert sw.run_status(run.run_dir) is None
    summary = sw.run_sweep(spec, progress=False, log=lambda *a: None)
    assert summary["executed"] == 1 and summary["complete"] == 1
    assert not stale.exists()


# --------------------------------------------------------------------------- kill -9 and resume


def test_resume_after_kill_9(book):
    counter = book / "count.txt"
    spec_path = book.write_spec({
        "notebook": "nb/tiny.ipynb", "fixed": {"name": "k", "sleep": 1.0, "counter_file": str(counter)},
        "grid": {"x": [1, 2]}, "seeds": [0, 1]})
    spec = sw.load_spec(spec_path)
    runs = sw.expand(spec)
    staging = runs[0].sweep_dir / ".staging"
    cmd = [sys.executable, "-m", "apalu", "sweep", str(spec_path), "--jobs", "2", "-q"]

    proc = subprocess.Popen(cmd, cwd=book, env=book.env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    try:
        while True:  # kill once a run is complete and another is in flight
            done = [r for r in runs if sw.run_status(r.run_dir) == "complete"]
            flying = [d for d in staging.glob("*") if (d / "RUNNING.json").exists()] if staging.exists() else []
            if done and flying:
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.time() < deadline, "no run completed in time"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {r.run_id: (r.run_dir / "status.json").stat().st_mtime_ns
              for r in runs if sw.run_status(r.run_dir) == "complete"}
    assert 1 <= len(before) < len(runs)
    time.sleep(2.0)  # orphaned kernels notice their parent is gone and exit

    r = subprocess.run(cmd, cwd=book, env=book.env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # Every run has exactly one complete result ...
    folders = sorted(d.name for d in runs[0].sweep_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    assert folders == sorted(r.run_id for r in runs)
    assert all(sw.run_status(r.run_dir) == "complete" for r in runs)
    # ... the runs completed before the kill were not executed again ...
    for run in runs:
        if run.run_id in before:
            assert (run.run_dir / "status.json").stat().st_mtime_ns == before[run.run_id]
            assert counts(counter)[(run.parameters["x"], run.parameters["seed"])] == 1
        else:
            assert counts(counter)[(run.parameters["x"], run.parameters["seed"])] >= 1
    # ... and the killed runs' staging folders are gone.
    assert not list(staging.iterdir())


# --------------------------------------------------------------------------- slurm path


def test_slurm_path_through_submitit_local_executor(book):
    spec_path = book.write_spec({"notebook": "nb/tiny.ipynb", "fixed": {"name": "sl"},
                                  "grid": {"x": [1, 2]}, "resources": {"timeout_min": 5}})
    from apalu.sweep.cli import main

    rc = main(["sweep", str(spec_path), "--executor", "slurm", "--submitit-cluster", "local", "-q"])
    assert rc == 0
    spec = sw.load_spec(spec_path)
    for run in sw.expand(spec):
        assert sw.run_status(run.run_dir) == "complete"
        assert (run.run_dir / "metrics.csv").exists()
    logs = book / "data" / "results" / "s" / ".submitit" / "local"
    assert any(logs.rglob("*_result.pkl"))  # really went through submitit
    assert main(["sweep", str(spec_path), "--executor", "slurm", "--submitit-cluster", "local", "-q"]) == 0


def test_sbatch_script_carries_requested_resources(book):
    spec = sw.load_spec(book.write_spec({
        **BASE, "name": "gpu-ablation",
        "resources": {"cpus_per_task": 8, "gpus_per_node": 1, "timeout_min": 120, "partition": "gpu",
                      "mem_gb": 32, "array_parallelism": 3, "setup": ["module load cuda"]}}))
    text = sw.sbatch_script(spec, book / "logs")
    for line in ("#SBATCH --cpus-per-task=8", "#SBATCH --gpus-per-node=1", "#SBATCH --time=120",
                 "#SBATCH --partition=gpu", "#SBATCH --mem=32GB", "#SBATCH --array=0-3%3",
                 "#SBATCH --job-name=apalu-gpu-ablation", "module load cuda"):
        assert line in text, line
    assert "submitit.core._submit" in text
    # submitit's pre-timeout signal, its log layout, and the spec's extra directives
    assert "#SBATCH --signal=USR2@90" in text and "%A_%a_0_log.out" in text
    extra = sw.sbatch_script(sw.load_spec(book.write_spec({**BASE, "resources": {
        "additional": {"exclusive": "user"}, "qos": "high"}})), book / "logs")
    assert "#SBATCH --exclusive=user" in extra and "#SBATCH --qos=high" in extra
    over = sw.sbatch_script(spec, book / "logs", overrides={"gpus_per_node": 4, "timeout_min": 30,
                                                            "partition": "a100"}, n_runs=2)
    assert "#SBATCH --gpus-per-node=4" in over and "#SBATCH --time=30" in over
    assert "#SBATCH --partition=a100" in over and "#SBATCH --array=0-1%2" in over
    cpu = sw.sbatch_script(sw.load_spec(book.write_spec(BASE)), book / "logs")
    assert "gpus" not in cpu  # no GPU asked: no GPU line


def test_cli_dry_run_lists_runs_and_sbatch(book):
    path = book.write_spec({**BASE, "resources": {"gpus_per_node": 2}})
    r = subprocess.run([sys.executable, "-m", "apalu", "sweep", str(path), "--dry-run",
                        "--executor", "slurm", "--time", "45"], capture_output=True, text=True,
                       env=book.env(), cwd=book)
    assert r.returncode == 0, r.stderr
    ids = [run.run_id for run in sw.expand(sw.load_spec(path))]
    assert all(f"{i}  pending" in r.stdout for i in ids)
    assert "#SBATCH --gpus-per-node=2" in r.stdout and "#SBATCH --time=45" in r.stdout
    assert not (book / "data" / "results" / "s").exists() or not any(
        p.name != "sweep.yaml" for p in (book / "data" / "results" / "s").iterdir())


def test_console_entry_point_exists(sweep_env):
    from apalu.__main__ import main

    assert callable(main)
    r = subprocess.run([sys.executable, "-m", "apalu", "--help"], capture_output=True, text=True, env=sweep_env)
    assert r.returncode == 0 and "sweep" in r.stdout and "collect" in r.stdout


def test_parameters_cell_is_read_with_pythons_parser():
    # papermill's line reader drops `output_dir` here (its comment holds quotes); ast does not.
    names = notebook_parameters(FIXTURE)
    assert list(names) == ["x", "lr", "name", "seed", "fail", "sleep", "counter_file", "output_dir"]
    assert names["output_dir"]["default"] == '"out"' and names["lr"]["default"] == "0.1"


SPECS = sorted((REPO / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_shipped_specs_validate_against_their_notebooks(path):
    """A notebook whose parameters change under a shipped spec fails here, not on the cluster."""
    notebook = REPO / yaml.safe_load(path.read_text())["notebook"]
    if not notebook.exists():
        pytest.skip(f"{notebook.name} is not in this checkout yet")
    spec = sw.load_spec(path)
    assert spec.root == REPO and spec.name == yaml.safe_load(path.read_text())["name"]
    runs = sw.expand(spec)
    assert runs and len({r.run_id for r in runs}) == len(runs)
    if path.stem.endswith("_gpu"):
        assert spec.resources.get("gpus_per_node", 0) >= 1
        assert "#SBATCH --gpus-per-node=" in sw.sbatch_script(spec, "/tmp/x")


# --------------------------------------------------------------------------- committed results


def _git_book(book: Path) -> Path:
    """The book as a git repository with a committed sweep folder data/results/s/."""
    committed = book / "data" / "results" / "s" / "abc123"
    committed.mkdir(parents=True)
    (committed / "status.json").write_text('{"status": "complete"}')
    git = ["git", "-C", str(book), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "data"], check=True)
    subprocess.run(git + ["commit", "-qm", "results"], check=True)
    return committed.parent


def test_sweep_into_a_committed_folder_is_refused_without_record(book):
    sweep_dir = _git_book(book)
    spec_path = book.write_spec({"notebook": "nb/tiny.ipynb", "grid": {"x": [5]}})  # name "s" collides
    cli = [sys.executable, "-m", "apalu", "sweep", str(spec_path), "-q"]
    r = subprocess.run(cli, capture_output=True, text=True, env=book.env())
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"sweep 's': {sweep_dir} holds committed results (1 files tracked by git" in r.stderr
    assert "--record" in r.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["abc123"]  # nothing written
    assert subprocess.run(cli + ["--dry-run"], capture_output=True, env=book.env()).returncode == 0
    spec = sw.load_spec(spec_path)
    with pytest.raises(sw.CommittedResultsError, match="refusing to write into it"):
        sw.run_sweep(spec, progress=False, log=lambda *a: None)
    sw.guard_committed(sweep_dir, "s", record=True)  # the record step may
    other = tmp = book / "elsewhere"
    sw.guard_committed(other / "s", "s")  # an untracked folder is free
    assert sw.tracked_files(tmp) == [] and sw.tracked_files(sweep_dir) == ["data/results/s/abc123/status.json"]


def test_committed_guard_with_record_runs(book):
    _git_book(book)
    spec = sw.load_spec(book.write_spec({"notebook": "nb/tiny.ipynb", "grid": {"x": [5]}}))
    summary = sw.run_sweep(spec, progress=False, log=lambda *a: None, record=True)
    assert summary["complete"] == 1


# --------------------------------------------------------------------------- refused up front


def _variant(book: Path, source: str, name: str = "dev") -> str:
    """A copy of the fixture whose parameters cell is ``source``."""
    nb = json.loads(FIXTURE.read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cell["source"] = source
    (book / "nb" / f"{name}.ipynb").write_text(json.dumps(nb))
    return f"nb/{name}.ipynb"


def test_duplicate_runs_after_type_normalisation(book):
    assert "grid.lr: repeated values [1, 1.0] (1.0 twice" in spec_error(book, grid={"lr": [1, 1.0]})
    msg = spec_error(book, grid=_DROP, zip={"lr": [0.5, 0.5], "name": ["a", "a"]})
    assert "zip: repeated row {'lr': 0.5, 'name': 'a'} (the same run twice)" in msg
    spec = sw.load_spec(book.write_spec({**BASE, "grid": {"lr": [1, 2.5]}}))
    spec.grid = {"lr": [1, 1.0]}  # past validation: the whole-run check still finds it
    (problem,) = spec_module._duplicate_runs(spec)
    assert '"lr": 1,' in problem and '"lr": 1.0,' in problem and "are the same run" in problem


def test_unavailable_device_is_refused_before_anything_runs(book, monkeypatch):
    import torch

    nb = _variant(book, "device = 'auto'\nepochs = 3\noutput_dir = ''\n")
    path = book.write_spec({"notebook": nb, "grid": {"device": ["cpu", "cuda"]}})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = sw.load_spec(path)
    with pytest.raises(sw.SweepRefused, match=r"device 'cuda': this machine gives 0 CUDA device\(s\)"):
        sw.run_sweep(spec, progress=False, log=lambda *a: None)
    assert not (book / "data" / "results" / "s").exists()  # nothing written, nothing run
    r = subprocess.run([sys.executable, "-m", "apalu", "sweep", str(path), "-q"], capture_output=True,
                       text=True, env={**book.env(), "CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 2 and "refused, nothing run: device 'cuda'" in r.stderr
    assert sw.device_problems({"cuda:1"}, "slurm", 1) == [
        "device 'cuda:1': resources.gpus_per_node / --gpus gives 1 CUDA device(s); use device auto "
        "or cpu, or run where a GPU is"]
    assert sw.device_problems({"cuda", "auto", "cpu"}, "slurm", 1) == []
    assert "expected auto, cpu, cuda" in sw.device_problems({"gpu"}, "local", None)[0]


def test_large_sweep_needs_confirmation(book):
    nb = _variant(book, "epochs = 20\nx = 0\noutput_dir = ''\n")
    path = book.write_spec({"notebook": nb, "grid": {"x": list(range(600))}})  # 600 runs x 20 epochs
    spec = sw.load_spec(path)
    assert sw.run_epochs(spec, sw.expand(spec)) == 12_000
    lines = []
    with pytest.raises(sw.SweepRefused, match=r"600 runs, 12000 run-epochs: beyond 1000 runs or 10000"):
        sw.run_sweep(spec, progress=False, log=lines.append)
    assert lines == ["sweep s: 600 runs, about 12000 run-epochs"]  # the estimate comes first
    assert not (book / "data" / "results" / "s").exists()
    assert sw.size_problems(600, 12_000, confirmed=True) == []
    assert sw.size_problems(1001, 1001, confirmed=False) and not sw.size_problems(1000, 10_000, False)
    r = subprocess.run([sys.executable, "-m", "apalu", "sweep", str(path), "-q"], capture_output=True,
                       text=True, env=book.env())
    assert r.returncode == 2 and "pass --yes" in r.stderr


def test_slurm_timeout_leaves_room_after_the_signal(book):
    assert "resources.timeout_min: 3 minutes is too short: submitit signals the job 90 s before " \
           "the limit, leaving 90 s of work; give at least 5" in spec_error(book, resources={"timeout_min": 3})
    spec = sw.load_spec(book.write_spec({**BASE, "resources": {"timeout_min": 60}}))
    with pytest.raises(sw.SweepRefused, match=r"resources \(with overrides\).timeout_min: 2 minutes is too short"):
        sw.run_sweep(spec, executor="slurm", overrides={"timeout_min": 2}, progress=False, log=lambda *a: None)


_POOL_SCRIPT = """
import os, sys, time
from apalu.sweep.executors import local_pool
pool = local_pool(2)
futs = [pool.submit(time.sleep, 60) for _ in range(2)]
time.sleep(2)
print(" ".join(str(p) for p in pool._processes), flush=True)
time.sleep(60)
"""


def test_pool_workers_die_with_the_sweep(tmp_path, sweep_env):
    parent = subprocess.Popen([sys.executable, "-c", _POOL_SCRIPT], stdout=subprocess.PIPE, text=True,
                              env=sweep_env, cwd=tmp_path)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(runs._pid_alive(p) for p in pids)
        parent.send_signal(signal.SIGKILL)  # no cleanup code can run in the parent
        parent.wait()
        deadline = time.time() + 90  # a worker still importing torch dies once its initializer runs
        while time.time() < deadline and any(runs._pid_alive(p) for p in pids):
            time.sleep(0.1)
        assert not any(runs._pid_alive(p) for p in pids), "pool workers outlived their parent"
    finally:
        parent.kill()


# --------------------------------------------------------------------------- slurm: no double submission


class _FakeJob:
    def __init__(self, jid: str):
        self.job_id = jid


def test_no_wait_twice_submits_once(book, monkeypatch):
    """Slurm is not installed here: the executor is a fake that counts submissions, and the
    job counts as alive (as squeue would say while it is queued)."""
    spec = sw.load_spec(book.write_spec({**BASE, "resources": {"timeout_min": 30}}))
    submitted = []

    class FakeExecutor:
        def map_array(self, fn, runs, retry):
            submitted.append([r.run_id for r in runs])
            return [_FakeJob(f"4242_{i}") for i in range(len(runs))]

    monkeypatch.setattr(executors, "make_submitit_executor", lambda *a, **k: FakeExecutor())
    monkeypatch.setattr(executors, "_jobs_alive", lambda jobs: {str(j["job_id"]) for j in jobs})
    lines = []
    for _ in range(2):
        sw.run_sweep(spec, executor="slurm", wait=False, progress=False, log=lines.append)
    assert len(submitted) == 1 and len(submitted[0]) == 4
    assert "4 runs already submitted (job 4242, still queued or running): not submitted again" in lines
    (record,) = sw.read_pending(spec.results_dir())
    assert record["job_id"] == "4242" and sorted(record["run_ids"]) == sorted(submitted[0])
    # the job is gone (cancelled, node lost) with no result: the next call submits again
    monkeypatch.setattr(executors, "_jobs_alive", lambda jobs: set())
    sw.run_sweep(spec, executor="slurm", wait=False, progress=False, log=lines.append)
    assert len(submitted) == 2


def test_submitted_runs_and_stale_staging_of_dead_jobs(book):
    jobs = [{"job_id": "1", "run_ids": ["a", "b"]}, {"job_id": "2", "run_ids": ["c"]}]
    assert sw.submitted_runs(jobs, alive={"1"}, finished={"b"}) == {"a"}
    sweep_dir = book / "data" / "results" / "s"
    live = sweep_dir / ".staging" / "a.node7.123"
    dead = sweep_dir / ".staging" / "c.node8.456"
    for d in (live, dead):
        d.mkdir(parents=True)
    assert sw.clean_staging(sweep_dir) == []  # other hosts' folders: not judged without the record
    assert sw.clean_staging(sweep_dir, live_runs={"a"}) == [dead]
    assert live.exists() and not dead.exists()


# The Slurm path against a real cluster (squeue, sbatch, scancel): tests/sweep/test_slurm.py.
