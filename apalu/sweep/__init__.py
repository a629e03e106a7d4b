"""Sweeps: run any notebook of the book over a parameter grid, locally or on Slurm, resumably.

A sweep is described by a YAML spec (see ``sweeps/*.yaml`` and the book's "Rerun this book" page)::

    name: mnist-quickstart-cpu           # optional, default: the spec file's stem
    notebook: notebooks/mnist_quickstart.ipynb   # relative to the book root
    fixed: {epochs: 1, device: auto}     # passed to every run
    grid: {lr: [0.01, 0.1]}              # Cartesian product
    zip: {depth: [2, 4], width: [64, 32]}  # lists walked together (or a list of such groups)
    seeds: [0, 1, 2]                     # one run per seed (``seed_param`` names the parameter)
    resources: {cpus_per_task: 2, gpus_per_node: 0, timeout_min: 30}   # for --executor slurm

Every run gets a stable id (a hash of the notebook's path and its parameters) and, once it has
finished, a folder ``data/results/<sweep>/<run-id>/`` holding ``params.json``, the executed
``notebook.ipynb``, whatever the notebook wrote to its ``output_dir`` (its tidy CSV, figures),
``status.json`` (status, error, wall time) and ``machine.json``.

Safety: a run executes in a staging folder ``<sweep>/.staging/<run-id>.<host>.<pid>`` and is
published by renaming that folder to ``<run-id>`` once its ``status.json`` is written, so a run
folder exists only whole. A run folder whose status is ``complete`` is never executed again; a
``failed`` one only with ``retry_failed``; a run killed midway leaves only a staging folder,
which counts for nothing and is removed by the next invocation. Re-running the same command
after a crash or ``kill -9`` therefore completes the sweep with no run lost or duplicated.

The package: :mod:`.spec` (the YAML spec and its validation), :mod:`.runs` (expansion, one run,
its records), :mod:`.executors` (local pool, Slurm), :mod:`.collect` (the results table) and
:mod:`.cli` (``apalu sweep`` / ``apalu collect``); :mod:`.smoke` (a spec's ``smoke``
overrides: the same spec and arms at tiny sizes on the CPU, ``apalu sweep SPEC --smoke``) and
:mod:`.estimate` (GPU-minutes from step costs measured here, ``apalu sweep SPEC --estimate``).
"""

from .spec import SpecError, SweepSpec, Run, load_spec, validate_spec, RESERVED
from .runs import expand, run_id, run_status, execute_run, clean_staging
from .executors import CommittedResultsError, SweepRefused, preflight, device_problems, size_problems, run_epochs, read_pending, submitted_runs, run_sweep, tracked_files, guard_committed, executor_parameters, make_submitit_executor, sbatch_script

__all__ = [
    "SpecError",
    "CommittedResultsError",
    "SweepRefused",
    "preflight",
    "device_problems",
    "size_problems",
    "run_epochs",
    "read_pending",
    "submitted_runs",
    "SweepSpec",
    "Run",
    "load_spec",
    "validate_spec",
    "expand",
    "run_id",
    "run_status",
    "execute_run",
    "run_sweep",
    "clean_staging",
    "tracked_files",
    "guard_committed",
    "executor_parameters",
    "make_submitit_executor",
    "sbatch_script",
    "RESERVED",
]
