"""Sweep specs: read a YAML spec and check it against the notebook's own parameters cell,
one validator per section of the spec, before anything runs."""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
import yaml
from ..lab.notebook import _has_parameters_cell, notebook_parameters


#: Parameters the sweep sets itself; a spec may not set them.
RESERVED = ("output_dir",)
SPEC_KEYS = (
    "name", "description", "notebook", "fixed", "grid", "zip", "seeds", "seed_param",
    "resources", "execution_timeout", "claims", "metrics", "value", "decide", "expect", "smoke",
)
#: What a GPU spec states before it runs: the effect it can detect and what it costs.
EXPECT_KEYS = {"mde": (int, float), "mde_unit": str, "mde_basis": str, "gpu_minutes": (int, float),
               "gpu_minutes_basis": str, "relu_anchor": str}
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
#: The parameter that lets a notebook run far beyond its defaults' work (apalu.lab.params.CONFIRM).
LONG_RUN_CONFIRM = "confirm_long_run"
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
    # the notebook's parameters cell, as read when the spec was validated (name -> info)
    param_info: dict[str, dict] = field(default_factory=dict, repr=False, compare=False)

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
    from ..lab.paths import repo_root

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
        from ..lab.params import validate
    except ImportError:  # the rules need torch; without them only names and types are checked
        return None
    try:
        validate(**{name: value})
    except ValueError as exc:
        return str(exc)
    return None


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
    if pname == LONG_RUN_CONFIRM:  # every book notebook accepts it (apalu.lab.params.CONFIRM)
        return [] if isinstance(value, bool) else [f"{where}.{pname}: must be true or false"]
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


def _check_expect(raw: dict) -> list[str]:
    """``expect``: the spec's stated MDE and GPU-minutes, each with its basis in words."""
    expect = raw.get("expect")
    if expect is None:
        return []
    if not isinstance(expect, dict):
        return ["expect: must be a mapping (mde, mde_unit, mde_basis, gpu_minutes, gpu_minutes_basis)"]
    problems = [f"expect.{k}: unknown (known: {', '.join(EXPECT_KEYS)})" for k in expect
                if k not in EXPECT_KEYS]
    for k, v in expect.items():
        typ = EXPECT_KEYS.get(k)
        if typ and (not isinstance(v, typ) or isinstance(v, bool)):
            problems.append(f"expect.{k}: {v!r} should be {'a number' if typ is not str else 'text'}")
        elif typ is not str and typ and v <= 0:
            problems.append(f"expect.{k}: must be positive")
    for number, basis in (("mde", "mde_basis"), ("gpu_minutes", "gpu_minutes_basis")):
        if number in expect and basis not in expect:
            problems.append(f"expect.{basis}: required with expect.{number} (say where it comes from)")
    return problems


def _check_smoke(raw: dict, root: Path, params: dict[str, dict], seed_param: str | None,
                 source: str) -> list[str]:
    """``smoke``: its own rules (:func:`apalu.sweep.smoke.smoke_problems`), then the smoked
    spec validated whole (generated datasets stand in as their placeholder paths)."""
    from .smoke import _placeholders, apply_smoke, smoke_problems

    problems = smoke_problems(raw, params)
    if problems or "smoke" not in raw:
        return problems
    smoked = _placeholders(apply_smoke(raw, seed_param), lambda param, kind: f"<generated {kind}>")
    try:
        validate_spec(smoked, root=root, default_name=smoked["name"], source=source)
    except SpecError as exc:
        return [f"smoke: {p}" for p in exc.problems]
    return []


def _check_decide(raw: dict) -> list[str]:
    from .verdicts import check_decide

    return check_decide(raw.get("decide"))


def _duplicate_runs(spec: "SweepSpec") -> list[str]:
    """Two runs that give the notebook the same parameters (numbers compared by value)."""
    from .runs import expand  # runs imports this module: import at call time

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
                + _check_resources(raw.get("resources", {}) or {}) + _check_extras(raw)
                + _check_expect(raw) + _check_decide(raw))
    if not problems and not (grid or zips or seeds):
        problems.append("grid: empty: the spec defines no grid, zip or seeds, so nothing varies")
    if not problems:
        problems += _check_smoke(raw, root, params, seed_param if seeds else None, source)
    if problems:
        raise SpecError(problems, source)
    spec = SweepSpec(
        name=name, notebook=nb_rel, root=root, fixed=dict(fixed), grid=dict(grid),
        zip=[dict(g) for g in zips], seeds=list(seeds), seed_param=seed_param if seeds else None,
        resources=dict(raw.get("resources", {}) or {}), execution_timeout=raw.get("execution_timeout"),
        description=raw.get("description", "") or "", claims=list(raw.get("claims", []) or []),
        source=source, raw=copy.deepcopy(raw), param_info=params,
    )
    problems = _duplicate_runs(spec) or _long_runs(spec)
    if problems:
        raise SpecError(problems, source)
    return spec


def _long_runs(spec: "SweepSpec") -> list[str]:
    """A run its notebook would refuse as far beyond its defaults' work (the notebook's
    :func:`apalu.lab.params.check_notebook`) unless the spec sets ``confirm_long_run: true``:
    said here, before the first run, not after a GPU job has started."""
    from .runs import expand

    try:
        from ..lab.params import LONG_RUN_FACTOR, _estimated_cost, declared_parameters
        defaults = declared_parameters(spec.notebook_path)
    except (ImportError, ValueError, SyntaxError):
        return []
    for r in expand(spec):
        cost = _estimated_cost(r.parameters, defaults)
        if cost > LONG_RUN_FACTOR and r.parameters.get(LONG_RUN_CONFIRM) is not True:
            return [f"fixed.{LONG_RUN_CONFIRM}: run {r.run_id} is about {cost:.0f}x the work of the "
                    f"notebook's defaults, which it refuses above {LONG_RUN_FACTOR:g}x; set "
                    f"{LONG_RUN_CONFIRM}: true in 'fixed' to run it"]
    return []


