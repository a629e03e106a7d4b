"""The CIFAR-10 training recipe of the paper's image-classification claims, parameterised.

SGD with momentum 0.9 and Nesterov off, learning rate 0.1 with a cosine schedule to 0 over the
run (stepped per epoch), weight decay 5e-4 on weights only (not on APALU's a, b, PReLU slopes,
norms or biases: :func:`apalu.param_groups`), random 32×32 crops of the 4-pixel zero-padded
image and horizontal flips, batch 128, 200 epochs. This is the recipe of kuangliu/pytorch-cifar
(``main.py``: SGD 0.1, momentum 0.9, 5e-4, CosineAnnealingLR(T_max=200), RandomCrop(32, 4),
RandomHorizontalFlip), whose README lists MobileNetV2 at 94.43% and GoogLeNet at 95.04% test
accuracy with ReLU; :data:`RELU_ANCHOR` is the range a ReLU run of this recipe is expected to
land in (a run below it means the recipe, not the activation, is off).

Augmentation runs on the device, per batch, from one seeded generator, so a run is a function
of its seed: the arms of one seed see the same crops, flips and batch order (paired by seed).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..optim import param_groups

__all__ = ["CifarRecipe", "RELU_ANCHOR", "augment", "make_optimizer", "train_cifar", "paired_cifar_runs"]

#: Expected ReLU test accuracy (%) of :class:`CifarRecipe` at 200 epochs, from public CIFAR-10
#: implementations (kuangliu/pytorch-cifar's README: MobileNetV2 94.43, GoogLeNet 95.04; other
#: reimplementations report 93-94 for MobileNetV2): the anchor a GPU sweep checks its ReLU arm
#: against before any activation comparison is read.
RELU_ANCHOR: dict[str, tuple[float, float]] = {"mobilenetv2": (93.0, 94.5), "googlenet": (93.0, 95.0)}


@dataclass(frozen=True)
class CifarRecipe:
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    crop_padding: int = 4
    flip: bool = True
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        problems = [f"{k} must be positive, got {v}" for k, v in
                    (("epochs", self.epochs), ("batch_size", self.batch_size), ("lr", self.lr),
                     ("eval_batch_size", self.eval_batch_size)) if not v > 0]
        problems += [f"{k} must be >= 0, got {v}" for k, v in
                     (("momentum", self.momentum), ("weight_decay", self.weight_decay),
                      ("crop_padding", self.crop_padding)) if v < 0]
        if problems:
            raise ValueError("CifarRecipe: " + "; ".join(problems))

    def as_dict(self) -> dict:
        return asdict(self)


def augment(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crops of the zero-padded batch ``x`` (N, C, H, W) back to H×W, and horizontal
    flips with probability 1/2; the offsets and flips are drawn from ``generator`` (on the CPU,
    so a seed gives the same augmentation on any device)."""
    n, _, h, w = x.shape
    if padding:
        padded = nn.functional.pad(x, (padding,) * 4)
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # (N, H)
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])  # (N, W)
        idx = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def make_optimizer(model: nn.Module, recipe: CifarRecipe, steps_per_epoch: int):
    """SGD (momentum, weight decay on weights only) and a per-step cosine schedule to 0."""
    opt = torch.optim.SGD(param_groups(model, recipe.weight_decay), lr=recipe.lr,
                          momentum=recipe.momentum)
    total = recipe.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    return opt, sched


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch])
        loss += nn.functional.cross_entropy(out, y[i:i + batch], reduction="sum").item()
        correct += int((out.argmax(1) == y[i:i + batch]).sum())
    return correct / len(x), loss / len(x)


@dataclass
class CifarRun:
    """What one training run of the recipe gives: per-epoch history and final test numbers."""

    test_accuracy: float
    test_loss: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0


def train_cifar(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor,
                x_test: torch.Tensor, y_test: torch.Tensor, recipe: CifarRecipe = CifarRecipe(),
                seed: int = 0, device: str | torch.device = "cpu", log=None) -> CifarRun:
    """Train ``model`` with ``recipe`` on normalised image tensors (N, 3, 32, 32) and test it.

    The batch order and the augmentation come from a generator seeded with ``seed``; the
    model's initial weights are the caller's (seed them the same way for every arm)."""
    if x_train.ndim != 4 or x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"train_cifar: expected image batches (N, C, H, W) of one shape, got "
                         f"{tuple(x_train.shape)} and {tuple(x_test.shape)}")
    device = torch.device(device)
    model = model.to(device)
    xtr, ytr = x_train.to(device), y_train.to(device)
    xte, yte = x_test.to(device), y_test.to(device)
    gen = torch.Generator().manual_seed(seed)
    steps = math.ceil(len(xtr) / recipe.batch_size)
    opt, sched = make_optimizer(model, recipe, steps)
    history, t0 = [], time.perf_counter()
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(xtr), generator=gen).to(device)
        total = 0.0
        for i in range(0, len(xtr), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            xb = augment(xtr[idx], recipe.crop_padding, recipe.flip, gen)
            loss = nn.functional.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        row = {"epoch": epoch + 1, "train_loss": total / len(xtr), "lr": sched.get_last_lr()[0]}
        history.append(row)
        if log:
            log(row)
    seconds = time.perf_counter() - t0
    acc, loss = _accuracy(model, xte, yte, recipe.eval_batch_size)
    return CifarRun(test_accuracy=acc, test_loss=loss, history=history, seconds=seconds,
                    images_per_s=recipe.epochs * len(xtr) / max(seconds, 1e-9))


def paired_cifar_runs(ds, models: list[str], activations: list[str], seeds: list[int], *,
                      recipe: CifarRecipe = CifarRecipe(), device: str | torch.device = "cpu",
                      width: float = 1.0) -> list[dict]:
    """Every (model, activation, seed) of the recipe on ``ds`` (a CIFAR-10
    :class:`apalu.lab.data.Dataset`): one row each with ``model, activation, seed,
    test_accuracy, test_loss, images_per_s``. For one seed, every arm starts from the same
    non-activation weights (the torch seed is set before each model is built; a and b come from
    the model's own generator) and sees the same batches and augmentation (paired by seed)."""
    from .cifar import make_cifar_model  # the architectures import the lab's models
    from .training import resolve_device

    device = resolve_device(device) if isinstance(device, str) else device  # "auto": CUDA if present
    rows = []
    for name in models:
        for seed in seeds:
            for act in activations:
                torch.manual_seed(seed)
                model = make_cifar_model(name, act, width=width)
                run = train_cifar(model, ds.X_train, ds.y_train, ds.X_test, ds.y_test,
                                  recipe=recipe, seed=seed, device=device)
                rows.append({"model": name, "activation": act, "seed": seed,
                             "test_accuracy": run.test_accuracy, "test_loss": run.test_loss,
                             "images_per_s": run.images_per_s})
    return rows
