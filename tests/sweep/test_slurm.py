"""The Slurm path of `apalu sweep` against a real Slurm cluster: a waiting sweep end to end and
its collection, `--no-wait` twice submitting once, a too-short time limit refused before
anything is submitted, and staging left by a job killed with `scancel` cleaned on the next call.

They run where a cluster answers (`sinfo` lists an idle node); CI starts a single-node one with
scripts/start_slurm.sh where it can install Slurm (.ci/run). Elsewhere they skip, saying why.
The jobs run `sys.executable` on the node and write under the test's book folder, so the node
must see both: true on a single-node cluster; on a real cluster set APALU_SLURM_TEST_DIR to a
shared folder. Every run executes tests/fixtures/tiny.ipynb (a few seconds a run).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from apalu import sweep as sw

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "tiny.ipynb"
TIMEOUT_S = 120  # any one command; each test takes well under a minute on an idle node


@functools.lru_cache(maxsize=1)
def _no_cluster() -> str | None:
    """Why the tests can not run here (None: a cluster answers with an idle node)."""
    missing = [c for c in ("sinfo", "squeue", "sbatch", "scancel") if shutil.which(c) is None]
    if missing:
        return f"needs a Slurm cluster: {', '.join(missing)} not found (scripts/start_slurm.sh starts one)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "needs a Slurm cluster: sinfo did not answer within 15 s"
    if out.returncode != 0:
        return f"needs a Slurm cluster: sinfo failed ({(out.stderr.strip().splitlines() or ['?'])[-1]})"
    states = set(out.stdout.split())
    if not states & {"idle", "mix"}:
        return f"needs a Slurm cluster with an idle node: sinfo says {sorted(states) or 'no nodes'}"
    return None


@pytest.fixture()
def slurm():
    reason = _no_cluster()
    if reason:
        pytest.skip(reason)


def apalu(book: Path, *args: str, timeout: int = TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "apalu", *args], cwd=book, env=book.env(),
                          capture_output=True, text=True, timeout=timeout)


def queued(job_name: str) -> list[str]:
    """``<array job id> <task id>`` of each queued or running task of the jobs named so."""
    out = subprocess.run(["squeue", "-h", "-r", "-n", job_name, "-o", "%F %K"], capture_output=True,
                         text=True, timeout=30, check=True)
    return out.stdout.split("\n")[:-1] if out.stdout else []


def wait_until(cond, timeout: float, what: str, step: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_squeue_says_an_unknown_job_is_not_alive(slurm):
    from apalu.sweep import executors

    assert executors._jobs_alive([{"job_id": "0", "cluster": "slurm", "run_ids": []}]) == set()


# --------------------------------------------------------------------------- (a) end to end


def test_waiting_sweep_end_to_end_and_collect(slurm, book):
    path = book.write_spec({"notebook": "nb/tiny.ipynb", "fixed": {"name": "sl"},
                             "grid": {"x": [1, 2]}, "resources": {"timeout_min": 5}}, unique=True)
    r = apalu(book, "sweep", str(path), "--executor", "slurm", "--partition", "debug", "-q")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "submitted 2 jobs (slurm)" in r.stdout
    spec = sw.load_spec(path)
    for run in sw.expand(spec):
        assert sw.run_status(run.run_dir) == "complete"
        status = json.loads((run.run_dir / "status.json").read_text())
        assert status["status"] == "complete" and status["error"] is None
        assert (run.run_dir / "metrics.csv").read_text().splitlines()[1] == f"sl,score,{run.parameters['x'] * 0.1}"
    sweep_dir = spec.results_dir()
    (record,) = sw.read_pending(sweep_dir)  # the submission was recorded, with its Slurm job id
    assert record["cluster"] == "slurm" and record["job_id"].isdigit()
    assert any((sweep_dir / ".submitit").rglob("*_result.pkl"))  # really went through submitit on Slurm
    assert not any((sweep_dir / ".staging").iterdir())

    c = apalu(book, "collect", str(sweep_dir))
    assert c.returncode == 0, c.stderr
    assert "2 runs (2 complete)" in c.stdout
    results = (sweep_dir / "results.csv").read_text()
    assert "score" in results and (sweep_dir / "summary.csv").exists()

    again = apalu(book, "sweep", str(path), "--executor", "slurm", "-q")  # nothing left to submit
    assert again.returncode == 0 and "submitted" not in again.stdout, again.stdout


# --------------------------------------------------------------------------- (b) --no-wait twice


def test_no_wait_twice_submits_once(slurm, book):
    path = book.write_spec({"notebook": "nb/tiny.ipynb", "fixed": {"name": "nw", "sleep": 4.0},
                             "grid": {"x": [1, 2]}, "resources": {"timeout_min": 5}}, unique=True)
    job_name = f"apalu-{path.stem}"
    first = apalu(book, "sweep", str(path), "--executor", "slurm", "--no-wait", "-q")
    assert first.returncode == 1 and "submitted 2 jobs (slurm)" in first.stdout, first.stdout + first.stderr
    second = apalu(book, "sweep", str(path), "--executor", "slurm", "--no-wait", "-q")
    assert "jobs (slurm)" not in second.stdout, second.stdout
    assert "2 runs already submitted" in second.stdout, second.stdout

    spec = sw.load_spec(path)
    (record,) = sw.read_pending(spec.results_dir())
    tasks = queued(job_name)  # tasks finish fast; what is still queued belongs to one array job
    assert {t.split()[0] for t in tasks} <= {record["job_id"]}, tasks
    assert len(tasks) <= 2
    wait_until(lambda: not queued(job_name), 90, f"job {record['job_id']} to leave the queue")
    for run in sw.expand(spec):
        assert sw.run_status(run.run_dir) == "complete"
    # one submission in all: one log folder per array task of one job
    logs = sorted(p.name for p in (spec.results_dir() / ".submitit").iterdir() if p.is_dir())
    assert {name.split("_")[0] for name in logs} == {record["job_id"]}, logs
    assert {f"{record['job_id']}_0", f"{record['job_id']}_1"} <= set(logs), logs

    third = apalu(book, "sweep", str(path), "--executor", "slurm", "--no-wait", "-q")
    assert third.returncode == 0 and "submitted" not in third.stdout, third.stdout
    assert not queued(job_name)


# --------------------------------------------------------------------------- (c) too short a limit


def test_too_short_time_limit_is_refused_before_submitting(book):
    """Needs no cluster: refused before submitit is called. Where one answers, squeue agrees."""
    path = book.write_spec({"notebook": "nb/tiny.ipynb", "grid": {"x": [1]}, "resources": {"timeout_min": 30}}, unique=True)
    r = apalu(book, "sweep", str(path), "--executor", "slurm", "--time", "2", "-q", timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "timeout_min: 2 minutes is too short" in r.stderr and "nothing run" in r.stderr
    sweep_dir = sw.load_spec(path).results_dir()
    assert not (sweep_dir / ".submitit").exists()
    if _no_cluster() is None:
        assert not queued(f"apalu-{path.stem}")


# --------------------------------------------------------------------------- (d) scancel


def test_staging_of_a_cancelled_job_is_cleaned_on_the_next_call(slurm, book):
    """A job killed midway (its run's process SIGKILLed, as the OOM killer or a lost node would,
    then the job scancelled) leaves its staging folder; the next call removes it and runs again.
    (``scancel`` alone, even ``-s KILL``, sends SIGTERM first: submitit ignores it, the notebook's
    kernel dies of it, and the run is published as failed, "Kernel died ...", before SIGKILL.)"""
    path = book.write_spec({"notebook": "nb/tiny.ipynb", "fixed": {"name": "k", "sleep": 6.0},
                             "grid": {"x": [1]}, "resources": {"timeout_min": 5}}, unique=True)
    job_name = f"apalu-{path.stem}"
    spec = sw.load_spec(path)
    (run,) = sw.expand(spec)
    staging = spec.results_dir() / ".staging"

    r = apalu(book, "sweep", str(path), "--executor", "slurm", "--no-wait", "-q")
    assert "submitted 1 jobs (slurm)" in r.stdout, r.stdout + r.stderr
    (record,) = sw.read_pending(spec.results_dir())
    stale = wait_until(lambda: [d for d in staging.glob(f"{run.run_id}.*") if (d / "RUNNING.json").exists()]
                       if staging.is_dir() else [], 60, "the job to start its run", step=0.2)
    running = json.loads((stale[0] / "RUNNING.json").read_text())
    pid = running["pid"]
    if running["host"] != socket.gethostname():
        subprocess.run(["scancel", record["job_id"]], capture_output=True, timeout=30)
        pytest.skip(f"the job ran on {running['host']}: its process can not be killed from here")
    os.kill(pid, signal.SIGKILL)  # the node is this machine
    subprocess.run(["scancel", record["job_id"]], check=True, capture_output=True, timeout=30)
    wait_until(lambda: not queued(job_name), 60, f"job {record['job_id']} to end after scancel")
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") if os.path.isdir("/proc") else True, 30,
               f"the job's process {pid} to end")
    assert stale[0].exists(), "scancel left no staging folder: nothing to test"
    assert sw.run_status(run.run_dir) is None  # a killed run is no result

    again = apalu(book, "sweep", str(path), "--executor", "slurm", "-q")  # waits this time
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "submitted 1 jobs (slurm)" in again.stdout, again.stdout  # the dead job's run again
    assert not stale[0].exists()
    assert sw.run_status(run.run_dir) == "complete"
    assert not list(staging.iterdir())
