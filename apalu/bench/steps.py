"""Whole training steps: the book's MLP (3 × 32, Adam) and a small CNN (SGD), per activation."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .timing import ratio_summary, time_rounds

__all__ = ["MLP_SHAPE", "e2e_table", "mlp_step_table"]

# the book's small MLP: depth 3, width 32, two input features (a 2-D toy task), two classes
MLP_SHAPE = {"in_features": 2, "width": 32, "depth": 3, "out_features": 2}
MLP_VARIANTS = (("relu", False), ("prelu", False), ("prelu", True), ("apalu", False), ("apalu", True))


def _params(act: str, per_channel: bool) -> str:
    if act not in ("apalu", "prelu"):
        return "none"
    return "per-channel" if per_channel else "scalar"


def _rows(steps: dict[tuple, Callable], times: dict, ref_of: Callable[[tuple], tuple], extra: dict) -> list[dict]:
    rows = []
    for key in steps:
        mode, act, pc = key
        s = ratio_summary(times[str(key)], times[str(ref_of(key))])
        rows.append({"mode": mode, "activation": act, "params": _params(act, pc),
                     "median_ms": s["median_ms"], "iqr_ms": s["iqr_ms"], "ratio_to_relu": s["ratio"],
                     "round_ratio_median": s["round_ratio_median"],
                     "round_ratio_iqr": s["round_ratio_iqr"], "repeats": s["repeats"], **extra,
                     "threads": torch.get_num_threads()})
    return rows


def mlp_step_table(batch: int, repeats: int, warmup: int, device: torch.device,
                   inner: int = 10) -> list[dict]:
    """One Adam step (forward, cross-entropy, backward, update) of :class:`apalu.lab.models.MLP`,
    with the optimizer the notebooks train with (:func:`apalu.lab.training.make_optimizer`: fused Adam),
    at :data:`MLP_SHAPE` for ReLU, PReLU and APALU (scalar and per-channel), eager; the ratio is
    to ReLU. ``inner`` steps per timed sample (one step takes well under a millisecond).

    The Adam update alone (``opt.step()`` on the gradients in place) is timed afterwards, in
    interleaved rounds of its own (``update_ms``), with the number of parameter tensors it
    updates (``param_tensors``): APALU has two per layer (a, b) where PReLU has one, which costs
    most under Adam's default single-tensor loop (not used by the book)."""
    from ..lab.models import MLP
    from ..lab.training import make_optimizer

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, MLP_SHAPE["in_features"], generator=gen).to(device)
    y = torch.randint(0, MLP_SHAPE["out_features"], (batch,), generator=gen).to(device)
    steps, updates, tensors = {}, {}, {}
    for act, pc in MLP_VARIANTS:
        torch.manual_seed(0)
        model = MLP(MLP_SHAPE["in_features"], MLP_SHAPE["out_features"], width=MLP_SHAPE["width"],
                    depth=MLP_SHAPE["depth"], activation=act, per_channel=pc).to(device)
        opt = make_optimizer(model, "adam", lr=1e-3)  # as the notebooks train: fused Adam

        def step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        steps[("eager", act, pc)] = step
        updates[("eager", act, pc)] = opt.step
        tensors[("eager", act, pc)] = len(list(model.parameters()))
    times = time_rounds({str(k): v for k, v in steps.items()}, repeats, warmup, device, inner)
    # the updates in rounds of their own, after the steps: timed among the steps they shifted
    # the steps' times (ReLU's by about 5%)
    times |= time_rounds({f"update {k}": v for k, v in updates.items()}, repeats, warmup, device,
                         inner)
    shape = f"{MLP_SHAPE['depth']}x{MLP_SHAPE['width']}"
    rows = _rows(steps, times, lambda k: ("eager", "relu", False),
                 {"model": f"MLP {shape}", "optimizer": "Adam (fused)", "batch": batch, "device": device.type})
    for row, key in zip(rows, steps):
        row["update_ms"] = ratio_summary(times[f"update {key}"], times[f"update {key}"])["median_ms"]
        row["param_tensors"] = tensors[key]
    return rows


def _cnn(activation: str, per_channel: bool, device, act_kwargs=None):
    from ..lab.models import SmallCNN

    torch.manual_seed(0)
    return SmallCNN(in_channels=3, n_classes=10, width=32, depth=4, activation=activation,
                    per_channel=per_channel, input_size=32, act_kwargs=act_kwargs).to(device)


def e2e_table(batch: int, repeats: int, warmup: int, device: torch.device, compile: bool = True) -> list[dict]:
    """One SGD training step of :class:`apalu.lab.models.SmallCNN` (4 conv blocks, width 32,
    3×32×32 input): ReLU vs APALU (scalar, per-channel), eager and with ``torch.compile(model)``;
    the ratio is to ReLU in the same mode."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    variants = [("relu", False), ("apalu", False), ("apalu", True)]
    steps = {}
    for mode in ("eager", "compiled") if compile else ("eager",):
        for act, pc in variants:
            model = _cnn(act, pc, device)
            run = torch.compile(model) if mode == "compiled" else model
            opt = torch.optim.SGD(model.parameters(), lr=0.01)

            def step(run=run, opt=opt):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(run(x), y).backward()
                opt.step()

            steps[(mode, act, pc)] = step
    times = time_rounds({str(k): v for k, v in steps.items()}, repeats, warmup, device)
    return _rows(steps, times, lambda k: (k[0], "relu", False),
                 {"model": "SmallCNN 4x32", "optimizer": "SGD", "batch": batch, "device": device.type})
