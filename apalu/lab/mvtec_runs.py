"""The paper's MVTec AD claim (``exp-mvtec``): DifferNet and KD, APALU against ReLU, paired by seed.

:func:`mvtec_runs` trains, for every category, arm and seed, one DifferNet flow
(:mod:`apalu.lab.differnet`, frozen AlexNet features) and one KD cloner (:mod:`apalu.lab.kd`,
frozen VGG-16 teacher), and returns tidy rows (``method``, ``category``, ``activation``,
``seed``, ``metric``, ``value``; ``test_auc`` once per run, ``train_loss`` once per epoch).
Both backbones' files are checked before any image is read.

:func:`mvtec_claim` decides the claim by its pre-registered primary comparison
(:data:`apalu.lab.protocol.PROTOCOLS` ``"exp-mvtec"``): APALU − ReLU test AUROC in AUC pp,
the two methods and the categories averaged within each seed (as ``exp-regression-cost``
averages its DNN and its RNN), paired by seed. The two methods' own comparisons (each averaged
over categories within seed) are reported next to it, Holm-adjusted together, against the
paper's +1.81 pp (DifferNet) and +1.11 pp (KD).

Every arm uses each method's published optimiser; its learning rate is the published one
times a factor tuned per arm (``lr_factors``), by the method's own objective on held-out
normal images (the loader's validation split, defects left out) from one run on a seed no test
run uses. The arms differ only in the activation of the trained network (the flow's
subnetworks, the cloner's layers) and, when tuned, the learning rate.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from .backbones import check_weights, dataset_images, load_backbone
from .data import load_dataset
from .differnet import DifferNetConfig, MethodResult, differnet_features, train_differnet
from .experiments import ResultsWriter
from .kd import KDConfig, teacher_targets, train_kd
from .protocol import Decision, decide, protocol_for
from .stats import PairedComparison, paired_comparison, with_holm
from .training import resolve_device

__all__ = ["METHODS", "PAPER_EFFECTS", "mvtec_runs", "mvtec_claim", "describe_scale", "not_run_evidence"]

METHODS = ("differnet", "kd")
METHOD_LABELS = {"differnet": "DifferNet", "kd": "KD"}
PAPER_EFFECTS = {"differnet": 1.81, "kd": 1.11}  # AUC pp, APALU − ReLU (the paper's MVTec table)


def not_run_evidence(how: str, mvtec_path: str, alexnet_weights, vgg16_weights) -> str:
    """Why ``exp-mvtec`` is not run, and the command that runs it."""
    missing = [n for n, v in (("mvtec_path", mvtec_path), ("alexnet_weights", alexnet_weights),
                              ("vgg16_weights", vgg16_weights)) if not v]
    return (f"needs the MVTec AD data and ImageNet weights as .safetensors (AlexNet for DifferNet, VGG-16 "
            f"for KD; not given: {', '.join(missing)}): {how} -p mvtec_path <folder> -p alexnet_weights "
            "<file> -p vgg16_weights <file> -p device cuda")


def describe_scale(categories: list[str], seeds: list[int], differnet: DifferNetConfig, kd: KDConfig,
                   lr_factors: tuple[float, ...] = (1.0,)) -> str:
    """The runs' size in words, for the record's ``scale``."""
    f, k = differnet, kd
    lr = ("the papers' learning rates" if len(lr_factors) < 2 else
          f"the papers' learning rates times one of {list(lr_factors)}, tuned per arm on held-out normal images")
    return (f"DifferNet ({f.image_size} px, {f.scales} scale{'s' * (f.scales != 1)}, {f.blocks} coupling blocks of width {f.hidden}, "
            f"{f.epochs} epochs, {f.n_transforms}/{f.n_transforms_test} train/test rotations) and KD "
            f"({k.image_size} px, {k.epochs} epochs, lambda {k.lamda:g}) on MVTec AD {', '.join(categories)}, "
            f"{len(seeds)} seeds, the papers' optimisers with {lr}")


def _rows(method: str, category: str, activation: str, seed: int, res: MethodResult) -> list[dict]:
    key = {"method": method, "category": category, "activation": activation, "seed": seed}
    return ([{**key, "metric": "test_auc", "value": res.auc}]
            + [{**key, "metric": "train_loss", "epoch": e + 1, "value": v} for e, v in enumerate(res.losses)])


def mvtec_runs(path: str, categories: list[str], seeds: list[int], *, alexnet_weights: str, vgg16_weights: str,
               activations: tuple[str, ...] | None = None, differnet: DifferNetConfig = DifferNetConfig(),
               kd: KDConfig = KDConfig(), lr_factors: tuple[float, ...] = (1.0,), tune_seed: int | None = None,
               device: str = "cpu", writer: ResultsWriter | None = None) -> pd.DataFrame:
    """Train DifferNet and KD for every category × arm × seed; tidy rows (see the module).

    ``activations``: the arms (default: the protocol's, APALU and ReLU). ``lr_factors``: with
    more than one, each arm's learning rate is tuned per category and method over the
    method's published rate times these factors, by the training objective on the held-out
    normal validation images, from one run on ``tune_seed`` (default: one above the largest
    test seed, so no test seed is seen); rows ``val_loss`` (column ``lr``) record the tuning.
    The backbones are loaded (and checked) first; each category's backbone features are
    computed once and shared by every arm and seed (the backbones are frozen)."""
    arms = tuple(activations or protocol_for("exp-mvtec").arms)
    factors = tuple(float(f) for f in lr_factors)
    if not factors or any(not f > 0 for f in factors):
        raise ValueError(f"lr_factors must be positive numbers, got {lr_factors!r}")
    tune_seed = max(seeds) + 1 if tune_seed is None else int(tune_seed)
    if tune_seed in seeds:
        raise ValueError(f"tune_seed {tune_seed} is one of the test seeds; the tuning must not see them")
    device = str(resolve_device(device))
    check_weights(alexnet_weights, "alexnet", "alexnet_weights")
    check_weights(vgg16_weights, "vgg16", "vgg16_weights")
    alexnet = load_backbone(alexnet_weights, "alexnet", "alexnet_weights").to(device)
    vgg16 = load_backbone(vgg16_weights, "vgg16", "vgg16_weights").to(device)
    configs = {"differnet": differnet, "kd": kd}
    out = []
    for category in categories:
        cache: dict[str, dict] = {}

        def inputs(method: str, category=category) -> dict:
            if method not in cache:  # computed only when a run needs it (a resumed run does not)
                ds = load_dataset("mvtec", path=path, category=category, image_size=configs[method].image_size,
                                  seed=0)
                train, test, y = dataset_images(ds, "train"), dataset_images(ds, "test"), ds.y_test.numpy()
                val = dataset_images(ds, "val")[ds.y_val == 0] if len(factors) > 1 else None  # held-out normals
                if val is not None and not len(val):
                    raise ValueError(f"MVTec {category!r}: no normal image in the validation split to tune "
                                     "the learning rate on; pass lr_factors=[1.0]")
                if method == "differnet":
                    cache[method] = {"train_features": differnet_features(alexnet, train, differnet,
                                                                          differnet.n_transforms),
                                     "test_features": differnet_features(alexnet, test, differnet,
                                                                         differnet.n_transforms_test),
                                     "val_features": None if val is None else differnet_features(
                                         alexnet, val, differnet, differnet.n_transforms_test),
                                     "y_test": y}
                else:
                    cache[method] = {"train_images": train, "train_targets": teacher_targets(vgg16, train),
                                     "test_images": test, "test_targets": teacher_targets(vgg16, test),
                                     "val_images": val, "y_test": y,
                                     "val_targets": None if val is None else teacher_targets(vgg16, val)}
            return cache[method]

        def train(method: str, act: str, seed: int, lr: float):
            cfg = replace(configs[method], lr=lr)
            fn = train_differnet if method == "differnet" else train_kd
            return fn(**inputs(method), activation=act, seed=seed, cfg=cfg, device=device)

        def run(config: dict, compute) -> pd.DataFrame:
            return writer.run(config, compute) if writer else pd.DataFrame(compute())

        for method in METHODS:
            for act in arms:
                key = {"method": method, "category": category, "activation": act}
                lrs = [configs[method].lr * f for f in factors]
                if len(lrs) > 1:
                    tuning = pd.concat([run({**key, "seed": tune_seed, "lr": lr, "tune": True},
                                            lambda lr=lr: [{**key, "seed": tune_seed, "lr": lr, "metric": "val_loss",
                                                            "value": train(method, act, tune_seed, lr).val_loss}])
                                        for lr in lrs], ignore_index=True)
                    out.append(tuning)
                    best = float(tuning.set_index("lr")["value"].fillna(math.inf).idxmin())
                else:
                    best = lrs[0]
                for seed in seeds:
                    out.append(run({**key, "seed": seed, "lr": best},
                                   lambda seed=seed, best=best: [
                                       {**r, "lr": best} for r in _rows(method, category, act, seed,
                                                                        train(method, act, seed, best))]))
    return pd.concat(out, ignore_index=True)


def _per_method(auc: pd.DataFrame, treatment: str, baseline: str) -> list[PairedComparison]:
    comps = []
    for method in METHODS:
        by_seed = (auc[auc["method"] == method].groupby(["activation", "seed"])["value"]
                   .agg(lambda v: v.mean() if v.notna().all() else math.nan).mul(100).unstack("activation"))
        comps.append(paired_comparison(by_seed[treatment].to_numpy(), by_seed[baseline].to_numpy(),
                                       treatment_name=treatment, baseline_name=f"{baseline} ({method})",
                                       metric="auc", higher_is_better=True))
    return with_holm(comps)


def mvtec_claim(runs: pd.DataFrame, *, scale: str) -> tuple[Decision, list[PairedComparison], str]:
    """The ``exp-mvtec`` decision from :func:`mvtec_runs`' rows, the two methods' comparisons
    (Holm together, AUC pp) and the record's evidence text."""
    pr = protocol_for("exp-mvtec")
    auc = runs[runs["metric"] == "test_auc"]
    missing = sorted(set(METHODS) - set(auc["method"]))
    if missing:
        raise ValueError(f"exp-mvtec needs runs of both methods; no runs of {missing}")
    # decide averages the other key columns (method, category) within each arm and seed
    d = decide(pr, auc.rename(columns={"value": pr.metric}).assign(arm=lambda f: f["activation"]), scale=scale)
    per_method = _per_method(auc, pr.treatment, pr.primary)
    parts = [f"{METHOD_LABELS[m]} {c.effect:+.3g} AUC pp [{c.ci_low:+.3g}, {c.ci_high:+.3g}], Holm p = "
             f"{c.p_adjusted:.3g}, n = {c.n} (the paper: {PAPER_EFFECTS[m]:+g})" for m, c in zip(METHODS, per_method)]
    evidence = f"{scale}. {d.evidence} Per method, APALU − ReLU (Holm across the two): {'; '.join(parts)}."
    return d, per_method, evidence
