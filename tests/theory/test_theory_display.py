"""The theory notebooks' shared helpers (apalu.theory.display)."""

import numpy as np
import pytest
import sympy as sp
import torch

import apalu
from apalu import theory as T
from apalu.theory import display as D


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_autograd_derivative_matches_sympy(order):
    xs = np.linspace(-3, 3, 61)
    xs = xs[xs != 0]  # f'' jumps at 0
    got = D.autograd_derivative(xs, 0.8, 1.3, order)
    assert got.dtype == np.float64 and got.shape == xs.shape
    np.testing.assert_allclose(got, T.lambdify_piecewise(order)(xs, 0.8, 1.3), rtol=1e-10, atol=1e-12)


def test_show_displays_latex(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    D.show("f'(x)", T.b * sp.exp(T.x))
    assert len(shown) == 1 and isinstance(shown[0], IPython.display.Math)
    assert shown[0].data == "f'(x) = b e^{x}"


def test_setup_seeds_one_thread_and_prints_versions(capsys):
    threads = torch.get_num_threads()
    try:
        D.setup()
        first = torch.rand(3)
        D.setup()
        assert torch.equal(first, torch.rand(3)) and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert capsys.readouterr().out.splitlines()[0] == f"apalu {apalu.__version__} | sympy {sp.__version__}"
