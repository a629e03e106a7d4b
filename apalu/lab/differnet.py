"""DifferNet (Rudolph et al. 2021): a normalizing flow on frozen multi-scale AlexNet features.

Each image is fed to ImageNet-pretrained AlexNet features at ``scales`` resolutions (the
image, then halved each time); each scale's last map is average-pooled to 256 numbers, giving
a feature vector y of dimension D = 256 · scales. A flow f of ``blocks`` affine coupling
blocks (Glow-style, both halves transformed, a fixed random permutation before each) maps y to
z = f(y) and is trained on normal images only by maximum likelihood under z ~ N(0, I):

    loss = mean over the batch of ( ||z||² / 2 − log |det ∂z/∂y| ) / D,

with the soft clamp s → clamp · 0.636 · atan(s / clamp) on every log-scale. The coupling
subnetworks are FrEIA's fully connected ones as DifferNet uses them: Linear(d, hidden) → act →
Linear(hidden, hidden) → act → Linear(hidden, hidden) → act → Linear(hidden, 2·d'), each
``act`` the **activation under test**, built by the lab's activation factory as in :mod:`apalu.lab.cifar`, so for one seed
every other weight (and the permutations) is the same in every arm. The anomaly score of a
test image is the mean of z² over the dimensions, averaged over ``n_transforms_test`` random
rotations of the image; the metric is the test AUROC.

The transformations (rotations by angles uniform in [0°, 360°), as DifferNet's default) are
drawn once per dataset from ``transform_seed`` and the backbone is frozen, so the features
are computed once and shared by every arm and seed; a seed changes the flow's weights and the
batch order.

Paper defaults (:class:`DifferNetConfig`): 448×448 images, 3 scales, 8 coupling blocks,
hidden width 2048, clamp 3, Adam (lr 2e-4, betas (0.8, 0.8), eps 1e-4, weight decay 1e-5),
24 meta-epochs × 8 sub-epochs = 192 epochs, batch 24, 4 rotations per training image and 64
per test image. The tests use 64×64 images, one scale and a few epochs.

Example:
    >>> from apalu.lab.backbones import backbone
    >>> cfg = DifferNetConfig(image_size=64, scales=1, blocks=2, hidden=16, epochs=1,
    ...                       n_transforms=1, n_transforms_test=2)
    >>> feats = differnet_features(backbone("alexnet"), torch.rand(3, 3, 64, 64), cfg, n_transforms=2)
    >>> feats.shape  # (images, transformations, 256 · scales)
    torch.Size([3, 2, 256])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .backbones import anomaly_auroc, dataset_images, imagenet_normalize
from .models import _ActFactory
from .training import minibatch_epochs, seed_everything

__all__ = ["DifferNetConfig", "MethodResult", "config_from", "Flow", "differnet_features", "train_differnet",
           "run_differnet", "ALEXNET_MIN_SIZE"]

ALEXNET_MIN_SIZE = 63  # smallest square input AlexNet's features accept (the last max-pool needs 3×3)


@dataclass(frozen=True)
class DifferNetConfig:
    """DifferNet's sizes and optimiser; defaults are the paper's (see the module docstring)."""

    image_size: int = 448
    scales: int = 3
    blocks: int = 8
    hidden: int = 2048
    clamp: float = 3.0
    epochs: int = 192
    batch_size: int = 24
    lr: float = 2e-4
    n_transforms: int = 4
    n_transforms_test: int = 64
    rotate: bool = True
    transform_seed: int = 0

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("clamp", "lr"):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                    raise ValueError(f"DifferNet {f.name}: must be a positive number, got {v!r}")
            elif f.type in ("int", int) and f.name != "transform_seed":
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"DifferNet {f.name}: must be an integer >= 1, got {v!r}")
        smallest = self.image_size // 2 ** (self.scales - 1)
        if smallest < ALEXNET_MIN_SIZE:
            raise ValueError(f"DifferNet: image_size {self.image_size} at {self.scales} scales gives "
                             f"{smallest}×{smallest} at the smallest, below AlexNet's minimum "
                             f"{ALEXNET_MIN_SIZE}; raise image_size or lower scales")


def config_from(cls, overrides: dict, parameter: str):
    """``cls()`` with ``overrides`` (a notebook parameter's dict); unknown keys and bad values
    raise ValueError naming ``parameter``."""
    if not isinstance(overrides, dict):
        raise ValueError(f"parameter {parameter!r}: expects a dict of sizes, got {overrides!r}")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"parameter {parameter!r}: unknown key(s) {unknown}; known: {', '.join(known)}")
    try:
        return replace(cls(), **overrides)
    except ValueError as err:
        raise ValueError(f"parameter {parameter!r}: {err}") from None


@dataclass(frozen=True)
class MethodResult:
    """One trained model's test AUROC, its per-epoch training loss, the test scores, and its
    training objective on held-out normal images (``val_loss``; NaN when none were given)."""

    auc: float
    losses: list[float]
    scores: np.ndarray
    val_loss: float = math.nan


# ------------------------------------------------------------------ features


def _rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of x (N, C, H, W) by its angle (N,), zeros outside (as torchvision)."""
    rad = degrees * (math.pi / 180.0)
    cos, sin, zero = torch.cos(rad), torch.sin(rad), torch.zeros_like(rad)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def differnet_features(net: nn.Module, images: torch.Tensor, cfg: DifferNetConfig, n_transforms: int,
                       batch_size: int = 32) -> torch.Tensor:
    """Multi-scale pooled AlexNet features of ``n_transforms`` rotations of each image.

    images (N, 3, H, W) in [0, 1] → (N, n_transforms, 256 · scales). The angles come from
    ``cfg.transform_seed`` (none when ``cfg.rotate`` is false: every transformation is the
    image itself)."""
    gen = torch.Generator().manual_seed(cfg.transform_seed)
    angles = (torch.rand(len(images), n_transforms, generator=gen) * 360.0 if cfg.rotate
              else torch.zeros(len(images), n_transforms))
    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device)
            a = angles[start:start + batch_size].to(device)
            per_t = []
            for t in range(n_transforms):
                xt = imagenet_normalize(_rotate(x, a[:, t]) if cfg.rotate else x)
                per_scale = []
                for k in range(cfg.scales):
                    xs = xt if k == 0 else F.interpolate(xt, size=xt.shape[-1] // 2 ** k)  # nearest, as DifferNet
                    per_scale.append(F.adaptive_avg_pool2d(net(xs), 1).flatten(1))
                per_t.append(torch.cat(per_scale, 1))
            out.append(torch.stack(per_t, 1).cpu())
    return torch.cat(out)


# ------------------------------------------------------------------ the flow


def _subnet(d_in: int, hidden: int, d_out: int, act: _ActFactory) -> nn.Sequential:
    """FrEIA's ``F_fully_connected`` (DifferNet's coupling subnetwork): three hidden layers."""
    return nn.Sequential(nn.Linear(d_in, hidden), act(hidden), nn.Linear(hidden, hidden), act(hidden),
                         nn.Linear(hidden, hidden), act(hidden), nn.Linear(hidden, d_out))


class _Coupling(nn.Module):
    """Glow affine coupling on both halves: y1 = x1·e^{s(x2)} + t(x2), y2 = x2·e^{s(y1)} + t(y1)."""

    def __init__(self, dim: int, hidden: int, act: _ActFactory, clamp: float) -> None:
        super().__init__()
        self.d1, self.d2, self.clamp = dim // 2, dim - dim // 2, clamp
        self.from2 = _subnet(self.d2, hidden, 2 * self.d1, act)
        self.from1 = _subnet(self.d1, hidden, 2 * self.d2, act)

    def _log_scale(self, s: torch.Tensor) -> torch.Tensor:
        return self.clamp * 0.636 * torch.atan(s / self.clamp)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = x[:, :self.d1], x[:, self.d1:]
        s2, t2 = self.from2(x2).chunk(2, 1)
        ls2 = self._log_scale(s2)
        y1 = x1 * torch.exp(ls2) + t2
        s1, t1 = self.from1(y1).chunk(2, 1)
        ls1 = self._log_scale(s1)
        y2 = x2 * torch.exp(ls1) + t1
        return torch.cat([y1, y2], 1), ls1.sum(1) + ls2.sum(1)


class Flow(nn.Module):
    """``blocks`` × (fixed permutation, affine coupling); x (N, D) → (z (N, D), log|det| (N,)).

    Build it after ``seed_everything(seed)``: the permutations and linear weights come from the
    global RNG, the activation's own parameters (APALU's a, b) from the factory's generator."""

    def __init__(self, dim: int, activation: str = "relu", blocks: int = 8, hidden: int = 2048,
                 clamp: float = 3.0, **act_kwargs) -> None:
        super().__init__()
        act = _ActFactory(activation, act_kwargs)
        for i in range(blocks):
            self.register_buffer(f"perm{i}", torch.randperm(dim))
        self.couplings = nn.ModuleList(_Coupling(dim, hidden, act, clamp) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        for i, coupling in enumerate(self.couplings):
            x, ld = coupling(x[:, getattr(self, f"perm{i}")])
            log_det = log_det + ld
        return x, log_det


# ------------------------------------------------------------------ training and scoring


def _nll(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """DifferNet's loss: mean over samples of (||z||²/2 − log|det|), divided by the dimension."""
    z, log_det = flow(x)
    return torch.mean(0.5 * (z ** 2).sum(1) - log_det) / x.shape[1]


def train_differnet(train_features: torch.Tensor, test_features: torch.Tensor, y_test, activation: str,
                    seed: int, cfg: DifferNetConfig = DifferNetConfig(), device: str = "cpu",
                    act_kwargs: dict | None = None, val_features: torch.Tensor | None = None) -> MethodResult:
    """Train a flow on ``train_features`` (N, T, D) (every transformation a sample) and score
    ``test_features`` (M, T', D); the AUROC against ``y_test`` (1 = defect). With
    ``val_features`` (held-out normal images, (V, T'', D)) also their mean loss (to tune the
    learning rate per arm)."""
    seed_everything(seed)
    dim = train_features.shape[-1]
    flow = Flow(dim, activation, cfg.blocks, cfg.hidden, cfg.clamp, **(act_kwargs or {})).to(device)
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.lr, betas=(0.8, 0.8), eps=1e-4, weight_decay=1e-5)
    x = train_features.reshape(-1, dim)
    losses = minibatch_epochs(flow, opt, len(x), cfg.batch_size, cfg.epochs, seed,
                              lambda idx: _nll(flow, x[idx].to(device)))
    flow.eval()
    with torch.no_grad():
        m, t, _ = test_features.shape
        z, _ = flow(test_features.reshape(-1, dim).to(device))
        scores = (z ** 2).mean(1).reshape(m, t).mean(1).cpu().numpy()
        val = math.nan if val_features is None else float(_nll(flow, val_features.reshape(-1, dim).to(device)))
    return MethodResult(anomaly_auroc(y_test, scores), losses, scores, val)


def run_differnet(ds, alexnet: nn.Module, activation: str, seed: int, cfg: DifferNetConfig = DifferNetConfig(),
                  device: str = "cpu") -> MethodResult:
    """DifferNet on a one-class MVTec :class:`~apalu.lab.data.Dataset` loaded at
    ``cfg.image_size`` (train = normal images), with the frozen ``alexnet`` features."""
    if ds.input_shape[-1] != cfg.image_size:
        raise ValueError(f"DifferNet: the dataset's images are {ds.input_shape[-1]}px, the config says "
                         f"image_size {cfg.image_size}; load it with image_size={cfg.image_size}")
    alexnet = alexnet.to(device)
    train = differnet_features(alexnet, dataset_images(ds, "train"), cfg, cfg.n_transforms)
    test = differnet_features(alexnet, dataset_images(ds, "test"), cfg, cfg.n_transforms_test)
    return train_differnet(train, test, ds.y_test.numpy(), activation, seed, cfg, device)
