"""One-hidden-layer fits for the universal-approximation demonstration.

:func:`fit_sup_error` fits ``x ↦ Σ_j c_j·act(w_j x + β_j) + c_0`` to a target on an interval and
returns the sup-norm error on a dense grid. The fit is deterministic for a given seed:

1. hidden units with random slopes and signs, and centres ``−β_j/w_j`` stratified over the interval
   (one per cell of a uniform partition, jittered);
2. the output layer by least squares (the best approximation with those hidden units);
3. a short full-batch Adam refinement of every parameter (APALU's a and b included), keeping the
   best iterate by sup error.

This bounds the best achievable error from above; the demonstration is that it keeps falling as
the width grows, for APALU as for ReLU and GELU.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from ..registry import make_activation

__all__ = ["TARGETS", "target_fn", "OneHidden", "fit_sup_error"]

TARGETS: dict[str, Callable[[Tensor], Tensor]] = {
    "smooth": lambda t: torch.exp(-t**2 / 2) + 0.3 * t,
    "kinked": lambda t: torch.abs(torch.sin(2 * t)),
    "oscillating": lambda t: torch.sin(6 * t) * torch.exp(-t**2 / 8),
}


def target_fn(name: str) -> Callable[[Tensor], Tensor]:
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    return TARGETS[name]


class OneHidden(nn.Module):
    """``x (N,1) → act(W x + β) (N, width) → linear (N, 1)``."""

    def __init__(self, width: int, activation: str, generator: torch.Generator, interval=(-3.0, 3.0)):
        super().__init__()
        lo, hi = interval
        self.hidden = nn.Linear(1, width, dtype=torch.float64)
        self.act = (
            make_activation("apalu", init={"a": 1.0, "b": 1.5}, dtype=torch.float64)
            if activation == "apalu"
            else make_activation(activation)
        )
        self.out = nn.Linear(width, 1, dtype=torch.float64)
        with torch.no_grad():
            scale = (width / (hi - lo)) * (0.5 + torch.rand(width, generator=generator, dtype=torch.float64))
            sign = torch.where(torch.rand(width, generator=generator) < 0.5, -1.0, 1.0).double()
            # stratified centres: one per cell of a uniform partition of the interval
            cell = (torch.arange(width, dtype=torch.float64) + torch.rand(width, generator=generator, dtype=torch.float64))
            centre = lo + (hi - lo) * cell / width
            w = sign * scale.clamp(min=0.5)
            self.hidden.weight.copy_(w[:, None])
            self.hidden.bias.copy_(-w * centre)

    def features(self, t: Tensor) -> Tensor:
        return self.act(self.hidden(t))

    def forward(self, t: Tensor) -> Tensor:
        return self.out(self.features(t))


def fit_sup_error(
    target: str,
    activation: str,
    width: int,
    seed: int = 0,
    steps: int = 200,
    lr: float = 3e-3,
    n_train: int = 512,
    n_eval: int = 2001,
    interval: tuple[float, float] = (-3.0, 3.0),
) -> float:
    """Sup-norm error on ``n_eval`` grid points of the best iterate of a width-``width`` fit."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    f = target_fn(target)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lo, hi = interval
    t_train = torch.linspace(lo, hi, n_train, dtype=torch.float64)[:, None]
    t_eval = torch.linspace(lo, hi, n_eval, dtype=torch.float64)[:, None]
    y_train, y_eval = f(t_train), f(t_eval)
    net = OneHidden(width, activation, g, interval)
    with torch.no_grad():  # least-squares output layer (with a tiny ridge for conditioning)
        phi = torch.cat([net.features(t_train), torch.ones_like(t_train)], dim=1)
        gram = phi.T @ phi + 1e-10 * torch.eye(phi.shape[1], dtype=phi.dtype) * phi.pow(2).mean()
        coef = torch.linalg.solve(gram, phi.T @ y_train)
        net.out.weight.copy_(coef[:-1].T)
        net.out.bias.copy_(coef[-1])

    def sup_err() -> float:
        with torch.no_grad():
            return float((net(t_eval) - y_eval).abs().max())

    best = sup_err()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for step in range(steps):
        opt.zero_grad()
        loss = (net(t_train) - y_train).pow(2).mean()
        loss.backward()
        opt.step()
        if step % 10 == 9 or step == steps - 1:
            err = sup_err()
            if math.isfinite(err) and err < best:
                best = err
    return best
