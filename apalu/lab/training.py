"""One training loop for classification, regression and one-class (Deep SVDD) objectives.

:func:`fit` is seeded and deterministic on the CPU, picks the device with ``device="auto"``,
shows an optional tqdm bar, records per-epoch metrics (and per-step losses on request), logs
APALU's a and b per layer/channel, and treats a NaN/inf or exploding loss as a recorded
divergence, not a crash.

>>> from apalu.lab.data import load_dataset
>>> from apalu.lab.models import MLP
>>> from apalu.lab.training import fit
>>> ds = load_dataset("digits", n_train=200)
>>> res = fit(MLP(ds.in_features, 10, width=16), ds, epochs=1, seed=0)
>>> sorted(res.final)[:3]
['diverged', 'diverged_step', 'epochs_run']
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .models import activation_params
from ..optim import param_groups

__all__ = ["FitResult", "fit", "evaluate", "make_optimizer", "minibatch_epochs", "resolve_device", "seed_everything", "tune_lr",
           "METRICS", "OPTIMIZERS", "DEVICES"]

METRICS = {"classification": "accuracy", "regression": "mse", "one_class": "auc"}
OPTIMIZERS = ("adam", "sgd", "adamw")
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" → cuda if available, else mps, else cpu. Unknown names raise ValueError."""
    if not isinstance(device, str) or device.split(":")[0] not in DEVICES:
        raise ValueError(f"unknown device {device!r}; use one of {', '.join(DEVICES)} (or 'cuda:N')")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator (CPU) seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``history``: one row per epoch (epoch, step, train_loss, val_loss, val_<metric>), epoch 0
    being the untrained model. ``steps``: per-step train loss (when ``log_steps``).
    ``act_params``: a, b per APALU layer/channel at each logged step. ``final``: test metrics,
    divergence, wall time.
    """

    model: nn.Module
    history: pd.DataFrame
    steps: pd.DataFrame
    act_params: pd.DataFrame
    final: dict = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return bool(self.final.get("diverged", False))

    def rows(self, **config) -> list[dict]:
        """Tidy rows, one per final metric, each carrying ``config`` (for a results CSV)."""
        keys = [k for k in self.final if isinstance(self.final[k], (int, float, bool, np.floating))]
        return [{**config, "metric": k, "value": float(self.final[k])} for k in keys]


def _loss_fn(task: str):
    if task == "classification":
        return nn.CrossEntropyLoss()
    if task == "regression":
        return nn.MSELoss()
    if task == "one_class":
        return lambda z, c: ((z - c) ** 2).sum(1).mean()
    raise ValueError(f"unknown task {task!r}; known: {', '.join(METRICS)}")


@torch.no_grad()
def _svdd_center(model, X, device, batch_size, eps=0.1):
    """Deep SVDD's centre: the mean initial embedding, coordinates near 0 pushed to ±eps."""
    model.eval()
    z = torch.cat([model(X[i:i + batch_size].to(device)) for i in range(0, len(X), batch_size)])
    c = z.mean(0)
    c[(c.abs() < eps) & (c < 0)] = -eps
    c[(c.abs() < eps) & (c >= 0)] = eps
    return c


