"""Smoke runs: a GPU spec proven on the CPU at tiny sizes, before any GPU time is spent.

A spec's ``smoke:`` mapping holds parameter overrides that shrink it (fewer steps, epochs,
sizes and seeds; ``device: cpu``) while keeping every comparison arm::

    smoke: {device: cpu, max_steps: 20, sizes: [50, 100], seeds: [0, 1]}

Where an override lands: a parameter the spec fixes gets the new value; a grid parameter
gets the new list of values; the spec's seed parameter (``seeds:`` at the top of the spec)
gets the new seeds; any other notebook parameter is added to ``fixed``. A value
``"generated:<kind>"`` (kinds: :data:`GENERATED`) is replaced by the path of a tiny
generated dataset of that kind, written under the smoke's output folder (e.g. a CIFAR-10
binary fixture for ``cifar10_path``). The smoked spec is named ``<name>-smoke`` and is
validated like any spec; ``apalu sweep SPEC --smoke [--out DIR]`` runs it (into
``_build/smoke`` unless ``--out``, never into ``data/results``), and ``apalu collect`` reads its
folder unchanged.

Example:
    >>> raw = {"name": "x-gpu", "fixed": {"device": "auto", "steps": 500}, "seeds": 10,
    ...        "smoke": {"device": "cpu", "steps": 5, "seeds": 2}}
    >>> apply_smoke(raw, seed_param="seeds")["fixed"], apply_smoke(raw, "seeds")["seeds"]
    ({'device': 'cpu', 'steps': 5}, 2)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["SMOKE_SUFFIX", "ARM_PARAMETERS", "GENERATED", "apply_smoke", "smoke_problems",
           "smoke_spec", "default_smoke_root", "write_cifar10_binary"]

SMOKE_SUFFIX = "-smoke"
#: Parameters that hold a claim's comparison arms: a smoke may not shrink them.
ARM_PARAMETERS = ("activations", "inits", "cls_activations")
_GENERATED_PREFIX = "generated:"


def write_cifar10_binary(folder: str | Path, per_batch: int = 20, seed: int = 0) -> Path:
    """A tiny CIFAR-10 in the binary distribution's layout, ``folder/cifar-10-batches-bin``
    (``data_batch_1..5.bin``, ``test_batch.bin``; each record 1 label byte + 3,072 pixel
    bytes), random pixels and labels cycling 0..9: enough to run the recipe end to end.

    Example:
        >>> import tempfile
        >>> p = write_cifar10_binary(tempfile.mkdtemp(), per_batch=10)
        >>> (p / "test_batch.bin").stat().st_size
        30730
    """
    out = Path(folder) / "cifar-10-batches-bin"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = (np.arange(per_batch) % 10).astype(np.uint8)[:, None]
        pixels = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        (out / f"{name}.bin").write_bytes(np.concatenate([labels, pixels], axis=1).tobytes())
    return out


#: ``"generated:<kind>"`` smoke values: kind -> writer(folder) returning the path to pass.
GENERATED: dict[str, Callable[[Path], Path]] = {
    "cifar10": lambda folder: write_cifar10_binary(folder, per_batch=5),  # 25 train, 5 test
}


def apply_smoke(raw: dict, seed_param: str | None) -> dict:
    """The spec ``raw`` with its ``smoke`` overrides applied (see the module docstring), named
    ``<name>-smoke``, without the ``smoke`` key. ``seed_param``: the notebook parameter the
    spec's top-level ``seeds`` set (None without them)."""
    out = copy.deepcopy({k: v for k, v in raw.items() if k != "smoke"})
    out["name"] = f"{raw.get('name', 'sweep')}{SMOKE_SUFFIX}"
    fixed = dict(out.get("fixed") or {})
    grid = dict(out.get("grid") or {})
    for key, value in (raw.get("smoke") or {}).items():
        if key in fixed:
            fixed[key] = copy.deepcopy(value)
        elif key in grid:
            grid[key] = copy.deepcopy(value) if isinstance(value, list) else [value]
        elif key == seed_param and "seeds" in raw:
            out["seeds"] = copy.deepcopy(value)
        else:
            fixed[key] = copy.deepcopy(value)
    out["fixed"] = fixed
    if grid:
        out["grid"] = grid
    return out


def _generated(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(_GENERATED_PREFIX):
        return value[len(_GENERATED_PREFIX):]
    return None


def smoke_problems(raw: dict, params: dict[str, dict]) -> list[str]:
    """What is wrong with a spec's ``smoke`` section before it is applied: not a mapping, an
    arm parameter shrunk, no ``device: cpu`` where the notebook has a device, an unknown
    generated kind. (The smoked spec is then validated whole by :func:`validate_spec`.)"""
    smoke = raw.get("smoke")
    if smoke is None:
        return []
    if not isinstance(smoke, dict) or not smoke:
        return ["smoke: must be a mapping of parameter: value (the overrides of a CPU smoke run)"]
    problems = [f"smoke.{k}: a smoke run keeps every comparison arm; leave {k!r} as the spec "
                "sets it" for k in smoke if k in ARM_PARAMETERS]
    if "device" in params and smoke.get("device") != "cpu":
        problems.append("smoke.device: must be 'cpu' (a smoke run proves the spec on this machine)")
    for k, v in smoke.items():
        kind = _generated(v)
        if kind is not None and kind not in GENERATED:
            problems.append(f"smoke.{k}: unknown generated kind {kind!r} (known: {', '.join(GENERATED)})")
    return problems


def _placeholders(raw: dict, make: Callable[[str, str], str]) -> dict:
    """``raw`` with every ``generated:<kind>`` value of ``fixed`` replaced by ``make(param, kind)``."""
    out = copy.deepcopy(raw)
    out["fixed"] = {k: (make(k, _generated(v)) if _generated(v) else v)
                    for k, v in (out.get("fixed") or {}).items()}
    return out


def default_smoke_root(root: Path) -> Path:
    """Where smoke sweeps go without ``--out``: ``<book root>/_build/smoke`` (ignored by git)."""
    return Path(root) / "_build" / "smoke"


def smoke_spec(spec, data_dir: Path | None = None):
    """The validated smoke spec of ``spec`` (a :class:`~apalu.sweep.spec.SweepSpec` with a
    ``smoke`` section); generated datasets are written under ``data_dir`` (default
    ``_build/smoke/<name>-smoke.data``). Raises ValueError when the spec has no smoke."""
    from .spec import validate_spec

    if not spec.raw.get("smoke"):
        raise ValueError(f"{spec.source}: no 'smoke' section (parameter overrides that shrink the "
                         "spec for a CPU run); add one to run it with --smoke")
    smoked = apply_smoke(spec.raw, spec.seed_param)
    data_dir = Path(data_dir or default_smoke_root(spec.root) / f"{smoked['name']}.data")

    def make(param: str, kind: str) -> str:
        return str(GENERATED[kind](data_dir / param).resolve())

    return validate_spec(_placeholders(smoked, make), root=spec.root, default_name=smoked["name"],
                         source=spec.source)
