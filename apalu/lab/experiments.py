"""Reusable experiment drivers for the empirical chapters; each returns a tidy DataFrame.

* :func:`run_trainings` — train one model per config (activation, seed, lr, init, ...), with
  rows of final metrics (and optional per-step loss curves and a/b trajectories);
* :func:`fair_runs` — the learning rate tuned per arm on validation, then paired test seeds;
* :func:`one_class_runs` — Deep SVDD with each class in turn as the normal one.

Gradient flow lives in :mod:`apalu.lab.gradient_flow`; comparisons and verdicts in
:mod:`apalu.lab.protocol`.

Results go through :class:`ResultsWriter`: each run's rows are written when the run completes,
atomically, into one CSV that keeps the rows of earlier runs (of this or other parameter sets).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from .activations import is_apalu
from .atomic import atomic_path
from .data import Dataset, one_class
from .models import build_model, count_parameters
from .training import fit, seed_everything, tune_lr

__all__ = [
    "ResultsWriter",
    "resolve_output_dir",
    "run_key",
    "grid",
    "act_kwargs_for",
    "run_trainings",
    "fair_runs",
    "per_seed_metric",
    "mean_step_loss",
    "one_class_runs",
    "save_figure",
    "timer",
]


# ------------------------------------------------------------------ output


def resolve_output_dir(output_dir: str, name: str) -> Path:
    """``output_dir`` as given, or (when empty) ``<book root>/_build/results/<name>``; created."""
    if output_dir:
        path = Path(output_dir).expanduser()
    else:
        from .paths import repo_root

        try:
            root = repo_root()
        except FileNotFoundError:
            root = Path.cwd()
        path = root / "_build" / "results" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def run_key(config: dict) -> str:
    """A stable, readable id for a run's config: ``k=v`` pairs sorted by key."""
    return ";".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(config.items()))


