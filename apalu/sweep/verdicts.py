"""At-scale verdicts: a collected sweep decided by the same pre-registered protocol as the
CPU chapters (:func:`apalu.lab.protocol.decide`: paired by seed, one primary comparison, Holm,
TOST, MDE), one record per claim with its provenance.

A spec names the claims it decides and where each protocol's metric is in the runs' tidy CSVs::

    decide:
      proxy-cifar10-mnist-cnn: {metric: test_accuracy, arm: activation}
      exp-init-u02: {metric: test_accuracy, arm: init, where: {lr: 0.001}}

``metric``: the value of the results' ``metric`` column that is the protocol's metric; ``arm``:
the column naming the arm (default ``activation``); ``where``: settings the comparison is
restricted to (any other setting that varies within an arm and seed is an error, never
averaged silently); ``arms``: renames, e.g. ``{"0,2": u02}``; ``files``: the CSVs (globs) the
rows come from; ``average``: columns averaged within arm and seed on purpose (e.g. ``file``
for one CSV per model).

A spec whose one run holds every seed (so the notebook tunes each arm's learning rate and
decides over all seeds itself) needs no ``decide`` section: :func:`recorded_verdicts` takes the
verdict that run's notebook recorded for each of the spec's ``claims``.

``apalu collect`` writes ``verdicts.json`` into the sweep folder; :func:`load_at_scale` reads
every committed one for the book's Verdicts page (CPU-default and at-scale side by side), so a
committed sweep is rendered without re-running it. A sweep with failed or missing runs says so
in every record, and decides on the complete seed pairs only (the protocol's ``min_seeds``
turns too few into an explicit "incomplete" verdict).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..lab.atomic import atomic_write_text

__all__ = ["VERDICTS_FILE", "check_decide", "protocol_frame", "at_scale_verdicts", "recorded_verdicts",
           "write_verdicts", "load_at_scale"]

VERDICTS_FILE = "verdicts.json"
_SEED_COLUMNS = ("seed", "seeds")
# columns of results.csv that never identify a setting
_NOT_SETTINGS = {"run_id", "file", "run", "metric", "value", "device", "status", "wall_s"}


def check_decide(decide: Any) -> list[str]:
    """Problems of a spec's ``decide`` section (claims without a protocol, bad entries)."""
    if decide is None:
        return []
    if not isinstance(decide, dict) or not decide:
        return ["decide: must map claim ids to {metric: ..., arm: ...}"]
    from ..lab.protocol import PROTOCOLS

    problems = []
    for claim, how in decide.items():
        where = f"decide.{claim}"
        if claim not in PROTOCOLS:
            problems.append(f"{where}: no pre-registered protocol for this claim (protocols: "
                            f"{', '.join(PROTOCOLS)})")
        if not isinstance(how, dict) or not isinstance(how.get("metric"), str):
            problems.append(f"{where}: needs metric: <name in the results' metric column>")
            continue
        unknown = set(how) - {"metric", "arm", "where", "arms", "files", "average"}
        if unknown:
            problems.append(f"{where}: unknown key(s) {sorted(unknown)} "
                            "(metric, arm, where, arms, files, average)")
        for key in ("files", "average"):
            if not isinstance(how.get(key, []), list) or not all(
                    isinstance(v, str) for v in how.get(key, [])):
                problems.append(f"{where}.{key}: must be a list of names")
        if not isinstance(how.get("arm", "activation"), str):
            problems.append(f"{where}.arm: must be a column name")
        for key in ("where", "arms"):
            if not isinstance(how.get(key, {}), dict):
                problems.append(f"{where}.{key}: must be a mapping")
    return problems


def _seed_column(results: pd.DataFrame) -> str:
    for c in _SEED_COLUMNS:
        if c in results.columns:
            return c
    raise ValueError(f"the results have no seed column ({', '.join(_SEED_COLUMNS)}); columns: "
                     f"{', '.join(map(str, results.columns))}")


