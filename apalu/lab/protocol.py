"""The pre-registered protocol: one primary comparison per empirical claim, decided one way.

Each claim decided by training (``method == "comparison"`` in :mod:`apalu.report.claims`)
has a :class:`Protocol` in :data:`PROTOCOLS`, fixed before any run: the metric and its
direction, the treatment arm, the **primary** baseline (the one comparison that decides the
verdict), the secondary baselines (reported, Holm-adjusted together with the primary), the
effect the paper claims, an equivalence/non-inferiority margin, and the number of seeds.

:func:`decide` takes a long frame (columns ``arm``, ``seed`` and the metric; one row per arm
and seed, other key columns such as ``class`` averaged within seed first), pairs the arms by
seed (:func:`apalu.lab.stats.paired_comparison`) and applies the rules below, in order:

1. an arm missing, or fewer than ``min_seeds`` complete pairs → ``incomplete (...)``;
2. every test of the primary below is Holm-adjusted together with the secondary
   comparisons' p values. Hypothesis "superior": primary Holm p < α and effect > 0 → "supported"; effect < 0 →
   "refuted"; hypothesis "noninferior" (treatment no worse than the baseline by more than
   ``margin``): the lower one-sided test against −margin < α → "supported"; the effect
   significantly below 0 (Holm) → "refuted";
3. with a ``margin``, TOST p < α → "equivalent within ±margin unit";
4. a pre-specified ``condition`` column (e.g. ``n_train``): if the interaction test (a
   one-sample t test over seeds of each seed's slope of the paired difference against the
   condition's rank) has p < α and some level's comparison is supported after Holm across
   levels → "holds under a condition", naming the levels;
5. the MDE above the claimed effect → ``underpowered (MDE X > claimed Y)``;
6. otherwise "inconclusive".

The verdict vocabulary is defined here, once (the lab may not import the report;
:mod:`apalu.report.ledger` re-exports it and validates every record against it).

Values are compared in the protocol's ``unit``: the metric times ``to_unit`` (100 turns an
accuracy into percentage points).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .stats import PAIRED_TEST, PairedComparison, holm, paired_comparison, with_holm

__all__ = ["Protocol", "Decision", "PROTOCOLS", "HYPOTHESES", "decide", "protocol_for", "ARM_LABELS", "INIT_ARMS", "VERDICTS",
           "SUPPORTED", "REFUTED", "INCONCLUSIVE", "EQUIVALENT", "UNDERPOWERED", "INCOMPLETE", "NOT_TESTED", "NOT_RUN",
           "CONFIRMED", "HOLDS_UNDER_CONDITION", "HOLDS_WITH_PROBABILITY_0", "equivalent", "underpowered",
           "incomplete", "verdict_family", "is_verdict"]

# The verdict vocabulary, defined once. Empirical claims (decided by apalu.lab.protocol.decide):
SUPPORTED = "supported"  # the pre-registered primary comparison favours the claim after Holm
REFUTED = "refuted"  # it goes significantly the other way (or an analytic counterexample)
INCONCLUSIVE = "inconclusive"  # neither, with enough power for the claimed effect
EQUIVALENT = "equivalent"  # family of equivalent(margin, unit): TOST within ±margin
UNDERPOWERED = "underpowered"  # family of underpowered(mde, claimed, unit)
INCOMPLETE = "incomplete"  # family of incomplete(why): missing arms or too few seeds
NOT_TESTED = "not tested here"  # no record, or no data at this machine's scale
NOT_RUN = "not run here"  # the code exists, the run needs a bigger machine
# Analytic claims (decided by SymPy and numerics):
CONFIRMED = "confirmed"
HOLDS_UNDER_CONDITION = "holds under a condition"  # an analytic condition, or a pre-specified interaction test
HOLDS_WITH_PROBABILITY_0 = "holds with probability 0 under the paper's init"

# Families: the first word(s) of every verdict; parameterised ones carry their numbers after it.
VERDICTS = (SUPPORTED, REFUTED, EQUIVALENT, UNDERPOWERED, INCONCLUSIVE, INCOMPLETE, CONFIRMED, HOLDS_UNDER_CONDITION,
            HOLDS_WITH_PROBABILITY_0, NOT_TESTED, NOT_RUN)
_PARAMETRISED = re.compile(r"^(equivalent within ±\S+ .+|underpowered \(MDE \S+ .*> claimed \S+ .*\)"
                           r"|incomplete \(.+\))$")


def equivalent(margin: float, unit: str) -> str:
    """The verdict when TOST puts the effect inside ±margin."""
    return f"equivalent within ±{margin:g} {unit}".rstrip()


def underpowered(mde: float, claimed: float, unit: str) -> str:
    """The verdict when the budget cannot detect the claimed effect (MDE above it)."""
    return f"underpowered (MDE {mde:.2g} {unit} > claimed {claimed:g} {unit})".replace("  ", " ")


def incomplete(why: str) -> str:
    """The verdict when the runs cannot decide: e.g. "missing arm: silu", "4 of 10 seeds"."""
    return f"incomplete ({why})"


def verdict_family(text: str) -> str:
    """The member of :data:`VERDICTS` a verdict belongs to ("underpowered (MDE …)" → "underpowered")."""
    if text in VERDICTS:
        return text
    if _PARAMETRISED.match(text):
        return text.split(" ", 1)[0]
    raise ValueError(f"verdict {text!r} is not one of {VERDICTS} (parameterised ones come from "
                     "equivalent/underpowered/incomplete)")


def is_verdict(text: str) -> bool:
    try:
        verdict_family(text)
    except ValueError:
        return False
    return True



HYPOTHESES = ("superior", "noninferior")

# How an arm is named in words (the lab's names: apalu_frozen = a, b fixed at their init;
# relu_scaled = ReLU times APALU's mean slope at init).
ARM_LABELS = {"apalu": "APALU", "relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "elu": "ELU", "prelu": "PReLU",
              "tanh": "Tanh", "apalu_frozen": "APALU (a, b frozen)", "relu_scaled": "ReLU × APALU's slope",
              "u02": "U(0, 2)", "fixed11": "a = b = 1", "u01": "U(0, 1)", "u05": "U(0, 5)",
              "c102": "a ~ U(0, 2), b = 3a/2"}

# Arms of the init claim (exp-init-u02): arm name -> APALU init spec (apalu.init).
INIT_ARMS = {"u02": "0,2", "fixed11": "fixed:1,1", "u01": "0,1", "u05": "0,5", "c102": "c1:0,2"}


def _label(arm: str) -> str:
    return ARM_LABELS.get(arm, arm)


@dataclass(frozen=True)
class Protocol:
    claim_id: str
    metric: str  # column of the frame decide() receives
    higher_is_better: bool
    treatment: str  # arm whose claim is tested, e.g. "apalu"
    primary: str  # the one pre-registered baseline that decides the verdict
    secondary: tuple[str, ...]  # further baselines: reported, Holm-adjusted with the primary
    claimed_effect: float | None  # the paper's effect in ``unit`` (None: the paper gives no number)
    margin: float | None  # equivalence / non-inferiority margin in ``unit`` (None: no TOST)
    min_seeds: int = 10
    alpha: float = 0.05
    unit: str = ""  # "pp", "AUC pp", "log MSE", ...
    to_unit: float = 1.0  # metric × to_unit = value in ``unit`` (100 for an accuracy in pp)
    hypothesis: str = "superior"  # one of HYPOTHESES
    condition: str | None = None  # pre-specified interaction column, e.g. "n_train"
    metric_label: str = ""  # in words, for the record's "primary" field, e.g. "test accuracy"

    def __post_init__(self):
        if not re.match(r"^[a-z0-9][a-z0-9-]*$", self.claim_id):
            raise ValueError(f"claim id {self.claim_id!r} must be a lowercase slug")
        if self.hypothesis not in HYPOTHESES:
            raise ValueError(f"{self.claim_id}: hypothesis {self.hypothesis!r} not in {HYPOTHESES}")
        if self.hypothesis == "noninferior" and self.margin is None:
            raise ValueError(f"{self.claim_id}: a non-inferiority protocol needs a margin")
        if self.treatment == self.primary or self.primary in self.secondary:
            raise ValueError(f"{self.claim_id}: the primary baseline must differ from the treatment and the "
                             "secondary baselines")
        if self.min_seeds < 2 or not 0 < self.alpha < 1:
            raise ValueError(f"{self.claim_id}: min_seeds >= 2 and 0 < alpha < 1 needed")

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.treatment, self.primary, *self.secondary)

    def describe(self) -> str:
        """The primary comparison in words: "APALU − ReLU, test accuracy"."""
        return f"{_label(self.treatment)} − {_label(self.primary)}, {self.metric_label or self.metric}"


@dataclass(frozen=True)
class Decision:
    protocol: Protocol
    verdict: str
    primary: PairedComparison
    secondary: list[PairedComparison]
    evidence: str
    scale: str = ""
    by_condition: list[PairedComparison] = field(default_factory=list)
    interaction_p: float | None = None
    condition: str = ""  # where it holds, when the verdict is "holds under a condition"

    def fields(self) -> dict:
        """The ledger record's structured fields (:data:`apalu.report.ledger.FIELDS` and the verdict;
        ``kind`` comes from the claims registry when the record is written)."""
        p, pr = self.primary, self.protocol

        def num(x):
            return None if x is None or not math.isfinite(x) else float(x)

        return {"primary": pr.describe(), "n_seeds": int(p.n), "test": p.test,
                "effect": num(p.effect), "ci_low": num(p.ci_low), "ci_high": num(p.ci_high),
                "p_adjusted": num(p.p_adjusted), "mde": num(p.mde), "claimed_effect": pr.claimed_effect,
                "verdict": self.verdict, "scale": self.scale, "unit": pr.unit, "condition": self.condition or None}

    def interaction_text(self) -> str:
        """The pre-specified interaction test in words: ``"p = 0.78"``, or why it was not run."""
        if self.interaction_p is None:
            return "not tested (too few seeds or conditions)"
        return f"p = {self.interaction_p:.3g}"

    def table(self) -> pd.DataFrame:
        """Primary and secondary comparisons, one row each (for the notebook's table)."""
        rows = [{"role": "primary", **vars(self.primary)}] + [{"role": "secondary", **vars(c)} for c in self.secondary]
        return pd.DataFrame(rows)


def _nan_comparison(pr: Protocol, baseline: str) -> PairedComparison:
    nan = math.nan
    return PairedComparison(treatment=pr.treatment, baseline=baseline, metric=pr.metric, n=0, effect=nan,
                            ci_low=nan, ci_high=nan, p=nan, p_adjusted=nan, mde=nan, test=PAIRED_TEST,
                            tost_p=None if pr.margin is None else nan, margin=pr.margin)


def _per_seed(pr: Protocol, df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """arm × seed (× condition) means of the metric in ``unit``; other key columns averaged."""
    missing = [c for c in ("arm", "seed", pr.metric, *keys) if c not in df.columns]
    if missing:
        raise ValueError(f"{pr.claim_id}: the frame lacks column(s) {missing}; it has {list(df.columns)}")
    values = pd.to_numeric(df[pr.metric], errors="coerce") * pr.to_unit
    # mean with skipna=False: a diverged run (NaN) makes its seed incomplete, never silently dropped
    frame = df.assign(_v=values).groupby(["arm", "seed", *keys], sort=True)["_v"]
    return frame.apply(lambda s: s.mean(skipna=False)).unstack("arm")


def _compare(pr: Protocol, wide: pd.DataFrame, baseline: str) -> PairedComparison:
    return paired_comparison(wide[pr.treatment].to_numpy(), wide[baseline].to_numpy(),
                             treatment_name=pr.treatment, baseline_name=baseline, metric=pr.metric,
                             higher_is_better=pr.higher_is_better, margin=pr.margin)


def _fmt(c: PairedComparison, unit: str) -> str:
    return (f"{_label(c.treatment)} − {_label(c.baseline)} {c.effect:+.3g} {unit} [{c.ci_low:+.3g}, "
            f"{c.ci_high:+.3g}], Holm p = {c.p_adjusted:.3g}, MDE {c.mde:.2g} {unit}, n = {c.n}").replace("  ", " ")


def _noninferior_p(c: PairedComparison, margin: float, d: np.ndarray) -> float:
    from scipy import stats

    if len(d) < 2:
        return math.nan
    if np.std(d) == 0:
        return 0.0 if d.mean() > -margin else 1.0
    return float(stats.ttest_1samp(d, -margin, alternative="greater").pvalue)


def _interaction(pr: Protocol, wide: pd.DataFrame) -> tuple[float, list[PairedComparison]]:
    """Interaction p (slope of each seed's paired difference against the condition's rank,
    tested over seeds) and the per-level comparisons, Holm across levels."""
    from scipy import stats

    sign = 1.0 if pr.higher_is_better else -1.0
    diff = (sign * (wide[pr.treatment] - wide[pr.primary])).unstack(pr.condition)
    levels = list(diff.columns)
    per_level = with_holm([
        paired_comparison(wide[pr.treatment].xs(lv, level=pr.condition).to_numpy(),
                          wide[pr.primary].xs(lv, level=pr.condition).to_numpy(), treatment_name=pr.treatment,
                          baseline_name=f"{pr.primary} at {pr.condition}={lv}", metric=pr.metric,
                          higher_is_better=pr.higher_is_better) for lv in levels])
    diff = diff.dropna()
    if len(levels) < 2 or len(diff) < 2:
        return math.nan, per_level
    rank = np.arange(len(levels), dtype=float)
    slopes = np.polyfit(rank, diff.to_numpy().T, 1)[0]
    if np.std(slopes) == 0:
        return (1.0 if slopes.mean() == 0 else 0.0), per_level
    return float(stats.ttest_1samp(slopes, 0.0).pvalue), per_level


def decide(protocol: Protocol, df: pd.DataFrame, *, scale: str = "") -> Decision:
    """Apply ``protocol`` to the runs in ``df`` and return the verdict with its comparisons.

    ``scale``: the runs' size in words (seeds, steps, data), carried into the record.
    """
    pr = protocol
    keys = [pr.condition] if pr.condition else []
    absent = [a for a in pr.arms if a not in set(df.get("arm", pd.Series(dtype=object)))]
    if "arm" not in df.columns:
        raise ValueError(f"{pr.claim_id}: the frame lacks column 'arm'; it has {list(df.columns)}")
    if absent:
        nan_cmp = _nan_comparison(pr, pr.primary)
        v = incomplete("missing arm" + ("s" if len(absent) > 1 else "") + ": " + ", ".join(absent))
        return Decision(pr, v, nan_cmp, [_nan_comparison(pr, b) for b in pr.secondary],
                        f"Not decided: no runs of {', '.join(_label(a) for a in absent)}.", scale)
    wide = _per_seed(pr, df, keys)
    # the primary and secondary comparisons are over seeds (conditions averaged within seed)
    by_seed = wide.groupby(level="seed").mean() if keys else wide
    comps = with_holm([_compare(pr, by_seed, b) for b in (pr.primary, *pr.secondary)])
    primary, secondary = comps[0], comps[1:]
    unit = pr.unit
    base_evidence = _fmt(primary, unit)
    if primary.n < pr.min_seeds:
        v = incomplete(f"{primary.n} of {pr.min_seeds} seeds")
        return Decision(pr, v, primary, secondary,
                        f"Not decided: {primary.n} complete seed pairs, the protocol needs {pr.min_seeds}; "
                        + base_evidence + ".", scale)
    alpha = pr.alpha
    verdict = None

    def in_family(p: float) -> float:
        """A test of the primary comparison, Holm-adjusted with the secondary ones (whichever
        test decides, superiority, non-inferiority or TOST, it pays for the whole family)."""
        return holm([p, *[c.p for c in secondary]])[0]

    if pr.hypothesis == "superior":
        if primary.p_adjusted < alpha:
            verdict = SUPPORTED if primary.effect > 0 else REFUTED
    else:
        d = (by_seed[pr.treatment] - by_seed[pr.primary]).dropna().to_numpy() * (1 if pr.higher_is_better else -1)
        if in_family(_noninferior_p(primary, pr.margin, d)) < alpha:
            verdict = SUPPORTED
        elif primary.p_adjusted < alpha and primary.effect < 0:
            verdict = REFUTED
    if verdict is None and pr.margin is not None and primary.tost_p is not None and in_family(primary.tost_p) < alpha:
        verdict = equivalent(pr.margin, unit)
    by_condition: list[PairedComparison] = []
    inter_p = None
    where = ""
    if pr.condition:
        inter_p, by_condition = _interaction(pr, wide)
        held = [c for c in by_condition if c.p_adjusted < alpha and c.effect > 0]
        if verdict is None and inter_p < alpha and held:
            verdict = HOLDS_UNDER_CONDITION
            where = ", ".join(c.baseline.split(" at ", 1)[1].replace("=", " = ") for c in held)
            base_evidence += f"; interaction with {pr.condition} p = {inter_p:.3g}; holds at {where}"
    if verdict is None and pr.claimed_effect is not None and primary.mde > pr.claimed_effect:
        verdict = underpowered(primary.mde, pr.claimed_effect, unit)
    if verdict is None:
        verdict = INCONCLUSIVE
    evidence = f"Primary (pre-registered): {base_evidence}"
    if pr.claimed_effect is not None:
        evidence += f"; the paper: {pr.claimed_effect:+g} {unit}"
    if secondary:
        evidence += ". Secondary: " + "; ".join(_fmt(c, unit) for c in secondary)
    return Decision(pr, verdict, primary, secondary, evidence.replace("  ", " ") + ".", scale, by_condition,
                    inter_p, where)


_BASELINES = ("gelu", "silu", "elu", "prelu", "apalu_frozen", "relu_scaled")


def _p(claim_id: str, metric: str, **kw) -> Protocol:
    return Protocol(claim_id=claim_id, metric=metric, **kw)


PROTOCOLS: dict[str, Protocol] = {p.claim_id: p for p in [
    _p("exp-vanishing-gradients", "log10_grad_ratio", higher_is_better=True, treatment="apalu", primary="relu",
       secondary=("gelu", "silu", "elu"), claimed_effect=None, margin=None, unit="decades",
       metric_label="log10 of first-layer / last-layer gradient norm"),
    _p("exp-init-u02", "test_acc", higher_is_better=True, treatment="u02", primary="fixed11",
       secondary=("u01", "u05", "c102"),
       claimed_effect=None, margin=1.0, unit="pp", to_unit=100.0, hypothesis="noninferior",
       metric_label="test accuracy"),
    _p("exp-small-data-overfitting", "gap", higher_is_better=False, treatment="apalu", primary="relu",
       secondary=("prelu", "gelu", "elu", "silu"), claimed_effect=None, margin=2.0, unit="pp", to_unit=100.0,
       hypothesis="noninferior", condition="n_train", metric_label="train − validation accuracy gap"),
    _p("exp-faster-convergence", "loss_auc", higher_is_better=False, treatment="apalu", primary="relu",
       secondary=_BASELINES, claimed_effect=None, margin=None, unit="nats",
       metric_label="mean training loss over the budget (area under the loss curve)"),
    _p("exp-cifar10", "test_acc", higher_is_better=True, treatment="apalu", primary="relu", secondary=(),
       claimed_effect=0.37, margin=0.5, unit="pp", to_unit=100.0, metric_label="CIFAR-10 test accuracy"),
    _p("proxy-cifar10-mnist-cnn", "test_acc", higher_is_better=True, treatment="apalu", primary="relu",
       secondary=_BASELINES, claimed_effect=0.37, margin=0.5, unit="pp", to_unit=100.0,
       metric_label="test accuracy"),
    _p("exp-deep-svdd-auc", "auc", higher_is_better=True, treatment="apalu", primary="relu", secondary=(),
       claimed_effect=0.8, margin=0.5, unit="AUC pp", to_unit=100.0, metric_label="AUC (mean over normal classes)"),
    _p("exp-regression-cost", "log_mse", higher_is_better=False, treatment="apalu", primary="relu",
       secondary=("tanh",), claimed_effect=None, margin=None, unit="log MSE",
       metric_label="log test MSE (mean over the DNN and the RNN)"),
    # two methods in one claim, averaged within seed (as the DNN and the RNN above); the claimed
    # effect is the mean of the paper's +1.81 (DifferNet) and +1.11 (KD); apalu.lab.mvtec_runs
    _p("exp-mvtec", "auc", higher_is_better=True, treatment="apalu", primary="relu", secondary=(),
       claimed_effect=1.46, margin=None, unit="AUC pp", to_unit=100.0,
       metric_label="test AUROC (mean over DifferNet and KD and the categories, within each seed)"),
    _p("proxy-mvtec-deep-svdd", "auc", higher_is_better=True, treatment="apalu", primary="relu", secondary=(),
       claimed_effect=1.81, margin=None, unit="AUC pp", to_unit=100.0,
       metric_label="Deep SVDD AUC (mean over categories)"),
]}
# tests/lab/test_protocol.py checks that these are exactly the registry's compared claims


def protocol_for(claim_id: str) -> Protocol:
    """The pre-registered protocol of ``claim_id``; a clear error for any other id."""
    try:
        return PROTOCOLS[claim_id]
    except KeyError:
        raise ValueError(f"claim {claim_id!r} is not decided by a comparison (no protocol); "
                         f"protocols: {', '.join(PROTOCOLS)}") from None
