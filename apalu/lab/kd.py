"""Multiresolution knowledge distillation (KD; Salehi et al. 2021) for anomaly detection.

A frozen ImageNet-pretrained VGG-16 (the *teacher*) and a smaller VGG-like *cloner* (the
student) see the same normal images; the cloner learns to reproduce the teacher's activations
at four depths (VGG-16's ReLU outputs after conv2_2, conv3_3, conv4_3 and conv5_3:
torchvision ``features`` indices 8, 15, 22, 29). Per image, with a_l and â_l the teacher's and
the cloner's maps at layer l, flattened:

    loss = Σ_l (1 − cos(a_l, â_l))  +  λ · Σ_l mean((a_l − â_l)²)      (direction + λ · value)

The cloner is trained on normal images to minimise the batch mean; the anomaly score of a test
image is its own loss, and the metric is the test AUROC. The cloner follows the KD authors'
configuration "S": 3×3 convolutions (padding 1, with bias, Xavier-uniform weights, no batch
norm) with channels
16, 16, M, 16, 128, M, 16, 16, 256, M, 16, 16, 512, M, 16, 16, 512, M ("M" = 2×2 max-pool),
so its 4th, 7th, 10th and 13th activations have the teacher's shapes at the four layers. Every
activation of the cloner is the **activation under test**, built by the lab's activation
factory as in :mod:`apalu.lab.cifar`: for one seed every other weight is the same in every arm.

The teacher is frozen and sees no augmentation, so its targets are computed once per dataset
and shared by every arm and seed.

Paper defaults (:class:`KDConfig`): 128×128 images, λ = 0.01, Adam lr 1e-3, batch 64, 201
epochs. The tests use 32×32 images and a few epochs.

Example:
    >>> cloner = Cloner("relu")
    >>> [tuple(m.shape[1:]) for m in cloner(torch.zeros(1, 3, 32, 32))]
    [(128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import anomaly_auroc, dataset_images, features_at, imagenet_normalize, vgg_layers
from .differnet import MethodResult
from .models import _ActFactory
from .training import minibatch_epochs, seed_everything

__all__ = ["KDConfig", "Cloner", "TEACHER_LAYERS", "CLONER_CHANNELS", "kd_loss", "teacher_targets", "train_kd",
           "run_kd"]

TEACHER_LAYERS = (8, 15, 22, 29)  # VGG-16 features: ReLU after conv2_2, conv3_3, conv4_3, conv5_3
CLONER_CHANNELS = (16, 16, "M", 16, 128, "M", 16, 16, 256, "M", 16, 16, 512, "M", 16, 16, 512, "M")
_CLONER_TAPS = (3, 6, 9, 12)  # the cloner's activations (0-based) matched to TEACHER_LAYERS


@dataclass(frozen=True)
class KDConfig:
    """KD's sizes and optimiser; defaults are the paper's (see the module docstring)."""

    image_size: int = 128
    epochs: int = 201
    batch_size: int = 64
    lr: float = 1e-3
    lamda: float = 0.01

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("lr", "lamda"):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or (f.name == "lr" and not v):
                    raise ValueError(f"KD {f.name}: must be a positive number, got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"KD {f.name}: must be an integer >= 1, got {v!r}")
        if self.image_size < 32:
            raise ValueError(f"KD image_size: at least 32 (five 2×2 pools), got {self.image_size}")


class Cloner(nn.Module):
    """The KD student (configuration "S"); x (N, 3, H, W) → its four matched maps."""

    def __init__(self, activation: str = "relu", **act_kwargs) -> None:
        super().__init__()
        # Xavier-uniform convolutions, as the KD authors' cloner
        self.features = vgg_layers(CLONER_CHANNELS, _ActFactory(activation, act_kwargs),
                                   conv_init=nn.init.xavier_uniform_)
        acts = [i for i, m in enumerate(self.features) if not isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
        self._taps = [acts[k] for k in _CLONER_TAPS]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                out.append(x)
                if len(out) == len(self._taps):
                    break
        return out


def kd_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], lamda: float) -> torch.Tensor:
    """Per-image loss (N,): Σ_l (1 − cos) + λ · Σ_l MSE over the flattened maps."""
    total = 0.0
    for s, t in zip(student, teacher, strict=True):
        s, t = s.flatten(1), t.flatten(1)
        total = total + (1 - F.cosine_similarity(s, t, dim=1)) + lamda * ((s - t) ** 2).mean(1)
    return total


def teacher_targets(vgg16: nn.Module, images: torch.Tensor, batch_size: int = 32) -> list[torch.Tensor]:
    """The teacher's maps at :data:`TEACHER_LAYERS` for images (N, 3, H, W) in [0, 1]."""
    device = next(vgg16.parameters()).device
    parts = [features_at(vgg16, imagenet_normalize(images[i:i + batch_size].to(device)), TEACHER_LAYERS)
             for i in range(0, len(images), batch_size)]
    return [torch.cat([p[k].cpu() for p in parts]) for k in range(len(TEACHER_LAYERS))]


