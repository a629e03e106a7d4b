"""Sweep executors: run the pending runs of a sweep locally (a process pool) or on Slurm
(submitit), after the checks that must pass before anything is submitted."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
import yaml
from ..lab.atomic import atomic_write_text
from ..lab.machine import describe_machine, machine_summary
from .spec import RESOURCE_KEYS, Run, SweepSpec, _check_resources, _literal
from .runs import _environ, _kernel_env, _now, _pid_alive, _write_json, clean_staging, execute_run, expand, read_json, record_failure, run_status


# --------------------------------------------------------------------------- executors


def executor_parameters(spec: SweepSpec, overrides: dict | None = None) -> dict[str, Any]:
    """submitit AutoExecutor parameters from the spec's ``resources`` (and CLI overrides)."""
    res = {k: v for k, v in {**spec.resources, **(overrides or {})}.items() if v is not None}
    params: dict[str, Any] = {"name": f"apalu-{spec.name}"}
    for k, v in res.items():
        params[RESOURCE_KEYS[k][0]] = v
    params.setdefault("timeout_min", 60)
    params.setdefault("cpus_per_task", 1)
    if not params.get("gpus_per_node"):
        params.pop("gpus_per_node", None)  # ask for no GPU line at all rather than "=0"
    return params


def make_submitit_executor(spec: SweepSpec, folder: Path, cluster: str = "slurm",
                           overrides: dict | None = None):
    """An ``submitit.AutoExecutor`` for the sweep (cluster 'slurm', or 'local'/'debug' to test)."""
    import submitit

    ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = executor_parameters(spec, overrides)
    if cluster != "slurm":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    ex.update_parameters(**params)
    return ex


#: submitit's default for how many array tasks Slurm runs at once.
DEFAULT_ARRAY_PARALLELISM = 256


def sbatch_script(spec: SweepSpec, folder: Path | str = "data/results/.submitit",
                  overrides: dict | None = None, n_runs: int | None = None) -> str:
    """The sbatch script of this sweep's job array of ``n_runs`` runs (default: all), for
    ``--dry-run``: the directives submitit writes for the same parameters (one task per run,
    submitit's pre-timeout signal, logs under ``folder``) and the command its array tasks run.
    Written here from :func:`executor_parameters`, so it needs neither Slurm nor submitit's
    private script builder."""
    from .spec import SIGNAL_DELAY_S

    params = executor_parameters(spec, overrides)
    n = max(1, n_runs if n_runs is not None else len(expand(spec)))
    parallel = min(n, int(params.get("slurm_array_parallelism", DEFAULT_ARRAY_PARALLELISM)))
    folder = str(folder)
    directives: dict[str, Any] = {
        "array": f"0-{n - 1}%{parallel}", "cpus-per-task": params["cpus_per_task"],
        "error": f"{folder}/%A_%a_0_log.err", "job-name": params["name"], "nodes": 1,
        "ntasks-per-node": 1, "open-mode": "append", "output": f"{folder}/%A_%a_0_log.out",
        "signal": f"USR2@{SIGNAL_DELAY_S}", "time": params["timeout_min"], "wckey": "submitit"}
    if params.get("gpus_per_node"):
        directives["gpus-per-node"] = params["gpus_per_node"]
    if params.get("mem_gb"):
        directives["mem"] = f"{params['mem_gb']}GB"
    for key in ("partition", "account", "qos", "constraint"):
        if params.get(f"slurm_{key}"):
            directives[key] = params[f"slurm_{key}"]
    directives.update(params.get("slurm_additional_parameters") or {})
    lines = ["#!/bin/bash", "", "# Parameters"]
    lines += [f"#SBATCH --{k}={v}" for k, v in sorted(directives.items())]
    setup = list(params.get("slurm_setup") or [])
    if setup:
        lines += ["", "# setup", *setup]
    lines += ["", "# command", "export SUBMITIT_EXECUTOR=slurm",
              f"srun --unbuffered --output {folder}/%j_%t_log.out --error {folder}/%j_%t_log.err "
              f"{sys.executable} -u -m submitit.core._submit {folder}", ""]
    return "\n".join(lines)


def _pending(runs: list[Run], retry_failed: bool) -> tuple[list[Run], dict[str, int]]:
    todo, counts = [], {"complete": 0, "failed": 0, "pending": 0}
    for r in runs:
        st = run_status(r.run_dir)
        if st == "complete" or (st == "failed" and not retry_failed):
            counts[st] += 1
        else:
            todo.append(r)
            counts["pending"] += 1
    return todo, counts


class SweepRefused(ValueError):
    """The sweep was refused before anything was written or submitted; the message says why."""


