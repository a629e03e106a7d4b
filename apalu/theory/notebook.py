"""The theory notebooks' parameter check: the lab's rules by name, then each notebook's own.

A theory notebook's set-up cell calls ``check_theory_notebook("<name>", globals())`` once; it
runs :func:`apalu.lab.params.check_notebook` (names, types, the rules by parameter name) and
then the constraints that tie this notebook's parameters to each other or to the theory (the
targets the approximation chapter can fit, the activations SymPy has pieces for). It prints
nothing and raises ``ValueError`` naming the first problem.
"""

from __future__ import annotations

from collections.abc import Callable

from ..lab.params import check_notebook

__all__ = ["THEORY_RULES", "check_theory_notebook"]


def _at_least(values: dict, **lows: int) -> None:
    for name, low in lows.items():
        if name in values and int(values[name]) < low:
            raise ValueError(f"parameter {name!r}: must be an int >= {low}, got {values[name]!r}")


def _definition(v: dict) -> None:
    if not v["x_min"] < 0 < v["x_max"]:
        raise ValueError(f"parameters 'x_min', 'x_max': x_min < 0 < x_max required, got x_min={v['x_min']}, "
                         f"x_max={v['x_max']}")
    _at_least(v, grid_points=11)


def _bounds(v: dict) -> None:
    if not v["x_max"] > 3:
        raise ValueError(f"parameter 'x_max': must exceed 3 (the maximum of f' is near 1.41), got {v['x_max']}")
    _at_least(v, grid_points=1001)


def _depth_init(v: dict) -> None:
    _at_least(v, depth=1, mc_samples=10_000, width=16, batch=16)
    if not v["a_values"] or any(a <= 0 for a in v["a_values"]):
        raise ValueError(f"parameter 'a_values': must be positive, got {v['a_values']!r}")


def _approximation(v: dict) -> None:
    from .. import ACTIVATIONS
    from .approx import TARGETS

    widths = v["widths"]
    if len(widths) < 3 or any(int(w) < 1 for w in widths) or sorted(widths) != list(widths):
        raise ValueError(f"parameter 'widths': at least 3 increasing positive ints, got {widths!r}")
    if unknown := [t for t in v["targets"] if t not in TARGETS]:
        raise ValueError(f"parameter 'targets': unknown {unknown}; known: {', '.join(sorted(TARGETS))}")
    if unknown := [a for a in v["activations"] if a not in ACTIVATIONS]:
        raise ValueError(f"parameter 'activations': unknown {unknown}; known: {', '.join(sorted(ACTIVATIONS))}")
    _at_least(v, steps=0)


def _comparison(v: dict) -> None:
    from . import ACTIVATION_PIECES

    if unknown := [n for n in v["others"] if n not in ACTIVATION_PIECES]:
        raise ValueError(f"parameter 'others': unknown {unknown}; known: {', '.join(sorted(ACTIVATION_PIECES))}")
    _at_least(v, check_points=10001)


THEORY_RULES: dict[str, Callable[[dict], None]] = {
    "theory_definition": _definition,
    "theory_bounds": _bounds,
    "theory_depth_init": _depth_init,
    "theory_approximation": _approximation,
    "theory_comparison": _comparison,
}


def check_theory_notebook(name: str, namespace: dict) -> dict:
    """:func:`apalu.lab.params.check_notebook`, then the notebook's own rules; the parameters."""
    values = check_notebook(name, namespace)
    THEORY_RULES.get(name, lambda _: None)(values)
    return values
