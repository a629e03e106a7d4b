"""Validation of notebook (papermill) parameters: fail in the first cell, naming the bad one.

>>> from apalu.params import validate
>>> validate(activations=["apalu", "relu"], depths=[5, 10], epochs=2)["depths"]
[5, 10]
>>> validate(depths=[0])
Traceback (most recent call last):
...
ValueError: parameter 'depths': depth must be >= 1, got 0

Each keyword is checked by the rule its name selects (see :data:`RULES`); keywords without a
rule must still be plain JSON values (numbers, strings, booleans, lists, dicts), so that a sweep
can write them into a papermill call.
"""

from __future__ import annotations

import ast
import json
import numbers
from pathlib import Path

from .data import check_dataset
from ..init import parse_init
from .models import check_model
from .activations import check_lab_activation as check_activation  # library + lab-only controls
from .training import OPTIMIZERS, resolve_device

__all__ = ["validate", "RULES", "LIST_PARAMS", "check_notebook", "declared_parameters", "CONFIRM"]


def _items(name, value):
    return value if isinstance(value, (list, tuple)) else [value]


def _int(name, v, low, what):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"parameter {name!r}: {what} must be an integer, got {v!r}")
    if v < low:
        raise ValueError(f"parameter {name!r}: {what} must be >= {low}, got {v}")


def _check_sizes(name, value, low=1, what="size"):
    items = _items(name, value)
    if isinstance(value, (list, tuple)) and not items:
        raise ValueError(f"parameter {name!r}: needs at least one value")
    for v in items:
        if v is None and not isinstance(value, (list, tuple)):
            continue  # a single optional size: None means "all"
        _int(name, v, low, what)


def _check_positive_float(name, value):
    for v in _items(name, value):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0:
            raise ValueError(f"parameter {name!r}: must be a positive number, got {v!r}")


def _check_names(checker):
    def check(name, value):
        items = _items(name, value)
        if not items:
            raise ValueError(f"parameter {name!r}: needs at least one value")
        for v in items:
            try:
                checker(v)
            except (ValueError, TypeError) as e:
                raise ValueError(f"parameter {name!r}: {e}") from None
    return check


def _check_inits(name, value):
    # an init is a string, a dict, or a (low, high) pair: a list of two numbers is one init
    single = isinstance(value, (str, dict)) or (
        isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, numbers.Real) for v in value))
    for v in ([value] if single else list(value)):
        try:
            parse_init(v)
        except ValueError as e:
            raise ValueError(f"parameter {name!r}: {e}") from None


def _check_device(name, value):
    try:
        device = resolve_device(value)
    except ValueError as e:
        raise ValueError(f"parameter {name!r}: {e}") from None
    import torch

    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"parameter {name!r}: {value!r} asked for, but this torch has no usable CUDA device "
                         "(use 'auto' or 'cpu')")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"parameter {name!r}: {value!r} asked for, but MPS is not available (use 'auto' or 'cpu')")


def _check_optimizer(name, value):
    if value not in OPTIMIZERS:
        raise ValueError(f"parameter {name!r}: unknown optimizer {value!r}; known: {', '.join(OPTIMIZERS)}")


def _check_seeds(name, value):
    _check_sizes(name, value, 0, "seed")
    if isinstance(value, (list, tuple)) and len(set(value)) != len(value):
        raise ValueError(f"parameter {name!r}: seeds repeat: {value}")


def _check_fraction(name, value):
    for v in _items(name, value):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < 1:
            raise ValueError(f"parameter {name!r}: must be in (0, 1), got {v!r}")


def _check_output_dir(name, value):
    if not isinstance(value, str):
        raise ValueError(f"parameter {name!r}: must be a path string ('' for the default), got {value!r}")


def _check_link_prefix(name, value):
    if not isinstance(value, str) or (":" in value.split("/")[0] and not value.startswith(("http://", "https://"))):
        raise ValueError(f"parameter {name!r}: must be a relative path or an http(s) URL, got {value!r}")


