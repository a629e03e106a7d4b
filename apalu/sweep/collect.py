"""Collect a sweep: one tidy table of every run's results, and means with 95% CIs per setting.

``collect(sweep_dir)`` reads every published run folder of ``data/results/<sweep>/`` (see
:mod:`apalu.sweep`) and returns (and by default writes next to the runs):

- ``runs.csv``: one row per run: id, status, error, wall time, attempt, the run's parameters
  (``p.<name>`` columns) and the machine it ran on;
- ``results.csv``: every row of every CSV the complete runs wrote (the notebooks' tidy
  tables: one row per run and metric, with a numeric ``value`` column), plus ``run_id``, the
  source ``file`` and the run's parameters (a parameter becomes a column unless the CSV has a
  column of that name already);
- ``summary.csv``: per setting (every identifying column that varies across the sweep, the seed
  excluded) the number of runs ``n``, ``mean``, ``std`` and the 95% confidence interval of
  the mean, ``mean ± t(0.975, n-1)·std/√n`` (Student's t; NaN for n = 1).

The interval comes from :func:`apalu.stats.mean_ci` (Student's t), shared with the empirical
chapters, so a number in this chapter and the same number in a chapter agree.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .spec import STAGING
from ..lab.atomic import atomic_write_text
from ..lab.machine import machine_summary
from .runs import read_json

__all__ = ["CollectError", "check_columns", "read_sweep_spec", "mean_ci", "load_runs", "load_results", "summarize", "collect", "list_sweeps",
           "OUTPUT_FILES", "expected_runs", "markdown_table", "summary_wide", "sweep_overview"]

#: Files ``collect`` writes into the sweep folder (never read back as run results).
OUTPUT_FILES = ("runs.csv", "results.csv", "summary.csv")
_SEED_NAMES = ("seed", "seeds")
# Per-run labels, never part of a setting: our run id, the experiments' own run key ("run").
_RUN_COLUMNS = ("run_id", "run", "status", "wall_s", "attempt")


def mean_ci(values: Iterable[float]) -> dict[str, float]:
    """n, mean, std (ddof=1) and the 95% Student-t interval of the mean of the finite ``values``
    (the interval from :func:`apalu.stats.mean_ci`; NaN bounds for fewer than two values)."""
    from ..lab.stats import mean_ci as _t_ci

    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    r = _t_ci(xs, level=0.95, method="t") if xs else {"mean": math.nan, "low": math.nan,
                                                       "high": math.nan}
    n = len(xs)
    mean = sum(xs) / n if n else math.nan
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else math.nan
    return {"n": n, "mean": r["mean"], "std": std, "ci95": (r["high"] - r["low"]) / 2,
            "ci95_low": r["low"], "ci95_high": r["high"]}


def _cell(v: Any) -> Any:
    """A parameter value as a table cell (lists and mappings as compact JSON)."""
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    return v


def _run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(d for d in Path(sweep_dir).iterdir()
                  if d.is_dir() and not d.name.startswith(".") and (d / "status.json").is_file())


def load_runs(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per published run (running or killed runs have no folder yet, so none here)."""
    rows = []
    for d in _run_dirs(Path(sweep_dir)):
        st = read_json(d / "status.json") or {}
        pr = read_json(d / "params.json") or {}
        mach = read_json(d / "machine.json") or {}
        row = {"run_id": d.name, "status": st.get("status"), "error": st.get("error"),
               "wall_s": st.get("wall_s"), "attempt": st.get("attempt"),
               "finished": st.get("finished"), "notebook": pr.get("notebook")}
        for k, v in (pr.get("parameters") or {}).items():
            row[f"p.{k}"] = _cell(v)
        row["host"] = mach.get("host")
        row["machine"] = machine_summary(mach) if mach else None
        row["gpus"] = ", ".join(mach.get("gpus") or []) if mach else None
        rows.append(row)
    cols = ["run_id", "status", "error", "wall_s", "attempt", "finished", "notebook"]
    return pd.DataFrame(rows, columns=None if rows else cols)


def load_results(sweep_dir: str | Path) -> pd.DataFrame:
    """Every CSV row of every complete run, with ``run_id``, ``file`` and the run's parameters."""
    frames = []
    for d in _run_dirs(Path(sweep_dir)):
        if (read_json(d / "status.json") or {}).get("status") != "complete":
            continue
        params = (read_json(d / "params.json") or {}).get("parameters") or {}
        for csv in sorted(d.rglob("*.csv")):
            if STAGING in csv.parts:
                continue
            df = pd.read_csv(csv)
            df.insert(0, "file", csv.relative_to(d).as_posix())
            df.insert(0, "run_id", d.name)
            for k, v in params.items():
                if k in df.columns:
                    continue
                if isinstance(v, list) and len(v) == 1 and k.endswith("s") and k[:-1] in df.columns:
                    continue  # `activations: [relu]` is already the CSV's `activation` column
                df[k] = _cell(v)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run_id", "file"])
    return pd.concat(frames, ignore_index=True, sort=False)


