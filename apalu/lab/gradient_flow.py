"""Gradient flow through depth: per-layer weight-gradient norms of deep MLPs, at initialization
and after a fixed training budget, for APALU and fixed activations, paired by seed.

Every arm uses its own variance-preserving weight gain (``weight_init="gain"``: std =
g/√fan_in with g = 1/√E[f(z)²], :func:`apalu.lab.models.variance_preserving_gain`), so the
forward signal keeps unit variance and what is left is the backward criticality χ₁
(:mod:`apalu.theory.criticality`). For one seed every arm gets the same standard-normal weight
draws (scaled by its gain), the same measurement batch and the same training batches.

:func:`measure` returns one row per (activation, depth, seed, stage, layer); :func:`layer_ratios`
one row per run with ``log10_grad_ratio`` = log10(‖∇W₁‖ / ‖∇W_L‖) (> 0: the input side gets
more gradient than the output side); :func:`decision_frame` the frame the pre-registered
protocol of ``exp-vanishing-gradients`` decides (:func:`apalu.lab.protocol.decide`).
"""

from __future__ import annotations

import itertools
import math
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from .data import Dataset
from .models import MLP, activation_params
from .training import resolve_device, seed_everything

__all__ = ["STAGES", "measure", "layer_ratios", "decision_frame"]

STAGES = ("init", "trained")
_DATA_SEED_OFFSET = 0x6F10  # batches drawn from their own generator: the same for every arm


def _grad_norms(net: MLP, X: torch.Tensor, y: torch.Tensor) -> list[float]:
    net.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(X), y).backward()
    return [float(lin.weight.grad.norm()) for lin in net.hidden]


def _layer_ab(net: MLP, depth: int) -> tuple[list[float], list[float]]:
    rows = activation_params(net)
    if not rows:
        return [math.nan] * depth, [math.nan] * depth
    ab = pd.DataFrame(rows).groupby("layer_index")[["a", "b"]].mean()
    return ab["a"].tolist(), ab["b"].tolist()


def _one_run(ds: Dataset, activation: str, depth: int, seed: int, *, width: int, steps: int, lr: float,
             batch: int, apalu_init: str, weight_init: str, dev: torch.device) -> list[dict]:
    seed_everything(seed)
    act_kwargs = {"init": apalu_init} if activation == "apalu" else None
    net = MLP(ds.in_features, ds.n_outputs, width=width, depth=depth, activation=activation,
              act_kwargs=act_kwargs, weight_init=weight_init).to(dev)
    data_gen = torch.Generator().manual_seed(seed + _DATA_SEED_OFFSET)
    n = len(ds.X_train)
    measure_idx = torch.randperm(n, generator=data_gen)[:batch]
    Xm, ym = ds.X_train[measure_idx].to(dev), ds.y_train[measure_idx].to(dev)
    config = {"activation": activation, "depth": depth, "seed": seed, "width": width, "steps": steps, "lr": lr,
              "weight_init": weight_init}
    rows: list[dict] = []

    def record(stage: str, completed: int) -> None:
        norms = _grad_norms(net, Xm, ym)
        a, b = _layer_ab(net, depth)
        rows.extend({**config, "stage": stage, "steps_done": completed, "layer": i + 1, "grad_norm": g,
                     "a": a[i], "b": b[i]} for i, g in enumerate(norms))

    record("init", 0)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    done = 0
    for _ in range(steps):
        idx = torch.randint(n, (batch,), generator=data_gen)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(ds.X_train[idx].to(dev)), ds.y_train[idx].to(dev))
        if not torch.isfinite(loss):  # diverged: the trained gradients are recorded as NaN
            break
        loss.backward()
        opt.step()
        done += 1
    if done < steps:
        rows.extend({**config, "stage": "trained", "steps_done": done, "layer": i + 1, "grad_norm": math.nan,
                     "a": math.nan, "b": math.nan} for i in range(depth))
    else:
        record("trained", done)
    return rows


def measure(ds: Dataset, depths: Iterable[int], activations: Iterable[str], seeds: Iterable[int], *,
            width: int = 64, steps: int = 50, lr: float = 0.01, batch: int = 128, apalu_init: str = "0,2",
            weight_init: str = "gain", device: str = "cpu") -> pd.DataFrame:
    """Per-layer weight-gradient norms of ``depth``-layer MLPs of ``width`` units, on one fixed
    batch of ``batch`` training examples, at init and after ``steps`` steps of plain SGD (lr
    ``lr``, batches of ``batch``, cross-entropy). APALU's a, b are drawn by ``apalu_init``;
    its rows carry each layer's a and b. A run whose loss turns non-finite keeps NaN norms
    for its "trained" stage (never dropped)."""
    if ds.task != "classification":
        raise ValueError(f"gradient flow needs a classification dataset, got {ds.name!r} ({ds.task})")
    depths, activations, seeds = list(depths), list(activations), list(seeds)
    if not depths or min(depths) < 2:
        raise ValueError(f"depths must be >= 2 (a first and a last layer), got {depths}")
    if steps < 1 or width < 1 or batch < 1 or not lr > 0:
        raise ValueError(f"steps, width, batch >= 1 and lr > 0 needed, got {steps}, {width}, {batch}, {lr}")
    dev = resolve_device(device)
    # deep products of small factors are full of subnormals (10-100x slower on x86): flush them
    torch.set_flush_denormal(True)
    try:
        rows = [r for act, depth, seed in itertools.product(activations, depths, seeds)
                for r in _one_run(ds, act, depth, seed, width=width, steps=steps, lr=lr, batch=batch,
                                  apalu_init=apalu_init, weight_init=weight_init, dev=dev)]
    finally:
        torch.set_flush_denormal(False)
    return pd.DataFrame(rows)


def layer_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run and stage: ``log10_grad_ratio`` = log10 ‖∇W₁‖ − log10 ‖∇W_L‖ (NaN when
    either norm is not finite, −inf when the first underflowed to 0), ``depth`` and the
    APALU layers' a, b as tuples (for the χ₁ prediction)."""
    keys = ["activation", "depth", "seed", "stage"]
    out = []
    for key, g in df.sort_values("layer").groupby(keys, sort=True):
        first, last = float(g["grad_norm"].iloc[0]), float(g["grad_norm"].iloc[-1])
        if not (math.isfinite(first) and math.isfinite(last)) or last <= 0:
            ratio = math.nan
        elif first == 0:
            ratio = -math.inf
        else:
            ratio = math.log10(first) - math.log10(last)
        out.append({**dict(zip(keys, key)), "log10_grad_ratio": ratio,
                    "a_layers": tuple(g["a"].tolist()), "b_layers": tuple(g["b"].tolist())})
    return pd.DataFrame(out)


def decision_frame(ratios: pd.DataFrame, depth: int, stage: str = "trained") -> pd.DataFrame:
    """The protocol's frame: columns arm, seed, log10_grad_ratio, at one depth and stage."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    sel = ratios[(ratios["depth"] == depth) & (ratios["stage"] == stage)]
    if sel.empty:
        raise ValueError(f"no runs at depth {depth}, stage {stage!r}; depths: {sorted(ratios['depth'].unique())}")
    return sel.rename(columns={"activation": "arm"})[["arm", "seed", "log10_grad_ratio"]].reset_index(drop=True)