@torch.no_grad()
def evaluate(model, X, y, task: str, device="cpu", batch_size: int = 512, center=None) -> dict:
    """Loss and the task's metric (accuracy, MSE, or AUC of the distance to ``center``)."""
    model.eval()
    device = torch.device(device) if isinstance(device, str) else device
    outs = [model(X[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(X), batch_size)]
    out = torch.cat(outs) if outs else torch.empty(0)
    if task == "classification":
        loss = nn.functional.cross_entropy(out, y).item()
        return {"loss": loss, "accuracy": (out.argmax(1) == y).float().mean().item()}
    if task == "regression":
        loss = nn.functional.mse_loss(out, y).item()
        return {"loss": loss, "mse": loss}
    score = ((out - center.cpu()) ** 2).sum(1)
    normal = y == 0
    loss = score[normal].mean().item() if normal.any() else float("nan")
    if not torch.isfinite(score).all() or y.min() == y.max():
        return {"loss": loss, "auc": float("nan")}
    from sklearn.metrics import roc_auc_score

    return {"loss": loss, "auc": float(roc_auc_score(y.numpy(), score.numpy()))}


def minibatch_epochs(model: nn.Module, opt: torch.optim.Optimizer, n_items: int, batch_size: int, epochs: int,
                     seed: int, batch_loss: Callable[[Tensor], Tensor]) -> list[float]:
    """A plain minibatch loop for objectives :func:`fit` does not cover (DifferNet's flow, the KD
    cloner): each epoch shuffles ``range(n_items)`` with a generator seeded by ``seed`` (the same
    order for every arm), steps ``opt`` on ``batch_loss(indices)`` and records the epoch's mean
    loss; a non-finite epoch ends training (the run is then a recorded divergence)."""
    order = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    for _ in range(epochs):
        model.train()
        total, n = 0.0, 0
        for idx in torch.randperm(n_items, generator=order).split(batch_size):
            loss = batch_loss(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        losses.append(total / n)
        if not math.isfinite(losses[-1]):
            break
    return losses


def _fusable(model: nn.Module) -> bool:
    """Whether torch's fused optimizer kernels take every parameter (floating, on a CPU or a GPU)."""
    params = list(model.parameters())
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer every training of the book uses: ``adam``, ``adamw`` or ``sgd`` (momentum 0.9),
    with :func:`apalu.optim.param_groups` (no decay on activation parameters, biases and norms).

    The update is torch's *fused* kernel (one pass over all parameter tensors) where it can run:
    the default single-tensor loop costs per tensor, a fifth of the small MLPs' steps on a CPU,
    and more for models with trainable activations (two tensors per APALU layer). The maths is
    the same for every arm.
    """
    groups = param_groups(model, weight_decay)
    fused = {"fused": True} if _fusable(model) else {}
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, **fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **fused)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, **fused)
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


def fit(
    model: nn.Module,
    data,
    *,
    task: str | None = None,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str = "auto",
    max_steps: int | None = None,
    log_steps: bool = False,
    log_params_every: int = 0,
    divergence_threshold: float = 1e6,
    grad_clip: float | None = None,
    progress: bool = False,
    eval_split: str = "val",
    patience: int | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` and return a :class:`FitResult`.

    Args:
        model: any module (built under the same seed for reproducible runs).
        data: an :class:`apalu.data.Dataset`.
        task: defaults to ``data.task``.
        epochs, lr, batch_size, optimizer ("adam", "adamw", "sgd" with momentum 0.9),
        weight_decay: as usual (no decay on APALU/PReLU parameters, biases and norms).
        seed: seeds the shuffling (and Python/NumPy/torch global RNGs).
        device: "auto", "cpu", "cuda", "cuda:N", "mps". On the CPU, fit turns on
            ``torch.use_deterministic_algorithms(True, warn_only=True)`` (process-wide). Runs are
            bit-reproducible for a fixed package state; a bit-level change to APALU's kernels
            (apalu.functional) changes the trajectories, so stored notebook outputs must then be
            re-executed.
        max_steps: stop after this many optimizer steps (for step-budgeted comparisons).
        log_steps: record the train loss of every step in ``steps``.
        log_params_every: log APALU's a, b every this many steps (0: once per epoch).
        divergence_threshold: a loss above this (or NaN/inf) stops the run as diverged.
        grad_clip: clip the global gradient norm to this value.
        progress: show a tqdm bar.
        eval_split: "val" or "test" for the per-epoch metric; the final metrics use test.
        patience: early stopping on the validation loss: stop after this many epochs without
            improvement and restore the weights of the best epoch (None: train the whole budget).
            Needs ``eval_split="val"`` (stopping on the test set would leak it).
    """
    data_task = getattr(data, "task", None)
    task = task or data_task
    if task not in METRICS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(METRICS)}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if patience is not None and (patience < 1 or eval_split != "val"):
        raise ValueError(f"patience must be >= 1 and stop on the validation split, got patience={patience}, "
                         f"eval_split={eval_split!r}")
    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    gen = seed_everything(seed)
    model = model.to(dev)
    loss_fn = _loss_fn(task)
    opt = make_optimizer(model, optimizer, lr, weight_decay)
    Xtr, ytr = data.X_train, data.y_train
    Xev, yev = (data.X_val, data.y_val) if eval_split == "val" else (data.X_test, data.y_test)
    if len(Xev) == 0:
        Xev, yev = data.X_test, data.y_test
    center = _svdd_center(model, Xtr, dev, 512) if task == "one_class" else None
    metric = METRICS[task]
    n = len(Xtr)
    steps_per_epoch = math.ceil(n / batch_size)
    total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)

    hist, step_rows, par_rows = [], [], []

    def log_params(step, epoch):
        for r in activation_params(model):
            par_rows.append({"step": step, "epoch": epoch, **r})

    def log_epoch(epoch, step, train_loss):
        ev = evaluate(model, Xev, yev, task, dev, center=center)
        hist.append({"epoch": epoch, "step": step, "train_loss": train_loss, f"{eval_split}_loss": ev["loss"],
                     f"{eval_split}_{metric}": ev[metric]})

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"fit {type(model).__name__}", leave=False)
    t0 = time.perf_counter()
    log_epoch(0, 0, float("nan"))
    log_params(0, 0)
    best_loss, best_state, best_epoch, stale = math.inf, None, 0, 0
    step, diverged, diverged_step, epoch = 0, False, None, 0
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        running, count = 0.0, 0
        for i in range(0, n, batch_size):
            if step >= total:
                break
            idx = perm[i:i + batch_size]
            if task == "one_class" and len(idx) < 2 and n >= 2:
                continue  # BatchNorm in train mode needs two samples
            xb, yb = Xtr[idx].to(dev), ytr[idx].to(dev)
            out = model(xb)
            loss = loss_fn(out, center if task == "one_class" else yb)
            lv = loss.item()
            if not math.isfinite(lv) or lv > divergence_threshold:
                diverged, diverged_step = True, step
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            step += 1
            running += lv * len(idx)
            count += len(idx)
            if log_steps:
                step_rows.append({"step": step, "epoch": epoch, "loss": lv})
            if log_params_every and step % log_params_every == 0:
                log_params(step, epoch)
            if bar is not None:
                bar.update(1)
        if diverged:
            break
        log_epoch(epoch, step, running / max(count, 1))
        if not log_params_every:
            log_params(step, epoch)
        if patience is not None:
            val_loss = hist[-1][f"{eval_split}_loss"]
            if val_loss < best_loss:
                best_loss, best_epoch, stale = val_loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= patience:
                    break
        if step >= total:
            break
    if bar is not None:
        bar.close()
    if best_state is not None and not diverged:
        model.load_state_dict(best_state)  # early stopping: the best validation epoch's weights
    final = {"diverged": diverged, "diverged_step": -1 if diverged_step is None else diverged_step,
             "epochs_run": epoch, "steps": step}
    if patience is not None:
        final["best_epoch"] = best_epoch
    if diverged:
        final.update({"test_loss": float("nan"), f"test_{metric}": float("nan")})
    else:
        te = evaluate(model, data.X_test, data.y_test, task, dev, center=center)
        if task != "one_class":  # the fitted model on (up to 5,000 of) its own training data
            tr = evaluate(model, Xtr[:5000], ytr[:5000], task, dev)
            final.update({"train_eval_loss": tr["loss"], f"train_{metric}": tr[metric]})
        final.update({"test_loss": te["loss"], f"test_{metric}": te[metric],
                      "train_loss": hist[-1]["train_loss"], f"{eval_split}_{metric}": hist[-1][f"{eval_split}_{metric}"]})
        if best_state is not None:
            best = hist[best_epoch]
            final.update({f"{eval_split}_{metric}": best[f"{eval_split}_{metric}"],
                          f"{eval_split}_loss": best[f"{eval_split}_loss"]})
    final["wall_s"] = time.perf_counter() - t0
    if center is not None:
        model.center = center
    return FitResult(model, pd.DataFrame(hist), pd.DataFrame(step_rows), pd.DataFrame(par_rows), final)


