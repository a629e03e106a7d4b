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

import json
import numbers

from .data import check_dataset
from .init import parse_init
from .models import check_model
from .registry import check_activation
from .training import OPTIMIZERS, resolve_device

__all__ = ["validate", "RULES", "LIST_PARAMS"]


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
        resolve_device(value)
    except ValueError as e:
        raise ValueError(f"parameter {name!r}: {e}") from None


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


def _check_path(name, value):
    if not isinstance(value, str):
        raise ValueError(f"parameter {name!r}: must be a path string ('' if absent), got {value!r}")


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
    "level": _check_fraction,
}
_SIZE_KEYS = ("width", "widths", "sizes", "n_train", "n_val", "n_test", "n_samples", "batch_size", "hidden",
              "window", "rep_dim", "max_steps", "cnn_width", "n_classes", "image_size", "n_normal_classes")
_COUNT_KEYS = ("k_steps", "steps", "log_every", "log_params_every")


# Parameters that take a list. papermill's ``-p NAME VALUE`` injects VALUE as text, so
# ``-p seeds "[0, 1, 2]"`` arrives as a string: refuse it with the form that works.
LIST_PARAMS = frozenset({"activations", "baselines", "datasets", "models", "depths", "cnn_depths", "seeds", "inits",
                         "lrs", "widths", "sizes"})


def _yaml_form(name, value) -> str:
    shown = value if value.strip().startswith(("[", "(", "{")) else f"[{value}]"
    return (f"-y \"{name}: {shown}\" (or put `{name}: {shown}` in a YAML file and pass -f params.yaml); "
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
    needs 0 ≤ low < high), lr(s) (> 0), device, optimizer, output_dir and *_path (strings).
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
    return params
