"""The theory notebooks' own parameter rules (apalu.theory.notebook): defaults pass, and each
rule names the parameter it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from apalu.lab.params import declared_parameters
from apalu.theory.notebook import THEORY_RULES

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _defaults(name: str) -> dict:
    return {k: v for k, v in declared_parameters(NOTEBOOKS / f"{name}.ipynb").items()}


@pytest.mark.parametrize("name", sorted(THEORY_RULES))
def test_the_defaults_pass(name):
    THEORY_RULES[name](_defaults(name))


@pytest.mark.parametrize("name,change,match", [
    ("theory_definition", {"x_min": 1.0}, "x_min < 0 < x_max"),
    ("theory_definition", {"grid_points": 5}, "'grid_points'"),
    ("theory_bounds", {"x_max": 2.0}, "'x_max'"),
    ("theory_depth_init", {"a_values": [1.0, -1.0]}, "'a_values'"),
    ("theory_depth_init", {"mc_samples": 10}, "'mc_samples'"),
    ("theory_approximation", {"widths": [4, 2, 8]}, "'widths'"),
    ("theory_approximation", {"targets": ["smooth", "nope"]}, "'targets': unknown \\['nope'\\]"),
    ("theory_approximation", {"activations": ["apalu", "nope"]}, "'activations': unknown"),
    ("theory_comparison", {"others": ["nope"]}, "'others': unknown"),
    ("theory_comparison", {"check_points": 10}, "'check_points'"),
])
def test_a_bad_value_is_named(name, change, match):
    with pytest.raises(ValueError, match=match):
        THEORY_RULES[name]({**_defaults(name), **change})