def summarize(results: pd.DataFrame, value: str = "value", seed_params: Iterable[str] = _SEED_NAMES,
              exclude: Iterable[str] = ()) -> pd.DataFrame:
    """Mean, std and 95% CI of ``value`` per setting.

    A setting is a combination of the identifying columns (all but ``value``, the run id, the
    seed and ``exclude``) that vary across the table; constant columns are dropped, ``metric``
    (when present) is always kept."""
    if results.empty or value not in results.columns:
        return pd.DataFrame(columns=["n", "mean", "std", "ci95", "ci95_low", "ci95_high"])
    drop = {value, *_RUN_COLUMNS, *seed_params, *exclude}
    data = results.copy()
    data[value] = pd.to_numeric(data[value], errors="coerce")
    data = data[data[value].notna()]  # rows without a value (other tables, diverged runs)
    keys = [c for c in data.columns if c not in drop
            and (c == "metric" or data[c].nunique(dropna=False) > 1)]
    for k in keys:  # NaN would vanish from a groupby; lists are already JSON strings
        data[k] = data[k].astype(object).where(data[k].notna(), "")
    rows = []
    groups = data.groupby(keys, sort=False, dropna=False) if keys else [((), data)]
    for key, grp in groups:
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key)), **mean_ci(grp[value].tolist())})
    out = pd.DataFrame(rows)
    if keys:
        try:
            out = out.sort_values(keys, kind="stable")
        except TypeError:  # a column mixing numbers and text: sort it as text
            out = out.sort_values(keys, kind="stable", key=lambda col: col.astype(str))
    return out.reset_index(drop=True)


class CollectError(ValueError):
    """``collect`` refused its arguments or folder; nothing was written."""


def read_sweep_spec(sweep_dir: Path) -> dict:
    """The ``sweep.yaml`` of a sweep folder; CollectError when there is none (not a sweep
    folder) or it is not a YAML mapping."""
    import yaml

    f = Path(sweep_dir) / "sweep.yaml"
    if not f.is_file():
        raise CollectError(f"{sweep_dir} is not a sweep folder (no sweep.yaml); expected a folder "
                           f"data/results/<sweep>/ written by `apalu sweep`")
    try:
        spec = yaml.safe_load(f.read_text())
    except yaml.YAMLError as exc:
        raise CollectError(f"{f}: not valid YAML ({exc})") from None
    if not isinstance(spec, dict):
        raise CollectError(f"{f}: expected a mapping (the sweep spec), got {type(spec).__name__}")
    return spec


def check_columns(results: pd.DataFrame, value: str, exclude: Iterable[str], source: Path) -> None:
    """CollectError unless ``value`` and every ``exclude`` are columns of ``results`` (a typo
    would otherwise give an empty or wrong summary). Nothing to check in an empty table."""
    if results.empty:
        return
    cols = [str(c) for c in results.columns]
    if value not in cols:
        numeric = [c for c in cols if pd.api.types.is_numeric_dtype(results[c])]
        raise CollectError(f"{source}: --value {value!r} is not a column of the results; numeric "
                           f"columns: {', '.join(numeric) or '(none)'}")
    unknown = [c for c in exclude if c not in cols]
    if unknown:
        raise CollectError(f"{source}: --exclude {', '.join(map(repr, unknown))}: not a column of the "
                           f"results; columns: {', '.join(cols)}")