class ResultsWriter:
    """Tidy rows into ``<output_dir>/<name>.csv``, one run at a time, atomically.

    Rows already in the file from other runs are kept; a run written again replaces its own
    rows (column ``run``). So a failed or interrupted execution leaves every completed run's
    rows, and earlier parameter sets in the same folder are not lost. ``frame()`` gives only
    this session's rows; with ``resume=True`` a run whose key is in the file is not re-run.
    """

    def __init__(self, output_dir: Path | str, name: str = "results", resume: bool = False):
        self.path = Path(output_dir) / f"{name}.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self._old = pd.read_csv(self.path) if self.path.exists() and self.path.stat().st_size else pd.DataFrame()
        self._session: list[pd.DataFrame] = []

    def has(self, key: str) -> bool:
        return not self._old.empty and "run" in self._old and bool((self._old["run"] == key).any())

    def add(self, key: str, rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
        df = pd.DataFrame(rows).copy()
        df.insert(0, "run", key)
        if not self._old.empty and "run" in self._old:
            self._old = self._old[self._old["run"] != key]
        self._session = [s for s in self._session if not (s["run"] == key).all()] + [df]
        _atomic_write_csv(pd.concat([self._old, *self._session], ignore_index=True), self.path)
        return df

    def run(self, config: dict, compute: Callable[[], list[dict] | pd.DataFrame]) -> pd.DataFrame:
        """Rows for ``config``: from the file when resuming and present, else ``compute()``."""
        key = run_key(config)
        if self.resume and self.has(key):
            df = self._old[self._old["run"] == key].copy()
            self._old = self._old[self._old["run"] != key]
            self._session.append(df)
            return df
        return self.add(key, compute())

    def frame(self) -> pd.DataFrame:
        return pd.concat(self._session, ignore_index=True) if self._session else pd.DataFrame()


def save_figure(fig, output_dir: Path, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``<output_dir>/<name>.png`` (atomically) and return the path."""
    path = Path(output_dir) / f"{name}.png"
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return path


def grid(**axes) -> list[dict]:
    """The Cartesian product of the given lists, as a list of config dicts (first axis slowest)."""
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def act_kwargs_for(activation: str, init=None, constraint: str | None = None) -> dict:
    """Constructor kwargs for ``activation``: APALU's (and the lab's APALU controls') init and
    constraint; nothing for the others."""
    if not is_apalu(activation):
        return {}
    kw = {}
    if init is not None:
        kw["init"] = tuple(init) if isinstance(init, list) else init
    if constraint is not None:
        kw["constraint"] = constraint
    return kw


# ------------------------------------------------------------------ trainings


def run_trainings(
    ds: Dataset | Callable[[dict], Dataset],
    configs: list[dict],
    *,
    model: str = "mlp",
    model_kw: dict | None = None,
    fit_kw: dict | None = None,
    device: str = "cpu",
    writer: ResultsWriter | None = None,
    curves: bool = False,
    trajectories: ResultsWriter | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Train one model per config and return tidy rows (config columns, ``metric``, ``value``).

    A config holds ``activation`` and ``seed`` and may hold ``lr``, ``init``, ``constraint``,
    ``per_channel``, ``n_train``, ``epochs``, ``batch_size``, ``max_steps``, ``optimizer``
    (each overriding ``fit_kw``/``model_kw``), and any other labels (kept as columns).
    ``ds`` is a Dataset or a function config → Dataset. Metrics: the fit's final ones plus
    ``n_params``; with ``curves`` also one ``step_loss`` row per step (column ``step``). With a
    ``trajectories`` writer, a and b of every APALU layer/channel are logged at each logged
    step (``fit_kw['log_params_every']``).
    """
    model_kw, fit_kw = dict(model_kw or {}), dict(fit_kw or {})
    out = []
    it = configs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(configs, desc="runs", leave=False)
    for config in it:
        config = dict(config)
        act = config["activation"]

        def compute(config=config, act=act):
            data = ds(config) if callable(ds) else ds
            if config.get("n_train") is not None:
                data = data.subset(int(config["n_train"]), seed=config.get("data_seed", 0))
            mkw = {**model_kw, "act_kwargs": act_kwargs_for(act, config.get("init"), config.get("constraint"))}
            if "per_channel" in config:
                mkw["per_channel"] = bool(config["per_channel"])
            for k in ("width", "depth"):
                if k in config:
                    mkw[k] = config[k]
            seed_everything(config["seed"])
            net = build_model(model, data, act, **mkw)
            fkw = {**fit_kw, **{k: config[k] for k in ("lr", "epochs", "batch_size", "max_steps", "optimizer",
                                                       "weight_decay") if k in config}}
            fkw["log_steps"] = curves or fkw.get("log_steps", False)
            res = fit(net, data, seed=config["seed"], device=device, **fkw)
            rows = res.rows(**config)
            rows.append({**config, "metric": "n_params", "value": float(count_parameters(net))})
            if curves and not res.steps.empty:
                rows += [{**config, "metric": "step_loss", "step": int(s), "value": float(v)}
                         for s, v in zip(res.steps["step"], res.steps["loss"])]
            if trajectories is not None and not res.act_params.empty:
                trajectories.add(run_key(config), [{**config, **r} for r in res.act_params.to_dict("records")])
            return rows

        out.append(writer.run(config, compute) if writer else pd.DataFrame(compute()))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def fair_runs(ds: Dataset, activations: Iterable[str] | dict[str, dict], seeds: Iterable[int], *,
              lrs: Iterable[float], model: str = "mlp", model_kw: dict | None = None, fit_kw: dict | None = None,
              init=None, tune_seed: int | None = None, device: str = "cpu", writer: ResultsWriter | None = None,
              curves: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fair arms: tune each arm's learning rate on the validation split over the same ``lrs``
    and budget (one run per rate, seed ``tune_seed``, by default one above the largest test
    seed so no test seed is used), then train every arm on every test seed at its own tuned
    rate. Every arm is built by :func:`build_model` with the same ``model_kw`` (so the same
    weight-init scheme), paired by seed (identical non-activation weights, see
    :func:`apalu.lab.models.activation_generator`).

    ``activations``: activation names (each an arm; APALU's take ``init``), or a dict arm name
    → {"activation": ..., "init": ..., "constraint": ...} for arms that differ otherwise (the
    init claim's arms). Returns (runs, tuning): the tidy rows of :func:`run_trainings` (with
    columns ``arm`` and ``lr``), and one row per (arm, lr) with its validation loss and
    whether it was chosen.
    """
    if isinstance(activations, dict):
        arms = {str(k): dict(v) for k, v in activations.items()}
    else:
        arms = {a: {"activation": a, **({"init": init} if init is not None and is_apalu(a) else {})}
                for a in activations}
    seeds, lrs = [int(s) for s in seeds], [float(x) for x in lrs]
    if not arms or not seeds:
        raise ValueError("fair_runs needs at least one arm and one seed")
    bad = [k for k, v in arms.items() if "activation" not in v]
    if bad:
        raise ValueError(f"arms {bad} name no activation")
    tune_seed = max(seeds) + 1 if tune_seed is None else int(tune_seed)
    if tune_seed in seeds:
        raise ValueError(f"tune_seed {tune_seed} is one of the test seeds; the tuning must not see them")
    model_kw, fit_kw = dict(model_kw or {}), dict(fit_kw or {})
    fit_kw.pop("lr", None)
    tuned, tables = {}, []
    for arm, spec in arms.items():
        act = spec["activation"]
        mkw = {**model_kw, "act_kwargs": act_kwargs_for(act, spec.get("init"), spec.get("constraint"))}
        best, table = tune_lr(lambda act=act, mkw=mkw: build_model(model, ds, act, **mkw), ds, lrs, seed=tune_seed,
                              fit_kw=fit_kw, device=device)
        tuned[arm] = best
        tables.append(table.assign(arm=arm, activation=act, chosen=table["lr"] == best))
    configs = [{"arm": arm, **spec, "seed": s, "lr": tuned[arm]} for arm, spec in arms.items() for s in seeds]
    runs = run_trainings(ds, configs, model=model, model_kw=model_kw, fit_kw=fit_kw, device=device, writer=writer,
                         curves=curves)
    tuning = pd.concat(tables, ignore_index=True)[["arm", "activation", "lr", "val_loss", "diverged", "chosen"]]
    return runs, tuning


def per_seed_metric(runs: pd.DataFrame, metric: str, name: str | None = None) -> pd.DataFrame:
    """The long frame :func:`apalu.lab.protocol.decide` takes: ``arm``, ``seed`` and the metric
    (``runs``' tidy rows of that metric; a diverged run keeps its NaN)."""
    d = runs[runs["metric"] == metric]
    if d.empty:
        raise ValueError(f"no rows of metric {metric!r}; the runs have {sorted(runs['metric'].unique())}")
    if "arm" not in d.columns:
        d = d.assign(arm=d["activation"])
    return d.rename(columns={"value": name or metric})[["arm", "seed", name or metric]]


def mean_step_loss(runs: pd.DataFrame, name: str = "loss_auc") -> pd.DataFrame:
    """Per (arm, seed): the mean training loss over every step of the budget, i.e. the area
    under the loss curve divided by its length (lower = faster convergence). A run that
    diverged (fewer steps than the others of its arm's budget) gets NaN, not a short mean."""
    steps = runs[runs["metric"] == "step_loss"]
    if steps.empty:
        raise ValueError("no per-step losses: run with curves=True")
    key = "arm" if "arm" in steps.columns else "activation"
    last = steps.groupby([key, "seed"])["step"].max()
    full = last.groupby(level=0).transform("max")
    out = steps.groupby([key, "seed"])["value"].mean().where(last == full)
    diverged = runs[(runs["metric"] == "diverged") & (runs["value"] > 0)]
    for a, s in zip(diverged[key], diverged["seed"]):
        out.loc[(a, s)] = math.nan
    return out.rename(name).reset_index().rename(columns={key: "arm"})


def one_class_runs(ds: Dataset, classes: Iterable[int], activations: Iterable[str], seeds: Iterable[int], *,
                   model_kw: dict | None = None, fit_kw: dict | None = None, device: str = "cpu",
                   writer: ResultsWriter | None = None) -> pd.DataFrame:
    """Deep SVDD (one-class objective, :class:`DeepSVDDEncoder`) with each class of ``ds`` in
    turn as the normal one; metric ``test_auc`` per (class, activation, seed)."""
    configs = [{"normal_class": c, "activation": a, "seed": s}
               for c, a, s in itertools.product(classes, activations, seeds)]
    cache: dict[int, Dataset] = {}

    def data_for(config):
        c = config["normal_class"]
        if c not in cache:
            cache[c] = one_class(ds, c)
        return cache[c]

    return run_trainings(data_for, configs, model="deepsvdd", model_kw=model_kw, fit_kw=fit_kw,
                         device=device, writer=writer)


# ------------------------------------------------------------------ wall time


def timer() -> Callable[[], float]:
    """``t = timer(); ...; t()`` → seconds since the call (for the wall-time line of a notebook)."""
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0
