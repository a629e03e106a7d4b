"""The (a, b) pair parameters of the theory notebooks are checked by apalu.lab.params."""

import pytest

from apalu.lab import params


@pytest.mark.parametrize("name", ["ab_pairs", "gain_pairs", "apalu_pairs"])
def test_pairs_accept_positive_pairs(name):
    assert params.validate(**{name: [(1.0, 1.5), [0.5, 2]]})[name] == [(1.0, 1.5), [0.5, 2]]


@pytest.mark.parametrize("value", [[], [(1.0, 0.0)], [(-1, 1)], [(1, 1, 1)], [(True, 1)], [(1, "2")]])
def test_pairs_refuse_others(value):
    with pytest.raises(ValueError, match="parameter 'ab_pairs': must be a non-empty list of \\(a, b\\) with a, b > 0"):
        params.validate(ab_pairs=value)