def collect(sweep_dir: str | Path, out: str | Path | None = None, write: bool = True,
            value: str | None = None, exclude: Iterable[str] = ()) -> dict[str, pd.DataFrame]:
    """Runs, tidy results and summary of one sweep; written as CSV to ``out`` (default: the
    sweep folder) unless ``write`` is false. ``value``: the column to summarise (default: the
    spec's ``value``, else ``value``).

    Raises :class:`CollectError` before writing anything when ``sweep_dir`` has no
    ``sweep.yaml``, ``value`` or an ``exclude`` is not a column of the results, or (when
    writing) no complete run has results. Each file is replaced atomically."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep folder {sweep_dir}")
    spec = read_sweep_spec(sweep_dir)
    value = value or spec.get("value") or "value"
    exclude = list(exclude)
    seed_param = spec.get("seed_param")
    seeds = tuple({*(_SEED_NAMES), *([seed_param] if seed_param else [])})
    runs = load_runs(sweep_dir)
    results = load_results(sweep_dir)
    check_columns(results, value, exclude, sweep_dir)
    summary = summarize(results, value=value, seed_params=seeds, exclude=exclude)
    if write:
        if results.empty:
            raise CollectError(f"{sweep_dir}: no complete run with CSV results ({len(runs)} runs); "
                               f"nothing written")
        target = Path(out) if out else sweep_dir
        for name, df in (("runs.csv", runs), ("results.csv", results), ("summary.csv", summary)):
            atomic_write_text(target / name, df.to_csv(index=False))
    from .verdicts import at_scale_verdicts, recorded_verdicts, write_verdicts

    verdicts = recorded_verdicts(sweep_dir, spec, runs)
    if spec.get("decide"):
        verdicts.update(at_scale_verdicts(sweep_dir, spec, runs, results))
    if verdicts:
        if write:
            write_verdicts(Path(out) if out else sweep_dir, verdicts)
    return {"runs": runs, "results": results, "summary": summary, "verdicts": verdicts}


def list_sweeps(results_dir: str | Path) -> list[Path]:
    """Sweep folders under ``results_dir`` (those with a ``sweep.yaml``), sorted by name."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if d.is_dir() and (d / "sweep.yaml").is_file())


# --------------------------------------------------------------------------- the book's chapter


def expected_runs(spec: dict) -> int:
    """How many runs a sweep spec (as saved in ``sweep.yaml``) expands to."""
    n = 1
    for vals in (spec.get("grid") or {}).values():
        n *= len(vals)
    zips = spec.get("zip") or []
    for group in [zips] if isinstance(zips, dict) else zips:
        n *= len(next(iter(group.values()))) if group else 1
    seeds = spec.get("seeds") or []
    n *= seeds if isinstance(seeds, int) else max(1, len(seeds))
    return n


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A Markdown table (floats to ``digits`` decimals); no tabulate needed."""
    def fmt(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def summary_wide(summary: pd.DataFrame, metrics: Iterable[str] | None = None, digits: int = 4,
                 scale: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per setting, one column per metric: ``mean ± ci95 (n)``."""
    if summary.empty or "metric" not in summary:
        return pd.DataFrame()
    s = summary if metrics is None else summary[summary["metric"].isin(list(metrics))]
    keys = [c for c in s.columns if c not in ("metric", "n", "mean", "std", "ci95", "ci95_low", "ci95_high")]
    scale = scale or {}

    def cell(r):
        k = scale.get(r["metric"], 1.0)
        ci = "" if math.isnan(r["ci95"]) else f" ± {r['ci95'] * k:.{digits}f}"
        return f"{r['mean'] * k:.{digits}f}{ci} (n={int(r['n'])})"

    s = s.assign(cell=s.apply(cell, axis=1))
    if not keys:
        return s.set_index("metric")["cell"].to_frame().T.reset_index(drop=True)
    wide = s.pivot_table(index=keys, columns="metric", values="cell", aggfunc="first", sort=False)
    order = [m for m in (metrics or wide.columns) if m in wide.columns]
    return wide[order].reset_index().rename_axis(columns=None)


def sweep_overview(sweep_dir: str | Path) -> dict[str, Any]:
    """What the book says about one sweep: spec, counts, run time, machines, invocations."""
    import yaml

    sweep_dir = Path(sweep_dir)
    spec = yaml.safe_load((sweep_dir / "sweep.yaml").read_text()) or {}
    runs = load_runs(sweep_dir)
    status = runs["status"] if len(runs) else pd.Series(dtype=object)
    machines = (runs.groupby("machine", dropna=False).size().sort_values(ascending=False)
                if len(runs) and "machine" in runs else pd.Series(dtype=int))
    invocations = []
    log = sweep_dir / "invocations.jsonl"
    if log.exists():
        invocations = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    wall = pd.to_numeric(runs["wall_s"], errors="coerce") if len(runs) else pd.Series(dtype=float)
    return {
        "name": spec.get("name", sweep_dir.name), "description": spec.get("description", ""),
        "notebook": spec.get("notebook", ""), "claims": list(spec.get("claims") or []),
        "metrics": list(spec.get("metrics") or []), "spec": spec,
        "expected": expected_runs(spec), "complete": int((status == "complete").sum()),
        "failed": int((status == "failed").sum()),
        "run_time_s": float(wall.sum()) if len(wall) else 0.0,
        "median_run_s": float(wall.median()) if wall.notna().any() else math.nan,
        "machines": {str(k): int(v) for k, v in machines.items()}, "invocations": invocations,
    }
