"""MobileNetV2 and GoogLeNet in their standard CIFAR-10 (32×32) form, any activation.

The layouts follow the public CIFAR-10 adaptations in kuangliu/pytorch-cifar
(``models/mobilenetv2.py``, ``models/googlenet.py``): MobileNetV2 keeps the ImageNet block
table but with stride 1 in the stem and in the second stage (32×32 inputs keep 4×4 maps before
the pool); GoogLeNet replaces the ImageNet stem by one 3×3 convolution to 192 channels and
pools 8×8 at the end. Every ReLU of those files is the lab's activation factory's module here, so
``activation="relu"`` is the reference network and ``"apalu"`` swaps each one for its own
APALU (per channel when the registry says the activation takes ``num_parameters``); a and b
come from the model's own generator, so for one seed every other weight is the same in every
arm (paired), and the lab's controls (``apalu_frozen``, ``relu_scaled``) work too.

``width`` scales every channel count (1.0: the standard network); the tests use small widths
to run both architectures end to end on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from .models import _ActFactory as _Activations  # lab names; a, b from the model's own generator

__all__ = ["MobileNetV2", "GoogLeNet", "CIFAR_MODELS", "make_cifar_model"]


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _conv_bn_act(c_in: int, c_out: int, kernel: int, act: _Activations, stride: int = 1,
                 groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups,
                  bias=False),
        nn.BatchNorm2d(c_out), act(c_out))


# --------------------------------------------------------------------------- MobileNetV2


class _InvertedResidual(nn.Module):
    """Expand (1×1), depthwise (3×3), project (1×1, linear); a shortcut at stride 1."""

    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int,
                 act: _Activations) -> None:
        super().__init__()
        hidden = expansion * c_in
        self.stride = stride
        self.body = nn.Sequential(
            _conv_bn_act(c_in, hidden, 1, act),
            _conv_bn_act(hidden, hidden, 3, act, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity()
        if stride == 1 and c_in != c_out:  # kuangliu's form: a projected shortcut at stride 1
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2(nn.Module):
    """MobileNetV2 for 32×32 inputs (2.3 M parameters at width 1 with ReLU)."""

    # (expansion, out channels, blocks, stride); stride 1 in stage 2 for CIFAR
    STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, activation: str = "relu", n_classes: int = 10, width: float = 1.0,
                 in_channels: int = 3, per_channel: bool = False, **act_kwargs) -> None:
        super().__init__()
        act = _Activations(activation, act_kwargs, per_channel)
        c = _scaled(32, width)
        layers: list[nn.Module] = [_conv_bn_act(in_channels, c, 3, act)]
        for expansion, c_out, blocks, stride in self.STAGES:
            c_out = _scaled(c_out, width)
            for i in range(blocks):
                layers.append(_InvertedResidual(c, c_out, expansion, stride if i == 0 else 1, act))
                c = c_out
        c_last = _scaled(1280, width)
        layers.append(_conv_bn_act(c, c_last, 1, act))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_last, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# --------------------------------------------------------------------------- GoogLeNet


class _Inception(nn.Module):
    """Four branches: 1×1; 1×1→3×3; 1×1→3×3→3×3 (the 5×5 as two 3×3); 3×3 max-pool→1×1."""

    def __init__(self, c_in: int, n1: int, n3_red: int, n3: int, n5_red: int, n5: int,
                 n_pool: int, act: _Activations) -> None:
        super().__init__()
        self.b1 = _conv_bn_act(c_in, n1, 1, act)
        self.b2 = nn.Sequential(_conv_bn_act(c_in, n3_red, 1, act), _conv_bn_act(n3_red, n3, 3, act))
        self.b3 = nn.Sequential(_conv_bn_act(c_in, n5_red, 1, act), _conv_bn_act(n5_red, n5, 3, act),
                                _conv_bn_act(n5, n5, 3, act))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv_bn_act(c_in, n_pool, 1, act))
        self.out_channels = n1 + n3 + n5 + n_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1) for 32×32 inputs (6.2 M parameters at width 1 with ReLU)."""

    # (n1, n3_red, n3, n5_red, n5, n_pool) per inception module; "pool" halves the maps
    PLAN = ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "pool",
            (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
            (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128), "pool",
            (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128))

    def __init__(self, activation: str = "relu", n_classes: int = 10, width: float = 1.0,
                 in_channels: int = 3, per_channel: bool = False, **act_kwargs) -> None:
        super().__init__()
        act = _Activations(activation, act_kwargs, per_channel)
        c = _scaled(192, width)
        layers: list[nn.Module] = [_conv_bn_act(in_channels, c, 3, act)]
        for step in self.PLAN:
            if step == "pool":
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))
                continue
            block = _Inception(c, *(_scaled(n, width) for n in step), act=act)
            layers.append(block)
            c = block.out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


CIFAR_MODELS: dict[str, type[nn.Module]] = {"mobilenetv2": MobileNetV2, "googlenet": GoogLeNet}


def make_cifar_model(name: str, activation: str = "relu", **kwargs) -> nn.Module:
    """A CIFAR-10 architecture by name (``mobilenetv2``, ``googlenet``) with ``activation``."""
    if name not in CIFAR_MODELS:
        raise ValueError(f"unknown CIFAR model {name!r}; known: {', '.join(sorted(CIFAR_MODELS))}")
    return CIFAR_MODELS[name](activation=activation, **kwargs)
