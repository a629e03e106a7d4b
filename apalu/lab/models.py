"""Models for the experiments; every one takes an activation name (through the registry).

* :class:`MLP` — any depth and width (depth = number of hidden Linear+activation layers);
* :class:`SmallCNN` — conv blocks for MNIST-sized images;
* :class:`ResNetCNN` — a ResNet-style CNN for CIFAR-sized input;
* :class:`MobileNetStyle` / :class:`InceptionStyle` — compact depthwise-separable and
  inception-block CNNs standing in for the paper's MobileNet and GoogLeNet;
* :class:`GRURegressor` — a GRU with an activation in its head (forecasting);
* :class:`DeepSVDDEncoder` — bias-free conv encoder of Ruff et al. (2018) for one-class AD.

``activation`` is a registry name; ``act_kwargs`` go to its constructor (APALU's ``init`` and
``constraint``); ``per_channel=True`` gives the activations that take ``num_parameters`` (the
registry's ``per_channel``: APALU, PReLU) one parameter per channel/unit.
:data:`MODELS` maps each model name to its builder ``(ds, activation, **kwargs)``;
:func:`make_model` (alias :func:`build_model`) builds one by name for a :class:`apalu.lab.data.Dataset`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from ..gain import init_gain
from ..module import APALU
from ..registry import Registry
from .activations import LAB_ACTIVATIONS, check_lab_activation, is_apalu, make_lab_activation

__all__ = [
    "MODELS",
    "MLP",
    "SmallCNN",
    "ResNetCNN",
    "MobileNetStyle",
    "InceptionStyle",
    "GRURegressor",
    "DeepSVDDEncoder",
    "build_model",
    "check_model",
    "make_model",
    "count_parameters",
    "activation_params",
    "variance_preserving_gain",
    "activation_generator",
    "non_activation_parameters",
]

WEIGHT_INITS = ("torch", "he", "xavier", "gain")


# Offset of the activations' own generator from the model seed (any fixed number would do).
ACT_SEED_OFFSET = 0x0A7A1


def activation_generator() -> torch.Generator:
    """The generator APALU's a and b are drawn from while a model is built: seeded from the
    torch seed in force (``torch.initial_seed()``, set by ``seed_everything(seed)``), so the
    draws are reproducible and never touch the global RNG. That keeps every other parameter
    of the model identical across activations for the same seed (paired arms)."""
    return torch.Generator().manual_seed(torch.initial_seed() + ACT_SEED_OFFSET)


class _ActFactory:
    """Makes fresh activation modules (library or lab names, :mod:`apalu.lab.activations`);
    ``per_channel`` sizes the activations that take ``num_parameters`` (the registry's
    ``per_channel``) to the channel count. APALU-based ones draw a and b from one generator
    per model (:func:`activation_generator`), not from the global RNG."""

    def __init__(self, activation: str, act_kwargs: dict | None = None, per_channel: bool = False):
        self.name = check_lab_activation(activation)
        self.kwargs = dict(act_kwargs or {})
        self.per_channel = per_channel
        self.generator = activation_generator() if is_apalu(self.name) else None

    def __call__(self, channels: int) -> nn.Module:
        kw = dict(self.kwargs)
        if self.per_channel and LAB_ACTIVATIONS[self.name].per_channel:
            kw["num_parameters"] = channels
        if self.generator is not None:
            kw.setdefault("generator", self.generator)
        return make_lab_activation(self.name, **kw)


def variance_preserving_gain(act: nn.Module | callable, n: int = 101) -> float:
    """The weight gain g (weights ~ N(0, g²/fan_in)) that keeps the pre-activation variance at 1
    through a wide layer: g = 1/sqrt(E[f(z)²]), z ~ N(0, 1). APALU: :func:`apalu.init_gain`
    (the theory chapter's formula, at the module's current a and b); any other activation: by
    Gauss–Hermite quadrature (ReLU: √2, the He gain), cached for parameter-free modules."""
    if isinstance(act, APALU):
        return float(init_gain(act))
    if isinstance(act, nn.Module) and not any(True for _ in act.parameters()):
        key = (repr(act), n)
        if key not in _GAIN_CACHE:
            _GAIN_CACHE[key] = _gain_by_quadrature(act, n)
        return _GAIN_CACHE[key]
    return _gain_by_quadrature(act, n)


_GAIN_CACHE: dict[tuple[str, int], float] = {}


@functools.lru_cache(maxsize=8)
def _hermite_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / w.sum()


def _gain_by_quadrature(act, n: int) -> float:
    z, w = _hermite_nodes(n)
    params = list(act.parameters()) if isinstance(act, nn.Module) else []
    dtype = params[0].dtype if params else torch.float64  # e.g. PReLU refuses mixed dtypes
    with torch.no_grad():
        fz = act(torch.tensor(z, dtype=dtype)).double().numpy()
    second = float((w * fz**2).sum())
    return 1.0 / math.sqrt(second) if second > 0 else float("nan")


def _init_linear_like(layer: nn.Module, scheme: str, act: nn.Module | None) -> None:
    if scheme == "torch":
        return
    w = layer.weight
    fan_in = w[0].numel()
    if scheme == "he":
        std = math.sqrt(2.0 / fan_in)
    elif scheme == "xavier":
        std = math.sqrt(2.0 / (fan_in + w.shape[0]))
    elif scheme == "gain":
        std = (variance_preserving_gain(act) if act is not None else 1.0) / math.sqrt(fan_in)
    else:
        raise ValueError(f"unknown weight_init {scheme!r}; known: {', '.join(WEIGHT_INITS)}")
    with torch.no_grad():
        w.normal_(0.0, std)
        if getattr(layer, "bias", None) is not None:
            layer.bias.zero_()


class MLP(nn.Module):
    """Flatten → ``depth`` × (Linear(width) → activation) → Linear(out_features).

    ``weight_init``: "torch" (PyTorch's default), "he", "xavier", or "gain" (variance-preserving
    for each layer's own activation, see :func:`variance_preserving_gain`). ``hidden`` lists the
    hidden Linear layers in order (for per-layer gradient norms), ``acts`` their activations.
    """

    def __init__(self, in_features: int, out_features: int, width: int = 64, depth: int = 2,
                 activation: str = "apalu", act_kwargs: dict | None = None, per_channel: bool = False,
                 weight_init: str = "torch", bias: bool = True):
        super().__init__()
        if depth < 1 or width < 1 or in_features < 1 or out_features < 1:
            raise ValueError(f"MLP needs depth, width, in/out features >= 1, got depth={depth}, width={width}")
        make = _ActFactory(activation, act_kwargs, per_channel)
        self.hidden = nn.ModuleList()
        self.acts = nn.ModuleList()
        for i in range(depth):
            self.hidden.append(nn.Linear(in_features if i == 0 else width, width, bias=bias))
            self.acts.append(make(width))
        self.out = nn.Linear(width, out_features, bias=bias)
        for i, (lin, act) in enumerate(zip(self.hidden, self.acts)):
            # the input to layer i went through acts[i-1]; the first sees standardized data
            _init_linear_like(lin, weight_init, self.acts[i - 1] if i > 0 else None)
        _init_linear_like(self.out, weight_init, self.acts[-1])

    def forward(self, x):
        x = x.flatten(1)
        for lin, act in zip(self.hidden, self.acts):
            x = act(lin(x))
        return self.out(x)


class SmallCNN(nn.Module):
    """``depth`` × (Conv3×3(width·2^min(⌊i/2⌋, 2)) → activation), a 2×2 max-pool after every
    second block while the map is ≥ 8 wide (after the first block too when ``depth`` is 1),
    then flatten → Linear. ``hidden`` lists the convs."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 16, depth: int = 2,
                 activation: str = "apalu", act_kwargs: dict | None = None, per_channel: bool = False,
                 weight_init: str = "torch", input_size: int = 28, batch_norm: bool = False):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"SmallCNN needs depth, width >= 1, got depth={depth}, width={width}")
        make = _ActFactory(activation, act_kwargs, per_channel)
        layers, self.hidden, c, size = [], [], in_channels, input_size
        prev_act = None
        for i in range(depth):
            c_out = width * 2 ** min(i // 2, 2)
            conv = nn.Conv2d(c, c_out, 3, padding=1, bias=not batch_norm)
            act = make(c_out)
            _init_linear_like(conv, weight_init, prev_act)
            layers += [conv] + ([nn.BatchNorm2d(c_out)] if batch_norm else []) + [act]
            self.hidden.append(conv)
            prev_act, c = act, c_out
            if (i % 2 == 1 or depth == 1) and size >= 8:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c * size * size, n_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class _BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride, make):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = make(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = make(c_out)
        self.short = (nn.Sequential() if stride == 1 and c_in == c_out else
                      nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(y)) + self.short(x))


