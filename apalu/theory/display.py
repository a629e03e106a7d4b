"""What the theory notebooks share: their set-up, equations shown as LaTeX, and the
implementation's derivatives by autograd (to hold the SymPy results against)."""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch

from .. import __version__
from ..functional import apalu

__all__ = ["setup", "show", "autograd_derivative"]


def setup(seed: int = 0) -> None:
    """One CPU thread and a fixed seed for torch, the notebooks' plot style; prints the versions."""
    import matplotlib.pyplot as plt

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    plt.rcParams.update({"figure.dpi": 96, "axes.grid": True})
    print("apalu", __version__, "| sympy", sp.__version__)


def show(lhs: str, expr) -> None:
    """Display ``lhs = expr`` as LaTeX (``lhs`` is LaTeX, ``expr`` a SymPy expression)."""
    from IPython.display import Math, display

    display(Math(lhs + " = " + sp.latex(expr)))


def autograd_derivative(xs, aa: float, bb: float, order: int = 1) -> np.ndarray:
    """The ``order``-th x-derivative of the implementation at ``xs``, by autograd (float64)."""
    t = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = apalu(t, aa, bb)
    for _ in range(order):
        (y,) = torch.autograd.grad(y.sum(), t, create_graph=True)
    return y.detach().numpy()