def train_kd(train_images: torch.Tensor, train_targets: list[torch.Tensor], test_images: torch.Tensor,
             test_targets: list[torch.Tensor], y_test, activation: str, seed: int, cfg: KDConfig = KDConfig(),
             device: str = "cpu", act_kwargs: dict | None = None, val_images: torch.Tensor | None = None,
             val_targets: list[torch.Tensor] | None = None) -> MethodResult:
    """Train a cloner on the normal ``train_images`` (ImageNet-normalised inside) to match
    ``train_targets``; score the test images by their loss; the AUROC against ``y_test``. With
    ``val_images`` and ``val_targets`` (held-out normal images) also their mean loss (to tune
    the learning rate per arm)."""
    seed_everything(seed)
    cloner = Cloner(activation, **(act_kwargs or {})).to(device)
    opt = torch.optim.Adam(cloner.parameters(), lr=cfg.lr)
    x_train = imagenet_normalize(train_images)
    losses = minibatch_epochs(
        cloner, opt, len(x_train), cfg.batch_size, cfg.epochs, seed,
        lambda idx: kd_loss(cloner(x_train[idx].to(device)), [t[idx].to(device) for t in train_targets],
                            cfg.lamda).mean())
    cloner.eval()
    scores = _scores(cloner, test_images, test_targets, cfg, device).numpy()
    val = math.nan if val_images is None else float(_scores(cloner, val_images, val_targets, cfg, device).mean())
    return MethodResult(anomaly_auroc(y_test, scores), losses, scores, val)


def _scores(cloner: Cloner, images: torch.Tensor, targets: list[torch.Tensor], cfg: KDConfig,
            device: str) -> torch.Tensor:
    """Each image's loss (N,), in batches, without gradients."""
    x = imagenet_normalize(images)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), cfg.batch_size):
            sl = slice(i, i + cfg.batch_size)
            out.append(kd_loss(cloner(x[sl].to(device)), [t[sl].to(device) for t in targets], cfg.lamda).cpu())
    return torch.cat(out)


def run_kd(ds, vgg16: nn.Module, activation: str, seed: int, cfg: KDConfig = KDConfig(),
           device: str = "cpu") -> MethodResult:
    """KD on a one-class MVTec :class:`~apalu.lab.data.Dataset` loaded at ``cfg.image_size``
    (train = normal images), with the frozen ``vgg16`` teacher."""
    if ds.input_shape[-1] != cfg.image_size:
        raise ValueError(f"KD: the dataset's images are {ds.input_shape[-1]}px, the config says image_size "
                         f"{cfg.image_size}; load it with image_size={cfg.image_size}")
    vgg16 = vgg16.to(device)
    train, test = dataset_images(ds, "train"), dataset_images(ds, "test")
    return train_kd(train, teacher_targets(vgg16, train), test, teacher_targets(vgg16, test), ds.y_test.numpy(),
                    activation, seed, cfg, device)
