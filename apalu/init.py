"""How APALU's a and b start: a range (the paper's U(0, 2)), fixed values, or the C¹ tie b = 3a/2.

An init is given as

* ``(low, high)`` — a and b drawn independently from U(low, high) (the paper: ``(0, 2)``);
* ``{"a": 1.0, "b": 1.5}`` — fixed values, for reproducible ablations;
* a string, for papermill parameters and sweep specs: ``"0,2"`` (range), ``"fixed:1,1.5"``,
  or ``"c1:0,2"`` (a ~ U(0, 2) and b = 3a/2, the only choice that makes f differentiable at 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

import torch

InitSpec = Union["APALUInit", tuple, list, Mapping, str]

__all__ = ["APALUInit", "InitSpec", "parse_init"]


@dataclass(frozen=True)
class APALUInit:
    """A validated init rule. ``kind`` is "uniform", "fixed" or "c1"."""

    kind: str
    low: float
    high: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` values of a and of b (float64, on the CPU)."""
        if self.kind == "fixed":
            return torch.full((n,), self.low, dtype=torch.float64), torch.full(
                (n,), self.high, dtype=torch.float64
            )
        u = torch.rand((2, n), generator=generator, dtype=torch.float64)
        a, b = self.low + (self.high - self.low) * u
        if self.kind == "c1":
            b = 1.5 * a
        return a, b

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"fixed:{self.low:g},{self.high:g}"
        prefix = "c1:" if self.kind == "c1" else ""
        return f"{prefix}{self.low:g},{self.high:g}"


def _two_floats(text: str, what: str) -> tuple[float, float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise ValueError(f"APALU init {what!r} must be two comma-separated numbers")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"APALU init {what!r} must be two comma-separated numbers") from None


def parse_init(spec: InitSpec) -> APALUInit:
    """Turn any accepted init spelling into an :class:`APALUInit`, or raise ValueError naming it."""
    if isinstance(spec, APALUInit):
        return spec
    if isinstance(spec, str):
        kind, _, rest = spec.partition(":") if ":" in spec else ("uniform", "", spec)
        if kind not in ("uniform", "fixed", "c1"):
            raise ValueError(f"APALU init {spec!r}: unknown kind {kind!r} (use 'fixed:', 'c1:' or a range)")
        low, high = _two_floats(rest, spec)
    elif isinstance(spec, Mapping):
        if set(spec) != {"a", "b"}:
            raise ValueError(f"fixed APALU init needs exactly the keys 'a' and 'b', got {sorted(spec)}")
        kind, low, high = "fixed", float(spec["a"]), float(spec["b"])
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        kind, low, high = "uniform", float(spec[0]), float(spec[1])
    else:
        raise ValueError(
            f"APALU init {spec!r} not understood: give (low, high), {{'a': .., 'b': ..}}, "
            "or a string like '0,2', 'fixed:1,1.5', 'c1:0,2'"
        )
    if kind == "fixed":
        if not (low > 0 and high > 0):
            raise ValueError(f"fixed APALU init needs a > 0 and b > 0, got a={low}, b={high}")
    elif not (0 <= low < high):
        raise ValueError(f"APALU init range needs 0 <= low < high, got low={low}, high={high}")
    return APALUInit(kind, low, high)
