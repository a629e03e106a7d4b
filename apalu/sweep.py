"""Sweeps: run any notebook of the book over a parameter grid, locally or on Slurm, resumably.

A sweep is described by a YAML spec (see ``sweeps/*.yaml`` and the book's "Rerun this book" page)::

    name: mnist-quickstart-cpu           # optional, default: the spec file's stem
    notebook: notebooks/mnist_quickstart.ipynb   # relative to the book root
    fixed: {epochs: 1, device: auto}     # passed to every run
    grid: {lr: [0.01, 0.1]}              # Cartesian product
    zip: {depth: [2, 4], width: [64, 32]}  # lists walked together (or a list of such groups)
    seeds: [0, 1, 2]                     # one run per seed (``seed_param`` names the parameter)
    resources: {cpus_per_task: 2, gpus_per_node: 0, timeout_min: 30}   # for --executor slurm

Every run gets a stable id (a hash of the notebook's path and its parameters) and, once it has
finished, a folder ``data/results/<sweep>/<run-id>/`` holding ``params.json``, the executed
``notebook.ipynb``, whatever the notebook wrote to its ``output_dir`` (its tidy CSV, figures),
``status.json`` (status, error, wall time) and ``machine.json``.

Safety: a run executes in a staging folder ``<sweep>/.staging/<run-id>.<host>.<pid>`` and is
published by renaming that folder to ``<run-id>`` once its ``status.json`` is written, so a run
folder exists only whole. A run folder whose status is ``complete`` is never executed again; a
``failed`` one only with ``retry_failed``; a run killed midway leaves only a staging folder,
which counts for nothing and is removed by the next invocation. Re-running the same command
after a crash or ``kill -9`` therefore completes the sweep with no run lost or duplicated.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import ctypes
import hashlib
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .atomic import atomic_write_text

__all__ = [
    "SpecError",
    "CommittedResultsError",
    "SweepRefused",
    "preflight",
    "device_problems",
    "size_problems",
    "run_epochs",
    "read_pending",
    "submitted_runs",
    "SweepSpec",
    "Run",
    "load_spec",
    "validate_spec",
    "expand",
    "run_id",
    "run_status",
    "execute_run",
    "run_sweep",
    "clean_staging",
    "tracked_files",
    "guard_committed",
    "machine_description",
    "executor_parameters",
    "make_submitit_executor",
    "sbatch_script",
    "RESERVED",
]

#: Parameters the sweep sets itself; a spec may not set them.
RESERVED = ("output_dir",)
SPEC_KEYS = (
    "name", "description", "notebook", "fixed", "grid", "zip", "seeds", "seed_param",
    "resources", "execution_timeout", "claims", "metrics", "value",
)
#: resources keys -> AutoExecutor parameter names (generic ones, or slurm_-prefixed ones).
RESOURCE_KEYS = {
    "cpus_per_task": ("cpus_per_task", int),
    "gpus_per_node": ("gpus_per_node", int),
    "timeout_min": ("timeout_min", int),
    "mem_gb": ("mem_gb", (int, float)),
    "partition": ("slurm_partition", str),
    "array_parallelism": ("slurm_array_parallelism", int),
    "account": ("slurm_account", str),
    "qos": ("slurm_qos", str),
    "constraint": ("slurm_constraint", str),
    "setup": ("slurm_setup", list),
    "additional": ("slurm_additional_parameters", dict),
}
STAGING = ".staging"
_SCALARS = (str, int, float, bool, type(None))


class SpecError(ValueError):
    """A sweep spec that cannot run; the message names every offending key."""

    def __init__(self, problems: list[str], source: str = "spec"):
        self.problems = list(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))


@dataclass
class SweepSpec:
    name: str
    notebook: str  # relative to root, posix
    root: Path
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    zip: list[dict[str, list]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    seed_param: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    execution_timeout: int | None = None
    description: str = ""
    claims: list[str] = field(default_factory=list)
    source: str = "spec"
    raw: dict = field(default_factory=dict)

    @property
    def notebook_path(self) -> Path:
        return self.root / self.notebook

    def results_dir(self, results_root: Path | None = None) -> Path:
        return Path(results_root or self.root / "data" / "results") / self.name


@dataclass
class Run:
    run_id: str
    sweep: str
    notebook: Path  # absolute
    notebook_rel: str
    parameters: dict[str, Any]
    run_dir: Path  # final folder, <results>/<sweep>/<run-id>
    root: Path
    execution_timeout: int | None = None
    threads: int | None = None  # OMP_NUM_THREADS for the kernel (None: leave as is)

    @property
    def sweep_dir(self) -> Path:
        return self.run_dir.parent


# --------------------------------------------------------------------------- spec


def find_root(start: Path) -> Path:
    """The book root (:func:`apalu.ledger.repo_root`), else ``start`` itself."""
    from .ledger import repo_root

    try:
        return repo_root(start).resolve()
    except FileNotFoundError:
        return start.resolve()


def load_spec(path: str | Path, root: Path | None = None) -> SweepSpec:
    """Read and validate a spec file; raises :class:`SpecError` naming each offending key."""
    path = Path(path)
    if not path.exists():
        raise SpecError([f"spec file {str(path)!r} does not exist"], str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError([f"not valid YAML ({exc})"], str(path)) from exc
    root = Path(root).resolve() if root else find_root(path.parent)
    return validate_spec(raw, root=root, default_name=path.stem, source=str(path))


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_LITERAL


_NOT_LITERAL = object()
_ANNOT = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


def _expected_type(info: dict) -> tuple[type | None, Any]:
    """(type, default) of a notebook parameter: its annotation if any, else its literal default."""
    default = _literal(info.get("default", ""))
    ann = _ANNOT.get(str(info.get("inferred_type_name", "None")).split("[")[0].lower())
    if ann is not None:
        return ann, default
    if default is _NOT_LITERAL or default is None:
        return None, default
    if isinstance(default, tuple):
        return list, list(default)
    return type(default), default


def _type_ok(value: Any, expected: type | None, default: Any) -> bool:
    if expected is None or value is None:  # None: the notebook's own "not given" (rules still apply)
        return True
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is list:
        if not isinstance(value, list):
            return False
        if isinstance(default, list) and default:  # element type of the default, if uniform
            kinds = {type(d) for d in default}
            if len(kinds) == 1:
                (kind,) = kinds
                return all(_type_ok(v, kind, None) for v in value)
        return True
    return isinstance(value, expected)


def _tname(t: type | None) -> str:
    return getattr(t, "__name__", str(t))


def _json_ok(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return not (isinstance(value, float) and value != value)
    if isinstance(value, list):
        return all(_json_ok(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_ok(v) for k, v in value.items())
    return False


#: Parameters whose rule depends on where the runs execute: checked by :func:`preflight`, which
#: knows the executor (a login node without CUDA may submit ``device: cuda`` to GPU nodes).
_WHERE_RULES = ("device",)


def _value_rule(name: str, value: Any) -> str | None:
    """The book's own value rules for notebook parameters (:func:`apalu.params.validate`:
    activation names, depths >= 1, ...), so a sweep fails before its first run, not in it."""
    if name in _WHERE_RULES:
        return None
    try:
        from .params import validate
    except ImportError:  # the rules need torch; without them only names and types are checked
        return None
    try:
        validate(**{name: value})
    except ValueError as exc:
        return str(exc)
    return None


def _trailing_comments(src: str) -> dict[int, str]:
    """Line number -> the text of the ``# comment`` that ends that line (the parameter's meaning)."""
    import io
    import tokenize

    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def notebook_parameters(path: Path) -> dict[str, dict]:
    """The names the notebook's ``parameters`` cell assigns (name -> papermill-style info:
    ``default`` source text, ``inferred_type_name`` from an annotation, ``help`` from the
    comment that ends the assignment's line).

    The cell is read with Python's own parser; papermill's ``inspect_notebook`` (a line-based
    reader that gives up on lines such as ``x = ""  # ('' = default)``) is the fallback for a
    cell that is not plain Python (e.g. holds IPython magics)."""
    nb = json.loads(Path(path).read_text())
    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    src = "".join(cells[0]["source"]) if cells else ""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        import papermill

        return papermill.inspect_notebook(str(path))
    comments = _trailing_comments(src)
    out: dict[str, dict] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = [t for t in node.targets if isinstance(t, ast.Name)]
            ann = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            targets, ann = [node.target], ast.get_source_segment(src, node.annotation)
        else:
            continue
        for t in targets:
            out[t.id] = {"name": t.id, "inferred_type_name": ann or "None",
                         "default": ast.get_source_segment(src, node.value) or "",
                         "help": comments.get(node.end_lineno, "")}
    return out