#: Above either, a sweep needs explicit confirmation (``--yes``): about twice the largest
#: shipped spec (560 runs; 5,600 run-epochs in sweeps/exp_init_sensitivity_gpu.yaml).
MAX_RUNS = 1000
MAX_RUN_EPOCHS = 10_000


def run_epochs(spec: "SweepSpec", runs: list["Run"]) -> int:
    """Σ over runs of its epochs: the largest int parameter named ``*epochs`` a run sets, else
    the notebook's default for such a parameter, else 1 (a notebook without epochs)."""
    defaults = [d for k, info in spec.param_info.items() if k.endswith("epochs")
                for d in [_literal(info.get("default", ""))] if isinstance(d, int) and not isinstance(d, bool)]
    total = 0
    for r in runs:
        given = [v for k, v in r.parameters.items() if k.endswith("epochs")
                 and isinstance(v, int) and not isinstance(v, bool)]
        total += max(given or defaults or [1])
    return total


def size_problems(n_runs: int, epochs: int, confirmed: bool) -> list[str]:
    """A sweep far beyond the shipped ones (:data:`MAX_RUNS`, :data:`MAX_RUN_EPOCHS`) unless
    ``confirmed``."""
    if confirmed or (n_runs <= MAX_RUNS and epochs <= MAX_RUN_EPOCHS):
        return []
    return [f"{n_runs} runs, {epochs} run-epochs: beyond {MAX_RUNS} runs or {MAX_RUN_EPOCHS} run-epochs "
            f"(about twice the largest shipped spec); check the grid, then pass --yes to run it"]


def _cuda_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def device_problems(devices: set[str], executor: str, gpus_per_node: int | None) -> list[str]:
    """Devices the runs ask for that this executor can not give: for the local executor, what
    this machine has; on Slurm, what ``gpus_per_node`` requests."""
    problems = []
    for d in sorted(devices):
        if d in ("auto", "cpu"):
            continue
        if d == "cuda" or d.startswith("cuda:"):
            try:
                index = _cuda_index(d)
            except ValueError:
                problems.append(f"device {d!r}: expected auto, cpu, cuda, cuda:<n> or mps")
                continue
            if executor == "local":
                import torch

                have = torch.cuda.device_count() if torch.cuda.is_available() else 0
                where = "this machine"
            else:
                have, where = gpus_per_node or 0, "resources.gpus_per_node / --gpus"
            if index >= have:
                problems.append(f"device {d!r}: {where} gives {have} CUDA device(s); "
                                f"use device auto or cpu, or run where a GPU is")
        elif d == "mps":
            import torch

            if executor != "local" or not torch.backends.mps.is_available():
                problems.append("device 'mps': not available here")
        else:
            problems.append(f"device {d!r}: expected auto, cpu, cuda, cuda:<n> or mps")
    return problems


