"""The pre-registered protocol: decide() on synthetic frames reaches each verdict branch."""

import math

import numpy as np
import pandas as pd
import pytest

from apalu.lab import protocol as P
from apalu.lab.protocol import Protocol, decide
from apalu.report import claims, ledger


def _proto(**kw) -> Protocol:
    base = dict(claim_id="test-claim", metric="acc", higher_is_better=True, treatment="apalu", primary="relu",
                secondary=("gelu",), claimed_effect=None, margin=None, unit="pp", to_unit=100.0,
                metric_label="test accuracy")
    return Protocol(**{**base, **kw})


def _frame(effect: float, noise: float, seeds: int = 12, arms=("apalu", "relu", "gelu"), seed: int = 0,
           classes: int = 1) -> pd.DataFrame:
    """acc per (arm, seed[, class]): a shared seed level (cancels in pairs), apalu + effect."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(seeds):
        level = rng.normal(0.9, 0.02)  # large seed-to-seed spread, shared by all arms
        for arm in arms:
            for k in range(classes):
                rows.append({"arm": arm, "seed": s, "class": k,
                             "acc": level + (effect if arm == "apalu" else 0.0) + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_supported():
    d = decide(_proto(), _frame(0.01, 0.002))
    assert d.verdict == "supported" and d.primary.effect == pytest.approx(1.0, abs=0.2) and d.primary.n == 12
    assert "Primary (pre-registered): APALU − ReLU" in d.evidence and "Secondary: APALU − GELU" in d.evidence


def test_refuted_lower_is_better():
    df = _frame(0.01, 0.002).rename(columns={"acc": "loss"})  # apalu's loss is higher: worse
    d = decide(_proto(metric="loss", higher_is_better=False, to_unit=1.0, unit="nats"), df)
    assert d.verdict == "refuted" and d.primary.effect < 0


def test_equivalent_within_margin():
    d = decide(_proto(margin=0.5), _frame(0.0, 0.0005, seeds=20))
    assert d.verdict == "equivalent within ±0.5 pp" and ledger.verdict_family(d.verdict) == "equivalent"


def test_underpowered_when_mde_exceeds_the_claim():
    d = decide(_proto(claimed_effect=0.37), _frame(0.0, 0.02))
    assert d.primary.mde > 0.37 and d.verdict == ledger.underpowered(d.primary.mde, 0.37, "pp")
    assert d.verdict.startswith("underpowered (MDE ") and "> claimed 0.37 pp)" in d.verdict


def test_inconclusive_with_power_but_no_effect():
    d = decide(_proto(claimed_effect=5.0), _frame(0.0, 0.003, seed=3))
    assert d.primary.mde < 5.0 and d.primary.p_adjusted >= 0.05 and d.verdict == "inconclusive"


def test_missing_arm_is_an_explicit_verdict_not_a_crash():
    d = decide(_proto(secondary=("gelu", "silu")), _frame(0.01, 0.002))
    assert d.verdict == "incomplete (missing arm: silu)" and math.isnan(d.primary.effect)
    assert ledger.is_verdict(d.verdict) and "SiLU" in d.evidence


@pytest.mark.parametrize("seeds", [2, 9])
def test_too_few_seeds(seeds):
    d = decide(_proto(), _frame(0.05, 0.001, seeds=seeds))
    assert d.verdict == f"incomplete ({seeds} of 10 seeds)"  # even though the effect is huge


def test_a_diverged_run_makes_its_seed_incomplete():
    df = _frame(0.01, 0.002, seeds=10)
    df.loc[(df.arm == "apalu") & (df.seed == 4), "acc"] = np.nan
    d = decide(_proto(), df)
    assert d.primary.n == 9 and d.verdict == "incomplete (9 of 10 seeds)"


def test_extra_key_columns_are_averaged_within_seed_not_counted_as_pairs():
    df = _frame(0.01, 0.002, classes=10)
    d = decide(_proto(), df)
    means = df.groupby(["arm", "seed"], as_index=False)["acc"].mean()
    want = decide(_proto(), means).primary
    assert d.primary.n == 12 and (d.primary.effect, d.primary.p) == (pytest.approx(want.effect), pytest.approx(want.p))


def test_holm_runs_over_primary_and_secondary():
    d = decide(_proto(), _frame(0.004, 0.004, seed=5))
    ps = [d.primary.p, *[c.p for c in d.secondary]]
    assert [d.primary.p_adjusted, *[c.p_adjusted for c in d.secondary]] == pytest.approx(P.holm(ps))


def test_noninferiority():
    ok = decide(_proto(hypothesis="noninferior", margin=1.0), _frame(-0.002, 0.002))
    assert ok.verdict == "supported"
    bad = decide(_proto(hypothesis="noninferior", margin=0.5), _frame(-0.03, 0.002))
    assert bad.verdict == "refuted"


def _conditional(interaction: bool, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(12):
        for n in (50, 200, 1000):
            level = rng.normal(0.8, 0.02)
            for arm in ("apalu", "relu"):
                gain = (0.03 if n == 50 else 0.0) if interaction else 0.0
                rows.append({"arm": arm, "seed": s, "n_train": n,
                             "acc": level + (gain if arm == "apalu" else 0) + rng.normal(0, 0.004)})
    return pd.DataFrame(rows)


def test_condition_only_from_the_prespecified_interaction_test():
    pr = _proto(secondary=(), condition="n_train", claimed_effect=None)
    d = decide(pr, _conditional(interaction=True))
    if d.primary.p_adjusted < 0.05:  # the averaged effect may already decide; then no condition is needed
        assert d.verdict == "supported"
    else:
        assert d.verdict == "holds under a condition" and d.interaction_p < 0.05 and "n_train = 50" in d.evidence
    flat = decide(pr, _conditional(interaction=False))
    assert flat.verdict == "inconclusive" and len(flat.by_condition) == 3


def test_condition_is_named_when_the_average_hides_it():
    df = _conditional(interaction=True)
    # a level where APALU loses as much as it gains at n = 50: the average is ~0, the interaction is not
    df.loc[(df.arm == "apalu") & (df.n_train == 1000), "acc"] -= 0.03
    d = decide(_proto(secondary=(), condition="n_train"), df)
    assert d.verdict == "holds under a condition" and d.condition == "n_train = 50" and "n_train = 50" in d.evidence
    assert d.fields()["condition"] == "n_train = 50"


def test_bad_frames_and_protocols_fail_clearly():
    with pytest.raises(ValueError, match="lacks column"):
        decide(_proto(), _frame(0.01, 0.002).rename(columns={"acc": "accuracy"}))
    with pytest.raises(ValueError, match="lacks column 'arm'"):
        decide(_proto(), _frame(0.01, 0.002).rename(columns={"arm": "activation"}))
    with pytest.raises(ValueError, match="needs a margin"):
        _proto(hypothesis="noninferior")
    with pytest.raises(ValueError, match="primary baseline"):
        _proto(secondary=("relu",))
    with pytest.raises(ValueError, match="hypothesis"):
        _proto(hypothesis="better")


def test_fields_go_into_a_ledger_record(tmp_path):
    d = decide(P.PROTOCOLS["proxy-cifar10-mnist-cnn"],
               _frame(0.01, 0.002, arms=P.PROTOCOLS["proxy-cifar10-mnist-cnn"].arms).rename(columns={"acc": "test_acc"}),
               scale="12 seeds")
    f = d.fields()
    assert set(f) == set(ledger.FIELDS[1:]) | {"verdict"} and f["condition"] is None and f["primary"] == "APALU − ReLU, test accuracy"
    path = ledger.record_verdict("proxy-cifar10-mnist-cnn", verdict=d.verdict, evidence=d.evidence, fields=f,
                                 folder=tmp_path)
    (c,) = ledger.load(tmp_path)
    assert path.exists() and c.kind == "proxy" and c.n_seeds == 12 and c.claimed_effect == 0.37 and c.unit == "pp"


def test_one_protocol_per_compared_claim():
    assert set(P.PROTOCOLS) == set(claims.compared_claims())
    for cid, pr in P.PROTOCOLS.items():
        assert pr.claim_id == cid and P.protocol_for(cid) is pr and pr.min_seeds >= 10
    with pytest.raises(ValueError, match="no protocol"):
        P.protocol_for("continuity")


def test_vocabulary_is_the_ledgers():
    assert ledger.VERDICTS is P.VERDICTS and ledger.underpowered is P.underpowered


def test_equivalence_pays_for_the_whole_family():
    """A TOST that passes alone (p ≈ 0.011) fails once Holm counts four secondary comparisons."""
    df = _frame(0.0, 0.004, seeds=10, seed=0, arms=("apalu", "relu", "gelu", "b3", "b4", "b5"))
    alone = decide(_proto(margin=0.5, secondary=()), df)
    family = decide(_proto(margin=0.5, secondary=("gelu", "b3", "b4", "b5")), df)
    assert alone.primary.tost_p == pytest.approx(family.primary.tost_p) and alone.primary.tost_p < 0.05
    assert alone.verdict == "equivalent within ±0.5 pp" and family.verdict == "inconclusive"


def test_interaction_text_says_when_the_interaction_was_not_tested():
    from dataclasses import replace

    d = decide(_proto(), _frame(0.01, 0.005))
    assert replace(d, interaction_p=0.7812).interaction_text() == "p = 0.781"
    assert replace(d, interaction_p=None).interaction_text() == "not tested (too few seeds or conditions)"