def _check_results_dir(name, value):
    folder = Path(str(value)).expanduser()
    if not folder.is_dir():
        raise ValueError(f"parameter {name!r}: {value!r} is not a folder (resolved: {folder.resolve()})")
    if not (folder / "machine.json").exists() and not any(folder.glob("*/sweep.yaml")):
        raise ValueError(f"parameter {name!r}: {value!r} holds no results: neither a bench run (machine.json) "
                         "nor sweep folders (<name>/sweep.yaml)")


def _check_ab_pairs(name, value):
    """(a, b) pairs of APALU parameters: a non-empty list, each a, b > 0."""
    if not isinstance(value, (list, tuple)) or not value or any(
            not isinstance(p, (list, tuple)) or len(p) != 2 or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0 for v in p) for p in value):
        raise ValueError(f"parameter {name!r}: must be a non-empty list of (a, b) with a, b > 0, got {value!r}")


def _check_path(name, value):
    if not isinstance(value, str):
        raise ValueError(f"parameter {name!r}: must be a path string ('' if absent), got {value!r}")


def _check_weights(name, value):
    if value is not None and not isinstance(value, str):
        raise ValueError(f"parameter {name!r}: must be a path to a .safetensors file (None if absent), got {value!r}")


_ACT = _check_names(check_activation)
_DATA = _check_names(check_dataset)
_MODEL = _check_names(check_model)

RULES = {
    "activation": _ACT, "activations": _ACT, "baselines": _ACT,
    "dataset": _DATA, "datasets": _DATA,
    "model": _MODEL, "models": _MODEL,
    "depth": lambda n, v: _check_sizes(n, v, 1, "depth"),
    "depths": lambda n, v: _check_sizes(n, v, 1, "depth"),
    "cnn_depths": lambda n, v: _check_sizes(n, v, 1, "depth"),
    "epochs": lambda n, v: _check_sizes(n, v, 1, "epochs"),
    "seeds": _check_seeds, "seed": _check_seeds,
    "init": _check_inits, "inits": _check_inits,
    "lr": _check_positive_float, "lrs": _check_positive_float,
    "device": _check_device,
    "optimizer": _check_optimizer,
    "output_dir": _check_output_dir,
    "link_prefix": _check_link_prefix,
    "results_dir": _check_results_dir,
    "level": _check_fraction,
    "ab_pairs": _check_ab_pairs, "gain_pairs": _check_ab_pairs, "apalu_pairs": _check_ab_pairs,
}
_SIZE_KEYS = ("width", "widths", "sizes", "n_train", "n_val", "n_test", "n_samples", "batch_size", "hidden",
              "window", "rep_dim", "max_steps", "cnn_width", "n_classes", "image_size", "n_normal_classes",
              "max_rows", "grid_points", "check_points", "mc_samples", "batch", "cls_width", "cls_depth",
              "cls_n_train", "oc_n_test", "oc_n_val", "smooth")
_COUNT_KEYS = ("k_steps", "steps", "log_every", "log_params_every", "cls_epochs", "oc_epochs", "reg_epochs",
               "gru_epochs", "cifar_epochs")


# Parameters that take a list. papermill's ``-p NAME VALUE`` injects VALUE as text, so
# ``-p seeds "[0, 1, 2]"`` arrives as a string: refuse it with the form that works.
LIST_PARAMS = frozenset({"activations", "baselines", "datasets", "models", "depths", "cnn_depths", "seeds", "inits",
                         "lrs", "widths", "sizes"})


def _yaml_form(name, value) -> str:
    text = str(value).strip()
    # YAML has no tuples: (a, b) pairs are written [a, b]
    shown = text.replace("(", "[").replace(")", "]") if text.startswith(("[", "(", "{")) else f"[{text}]"
    return (f"-y '{name}: {shown}' (or put `{name}: {shown}` in a YAML file and pass -f params.yaml); "
            f"papermill's -p passes text, not lists")


