"""What APALU costs: timings, saved memory, op counts, training steps and overhead, side by side.

Run ``python -m apalu.bench --help``. One run times every case in the same process,
interleaved (round r times every case once before round r+1 starts), so slow drifts of the
machine's load hit all cases alike; it reports medians, the interquartile range and ratios
(ratio of medians, and the median and IQR of the per-round ratios), and judges every
performance target as met or not met (:mod:`.targets`). With ``--out DIR`` it writes one CSV
per part (``ops``, ``modules``, ``steps``, ``e2e``, ``memory``, ``compile``, ``overhead``,
``targets``: ``<part>_<device>.csv``; ``flops.csv``) and merges a description of the machine
(:mod:`apalu.lab.machine`, the keys the sweeps use, plus load averages before and after) into
``machine.json``. ``--device cuda`` times with CUDA events (and the Triton kernel where it is
available); without CUDA it stops with one line.

Modules, one concern each: :mod:`.timing` (interleaved rounds), :mod:`.cases` (the large-tensor
cases), :mod:`.modules` (the layers by size), :mod:`.steps` (training steps), :mod:`.memory`,
:mod:`.opcount`, :mod:`.compile_cost`, :mod:`.overhead` (profiler breakdown), :mod:`.machine`,
:mod:`.targets`, :mod:`.output` and :mod:`.cli`.
"""

from __future__ import annotations

from .cases import Case, activation_cases, copy_bandwidth, run_cases
from .cli import main
from .compile_cost import compile_cost
from .machine import machine_info
from .memory import memory_table, saved_bytes_mlp
from .modules import module_table
from .opcount import bytes_bound, count_ops, flop_table
from .overhead import breakdown
from .steps import e2e_table, mlp_step_table
from .targets import TARGETS, judge
from .timing import time_rounds

__all__ = [
    "Case",
    "TARGETS",
    "activation_cases",
    "breakdown",
    "bytes_bound",
    "compile_cost",
    "copy_bandwidth",
    "count_ops",
    "e2e_table",
    "flop_table",
    "judge",
    "machine_info",
    "main",
    "memory_table",
    "mlp_step_table",
    "module_table",
    "run_cases",
    "saved_bytes_mlp",
    "time_rounds",
]