def protocol_frame(results: pd.DataFrame, protocol, how: dict) -> pd.DataFrame:
    """The long frame :func:`decide` takes (``arm``, ``seed``, the protocol's metric and its
    condition column) from a sweep's tidy ``results.csv`` rows."""
    metric, arm = how["metric"], how.get("arm", "activation")
    if "metric" not in results.columns or arm not in results.columns:
        raise ValueError(f"{protocol.claim_id}: the results need columns 'metric' and {arm!r}; they "
                         f"have {', '.join(map(str, results.columns))}")
    from fnmatch import fnmatch

    rows = results
    if how.get("files"):
        rows = rows[rows["file"].astype(str).map(lambda f: any(fnmatch(f, g) for g in how["files"]))]
    found = sorted(map(str, rows["metric"].dropna().unique()))
    if metric not in found:
        raise ValueError(f"{protocol.claim_id}: no {metric!r} rows in the results"
                         f"{' of ' + ', '.join(how['files']) if how.get('files') else ''}; metrics "
                         f"found: {', '.join(found) or '(none)'}")
    rows = rows[rows["metric"] == metric]
    for col, val in (how.get("where") or {}).items():
        if col not in rows.columns:
            raise ValueError(f"{protocol.claim_id}: where.{col}: not a column of the results")
        rows = rows[rows[col].astype(str) == str(val)]
    seed = _seed_column(rows)
    keys = [arm, seed] + ([protocol.condition] if protocol.condition else [])
    averaged = set(how.get("average") or [])  # pre-registered: averaged within arm and seed
    if "file" in rows.columns and "file" not in averaged \
            and rows.groupby(keys)["file"].nunique().max() > 1:
        raise ValueError(f"{protocol.claim_id}: rows from several CSV files per arm and seed; "
                         f"choose them with decide.{protocol.claim_id}.files (or average: [file])")
    others = [c for c in rows.columns if c not in _NOT_SETTINGS and c not in keys
              and c not in averaged
              and not str(c).startswith("p.") and rows[c].nunique(dropna=False) > 1
              and rows.groupby(keys)[c].nunique(dropna=False).max() > 1]
    if others:
        raise ValueError(f"{protocol.claim_id}: {', '.join(map(str, others))} vary within an arm and "
                         f"seed; restrict the comparison with decide.{protocol.claim_id}.where")
    frame = pd.DataFrame({"arm": rows[arm].astype(str).replace(how.get("arms") or {}),
                          "seed": rows[seed], protocol.metric: pd.to_numeric(rows["value"],
                                                                             errors="coerce")})
    if protocol.condition:
        frame[protocol.condition] = rows[protocol.condition]
    return frame.reset_index(drop=True)


def _provenance(sweep_dir: Path, spec: dict, runs: pd.DataFrame) -> dict:
    from .collect import expected_runs

    status = runs["status"] if len(runs) else pd.Series(dtype=object)
    commits, devices = set(), set()
    for d in runs.get("run_id", []):
        params = json.loads((sweep_dir / d / "params.json").read_text()) \
            if (sweep_dir / d / "params.json").is_file() else {}
        if params.get("commit"):
            commits.add(params["commit"])
        env = params.get("env") or {}
        if env:
            devices.add(", ".join(f"{k}={v}" for k, v in sorted(env.items())))
    finished = sorted(str(f) for f in runs.get("finished", []) if isinstance(f, str))
    expected = expected_runs(spec)
    complete = int((status == "complete").sum())
    return {"sweep": spec.get("name", sweep_dir.name), "spec": spec.get("source") or
            f"sweeps/{spec.get('name', sweep_dir.name).replace('-', '_')}.yaml",
            "notebook": spec.get("notebook"), "commits": sorted(commits),
            "machines": sorted({str(m) for m in runs.get("machine", []) if isinstance(m, str)}),
            "numerics_env": sorted(devices), "date": finished[-1][:10] if finished else None,
            "runs_expected": expected, "runs_complete": complete,
            "runs_failed": int((status == "failed").sum()),
            "runs_missing": max(0, expected - len(runs)),
            "sweep_complete": complete == expected}


def _scale(spec: dict, n_seeds: int) -> str:
    fixed = spec.get("fixed") or {}
    parts = [f"{n_seeds} seeds"]
    for key, words in (("epochs", "epochs"), ("n_train", "training examples"),
                       ("dataset", "dataset"), ("model", "model")):
        if key in fixed:
            value = "all" if fixed[key] is None else fixed[key]
            parts.append(f"{words} {value}" if key in ("dataset", "model") else f"{value} {words}")
    return ", ".join(parts) + f" (sweep {spec.get('name')})"


def _observed(protocol, frame: pd.DataFrame) -> list[dict]:
    """Paired comparisons of the treatment with each baseline that ran, when the protocol's
    family is incomplete: shown as numbers, never as a verdict."""
    from ..lab.stats import paired_comparison, with_holm

    if protocol.treatment not in set(frame["arm"]):
        return []
    wide = (frame.assign(_v=frame[protocol.metric] * protocol.to_unit)
            .groupby(["seed", "arm"])["_v"].mean().unstack("arm"))
    present = [b for b in (protocol.primary, *protocol.secondary) if b in wide.columns]
    comps = [paired_comparison(wide[protocol.treatment].to_numpy(), wide[b].to_numpy(),
                               treatment_name=protocol.treatment, baseline_name=b,
                               metric=protocol.metric, higher_is_better=protocol.higher_is_better)
             for b in present]
    return [vars(c) for c in with_holm(comps)] if comps else []


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def at_scale_verdicts(sweep_dir: str | Path, spec: dict, runs: pd.DataFrame,
                      results: pd.DataFrame) -> dict[str, dict]:
    """One record per claim in the spec's ``decide`` section: the protocol's verdict, its
    structured fields, evidence in words, and provenance (spec, commit, machine, date, runs)."""
    from ..lab.protocol import decide, protocol_for

    sweep_dir = Path(sweep_dir)
    out: dict[str, dict] = {}
    provenance = _provenance(sweep_dir, spec, runs)
    for claim, how in (spec.get("decide") or {}).items():
        protocol = protocol_for(claim)
        frame = protocol_frame(results, protocol, how) if len(results) else \
            pd.DataFrame(columns=["arm", "seed", protocol.metric])
        n_seeds = int(frame["seed"].nunique()) if len(frame) else 0
        decision = decide(protocol, frame, scale=_scale(spec, n_seeds))
        evidence = decision.evidence
        observed = _observed(protocol, frame) if decision.verdict.startswith(
            "incomplete (missing arm") else []
        if observed:
            evidence += (" Observed among the arms that ran (descriptive, Holm over these only, "
                         "not the pre-registered family): " + "; ".join(
                             f"{c['treatment']} − {c['baseline']} {c['effect']:+.3g} {protocol.unit} "
                             f"[{c['ci_low']:+.3g}, {c['ci_high']:+.3g}], n = {c['n']}"
                             for c in observed) + ".")
        if not provenance["sweep_complete"]:
            evidence = (f"Sweep incomplete ({provenance['runs_complete']} of "
                        f"{provenance['runs_expected']} runs complete, {provenance['runs_failed']} "
                        f"failed): decided on the complete seed pairs only. " + evidence)
        out[claim] = _clean({"claim_id": claim, "verdict": decision.verdict, "evidence": evidence,
                             "fields": decision.fields(), "provenance": provenance,
                             "comparisons": decision.table().to_dict(orient="records"),
                             "observed": observed})
    return out