def _check_not_text_list(name, value):
    if not isinstance(value, str):
        return
    if name in LIST_PARAMS:
        raise ValueError(f"parameter {name!r}: expects a list, got the text {value!r}; pass it as "
                         + _yaml_form(name, value))
    text = value.strip()
    if text and text[0] in "[{(" and text[-1] in "]})":
        raise ValueError(f"parameter {name!r}: got the text {value!r}, which looks like a list; pass it as "
                         + _yaml_form(name, value))


def validate(**params) -> dict:
    """Check notebook parameters; return them unchanged, or raise ValueError naming the bad one.

    Rules by name: activation(s)/baselines (registry names), dataset(s), model(s), depth(s)
    (≥ 1), sizes/width/n_train/batch_size/... (≥ 1; a single one may be None), k_steps/steps
    (≥ 0), epochs (≥ 1), seed(s) (ints ≥ 0, distinct), init(s) (APALU init specs: a range
    needs 0 ≤ low < high), lr(s) (> 0), device, optimizer, output_dir and *_path (strings),
    *_weights (a path string or None).
    """
    for name, value in params.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name!r}: must be a plain JSON value (number, string, list, "
                             f"dict), got {type(value).__name__}") from None
        _check_not_text_list(name, value)
        if name in RULES:
            RULES[name](name, value)
        elif name in _SIZE_KEYS:
            _check_sizes(name, value, 1, "size")
        elif name in _COUNT_KEYS:
            _check_sizes(name, value, 0, "count")
        elif name.endswith("_path"):
            _check_path(name, value)
        elif name.endswith("_weights"):
            _check_weights(name, value)
    return params


# ------------------------------------------------------------------ a notebook's parameters, whole

CONFIRM = "confirm_long_run"  # accepted by every notebook: run although the estimate is long
LONG_RUN_FACTOR = 20.0  # estimated cost, as a multiple of the defaults', that needs CONFIRM
# numeric parameters whose size scales the work (the others are settings, not sizes)
_COST_KEYS = frozenset({"epochs", "n_train", "max_steps", "steps", "k_steps", "mc_samples", "grid_points",
                        "check_points", "width", "depth", "batch", "n_samples", "cls_epochs", "cls_n_train",
                        "oc_epochs", "reg_epochs", "gru_epochs", "cifar_epochs", "oc_n_test"})


def _literal(node: ast.AST):
    """A parameters cell's default value: Python literals and plain arithmetic on numbers (2 / 3)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        left, right = _literal(node.left), _literal(node.right)
        return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right,
                ast.Div: left / right if right else float("nan")}[type(node.op)]
    if isinstance(node, (ast.List, ast.Tuple)):
        return type([] if isinstance(node, ast.List) else ())(_literal(e) for e in node.elts)
    return ast.literal_eval(node)


def declared_parameters(notebook: Path) -> dict:
    """The names a notebook's ``parameters`` cell assigns, with their default values."""
    from .notebook import notebook_parameters

    return {name: _literal(ast.parse(info["default"], mode="eval").body)
            for name, info in notebook_parameters(notebook).items()}


def injected_names() -> set[str]:
    """Names assigned by papermill's injected cell (``# Parameters``) in this IPython session."""
    try:
        from IPython import get_ipython
    except ImportError:
        return set()
    shell = get_ipython()
    names: set[str] = set()
    for source in (shell.user_ns.get("In", []) if shell else []):
        if source.startswith("# Parameters\n"):
            names |= {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
                      for t in node.targets if isinstance(t, ast.Name)}
    return names


