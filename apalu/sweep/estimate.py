"""GPU-minutes of a spec from a measured throughput: its training steps counted from the spec,
each step's cost measured on this CPU (wall time, operator count, FLOPs), and an explicit,
stated assumption for the GPU.

A training step of the book's small models is **launch-bound** on a GPU: each of its few
hundred operators is a kernel far shorter than the time PyTorch's eager mode spends to
dispatch and launch it. A large convnet at batch 128 is **compute-bound**. So one GPU step is
estimated as ::

    gpu_s = max(ops × GPU_S_PER_OP, flops / GPU_FLOP_PER_S)

with ``ops`` (aten operators of forward, backward and optimizer step) and ``flops`` counted
on this CPU by running the step (:class:`torch.utils.flop_counter.FlopCounterMode` and a
dispatch-mode counter), and the two constants below *assumed, not measured* (no GPU was lent
when they were set; a GPU run measures its own wall time in every run's status.json).

``apalu sweep SPEC --estimate`` prints the table for one spec; :func:`estimate_spec` returns it.

Example:
    >>> cost = measure_step("mlp", "digits", "relu", batch_size=8, model_kw={"width": 8}, steps=2)
    >>> cost.ops > 10 and cost.flops > 0 and cost.cpu_s > 0
    True
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["GPU_S_PER_OP", "GPU_FLOP_PER_S", "StepCost", "Workload", "measure_step", "workloads",
           "estimate_spec"]

#: Assumed GPU time per eager operator: ~5 µs launch plus ~5 µs Python/ATen dispatch, the
#: usual order for PyTorch eager on a data-centre GPU (not measured here).
GPU_S_PER_OP = 10e-6
#: Assumed effective rate of the convnets' training step: 20 TFLOP/s, about 5% of an
#: H100/H200's dense TF32 peak (PyTorch runs cuDNN convolutions in TF32 by default; the
#: depthwise and 1×1 convolutions at 32×32 are memory-bound; not measured). The small models
#: are launch-bound long before this matters.
GPU_FLOP_PER_S = 20e12


@dataclass(frozen=True)
class StepCost:
    """One training step measured on this CPU: wall seconds, aten operators, FLOPs."""
    cpu_s: float
    ops: int
    flops: float
    batch_size: int

    @property
    def gpu_s(self) -> float:
        """The assumed GPU time of the step (module docstring)."""
        return max(self.ops * GPU_S_PER_OP, self.flops / GPU_FLOP_PER_S)

    def scaled(self, batch_size: int) -> "StepCost":
        """The step at another batch size: FLOPs and CPU time scale with it, operators do not."""
        k = batch_size / self.batch_size
        return StepCost(self.cpu_s * k, self.ops, self.flops * k, batch_size)


class _OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def _build(model: str, dataset: str, activation: str, model_kw: dict) -> tuple[torch.nn.Module, tuple]:
    """The model, and the shape of one input (no labels needed)."""
    if model in ("mobilenetv2", "googlenet"):
        from ..lab.cifar import make_cifar_model

        return make_cifar_model(model, activation, **model_kw), (3, 32, 32)
    from ..lab.data import load_dataset
    from ..lab.models import make_model

    ds = load_dataset(dataset, n_train=min(64, 100))
    return make_model(model, ds, activation, **model_kw), tuple(ds.input_shape)


def measure_step(model: str, dataset: str, activation: str, batch_size: int,
                 model_kw: dict | None = None, steps: int = 3, optimizer: str = "adam") -> StepCost:
    """Time ``steps`` training steps (after one warm-up) of ``model`` on random inputs shaped
    like ``dataset``'s, on this CPU; count one step's operators and FLOPs."""
    torch.manual_seed(0)
    flush = torch.set_flush_denormal(True)  # deep nets' vanishing values: time the math, not denormals
    try:
        return _measure(model, dataset, activation, batch_size, model_kw, steps, optimizer)
    finally:
        torch.set_flush_denormal(False) if flush else None


def _measure(model, dataset, activation, batch_size, model_kw, steps, optimizer) -> StepCost:
    from torch.utils.flop_counter import FlopCounterMode

    net, shape = _build(model, dataset, activation, dict(model_kw or {}))
    x = torch.randn(batch_size, *shape)
    y = torch.randint(0, 10, (batch_size,))
    from ..lab.training import make_optimizer  # the book's own (fused) optimizer

    opt = make_optimizer(net, optimizer, lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    cpu_s = (time.perf_counter() - t0) / steps
    counter, flops = _OpCounter(), FlopCounterMode(display=False)
    with flops, counter:
        step()
    return StepCost(cpu_s, counter.n, float(flops.get_total_flops()), batch_size)


@dataclass(frozen=True)
class Workload:
    """``steps`` training steps of one model configuration (what :func:`measure_step` takes)."""
    model: str
    dataset: str
    activation: str
    batch_size: int
    steps: int
    model_kw: tuple = ()
    optimizer: str = "adam"


def _train_len(dataset: str, n_train: int | None) -> int:
    if n_train:
        return int(n_train)
    from ..lab.data import load_dataset

    return len(load_dataset(dataset).X_train)


def _per_epoch(dataset: str, n_train: int | None, batch: int) -> int:
    return math.ceil(_train_len(dataset, n_train) / batch)


def _arms(p: dict, key: str = "activations") -> list[str]:
    return list(p.get(key) or ["apalu"])


def workloads(notebook: str, p: dict, n_runs: int = 1) -> list[Workload]:
    """The training steps of one sweep of ``notebook`` with parameters ``p`` (every run's
    parameters are the same but the seed: ``n_runs`` runs), one entry per model config.
    Counts follow the notebooks: :func:`apalu.lab.experiments.fair_runs` trains each arm once
    per learning rate (tuning) and once per seed."""
    out: list[Workload] = []
    seeds = len(p.get("seeds") or [0]) * n_runs
    if notebook == "exp_small_data":
        from ..lab.data import GENERATED_AT_ANY_SIZE

        for ds in p["datasets"]:
            full = math.inf if ds in GENERATED_AT_ANY_SIZE else _train_len(ds, None)
            n_sizes = sum(1 for n in p["sizes"] if n <= full)
            for act in _arms(p):
                out.append(Workload(p.get("model", "mlp"), ds, act, p["batch_size"],
                                    n_sizes * (seeds + len(p["lrs"])) * p["max_steps"],
                                    (("width", p["width"]), ("depth", p["depth"]))))
    elif notebook == "exp_gradient_flow":
        for depth in p["depths"]:
            for act in _arms(p):
                out.append(Workload("mlp", p["dataset"], act, p["batch_size"], seeds * p["steps"],
                                    (("width", p["width"]), ("depth", depth)), "sgd"))
    elif notebook in ("exp_convergence", "mnist_quickstart", "exp_init_sensitivity"):
        per_epoch = _per_epoch(p["dataset"], p.get("n_train"), p["batch_size"])
        arms = [("apalu", len(p["inits"]))] if notebook == "exp_init_sensitivity" else \
            [(a, 1) for a in _arms(p)]
        kw = (("width", p["width"]),) + ((("depth", p["depth"]),) if "depth" in p else ())
        for act, copies in arms:
            out.append(Workload(p["model"], p["dataset"], act, p["batch_size"],
                                copies * (seeds + len(p["lrs"])) * p["epochs"] * per_epoch, kw))
    elif notebook == "exp_param_dynamics":
        per_epoch = _per_epoch(p["dataset"], p.get("n_train"), p["batch_size"])
        trainings = len(p["constraints"]) * len(p["per_channel"]) * len(p["lrs"]) * seeds
        out.append(Workload(p["model"], p["dataset"], "apalu", p["batch_size"],
                            trainings * p["epochs"] * per_epoch, (("width", p.get("width", 32)),)))
    elif notebook == "exp_paper":
        per_epoch = math.ceil(50_000 / 128)  # CIFAR-10's training set, the recipe's batch
        for model in p["cifar_models"]:
            for act in _arms(p, "cls_activations"):
                out.append(Workload(model, "cifar10", act, 128, seeds * p["cifar_epochs"] * per_epoch,
                                    (), "sgd"))
    else:
        raise ValueError(f"no workload model for notebook {notebook!r}")
    return out


def estimate_spec(spec, steps: int = 3, measure_batch: int | None = None) -> dict[str, Any]:
    """Measure each workload of ``spec`` (a :class:`~apalu.sweep.spec.SweepSpec` whose runs
    differ by seed only) on this CPU and add up its GPU-minutes under the stated assumption.
    ``measure_batch``: measure at this batch and scale (the CIFAR models; their CPU step at
    batch 128 takes minutes). Returns ``{"rows": [...], "gpu_minutes": ..., "cpu_hours": ...,
    "assumption": ...}``."""
    from .runs import expand
    from .spec import _literal

    runs = expand(spec)
    defaults = {k: _literal(v.get("default", "")) for k, v in spec.param_info.items()}
    params = {**defaults, **runs[0].parameters}
    if spec.seed_param and spec.seeds:
        params[spec.seed_param] = [0]
    loads = workloads(spec.notebook_path.stem, params, n_runs=len(runs))
    rows, cache = [], {}
    for w in loads:
        key = (w.model, w.dataset, w.activation, w.model_kw, w.optimizer)
        if key not in cache:
            batch = min(w.batch_size, measure_batch or w.batch_size)
            cache[key] = measure_step(w.model, w.dataset, w.activation, batch, dict(w.model_kw),
                                      steps=steps, optimizer=w.optimizer).scaled(w.batch_size)
        c = cache[key]
        rows.append({"model": w.model, "dataset": w.dataset, "activation": w.activation,
                     **dict(w.model_kw), "batch": w.batch_size, "steps": w.steps,
                     "cpu_ms_per_step": 1e3 * c.cpu_s, "ops_per_step": c.ops,
                     "gflop_per_step": c.flops / 1e9, "gpu_ms_per_step": 1e3 * c.gpu_s,
                     "gpu_minutes": w.steps * c.gpu_s / 60, "cpu_hours": w.steps * c.cpu_s / 3600})
    return {"rows": rows, "steps": sum(r["steps"] for r in rows),
            "gpu_minutes": sum(r["gpu_minutes"] for r in rows),
            "cpu_hours": sum(r["cpu_hours"] for r in rows),
            "assumption": f"GPU step = max(ops x {GPU_S_PER_OP * 1e6:g} us, FLOPs / "
                          f"{GPU_FLOP_PER_S / 1e12:g} TFLOP/s), assumed, not measured"}