def recorded_verdicts(sweep_dir: str | Path, spec: dict, runs: pd.DataFrame) -> dict[str, dict]:
    """Verdicts the runs' notebooks recorded themselves (``<run>/ledger/<claim>.json``, written
    by :func:`apalu.report.ledger.record_verdict` with the same protocol) for the spec's
    ``claims`` that its ``decide`` section does not cover: the path of a spec whose one run
    holds every seed, so the notebook tunes and decides over all of them. A claim recorded by
    more than one run is not combined: its verdict says so."""
    sweep_dir = Path(sweep_dir)
    provenance = _provenance(sweep_dir, spec, runs)
    complete = [r for r, st in zip(runs.get("run_id", []), runs.get("status", []))
                if st == "complete"]
    out: dict[str, dict] = {}
    for claim in spec.get("claims") or []:
        if claim in (spec.get("decide") or {}):
            continue
        found = [(rid, sweep_dir / rid / "ledger" / f"{claim}.json") for rid in complete]
        found = [(rid, f) for rid, f in found if f.is_file()]
        if not found:
            continue
        if len(found) > 1:
            out[claim] = {"claim_id": claim, "verdict": f"incomplete ({len(found)} runs each "
                          "decided it; give the spec a decide section to pool them)",
                          "evidence": "Not combined: runs " + ", ".join(r for r, _ in found) + ".",
                          "fields": {}, "provenance": provenance, "comparisons": [],
                          "observed": []}
            continue
        rid, path = found[0]
        rec = json.loads(path.read_text())
        evidence = rec.get("evidence", "")
        if not provenance["sweep_complete"]:
            evidence = (f"Sweep incomplete ({provenance['runs_complete']} of "
                        f"{provenance['runs_expected']} runs complete). " + evidence)
        fields = {k: rec.get(k) for k in ("primary", "n_seeds", "test", "effect", "ci_low",
                                          "ci_high", "p_adjusted", "mde", "claimed_effect",
                                          "verdict", "scale", "unit") if k in rec}
        out[claim] = _clean({"claim_id": claim, "verdict": rec.get("verdict"), "evidence": evidence,
                             "fields": fields, "provenance": {**provenance, "decided_in_run": rid},
                             "comparisons": [], "observed": []})
    return out


def write_verdicts(sweep_dir: str | Path, verdicts: dict[str, dict]) -> Path:
    path = Path(sweep_dir) / VERDICTS_FILE
    atomic_write_text(path, json.dumps(verdicts, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path


def load_at_scale(root: str | Path) -> dict[str, dict]:
    """Every committed at-scale verdict, ``{claim_id: record}``, read from
    ``<root>/data/results/*/verdicts.json`` (``root``: the book root, or a results folder).

    This is the loader the Verdicts page uses to show the at-scale verdict next to the
    CPU-default one. A record holds ``verdict``, ``evidence``, ``fields`` (the ledger's
    structured fields: primary, n_seeds, effect, ci_low, ci_high, p_adjusted, mde, unit, ...),
    ``comparisons`` and ``provenance`` (sweep, spec, notebook, commits, machines, date,
    runs_expected/complete/failed/missing, sweep_complete). When several sweeps decide one
    claim, the one with the most complete runs wins (ties: the later date); the others are
    listed in its ``also_decided_by``."""
    root = Path(root)
    results = root / "data" / "results" if (root / "data" / "results").is_dir() else root
    found: dict[str, list[dict]] = {}
    for path in sorted(results.glob(f"*/{VERDICTS_FILE}")):
        try:
            records = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        for claim, rec in records.items():
            found.setdefault(claim, []).append(rec)
    out = {}
    for claim, recs in found.items():
        recs.sort(key=lambda r: (r["provenance"]["runs_complete"], r["provenance"]["date"] or ""),
                  reverse=True)
        out[claim] = {**recs[0], "also_decided_by": [r["provenance"]["sweep"] for r in recs[1:]]}
    return out