class ResNetCNN(nn.Module):
    """ResNet-style CNN for CIFAR-sized input: stem, three stages of ``blocks`` basic blocks
    (width, 2·width, 4·width; stride 2 between stages), global pool, Linear."""

    def __init__(self, in_channels: int = 3, n_classes: int = 10, width: int = 16, blocks: int = 1,
                 activation: str = "apalu", act_kwargs: dict | None = None, per_channel: bool = False):
        super().__init__()
        make = _ActFactory(activation, act_kwargs, per_channel)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  make(width))
        stages, c = [], width
        for s, mult in enumerate((1, 2, 4)):
            for b in range(blocks):
                stages.append(_BasicBlock(c, width * mult, 2 if (b == 0 and s > 0) else 1, make))
                c = width * mult
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c, n_classes)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


class MobileNetStyle(nn.Module):
    """MobileNet-v1-style: stem conv, then depthwise-separable blocks (dw3×3 → BN → act →
    pw1×1 → BN → act), channel counts ``width·(1, 2, 2, 4, 4)``, strides (1, 2, 1, 2, 1)."""

    def __init__(self, in_channels: int = 3, n_classes: int = 10, width: int = 16,
                 activation: str = "apalu", act_kwargs: dict | None = None, per_channel: bool = False):
        super().__init__()
        make = _ActFactory(activation, act_kwargs, per_channel)
        layers = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), make(width)]
        c = width
        for mult, stride in zip((1, 2, 2, 4, 4), (1, 2, 1, 2, 1)):
            c_out = width * mult
            layers += [nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False), nn.BatchNorm2d(c), make(c),
                       nn.Conv2d(c, c_out, 1, bias=False), nn.BatchNorm2d(c_out), make(c_out)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, n_classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class _Inception(nn.Module):
    def __init__(self, c_in, c_branch, make):
        super().__init__()

        def cbr(ci, co, k):
            return nn.Sequential(nn.Conv2d(ci, co, k, padding=k // 2, bias=False), nn.BatchNorm2d(co), make(co))

        self.b1 = cbr(c_in, c_branch, 1)
        self.b3 = nn.Sequential(cbr(c_in, c_branch, 1), cbr(c_branch, c_branch, 3))
        self.b5 = nn.Sequential(cbr(c_in, c_branch, 1), cbr(c_branch, c_branch, 3), cbr(c_branch, c_branch, 3))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), cbr(c_in, c_branch, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


class InceptionStyle(nn.Module):
    """GoogLeNet-style: stem conv, two inception blocks (1×1, 3×3, double-3×3, pool branches),
    max-pool, two more, global pool, Linear."""

    def __init__(self, in_channels: int = 3, n_classes: int = 10, width: int = 8,
                 activation: str = "apalu", act_kwargs: dict | None = None, per_channel: bool = False):
        super().__init__()
        make = _ActFactory(activation, act_kwargs, per_channel)
        c = 4 * width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), make(c),
            _Inception(c, width, make), _Inception(4 * width, width, make), nn.MaxPool2d(2),
            _Inception(4 * width, 2 * width, make), _Inception(8 * width, 2 * width, make),
        )
        self.head = nn.Linear(8 * width, n_classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class GRURegressor(nn.Module):
    """GRU over a sequence ``(N, T, F)`` → last hidden state → Linear(width) → activation →
    Linear(n_outputs). The GRU's own gates keep their sigmoid/tanh; the activation under test is
    the head's (as when an RNN's dense layers are swapped)."""

    def __init__(self, input_size: int = 1, n_outputs: int = 1, hidden: int = 32, width: int = 32,
                 activation: str = "apalu", act_kwargs: dict | None = None, per_channel: bool = False):
        super().__init__()
        make = _ActFactory(activation, act_kwargs, per_channel)
        self.gru = nn.GRU(input_size, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, width)
        self.act = make(width)
        self.out = nn.Linear(width, n_outputs)

    def forward(self, x):
        h, _ = self.gru(x)
        return self.out(self.act(self.fc(h[:, -1])))


class DeepSVDDEncoder(nn.Module):
    """The Deep SVDD MNIST encoder (Ruff et al., 2018): bias-free conv(8,5×5) → BN → act → pool →
    conv(4,5×5) → BN → act → pool → Linear(rep_dim), no bias anywhere (a bias lets the network
    map everything to the centre, the "hypersphere collapse")."""

    def __init__(self, in_channels: int = 1, rep_dim: int = 32, activation: str = "apalu",
                 act_kwargs: dict | None = None, per_channel: bool = False, width: int = 8,
                 input_size: int = 28):
        super().__init__()
        make = _ActFactory(activation, act_kwargs, per_channel)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2, bias=False),
            nn.BatchNorm2d(width, affine=False), make(width), nn.MaxPool2d(2),
            nn.Conv2d(width, width // 2, 5, padding=2, bias=False),
            nn.BatchNorm2d(width // 2, affine=False), make(width // 2), nn.MaxPool2d(2),
        )
        side = input_size // 4
        self.rep = nn.Linear(width // 2 * side * side, rep_dim, bias=False)

    def forward(self, x):
        return self.rep(self.features(x).flatten(1))


def _image_shape(name: str, ds) -> tuple[int, ...]:
    shape = ds.input_shape
    if len(shape) != 3:
        raise ValueError(f"model {name!r} needs image input (C, H, W), dataset {ds.name!r} has {shape}")
    return shape


def _image_model(name: str, cls, sized: bool = False):
    """Builder of an image model: (C, n_outputs) from the dataset (and ``input_size`` if sized)."""

    def build(ds, activation: str = "apalu", **kwargs) -> nn.Module:
        shape = _image_shape(name, ds)
        if sized:
            return cls(shape[0], ds.n_outputs, activation=activation, input_size=shape[-1], **kwargs)
        return cls(shape[0], ds.n_outputs, activation=activation, **kwargs)

    return build


def _mlp(ds, activation: str = "apalu", **kwargs) -> nn.Module:
    return MLP(ds.in_features, ds.n_outputs, activation=activation, **kwargs)


def _gru(ds, activation: str = "apalu", **kwargs) -> nn.Module:
    return GRURegressor(ds.input_shape[-1], ds.n_outputs, activation=activation, **kwargs)


def _deepsvdd(ds, activation: str = "apalu", **kwargs) -> nn.Module:
    shape = _image_shape("deepsvdd", ds)
    return DeepSVDDEncoder(shape[0], activation=activation, input_size=shape[-1], **kwargs)


# name → builder (ds, activation, **kwargs): the model sized for the dataset
MODELS: Registry = Registry("model", {
    "mlp": _mlp,
    "cnn": _image_model("cnn", SmallCNN, sized=True),
    "resnet": _image_model("resnet", ResNetCNN),
    "mobilenet": _image_model("mobilenet", MobileNetStyle),
    "inception": _image_model("inception", InceptionStyle),
    "gru": _gru,
    "deepsvdd": _deepsvdd,
})


def check_model(name: str) -> str:
    """Return ``name`` if it is a known model, else raise ValueError listing the known ones."""
    return MODELS.check(name)


def make_model(name: str, ds, activation: str = "apalu", **kwargs) -> nn.Module:
    """A model by name, sized for dataset ``ds`` (an :class:`apalu.lab.data.Dataset`).

    ``kwargs`` go to the model's constructor (``width``, ``depth``, ``act_kwargs``,
    ``per_channel``, ``weight_init``, ...).
    """
    return MODELS.make(name, ds, activation, **kwargs)


build_model = make_model  # the older name (the experiments and tests call it)


def non_activation_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``model`` outside its activation modules, by name (what
    must be identical across paired arms built from the same seed)."""
    acts = tuple(dict.fromkeys(info.module_type for info in LAB_ACTIVATIONS.values()))
    skip = {name for name, m in model.named_modules() if isinstance(m, acts) and name}
    state = model.state_dict()
    return {k: v for k, v in state.items() if not any(k == s or k.startswith(s + ".") for s in skip)}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def activation_params(model: nn.Module) -> list[dict]:
    """One row per APALU channel: layer (module name), layer_index, channel, a, b (effective)."""
    rows = []
    with torch.no_grad():
        for i, (name, m) in enumerate((n, m) for n, m in model.named_modules() if isinstance(m, APALU)):
            for ch, (a, b) in enumerate(zip(m.a.tolist(), m.b.tolist())):
                rows.append({"layer": name, "layer_index": i, "channel": ch, "a": a, "b": b})
    return rows
