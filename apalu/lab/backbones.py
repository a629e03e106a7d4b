"""Frozen ImageNet backbones for the MVTec AD methods: AlexNet and VGG-16 features, in torch.

torchvision does not import against this CPU torch build, so the two feature stacks are
written here with **torchvision's layout**: a module whose ``features`` is an
``nn.Sequential`` with the same indices, so the state-dict keys are torchvision's
(``features.0.weight``, ``features.3.bias``, ...) and a user's torchvision weights load as they
are. Only the convolutional features are used (DifferNet pools AlexNet's last feature map;
multiresolution KD matches VGG-16's intermediate maps), so ``classifier.*`` keys in a file are
ignored.

Weights come from a ``.safetensors`` file only: a ``.pth``/``.pt`` file is a pickle, and
unpickling runs code, so it is refused with the one-line conversion to run on a machine the
user trusts (:data:`CONVERT`). The file is checked before any tensor is read: missing file,
not a safetensors file, a missing key or a wrong shape each raise an error naming the
problem. The loaded backbone is frozen (``eval()``, no gradients), as in both papers.

Example:
    >>> net = backbone("alexnet")  # random weights: for shapes and tests
    >>> features_at(net, torch.zeros(1, 3, 224, 224), [12])[0].shape
    torch.Size([1, 256, 6, 6])
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["ARCHITECTURES", "IMAGENET_MEAN", "IMAGENET_STD", "CONVERT", "AlexNetFeatures", "VGG16Features",
           "backbone", "expected_shapes", "check_weights", "load_backbone", "features_at", "imagenet_normalize",
           "dataset_images", "anomaly_auroc"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's VGG-16 ("D"): channels per 3x3 conv, "M" a 2x2 max-pool
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

# run on a machine you trust (torchvision + safetensors installed); {arch} / {ctor} filled in below
CONVERT = ("python -c \"import torch, torchvision; from safetensors.torch import save_file; "
           "m = torchvision.models.{ctor}(weights='IMAGENET1K_V1'); "
           "save_file({{k: v.contiguous() for k, v in m.state_dict().items()}}, '{arch}.safetensors')\"")
_PICKLE_SUFFIXES = (".pth", ".pt", ".pkl", ".pickle", ".bin", ".tar", ".ckpt")


class AlexNetFeatures(nn.Module):
    """torchvision's ``alexnet().features`` (5 convs, 256 channels out, stride 32 overall)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def vgg_layers(channels: Sequence[int | str], activation: Callable[[int], nn.Module],
               conv_init: Callable[[torch.Tensor], object] | None = None) -> nn.Sequential:
    """A VGG-style stack in torchvision's layout: each int a 3×3 convolution (padding 1) with
    that many output channels followed by ``activation(channels)``, each ``"M"`` a 2×2 max-pool;
    ``conv_init`` (e.g. ``nn.init.xavier_uniform_``) is applied to every convolution's weight."""
    layers: list[nn.Module] = []
    c = 3
    for v in channels:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        conv = nn.Conv2d(c, int(v), 3, padding=1)
        if conv_init is not None:
            conv_init(conv.weight)
        layers += [conv, activation(int(v))]
        c = int(v)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """torchvision's ``vgg16().features`` (13 convs with ReLU, 5 max-pools; no batch norm)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = vgg_layers(_VGG16, lambda _: nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


ARCHITECTURES: dict[str, type[nn.Module]] = {"alexnet": AlexNetFeatures, "vgg16": VGG16Features}


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown backbone {arch!r}; known: {', '.join(ARCHITECTURES)}")


def _frozen(net: nn.Module) -> nn.Module:
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def backbone(arch: str) -> nn.Module:
    """A frozen backbone with random weights (default torch init): shapes and tests only."""
    _check_arch(arch)
    return _frozen(ARCHITECTURES[arch]())


def expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """The state-dict keys the file must hold, with their shapes (torchvision's names)."""
    _check_arch(arch)
    return {k: tuple(v.shape) for k, v in ARCHITECTURES[arch]().state_dict().items()}


def check_weights(path: str | Path, arch: str, name: str = "weights") -> Path:
    """Check ``path`` as ``arch``'s weights without loading a tensor; return the resolved path.

    Raises FileNotFoundError (no such file) or ValueError (a pickle format, not a safetensors
    file, a missing key, a mis-shaped tensor), each naming ``name`` (the notebook parameter).
    """
    _check_arch(arch)
    ctor = {"alexnet": "alexnet", "vgg16": "vgg16"}[arch]
    how = "convert it on a machine you trust: " + CONVERT.format(ctor=ctor, arch=arch)
    p = Path(path).expanduser()
    if p.suffix.lower() in _PICKLE_SUFFIXES:
        raise ValueError(f"{name}: {str(path)!r} is a pickle ({p.suffix}); this book never unpickles a file "
                         f"(loading one runs its code). Pass a .safetensors file; {how}")
    if not p.is_file():
        raise FileNotFoundError(f"{name}: {str(path)!r} does not exist (resolved: {p.resolve()}); expected "
                                f"{arch}'s torchvision weights as .safetensors; {how}")
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for a corrupt header
        raise ValueError(f"{name}: {str(path)!r} is not a safetensors file ({err}); {how}") from None
    for key, shape in expected_shapes(arch).items():
        if key not in shapes:
            raise ValueError(f"{name}: {str(path)!r} lacks key {key!r} (expected shape {list(shape)}); "
                             f"it holds {len(shapes)} keys such as {sorted(shapes)[:3]}. Expected {arch}'s "
                             f"torchvision state dict; {how}")
        if shapes[key] != shape:
            raise ValueError(f"{name}: {str(path)!r} key {key!r} has shape {list(shapes[key])}, expected "
                             f"{list(shape)} ({arch}, torchvision layout)")
    return p


def load_backbone(path: str | Path, arch: str, name: str = "weights") -> nn.Module:
    """``arch``'s features with the weights of the safetensors file ``path``, frozen.

    Keys other than the features' (e.g. ``classifier.*``) are ignored."""
    p = check_weights(path, arch, name)
    from safetensors.torch import load_file

    net = ARCHITECTURES[arch]()
    state = load_file(str(p))
    net.load_state_dict({k: state[k] for k in net.state_dict()}, strict=True)
    return _frozen(net)


def features_at(net: nn.Module, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
    """Outputs of ``net.features[i]`` for each i in ``indices`` (ascending), without gradients.

    Shapes: x (N, 3, H, W) → one (N, C_i, H_i, W_i) per index."""
    wanted = sorted(set(int(i) for i in indices))
    if not wanted or wanted[0] < 0 or wanted[-1] >= len(net.features):
        raise ValueError(f"feature indices {list(indices)} outside 0..{len(net.features) - 1}")
    out: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for i, layer in enumerate(net.features):
            x = layer(x)
            if i in wanted:
                out[i] = x.clone()  # the next in-place ReLU must not change it
            if i == wanted[-1]:
                break
    return [out[int(i)] for i in indices]


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1], shape (N, 3, H, W) → the ImageNet-normalized input both backbones expect."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


# ------------------------------------------------------------------ shared by the MVTec methods


def dataset_images(ds, split: str) -> torch.Tensor:
    """A lab MVTec :class:`~apalu.lab.data.Dataset` split back in [0, 1] (the loader standardizes
    with the training mean and std in ``ds.meta``); shape (N, 3, H, W)."""
    x = getattr(ds, f"X_{split}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"dataset {ds.name!r}: expected RGB images (N, 3, H, W), got {tuple(x.shape)}")
    mean, std = float(ds.meta.get("x_mean", 0.0)), float(ds.meta.get("x_std", 1.0))
    return (x * std + mean).clamp(0.0, 1.0)


def anomaly_auroc(y_test, scores) -> float:
    """Area under the ROC curve of anomaly ``scores`` (higher = more anomalous) against the
    labels (1 = defect); NaN when a score is not finite (a diverged run counts as incomplete)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=float)
    if not np.isfinite(scores).all():
        return float("nan")
    return float(roc_auc_score(np.asarray(y_test), scores))