def _has_parameters_cell(path: Path) -> bool:
    nb = json.loads(path.read_text())
    return any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.get("cells", []))


# ---- validation: one validator per section of the spec, each returning its problems


#: submitit signals a job this long before its time limit (``signal_delay_s``, 90 s by default).
SIGNAL_DELAY_S = 90
#: The shortest ``timeout_min`` accepted: it leaves 3.5 minutes of work before the signal.
MIN_TIMEOUT_MIN = 5


def _check_keys(raw: dict) -> list[str]:
    return [f"{key}: unknown key (known: {', '.join(SPEC_KEYS)})" for key in raw if key not in SPEC_KEYS]


def _check_name(raw: dict, default_name: str) -> tuple[str, list[str]]:
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name) \
            or name.startswith("."):
        return name, [f"name: {name!r} must be a non-empty folder name (letters, digits, - _ .)"]
    return name, []


def _check_notebook(raw: dict, root: Path) -> tuple[str, dict[str, dict], list[str]]:
    """(notebook path relative to root, its parameters, problems)."""
    nb_rel = raw.get("notebook")
    if not isinstance(nb_rel, str) or not nb_rel:
        return "", {}, ["notebook: required (a path to an .ipynb, relative to the book root)"]
    nb_path = (root / nb_rel).resolve()
    problems: list[str] = []
    params: dict[str, dict] = {}
    if not nb_path.is_file():
        problems.append(f"notebook: {nb_rel!r} does not exist (looked for {nb_path})")
    elif nb_path.suffix != ".ipynb":
        problems.append(f"notebook: {nb_rel!r} is not a .ipynb file")
    elif not _has_parameters_cell(nb_path):
        problems.append(f"notebook: {nb_rel!r} has no cell tagged 'parameters'")
    else:
        params = notebook_parameters(nb_path)
        if "output_dir" not in params:
            problems.append(f"notebook: {nb_rel!r} defines no 'output_dir' parameter "
                            "(the sweep passes each run's folder through it)")
    try:
        return nb_path.relative_to(root).as_posix(), params, problems
    except ValueError:
        return nb_path.as_posix(), params, problems


