"""The ``apalu`` command line: ``apalu sweep SPEC.yaml`` and ``apalu collect DIR``.

Exit status: 0 when every run is complete, 1 when some failed or are still pending,
2 for a spec that does not validate (the message names each offending key), a sweep folder
with committed results (without ``--record``), or ``collect`` arguments it refuses (nothing
is written then).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="apalu", description="APALU book tools: parameter sweeps "
                                "over the book's notebooks, and their collection.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sweep", help="run a notebook over a parameter grid (resumable)",
                       description="Expand SPEC's grid into runs and execute each with papermill "
                       "into data/results/<sweep>/<run-id>/. Complete runs are skipped; re-run "
                       "the same command after a crash to finish the sweep.")
    s.add_argument("spec", type=Path, help="sweep spec (YAML), e.g. sweeps/mnist_quickstart_cpu.yaml")
    s.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: a process pool on this machine (default); slurm: a submitit job array")
    s.add_argument("--jobs", "-j", type=int, default=1, help="local executor: runs at a time (default 1)")
    s.add_argument("--dry-run", action="store_true", help="validate, print the runs (and, with "
                   "--executor slurm, the sbatch script); run nothing")
    s.add_argument("--estimate", action="store_true", help="measure each training step of the "
                   "spec on this CPU (time, operators, FLOPs) and print its GPU-minutes under the "
                   "stated assumption (apalu.sweep.estimate); run nothing")
    s.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    s.add_argument("--yes", action="store_true", help="run a sweep beyond 1000 runs or 10000 "
                   "run-epochs (about twice the largest shipped spec; refused without it)")
    s.add_argument("--record", action="store_true", help="write into a sweep folder whose results "
                   "are committed to git (refused without it); for extending the book's "
                   "committed results on purpose, then committing them")
    s.add_argument("--results-root", "--out", type=Path, default=None, dest="results_root",
                   help="where sweep folders go (default: <book root>/data/results; with "
                   "--smoke: <book root>/_build/smoke)")
    s.add_argument("--smoke", action="store_true", help="run the spec's 'smoke' overrides "
                   "instead: the same spec and arms at tiny sizes on the CPU, into "
                   "<out>/<name>-smoke (never data/results); then `apalu collect` that folder")
    s.add_argument("--root", type=Path, default=None,
                   help="book root that notebook paths are relative to (default: the folder "
                   "above SPEC holding _toc.yml)")
    g = s.add_argument_group("slurm (override the spec's resources)")
    g.add_argument("--partition", default=None)
    g.add_argument("--gpus", type=int, default=None, help="GPUs per run")
    g.add_argument("--cpus", type=int, default=None, help="CPUs per run")
    g.add_argument("--time", type=int, default=None, help="time limit per run, minutes")
    g.add_argument("--mem-gb", type=float, default=None)
    g.add_argument("--array-parallelism", type=int, default=None, help="runs at a time on the cluster")
    g.add_argument("--no-wait", action="store_true", help="submit and return; run the same "
                   "command later to see (and complete) the sweep")
    g.add_argument("--submitit-cluster", choices=("slurm", "local", "debug"), default="slurm",
                   help=argparse.SUPPRESS)  # 'local' runs the slurm path without a cluster (tests)
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    c = sub.add_parser("collect", help="tabulate a sweep: runs.csv, results.csv, summary.csv",
                       description="Read every run of a sweep folder and write a tidy table of "
                       "all results and a summary (mean, std, 95%% CI per setting).")
    c.add_argument("sweep_dir", type=Path, nargs="+", help="data/results/<sweep> (one or more)")
    c.add_argument("--out", type=Path, default=None, help="write here instead of the sweep folder")
    c.add_argument("--value", default=None, help="the numeric column to summarise (default: the "
                   "spec's 'value', else 'value')")
    c.add_argument("--exclude", action="append", default=[],
                   help="a column that does not identify a setting (repeatable)")
    c.add_argument("--print", dest="show", action="store_true", help="print the summary")
    return p


def _sweep(args) -> int:
    from .. import sweep as sw

    try:
        spec = sw.load_spec(args.spec, root=args.root)
    except sw.SpecError as exc:
        print(f"apalu sweep: invalid spec: {exc}", file=sys.stderr)
        return 2
    if args.smoke:
        from .smoke import default_smoke_root, smoke_spec

        committed = (spec.root / "data" / "results").resolve()
        args.results_root = (args.results_root or default_smoke_root(spec.root)).resolve()
        if args.record or committed in [args.results_root, *args.results_root.parents]:
            print("apalu sweep: --smoke writes scratch results: not with --record, and not "
                  f"under {committed}; give --out another folder", file=sys.stderr)
            return 2
        try:
            spec = smoke_spec(spec, args.results_root / f"{spec.name}-smoke.data")
        except (ValueError, sw.SpecError) as exc:
            print(f"apalu sweep: {exc}", file=sys.stderr)
            return 2
    overrides = {k: v for k, v in {"partition": args.partition, "gpus_per_node": args.gpus,
                                   "cpus_per_task": args.cpus, "timeout_min": args.time,
                                   "mem_gb": args.mem_gb,
                                   "array_parallelism": args.array_parallelism}.items()
                 if v is not None}
    if args.estimate:
        from .estimate import estimate_spec

        est = estimate_spec(spec, measure_batch=4 if "cifar_models" in spec.param_info else None)
        import pandas as pd

        print(pd.DataFrame(est["rows"]).round(3).to_string(index=False))
        print(f"sweep {spec.name}: {est['steps']:,} training steps; this CPU: "
              f"{est['cpu_hours']:.1f} h; GPU: {est['gpu_minutes']:.1f} min ({est['assumption']})")
        return 0
    if args.dry_run:
        runs = sw.expand(spec, args.results_root)
        varying = [k for k in (runs[0].parameters if runs else {})
                   if len({json.dumps(r.parameters.get(k), sort_keys=True) for r in runs}) > 1]
        print(f"sweep {spec.name}: {len(runs)} runs of {spec.notebook} -> "
              f"{spec.results_dir(args.results_root)}; about {sw.run_epochs(spec, runs)} run-epochs")
        fixed = {k: v for k, v in (runs[0].parameters if runs else {}).items() if k not in varying}
        print(f"fixed: {json.dumps(fixed)}")
        for r in runs:
            st = sw.run_status(r.run_dir) or "pending"
            print(f"  {r.run_id}  {st:8s}  " + "  ".join(
                f"{k}={json.dumps(r.parameters[k])}" for k in varying))
        if args.executor == "slurm":
            print("\n# sbatch script (one array task per pending run):")
            pending = sum(1 for r in runs if sw.run_status(r.run_dir) != "complete")
            print(sw.sbatch_script(spec, spec.results_dir(args.results_root) / ".submitit" / "%j",
                                   overrides, n_runs=pending))
        return 0
    if args.jobs < 1:
        print("apalu sweep: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        summary = sw.run_sweep(spec, executor=args.executor, jobs=args.jobs,
                               retry_failed=args.retry_failed, results_root=args.results_root,
                               slurm_cluster=args.submitit_cluster, overrides=overrides,
                               wait=not args.no_wait, progress=not args.quiet, record=args.record,
                               confirmed=args.yes)
    except sw.SweepRefused as exc:
        print(f"apalu sweep: {exc}", file=sys.stderr)
        return 2
    if args.smoke:
        print(f"smoke results: apalu collect {spec.results_dir(args.results_root)}")
    return 0 if summary["failed"] == 0 and summary["pending"] == 0 else 1


def _collect(args) -> int:
    from .collect import CollectError, collect

    status = 0
    for d in args.sweep_dir:
        if not d.is_dir():
            print(f"apalu collect: no sweep folder {d}", file=sys.stderr)
            status = 2
            continue
        out = args.out / d.name if args.out and len(args.sweep_dir) > 1 else args.out
        try:
            res = collect(d, out=out, value=args.value, exclude=args.exclude)
        except CollectError as exc:
            print(f"apalu collect: {exc}", file=sys.stderr)
            status = 2
            continue
        runs = res["runs"]
        n_ok = int((runs["status"] == "complete").sum()) if len(runs) else 0
        print(f"{d}: {len(runs)} runs ({n_ok} complete), {len(res['results'])} result rows, "
              f"{len(res['summary'])} settings -> {out or d}/{{runs,results,summary}}.csv")
        for claim, rec in res.get("verdicts", {}).items():
            print(f"  at-scale verdict {claim}: {rec['verdict']}")
        if args.show and len(res["summary"]):
            print(res["summary"].to_string(index=False))
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sweep":
        return _sweep(args)
    return _collect(args)


if __name__ == "__main__":
    sys.exit(main())