def _same_kind(name: str, value, default) -> None:
    """``value`` has the type of the parameter's default (an int where a float is expected is fine)."""
    def fail(expected: str):
        raise ValueError(f"parameter {name!r}: expects {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            fail("true or false")
    elif isinstance(default, numbers.Integral):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            fail("an integer")
    elif isinstance(default, numbers.Real):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            fail("a number")
    elif isinstance(default, str):
        if not isinstance(value, str):
            fail("a string")
    elif isinstance(default, (list, tuple)):
        if isinstance(value, str):
            raise ValueError(f"parameter {name!r}: expects a list, got the text {value!r}; pass it as "
                             + _yaml_form(name, value))
        if not isinstance(value, (list, tuple)):
            fail("a list")
        if default and not value:
            fail("a non-empty list")
        for item in value:
            for ref in default[:1]:
                _same_kind(f"{name}[]", list(item) if isinstance(item, tuple) else item,
                           list(ref) if isinstance(ref, tuple) else ref)
        if default and isinstance(default[0], (list, tuple)) and any(len(v) != len(default[0]) for v in value):
            fail(f"a list of {len(default[0])}-element pairs like {list(default[0])}")


def _check_path_exists(name: str, value) -> None:
    if value and not Path(value).expanduser().exists():
        raise ValueError(f"parameter {name!r}: {value!r} does not exist (resolved: {Path(value).expanduser().resolve()})")


def _committed_files(folder: Path, root: Path) -> list[str]:
    """Files under ``folder`` that git tracks (without git: any file there, to be safe)."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "--", str(folder)], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        return out.split()
    except (OSError, subprocess.SubprocessError):
        return [str(p) for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def _check_not_committed(name: str, value, root: Path) -> None:
    """An output folder may not hold committed results (only `make record` writes those)."""
    if not value:
        return
    target = Path(value).expanduser().resolve()
    inside_data = (root / "data").resolve() in [target, *target.parents]
    committed = _committed_files(target, root) if inside_data else []
    if committed:
        raise ValueError(f"parameter {name!r}: {value!r} holds committed results ({committed[0]}"
                         f"{f' and {len(committed) - 1} more' if len(committed) > 1 else ''}); choose another "
                         "folder (only `make record` writes committed results)")


def _estimated_cost(values: dict, defaults: dict) -> float:
    """Work relative to the defaults: the product of the growth of every list and size parameter."""
    factor = 1.0
    for name, default in defaults.items():
        value = values.get(name, default)
        if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)) and default:
            factor *= max(1.0, len(value) / len(default))
        elif name in _COST_KEYS and isinstance(default, numbers.Real) and isinstance(value, numbers.Real) and default > 0:
            factor *= max(1.0, float(value) / float(default))
    return factor


def check_notebook(name: str, namespace: dict, injected: set[str] | None = None) -> dict:
    """Validate a notebook's parameters in its first cell, against its ``parameters`` cell.

    The schema is the notebook's own parameters cell (names, and each default's type) plus the
    rules by name (:data:`RULES`): an unknown name (papermill only warns) is an error; a value
    must have its default's type (a list given as text gets the ``-y`` form); devices must be
    available; ``*_path`` and ``*_weights`` parameters must exist; ``output_dir`` may not lie inside ``data/``; and
    a run estimated at more than :data:`LONG_RUN_FACTOR` times the defaults' work needs
    ``confirm_long_run=True``. Returns the parameters; raises ValueError naming the first problem.
    """
    from .paths import repo_root

    root = repo_root()
    defaults = declared_parameters(root / "notebooks" / f"{name}.ipynb")
    injected = injected_names() if injected is None else injected
    unknown = sorted(injected - set(defaults) - {CONFIRM})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} for {name}: it defines "
                         + ", ".join(sorted(defaults)) + (f" (also unknown: {unknown[1:]})" if unknown[1:] else ""))
    values = {k: namespace[k] for k in defaults if k in namespace}
    for key, default in defaults.items():
        if key in values:
            _same_kind(key, values[key], default)
    validate(**values)  # the rules by name: activation names, ranges, devices, ...
    for key, value in values.items():
        if key.endswith(("_path", "_weights")):
            _check_path_exists(key, value)
        if key == "output_dir":
            _check_not_committed(key, value, root)
    cost = _estimated_cost(values, defaults)
    if cost > LONG_RUN_FACTOR and namespace.get(CONFIRM) is not True:
        raise ValueError(f"parameters make {name} about {cost:.0f}x the work of its defaults; to run it "
                         f"anyway add -p {CONFIRM} True")
    return values