def _param_problems(where: str, pname: Any, value: Any, params: dict[str, dict]) -> list[str]:
    """What is wrong with setting notebook parameter ``pname`` to ``value`` (name, type, rules)."""
    if not isinstance(pname, str):
        return [f"{where}: parameter names must be strings, got {pname!r}"]
    if pname in RESERVED:
        return [f"{where}.{pname}: reserved, the sweep sets it for every run"]
    if not _json_ok(value):
        return [f"{where}.{pname}: {value!r} is not a plain YAML value "
                "(string, number, bool, null, list, mapping)"]
    if params and pname not in params:
        return [f"{where}.{pname}: the notebook's parameters cell does not define "
                f"{pname!r} (it defines: {', '.join(params)})"]
    if params:
        expected, default = _expected_type(params[pname])
        if not _type_ok(value, expected, default):
            return [f"{where}.{pname}: {value!r} has type {type(value).__name__}, "
                    f"the notebook's default {params[pname]['default']} is {_tname(expected)}"]
    rule_problem = _value_rule(pname, value)
    return [f"{where}.{pname}: {rule_problem}"] if rule_problem else []


def _same_key(value: Any) -> str:
    """A value as the notebook sees it: numbers compared by value (1 and 1.0 are one value)."""
    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v
    return json.dumps(norm(value), sort_keys=True)


def _repeats(values: list) -> list:
    """The values that equal an earlier one (by :func:`_same_key`)."""
    seen: set[str] = set()
    out = []
    for v in values:
        key = _same_key(v)
        if key in seen:
            out.append(v)
        seen.add(key)
    return out


