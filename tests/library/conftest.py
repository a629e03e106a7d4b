"""Fixtures shared by the implementation tests: run an APALU implementation with gradients, and
compare two implementations on the same inputs."""

from __future__ import annotations

import pytest
import torch


def _grads(fn, x, a, b, g) -> list[torch.Tensor]:
    """[y, grad x, grad a, grad b] of ``fn(x, a, b)`` with incoming gradient ``g`` (fresh leaves)."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, a, b)]
    y = fn(*leaves)
    y.backward(g)
    return [y.detach()] + [t.grad for t in leaves]


def _assert_same_as(fn, reference, x, a, b, g, rtol: float, atol: float) -> None:
    """Values and all three gradients of ``fn`` match ``reference`` within (rtol, atol)."""
    for got, want in zip(_grads(fn, x, a, b, g), _grads(reference, x, a, b, g)):
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


@pytest.fixture
def grads():
    return _grads


@pytest.fixture
def assert_same_as():
    return _assert_same_as
