"""Interleaved timing: every case once per round, so slow drifts of the load hit all alike."""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable, Iterator

import torch

__all__ = ["Timer", "quantiles", "ratio_summary", "threads", "time_rounds"]


class Timer:
    """Wall-clock on the CPU; CUDA events (with a synchronise) on a GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Callable[[], object], inner: int = 1) -> float:
        """Seconds per call, over ``inner`` back-to-back calls of ``fn``."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3 / inner
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t0) / inner


def quantiles(v: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile)."""
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return q[0], statistics.median(v), q[2]


def time_rounds(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device,
    inner: int = 1,
) -> dict[str, list[float]]:
    """Interleaved timing: ``warmup`` untimed calls of each, then ``repeats`` rounds in which
    every function runs once (``inner`` times back to back, for calls too short to time one by
    one). Returns the seconds per call, per name, in round order."""
    timer = Timer(device)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            out[k].append(timer(fn, inner))
    return out


def ratio_summary(t: list[float], ref: list[float]) -> dict:
    """Medians, quartiles (ms) of ``t`` and its ratio to ``ref`` (timed in the same rounds): the
    ratio of medians, and the median and IQR of the per-round ratios."""
    q1, med, q3 = quantiles(t)
    r1, rmed, r3 = quantiles([u / v for u, v in zip(t, ref)])
    return {"median_ms": med * 1e3, "q1_ms": q1 * 1e3, "q3_ms": q3 * 1e3, "iqr_ms": (q3 - q1) * 1e3,
            "ratio": med / statistics.median(ref), "round_ratio_median": rmed,
            "round_ratio_iqr": r3 - r1, "repeats": len(t)}


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Within the block torch uses ``n`` CPU threads (None: unchanged)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