def _check_fixed(raw: dict, params: dict[str, dict]) -> tuple[dict, list[str]]:
    fixed = raw.get("fixed", {}) or {}
    if not isinstance(fixed, dict):
        return {}, ["fixed: must be a mapping of parameter: value"]
    return fixed, [p for k, v in fixed.items() for p in _param_problems("fixed", k, v, params)]


def _check_grid(raw: dict, params: dict[str, dict]) -> tuple[dict, list[str]]:
    grid = raw.get("grid", {})
    if "grid" in raw and (not isinstance(grid, dict) or not grid):
        return {}, ["grid: empty (give at least one parameter: [values], or leave 'grid' out)"]
    problems: list[str] = []
    for k, vals in (grid or {}).items():
        if not isinstance(vals, list):
            problems.append(f"grid.{k}: must be a list of values, got {vals!r}")
        elif not vals:
            problems.append(f"grid.{k}: empty list")
        else:
            problems += [p for v in vals for p in _param_problems("grid", k, v, params)]
            if _repeats(vals):
                problems.append(f"grid.{k}: repeated values {vals!r} ({_repeats(vals)[0]!r} twice: "
                                f"the notebook gets the same value, so the same run)")
    return grid or {}, problems


def _check_zip(raw: dict, params: dict[str, dict]) -> tuple[list[dict], list[str]]:
    zips = raw.get("zip", [])
    if isinstance(zips, dict):
        zips = [zips]
    if not isinstance(zips, list):
        return [], ["zip: must be a mapping of parameter: [values] (or a list of them)"]
    problems: list[str] = []
    for i, group in enumerate(zips):
        where = "zip" if len(zips) == 1 else f"zip[{i}]"
        if not isinstance(group, dict) or not group:
            problems.append(f"{where}: empty (give parameter: [values] lists of equal length)")
            continue
        lengths = {}
        for k, vals in group.items():
            if not isinstance(vals, list) or not vals:
                problems.append(f"{where}.{k}: must be a non-empty list")
                continue
            lengths[k] = len(vals)
            problems += [p for v in vals for p in _param_problems(where, k, v, params)]
        if len(set(lengths.values())) > 1:
            problems.append(f"{where}: lists of unequal length ({lengths})")
        elif lengths:
            rows = [list(r) for r in zip(*(group[k] for k in lengths))]
            if _repeats(rows):
                problems.append(f"{where}: repeated row {dict(zip(lengths, _repeats(rows)[0]))} "
                                "(the same run twice)")
    return [g for g in zips if isinstance(g, dict)], problems


def _default_seed_param(params: dict[str, dict]) -> str:
    return "seed" if "seed" in params or not params else ("seeds" if "seeds" in params else "seed")


def _check_seeds(raw: dict, params: dict[str, dict]) -> tuple[list[int], str | None, list[str]]:
    """(seeds, seed parameter, problems); ``seeds: 3`` means seeds 0, 1, 2."""
    seeds, seed_param = raw.get("seeds", []), raw.get("seed_param")
    if seeds is None or (isinstance(seeds, list) and "seeds" in raw and not seeds):
        return [], seed_param, ["seeds: empty list (leave 'seeds' out to run without seeds)"]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = list(range(seeds))
    elif not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        return [], seed_param, [f"seeds: must be a list of integers (or a count), got {seeds!r}"]
    elif len(set(seeds)) != len(seeds):
        return seeds, seed_param, [f"seeds: repeated values {seeds!r}"]
    if not seeds:
        return [], seed_param, ["seed_param: given without seeds"] if seed_param is not None else []
    seed_param = _default_seed_param(params) if seed_param is None else seed_param
    if not isinstance(seed_param, str):
        return seeds, seed_param, [f"seed_param: must be a parameter name, got {seed_param!r}"]
    if params and seed_param not in params:
        return seeds, seed_param, [f"seed_param: the notebook's parameters cell does not define "
                                   f"{seed_param!r} (it defines: {', '.join(params)})"]
    as_list = bool(params) and _expected_type(params[seed_param])[0] is list
    for sd in seeds:
        bad = _value_rule(seed_param, [sd] if as_list else sd)
        if bad:
            return seeds, seed_param, [f"seeds: {sd}: {bad}"]
    return seeds, seed_param, []