def tune_lr(build: Callable[[], nn.Module], data, lrs, *, seed: int, fit_kw: dict | None = None,
            device: str = "cpu") -> tuple[float, pd.DataFrame]:
    """Pick a learning rate for one arm on the validation split, before any test seed runs.

    ``build`` makes the arm's model (called under ``seed_everything(seed)`` once per learning
    rate, so each candidate starts from the same weights); each is trained with ``fit_kw`` (the
    same budget for every arm) and scored by its final validation loss, a diverged run by +inf.
    Returns the best learning rate (the smallest among ties) and one row per candidate
    (``lr``, ``val_loss``, ``diverged``). Use a tuning ``seed`` that no test run uses.
    """
    lrs = [float(lr) for lr in lrs]
    if not lrs or any(not (math.isfinite(lr) and lr > 0) for lr in lrs):
        raise ValueError(f"tune_lr needs a non-empty list of learning rates > 0, got {lrs}")
    if len(getattr(data, "X_val", ())) == 0:
        raise ValueError(f"tune_lr needs a validation split; dataset {getattr(data, 'name', '?')!r} has none")
    fit_kw = {**(fit_kw or {}), "eval_split": "val"}
    rows = []
    for lr in lrs:
        seed_everything(seed)
        res = fit(build(), data, lr=lr, seed=seed, device=device, **fit_kw)
        val_loss = math.inf if res.diverged else float(res.history["val_loss"].iloc[-1])
        if "best_epoch" in res.final and not res.diverged:
            val_loss = float(res.history["val_loss"].iloc[res.final["best_epoch"]])
        rows.append({"lr": lr, "val_loss": val_loss if math.isfinite(val_loss) else math.inf,
                     "diverged": bool(res.diverged)})
    table = pd.DataFrame(rows)
    best = table.sort_values(["val_loss", "lr"], kind="stable").iloc[0]
    return float(best["lr"]), table
