"""Sweep runs: expand a spec into runs with stable ids, execute one run in a staging folder and
publish it whole, and the records a run leaves (params, status, machine)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import socket
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from ..lab.atomic import atomic_write_text
from ..lab.machine import describe_machine
from .spec import RESERVED, Run, STAGING, SweepSpec, _expected_type


# --------------------------------------------------------------------------- expansion


def run_id(notebook_rel: str, parameters: dict[str, Any]) -> str:
    """12 hex digits of SHA-256 over the notebook's path and its parameters (canonical JSON).

    ``output_dir`` is excluded (the sweep sets it). The notebook's content is deliberately not
    hashed, so editing a notebook does not orphan a sweep; its SHA-256 is kept in params.json."""
    payload = {"notebook": notebook_rel,
               "parameters": {k: v for k, v in parameters.items() if k not in RESERVED}}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _seed_value(spec: SweepSpec, seed: int) -> Any:
    info = spec.param_info.get(spec.seed_param or "", {})
    expected, _ = _expected_type(info) if info else (None, None)
    return [seed] if expected is list else seed  # a `seeds` list parameter gets a one-seed list


def expand(spec: SweepSpec, results_root: Path | None = None, threads: int | None = None) -> list[Run]:
    """The runs of a sweep, in a fixed order (grid, then zip rows, then seeds innermost)."""
    axes: list[list[dict]] = []
    for k, vals in spec.grid.items():
        axes.append([{k: v} for v in vals])
    for group in spec.zip:
        keys = list(group)
        axes.append([dict(zip(keys, row)) for row in zip(*(group[k] for k in keys))])
    if spec.seeds:
        axes.append([{spec.seed_param: _seed_value(spec, s)} for s in spec.seeds])
    out_dir = spec.results_dir(results_root)
    runs, ids = [], set()
    for combo in itertools.product(*axes):
        params = dict(spec.fixed)
        for part in combo:
            params.update(part)
        rid = run_id(spec.notebook, params)
        if rid in ids:
            continue
        ids.add(rid)
        runs.append(Run(run_id=rid, sweep=spec.name, notebook=spec.notebook_path.resolve(),
                        notebook_rel=spec.notebook, parameters=params, run_dir=out_dir / rid,
                        root=spec.root, execution_timeout=spec.execution_timeout, threads=threads))
    return runs


# --------------------------------------------------------------------------- run records


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def run_status(run_dir: Path) -> str | None:
    """'complete', 'failed', or None (never ran, or killed before it finished)."""
    st = read_json(Path(run_dir) / "status.json")
    return st.get("status") if st else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not running
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return "Z" not in line.split(":", 1)[1]
    except OSError:
        pass
    return True


def clean_staging(sweep_dir: Path, live_runs: set[str] | None = None) -> list[Path]:
    """Remove staging folders left by killed runs: this host's whose process is gone, and, when
    ``live_runs`` is given (the Slurm path, from the pending-jobs record), any host's whose run
    is not in a job that is still queued or running."""
    removed = []
    staging = Path(sweep_dir) / STAGING
    if not staging.is_dir():
        return removed
    host = socket.gethostname()
    for d in staging.iterdir():
        parts = d.name.split(".")
        try:
            pid = int(parts[-1])
        except ValueError:
            continue
        ours = ".".join(parts[1:-1]).removesuffix(".old") == host
        if ours and not _pid_alive(pid):
            stale = True
        else:  # another machine's run (e.g. a Slurm job): stale only if its job is gone
            stale = live_runs is not None and parts[0] not in live_runs and not (ours and _pid_alive(pid))
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _kernel_env(root: Path, threads: int | None) -> dict[str, str]:
    """Variables the run's kernel needs: this Python first on PATH (the ``python3`` kernelspec
    runs ``python``), the package on PYTHONPATH, the book root, and its thread count."""
    out: dict[str, str] = {}
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        out["PATH"] = bindir + os.pathsep + path
    pp = os.environ.get("PYTHONPATH", "")
    if str(root) not in pp.split(os.pathsep):
        out["PYTHONPATH"] = str(root) + (os.pathsep + pp if pp else "")
    if "APALU_BOOK_ROOT" not in os.environ:
        out["APALU_BOOK_ROOT"] = str(root)
    out["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    if threads:
        out["OMP_NUM_THREADS"] = out["MKL_NUM_THREADS"] = str(threads)
    return out


@contextlib.contextmanager
def _environ(changes: dict[str, str]):
    """Set environment variables for the duration (a kernel started inside inherits them)."""
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _publish(staging: Path, final: Path) -> bool:
    """Rename a finished staging folder to its final place. False if a complete one is there."""
    if final.exists():
        if run_status(final) == "complete":
            shutil.rmtree(staging, ignore_errors=True)
            return False
        old = final.parent / STAGING / f"{final.name}.{socket.gethostname()}.old.{os.getpid()}"
        os.rename(final, old)
        try:
            os.rename(staging, final)
        finally:
            shutil.rmtree(old, ignore_errors=True)
        return True
    try:
        os.rename(staging, final)
    except OSError:  # someone published meanwhile (rename onto a non-empty folder fails)
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def _staging_dir(run: Run) -> Path:
    return run.sweep_dir / STAGING / f"{run.run_id}.{socket.gethostname()}.{os.getpid()}"


#: Environment variables that change a run's floats (kernel path, vector width, threads): kept
#: in params.json, since a verdict reproduces only under the same ones.
NUMERICS_ENV = ("APALU_CPU_KERNEL", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")


def source_commit(root: Path) -> str | None:
    """The book's git commit (``+dirty`` when tracked files differ from it), or None without
    git: part of every run's provenance, and of the at-scale verdicts."""
    import subprocess

    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=30)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "apalu",
                                "notebooks"], capture_output=True, timeout=30).returncode
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def _params_record(run: Run) -> dict:
    try:
        digest = hashlib.sha256(run.notebook.read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {"run_id": run.run_id, "sweep": run.sweep, "notebook": run.notebook_rel,
            "notebook_sha256": digest, "commit": source_commit(run.root),
            "env": {k: os.environ[k] for k in NUMERICS_ENV if k in os.environ},
            "parameters": run.parameters}


def execute_run(run: Run, retry_failed: bool = False) -> dict:
    """Execute one run with papermill (unless already complete) and publish its folder.

    Never raises for a failing notebook: the failure is recorded in ``status.json``."""
    current = read_json(run.run_dir / "status.json")
    if current and (current.get("status") == "complete"
                    or (current.get("status") == "failed" and not retry_failed)):
        return {**current, "skipped": True}
    import papermill

    staging = _staging_dir(run)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = _now()
    _write_json(staging / "RUNNING.json", {"pid": os.getpid(), "host": socket.gethostname(),
                                           "started": started})
    _write_json(staging / "params.json", _params_record(run))
    nb_dir = run.notebook.parent
    try:
        out_param = os.path.relpath(staging, nb_dir)
    except ValueError:
        out_param = str(staging)
    status, error, tb = "complete", None, None
    t0 = time.perf_counter()
    try:
        with _environ(_kernel_env(run.root, run.threads)):
            papermill.execute_notebook(
                str(run.notebook), str(staging / "notebook.ipynb"),
                parameters={**run.parameters, "output_dir": out_param},
                kernel_name="python3", cwd=str(nb_dir), progress_bar=False, log_output=False,
                execution_timeout=run.execution_timeout,
            )
    except Exception as exc:  # a failing notebook is a result, not a crash
        status = "failed"
        ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
        error = f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc(limit=20)
    wall = time.perf_counter() - t0
    record = {"run_id": run.run_id, "status": status, "error": error, "wall_s": round(wall, 3),
              "started": started, "finished": _now(), "attempt": (current or {}).get("attempt", 0) + 1,
              "threads": run.threads}
    if tb:
        (staging / "error.txt").write_text(tb)
    _write_json(staging / "machine.json", describe_machine())
    _write_json(staging / "status.json", record)
    (staging / "RUNNING.json").unlink(missing_ok=True)
    published = _publish(staging, run.run_dir)
    return {**record, "skipped": False, "published": published}


def record_failure(run: Run, error: str) -> dict:
    """Record a run that died outside the notebook (worker lost, Slurm timeout), if no record."""
    if run_status(run.run_dir) is not None:
        return read_json(run.run_dir / "status.json") or {}
    staging = _staging_dir(run)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _write_json(staging / "params.json", _params_record(run))
    record = {"run_id": run.run_id, "status": "failed", "error": error, "wall_s": None,
              "started": None, "finished": _now(), "attempt": 1, "threads": run.threads}
    _write_json(staging / "status.json", record)
    _publish(staging, run.run_dir)
    return {**record, "skipped": False}