def _claim_problems(fixed: dict, grid: dict, zips: list[dict], seed_param: str | None) -> list[str]:
    """A parameter set in two places (fixed, grid, a zip group, seeds)."""
    owners: list[tuple[str, Any]] = [("fixed", k) for k in fixed] + [("grid", k) for k in grid]
    for i, group in enumerate(zips):
        owners += [("zip" if len(zips) == 1 else f"zip[{i}]", k) for k in group]
    if seed_param is not None:
        owners.append(("seeds", seed_param))
    seen: dict[Any, str] = {}
    problems = []
    for where, k in owners:
        if k in seen:
            problems.append(f"{where}.{k}: also set in {seen[k]}")
        seen[k] = where
    return problems


def _check_resources(resources: Any, where: str = "resources") -> list[str]:
    """Types and signs of the Slurm resources, and a ``timeout_min`` long enough to leave work
    after submitit's pre-timeout signal (:data:`MIN_TIMEOUT_MIN`)."""
    if not isinstance(resources, dict):
        return [f"{where}: must be a mapping"]
    problems = []
    for k, v in resources.items():
        if k not in RESOURCE_KEYS:
            problems.append(f"{where}.{k}: unknown (known: {', '.join(RESOURCE_KEYS)})")
            continue
        typ = RESOURCE_KEYS[k][1]
        if v is not None and (not isinstance(v, typ) or isinstance(v, bool)):
            problems.append(f"{where}.{k}: {v!r} should be {getattr(typ, '__name__', 'a number')}")
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            problems.append(f"{where}.{k}: must not be negative")
        elif k == "timeout_min" and v is not None and v < MIN_TIMEOUT_MIN:
            problems.append(f"{where}.timeout_min: {v} minutes is too short: submitit signals the job "
                            f"{SIGNAL_DELAY_S} s before the limit, leaving {max(0, v * 60 - SIGNAL_DELAY_S)} s "
                            f"of work; give at least {MIN_TIMEOUT_MIN}")
    return problems


def _check_extras(raw: dict) -> list[str]:
    """execution_timeout, claims, metrics, value, description."""
    problems = []
    timeout = raw.get("execution_timeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0):
        problems.append(f"execution_timeout: {timeout!r} should be a positive number of seconds per cell")
    claims = raw.get("claims", []) or []
    if not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
        problems.append("claims: must be a list of claim ids (see the claims ledger)")
    metrics = raw.get("metrics", []) or []
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        problems.append("metrics: must be a list of metric names (shown first in the book)")
    if not isinstance(raw.get("value", "value"), str):
        problems.append("value: must be the name of the numeric column to summarise")
    if not isinstance(raw.get("description", "") or "", str):
        problems.append("description: must be a string")
    return problems


def _duplicate_runs(spec: "SweepSpec") -> list[str]:
    """Two runs that give the notebook the same parameters (numbers compared by value)."""
    seen: dict[str, dict] = {}
    for r in expand(spec):
        key = _same_key(r.parameters)
        if key in seen:
            return [f"runs {json.dumps(seen[key])} and {json.dumps(r.parameters)} are the same run "
                    "(1 and 1.0 are one value to the notebook)"]
        seen[key] = r.parameters
    return []


def validate_spec(raw: Any, root: Path, default_name: str = "sweep", source: str = "spec") -> SweepSpec:
    """Check a parsed spec against the notebook's ``parameters`` cell before anything runs;
    :class:`SpecError` lists every problem of every section at once."""
    if not isinstance(raw, dict):
        raise SpecError([f"the spec must be a mapping, got {type(raw).__name__}"], source)
    name, p_name = _check_name(raw, default_name)
    nb_rel, params, p_nb = _check_notebook(raw, root)
    fixed, p_fixed = _check_fixed(raw, params)
    grid, p_grid = _check_grid(raw, params)
    zips, p_zip = _check_zip(raw, params)
    seeds, seed_param, p_seeds = _check_seeds(raw, params)
    problems = (_check_keys(raw) + p_name + p_nb + p_fixed + p_grid + p_zip
                + _claim_problems(fixed, grid, zips, seed_param if seeds else None) + p_seeds
                + _check_resources(raw.get("resources", {}) or {}) + _check_extras(raw))
    if not problems and not (grid or zips or seeds):
        problems.append("grid: empty: the spec defines no grid, zip or seeds, so nothing varies")
    if problems:
        raise SpecError(problems, source)
    spec = SweepSpec(
        name=name, notebook=nb_rel, root=root, fixed=dict(fixed), grid=dict(grid),
        zip=[dict(g) for g in zips], seeds=list(seeds), seed_param=seed_param if seeds else None,
        resources=dict(raw.get("resources", {}) or {}), execution_timeout=raw.get("execution_timeout"),
        description=raw.get("description", "") or "", claims=list(raw.get("claims", []) or []),
        source=source, raw=copy.deepcopy(raw),
    )
    spec._param_info = params  # type: ignore[attr-defined]
    duplicates = _duplicate_runs(spec)
    if duplicates:
        raise SpecError(duplicates, source)
    return spec


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
    info = getattr(spec, "_param_info", {}).get(spec.seed_param or "", {})
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


_MACHINE: dict | None = None


def machine_description() -> dict[str, Any]:
    """Where this process runs: host, OS, CPU, memory, Python, torch, GPUs, Slurm job."""
    global _MACHINE
    if _MACHINE is not None:
        return dict(_MACHINE)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    desc: dict[str, Any] = {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "cpu": cpu,
        "cpus": ncpu,
        "memory_gb": mem_gb,
        "python": platform.python_version(),
    }
    try:
        import torch

        desc["torch"] = torch.__version__
        desc["cuda"] = torch.version.cuda
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
            if torch.cuda.is_available() else []
        desc["gpus"] = gpus
    except Exception:  # torch missing or broken: describe the rest
        desc.setdefault("gpus", [])
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_PARTITION",
                "CUDA_VISIBLE_DEVICES"):
        if os.environ.get(var):
            desc[var.lower()] = os.environ[var]
    _MACHINE = desc
    return dict(desc)