def preflight(spec: "SweepSpec", runs: list["Run"], executor: str, overrides: dict | None,
              confirmed: bool, log=print) -> None:
    """Everything checked once before a sweep writes or submits anything: the devices its runs
    ask for, the Slurm resources with their overrides, and its size (printed first).
    Raises :class:`SweepRefused` listing every problem."""
    epochs = run_epochs(spec, runs)
    log(f"sweep {spec.name}: {len(runs)} runs, about {epochs} run-epochs")
    resources = {**spec.resources, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    devices = {r.parameters["device"] for r in runs if isinstance(r.parameters.get("device"), str)}
    problems = device_problems(devices, executor, resources.get("gpus_per_node"))
    if executor == "slurm":
        problems += _check_resources(resources, "resources (with overrides)")
    problems += size_problems(len(runs), epochs, confirmed)
    if problems:
        raise SweepRefused(f"sweep {spec.name!r} refused, nothing run: " + "; ".join(problems))


# ---- the pending-jobs record: a Slurm sweep submitted with --no-wait is not submitted twice

PENDING = "pending.json"


def _pending_path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / ".submitit" / PENDING


def read_pending(sweep_dir: Path) -> list[dict]:
    """The recorded submissions: ``[{"job_id", "cluster", "run_ids", "submitted"}, ...]``."""
    data = read_json(_pending_path(sweep_dir))
    jobs = (data or {}).get("jobs", [])
    return [j for j in jobs if isinstance(j, dict) and "job_id" in j and "run_ids" in j]


def write_pending(sweep_dir: Path, jobs: list[dict]) -> None:
    _write_json(_pending_path(sweep_dir), {"jobs": jobs})


def _jobs_alive(jobs: list[dict]) -> set[str]:
    """The recorded job ids still queued or running (``squeue`` on Slurm; the process for
    submitit's local cluster). Where Slurm can not be asked, every Slurm job counts as alive:
    a duplicate submission costs more than waiting."""
    alive = set()
    for j in jobs:
        jid, cluster = str(j["job_id"]), j.get("cluster", "slurm")
        if cluster == "local":
            if jid.isdigit() and _pid_alive(int(jid)):
                alive.add(jid)
            continue
        if cluster != "slurm":
            continue
        try:
            out = subprocess.run(["squeue", "-h", "-o", "%F", "-j", jid], capture_output=True,
                                 text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            alive.add(jid)
            continue
        if out.returncode == 0 and out.stdout.strip():
            alive.add(jid)
    return alive


def submitted_runs(jobs: list[dict], alive: set[str], finished: set[str]) -> set[str]:
    """Run ids that a live job will still execute (submitted, not yet finished)."""
    return {rid for j in jobs if str(j["job_id"]) in alive for rid in j["run_ids"]} - finished


# ---- the local process pool: its workers die with the sweep


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: Linux sends this worker SIGKILL when its parent dies (even by
    SIGKILL), so no orphan keeps executing a run; its kernel follows (ipykernel polls its
    parent). Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def local_pool(jobs: int):
    """A spawn-context process pool of ``jobs`` workers that die with this process."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))


class CommittedResultsError(SweepRefused):
    """The sweep's folder holds results committed to git; only ``record=True`` writes there."""


def tracked_files(folder: Path) -> list[str]:
    """The files under ``folder`` that git tracks (none when git, or a repository around the
    folder, is missing): a committed sweep folder is one with tracked files."""
    folder = Path(folder).resolve()
    probe = folder
    while not probe.is_dir():
        probe = probe.parent
    try:
        out = subprocess.run(["git", "-C", str(probe), "ls-files", "-z", "--full-name", "--", str(folder)],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [p for p in out.stdout.split("\0") if p] if out.returncode == 0 else []


def guard_committed(sweep_dir: Path, name: str, record: bool = False) -> None:
    """Refuse (:class:`CommittedResultsError`, naming the folder) to write into a sweep folder
    whose files git tracks, unless ``record``: the book's committed results change only on
    purpose (``apalu sweep SPEC --record``), never because a new spec reused a name."""
    if record:
        return
    tracked = tracked_files(sweep_dir)
    if tracked:
        raise CommittedResultsError(
            f"sweep {name!r}: {sweep_dir} holds committed results ({len(tracked)} files tracked by "
            f"git, e.g. {tracked[0]}); refusing to write into it. Give the spec another name "
            f"(name: ...) or --results-root elsewhere, or pass --record to add to the committed "
            f"sweep on purpose (then commit it)")


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _write_sweep_files(spec: SweepSpec, sweep_dir: Path) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"name": spec.name, "notebook": spec.notebook, "source": _relative(spec.source, spec.root)}
    if spec.seeds:
        resolved["seed_param"] = spec.seed_param
    text = yaml.safe_dump({**spec.raw, **resolved},
                          sort_keys=False, allow_unicode=True)
    target = sweep_dir / "sweep.yaml"
    if not target.exists() or target.read_text() != text:
        atomic_write_text(target, text)


def _threads(spec: SweepSpec, executor: str, jobs: int, overrides: dict | None) -> int | None:
    if executor == "local":
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, cpus // max(1, jobs))
    return (overrides or {}).get("cpus_per_task") or spec.resources.get("cpus_per_task") or None


def _run_local(todo: list[Run], jobs: int, retry_failed: bool, account, log) -> None:
    if jobs <= 1:
        for r in todo:
            account(execute_run(r, retry_failed))
        return
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    with local_pool(jobs) as pool:
        futs = {pool.submit(execute_run, r, retry_failed): r for r in todo}
        lost = 0
        for fut in as_completed(futs):
            try:
                account(fut.result())
            except BrokenProcessPool:  # a worker died: which run killed it is unknown,
                lost += 1  # so record nothing; these runs stay pending for the next call
                account(None)
        if lost:
            log(f"{lost} runs lost with a dead worker process (killed? out of memory?): "
                "they stay pending; run the same command again")


def _slurm_todo(sweep_dir: Path, runs: list[Run], todo: list[Run], log) -> tuple[list[Run], list[dict]]:
    """(runs to submit, live job records): runs a live job of an earlier call (``--no-wait``)
    will still execute are not submitted again; staging left by dead jobs is removed."""
    records = read_pending(sweep_dir)
    alive = _jobs_alive(records)
    finished = {r.run_id for r in runs if run_status(r.run_dir) is not None}
    busy = submitted_runs(records, alive, finished)
    clean_staging(sweep_dir, live_runs=busy)
    live = [j for j in records if str(j["job_id"]) in alive]
    if busy:
        log(f"{len(busy)} runs already submitted (job {', '.join(str(j['job_id']) for j in live)}, "
            f"still queued or running): not submitted again")
    return [r for r in todo if r.run_id not in busy], live


def _run_slurm(spec: SweepSpec, sweep_dir: Path, runs: list[Run], todo: list[Run], cluster: str,
               overrides: dict | None, wait: bool, retry_failed: bool, account, log) -> None:
    todo, live = _slurm_todo(sweep_dir, runs, todo, log)
    if not todo:
        return
    logs = sweep_dir / ".submitit" / ("%j" if cluster == "slurm" else cluster)
    ex = make_submitit_executor(spec, logs, cluster, overrides)
    with _environ(_kernel_env(spec.root, None)):  # jobs inherit it: find apalu, python
        sub = ex.map_array(execute_run, todo, [retry_failed] * len(todo))
    job_id = str(sub[0].job_id).split("_")[0]
    write_pending(sweep_dir, live + [{"job_id": job_id, "cluster": cluster, "submitted": _now(),
                                      "run_ids": [r.run_id for r in todo]}])
    log(f"submitted {len(sub)} jobs ({cluster}): {job_id}")
    if not wait:
        return
    import submitit

    by_id = {j.job_id: r for j, r in zip(sub, todo)}
    for job in submitit.helpers.as_completed(sub, poll_frequency=1):
        try:
            rec = job.result()
        except Exception as exc:  # job killed (timeout, memory): record it
            rec = record_failure(by_id[job.job_id], f"{type(exc).__name__}: {exc}"[:2000])
        account(rec)


def run_sweep(spec: SweepSpec, executor: str = "local", jobs: int = 1, retry_failed: bool = False,
              results_root: Path | None = None, slurm_cluster: str = "slurm",
              overrides: dict | None = None, wait: bool = True, progress: bool = True,
              log=print, record: bool = False, confirmed: bool = False) -> dict[str, Any]:
    """Run every run of the sweep that has no result yet; returns counts and wall time.

    Before anything is written or submitted: a sweep folder with committed (git-tracked)
    results is refused unless ``record`` (:func:`guard_committed`), and devices, Slurm
    resources and size are checked (:func:`preflight`; a large sweep needs ``confirmed``).
    Both raise :class:`SweepRefused`."""
    from tqdm.auto import tqdm

    if executor not in ("local", "slurm"):
        raise ValueError(f"unknown executor {executor!r} (local or slurm)")
    t0 = time.perf_counter()
    sweep_dir = spec.results_dir(results_root)
    guard_committed(sweep_dir, spec.name, record)
    runs = expand(spec, results_root, threads=_threads(spec, executor, jobs, overrides))
    preflight(spec, runs, executor, overrides, confirmed, log)
    _write_sweep_files(spec, sweep_dir)
    clean_staging(sweep_dir)
    todo, counts = _pending(runs, retry_failed)
    log(f"sweep {spec.name}: {len(runs)} runs, {counts['complete']} complete, "
        f"{counts['failed']} failed{' (retrying)' if retry_failed else ''}, "
        f"{len(todo)} to run ({executor}{f', {jobs} jobs' if executor == 'local' else ''})")
    done = {"complete": 0, "failed": 0}
    bar = tqdm(total=len(todo), desc=spec.name, unit="run", disable=not progress or not todo,
               file=sys.stderr)

    def account(rec: dict | None) -> None:
        bar.update(1)
        if rec is not None:
            done[rec.get("status", "failed")] = done.get(rec.get("status", "failed"), 0) + 1
            bar.set_postfix(failed=done["failed"], refresh=False)

    if executor == "local":
        _run_local(todo, jobs, retry_failed, account, log)
    else:
        _run_slurm(spec, sweep_dir, runs, todo, slurm_cluster, overrides, wait, retry_failed, account, log)
    bar.close()
    wall = time.perf_counter() - t0
    _, final = _pending(runs, False)
    summary = {"sweep": spec.name, "runs": len(runs), "executed": len(todo) if wait else 0,
               "complete": final["complete"], "failed": final["failed"], "pending": final["pending"],
               "wall_s": round(wall, 2), "executor": executor, "jobs": jobs}
    if todo and wait:
        with open(sweep_dir / "invocations.jsonl", "a") as fh:
            fh.write(json.dumps({**summary, "finished": _now(),
                                 "machine": machine_summary(describe_machine())}) + "\n")
    log(f"sweep {spec.name}: {summary['complete']}/{len(runs)} complete, {summary['failed']} failed, "
        f"{summary['pending']} pending; {wall:.1f} s")
    return summary
