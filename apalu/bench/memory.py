"""Memory autograd keeps for backward, per activation layer of an MLP."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..functional import apalu_reference, apalu_without_kernel

__all__ = ["memory_table", "saved_bytes_mlp"]


def _count_saved(fn: Callable[[], Tensor]) -> tuple[int, int, set]:
    """(number, bytes, storages) of the tensors autograd saves while ``fn`` runs."""
    saved: list[Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    storages = {(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in saved}
    del out
    return len(saved), sum(t.numel() * t.element_size() for t in saved), storages


class _MLP(nn.Module):
    def __init__(self, width: int, depth: int, act: Callable[[int], nn.Module]):
        super().__init__()
        self.lins = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.acts = nn.ModuleList(act(width) for _ in range(depth))

    def forward(self, x):
        for lin, act in zip(self.lins, self.acts):
            x = act(lin(x))
        return x


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _memory_acts(compile: bool):
    from ..module import APALU

    acts = {
        "identity": lambda w: nn.Identity(),
        "relu": lambda w: nn.ReLU(),
        "gelu": lambda w: nn.GELU(),
        "silu": lambda w: nn.SiLU(),
        "elu": lambda w: nn.ELU(),
        "prelu (per-channel)": lambda w: nn.PReLU(w),
        "apalu (reference eager)": lambda w: _Fn(lambda t, m=APALU(): apalu_reference(t, m.a, m.b)),
        "apalu (ATen eager)": lambda w: _Fn(lambda t, m=APALU(): apalu_without_kernel(t, m.a, m.b)),
        "apalu (lean eager)": lambda w: APALU(),
        "apalu (lean eager, per-channel)": lambda w: APALU(w),
    }
    if compile:
        acts["apalu (compiled)"] = lambda w: APALU(compile=True)
    return acts


def saved_bytes_mlp(act: Callable[[int], nn.Module], width: int = 256, depth: int = 20,
                    batch: int = 64, device: torch.device = torch.device("cpu")) -> dict:
    """Saved-for-backward memory of a ``depth``-layer MLP with activation ``act``.

    Counts every tensor the autograd graph saves (saved_tensors_hooks): their total bytes and
    the bytes of distinct storages (a ReLU's saved output is the next Linear's saved input: one
    storage, counted once)."""
    torch.manual_seed(0)
    model = _MLP(width, depth, act).to(device)
    x = torch.randn(batch, width, device=device)
    n, total, storages = _count_saved(lambda: model(x))
    return {"saved_tensors": n, "saved_bytes": total, "unique_bytes": sum(s[1] for s in storages)}


def memory_table(width: int = 256, depth: int = 20, batch: int = 64,
                 device: torch.device = torch.device("cpu"), compile: bool = True) -> list[dict]:
    """Per-layer saved memory of each activation in a ``depth``-layer MLP, in bytes and in units
    of one activation input (batch × width × 4 bytes), net of the same MLP with no activation."""
    acts = _memory_acts(compile)
    res = {k: saved_bytes_mlp(v, width, depth, batch, device) for k, v in acts.items()}
    unit = batch * width * 4
    base = res["identity"]
    rows = []
    for k, r in res.items():
        if k == "identity":
            continue
        per_layer = (r["saved_bytes"] - base["saved_bytes"]) / depth
        unique = (r["unique_bytes"] - base["unique_bytes"]) / depth
        rows.append({
            "activation": k, "depth": depth, "width": width, "batch": batch,
            "saved_bytes_per_layer": per_layer, "saved_inputs_per_layer": per_layer / unit,
            "extra_unique_bytes_per_layer": unique, "extra_unique_inputs_per_layer": unique / unit,
            "device": device.type,
        })
    return rows