def machine_summary(desc: dict) -> str:
    """One line: 'host: CPU (n cpus, m GB), GPU ...'."""
    gpus = desc.get("gpus") or []
    gpu = ", ".join(sorted(set(gpus))) if gpus else "no GPU"
    if gpus and len(gpus) > 1:
        gpu = f"{len(gpus)} x {gpu}"
    return (f"{desc.get('cpu', '?')} ({desc.get('cpus', '?')} CPUs, {desc.get('memory_gb', '?')} GB), "
            f"{gpu}; torch {desc.get('torch', '?')}, Python {desc.get('python', '?')}")


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


def _params_record(run: Run) -> dict:
    try:
        digest = hashlib.sha256(run.notebook.read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {"run_id": run.run_id, "sweep": run.sweep, "notebook": run.notebook_rel,
            "notebook_sha256": digest, "parameters": run.parameters}


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
    _write_json(staging / "machine.json", machine_description())
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


def sbatch_script(spec: SweepSpec, folder: Path | str = "data/results/.submitit",
                  overrides: dict | None = None, n_runs: int | None = None) -> str:
    """The sbatch script submitit would submit for this sweep's job array of ``n_runs`` runs
    (default: all), built by submitit itself; works on a machine without Slurm."""
    from unittest import mock

    from submitit.slurm.slurm import SlurmExecutor

    with mock.patch.object(SlurmExecutor, "affinity", classmethod(lambda cls: 2)):
        ex = make_submitit_executor(spec, Path(folder), "slurm", overrides)
    inner = ex._executor  # noqa: SLF001 (submitit has no public accessor for the script)
    n = n_runs if n_runs is not None else len(expand(spec))
    inner.parameters["map_count"] = max(1, n)  # what submitit's map_array sets for an array
    try:
        return inner._make_submission_file_text(inner._submitit_command_str, "preview")
    finally:
        inner.parameters.pop("map_count", None)


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
    defaults = [d for k, info in getattr(spec, "_param_info", {}).items() if k.endswith("epochs")
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


def _write_sweep_files(spec: SweepSpec, sweep_dir: Path) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"name": spec.name, "notebook": spec.notebook}
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
                                 "machine": machine_summary(machine_description())}) + "\n")
    log(f"sweep {spec.name}: {summary['complete']}/{len(runs)} complete, {summary['failed']} failed, "
        f"{summary['pending']} pending; {wall:.1f} s")
    return summary
