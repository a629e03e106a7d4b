"""The claims ledger: records are validated, written atomically and rendered with anchors."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from apalu.report import claims as registry
from apalu.report import ledger
from apalu.report.ledger import Claim

ROOT = Path(__file__).resolve().parents[2]


def _claim(**kw):
    spec = registry.claim_spec("continuity")
    base = dict(id=spec.id, claim=spec.text, verdict="confirmed", evidence="f(0+) - f(0-) = 0",
                section=spec.section, source=spec.source, order=spec.order)
    return Claim(**{**base, **kw})


def test_verdict_mapping():
    assert ledger.verdict(True) == "confirmed"
    assert ledger.verdict(False, condition_holds=True) == "holds under a condition"
    assert ledger.verdict(False) == "refuted"
    assert ledger.verdict(False, condition_holds=False) == "refuted"


def test_record_and_load(tmp_path):
    ledger.record_verdict("monotonicity", verdict="refuted", evidence="inf f' = 0 | x<0", folder=tmp_path)
    ledger.record(_claim(), tmp_path)
    claims = ledger.load(tmp_path)
    assert [c.id for c in claims] == ["continuity", "monotonicity"]  # by the registry's order
    assert claims[1].evidence == "inf f' = 0 | x<0"
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


@pytest.mark.parametrize("kw,match", [
    ({"verdict": "true"}, "not one of"), ({"id": "Bad Id"}, "slug"), ({"id": "no-such-claim"}, "unknown claim id"),
    ({"claim": "APALU is continuous"}, "claim differ"), ({"order": 9}, "order differ"),
    ({"section": "notebooks/theory_bounds"}, "section differ"), ({"source": "notebooks/x.ipynb"}, "source differ"),
])
def test_record_rejects_bad_claims(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        ledger.record(_claim(**kw), tmp_path)
    assert not list(tmp_path.iterdir())


def test_repo_root_from_env_and_search(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.delenv("APALU_BOOK_ROOT", raising=False)
    assert ledger.repo_root(tmp_path / "notebooks") == tmp_path
    monkeypatch.setenv("APALU_BOOK_ROOT", str(tmp_path / "elsewhere"))
    assert ledger.repo_root() == tmp_path / "elsewhere"


def test_record_verdict_takes_text_order_section_and_source_from_the_registry(tmp_path):
    path = ledger.record_verdict("exp-faster-convergence", verdict="inconclusive", evidence="e", folder=tmp_path)
    spec = registry.claim_spec("exp-faster-convergence")
    assert json.loads(path.read_text()) == {
        "id": spec.id, "claim": spec.text, "verdict": "inconclusive", "evidence": "e", "section": spec.section,
        "source": spec.source, "order": spec.order, "kind": spec.kind, **{k: None for k in ledger.FIELDS[1:]}}
    assert list(json.loads(path.read_text())) == [f.name for f in dataclasses.fields(Claim)]  # key order kept


def test_record_verdict_rejects_an_unknown_id(tmp_path):
    with pytest.raises(ValueError, match="unknown claim id 'exp-faster-convergance'"):
        ledger.record_verdict("exp-faster-convergance", verdict="confirmed", evidence="e", folder=tmp_path)
    with pytest.raises(ValueError, match="not one of"):
        ledger.record_verdict("exp-faster-convergence", verdict="yes", evidence="e", folder=tmp_path)
    assert not list(tmp_path.iterdir())


def test_registry_is_well_formed():
    for spec in registry.CLAIMS.values():
        assert re.match(r"^[a-z0-9][a-z0-9-]*$", spec.id) and spec.kind in registry.KINDS
        page = spec.section.partition("#")[0]
        assert spec.source == page + ".ipynb" and (ROOT / spec.source).is_file(), spec


def test_with_expected_fills_missing_registered_claims(tmp_path):
    ledger.record(_claim(), tmp_path)
    claims = ledger.with_expected(ledger.load(tmp_path))
    ids = [c.id for c in claims]
    assert ids.count("continuity") == 1 and len(ids) == len(ledger.CLAIMS)
    mono = next(c for c in claims if c.id == "monotonicity")
    assert mono.verdict == "not tested here" and mono.section == "notebooks/theory_bounds#theory-monotonicity"


def test_committed_ledger_is_the_registry():
    """Each registered claim has a record written by the notebook that decides it, with the
    registry's text, order, section and source; no record is of an unregistered claim."""
    records = {c.id: c for c in ledger.load(ROOT / "data" / "ledger")}
    assert set(records) == set(ledger.CLAIMS)
    for cid, spec in ledger.CLAIMS.items():
        r = records[cid]
        assert (r.claim, r.order, r.section, r.source) == (spec.text, spec.order, spec.section, spec.source), cid
        assert ledger.is_verdict(r.verdict), (cid, r.verdict)


def test_notebooks_record_verdicts_by_id_only():
    """The claim's text lives in the registry alone: no notebook builds a Claim or calls record()."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
            assert not re.search(r"\bClaim\(|(?<![\w.])record\(|ledger\.record\(", src), path.name


def test_record_writes_next_to_the_run_and_publishes_only_under_the_record_command(tmp_path, monkeypatch):
    root = tmp_path / "book"
    (root / "data" / "ledger").mkdir(parents=True)
    monkeypatch.setenv("APALU_BOOK_ROOT", str(root))
    monkeypatch.delenv(ledger.RECORD_ENV, raising=False)
    claim = _claim(**{k: getattr(ledger.CLAIMS["monotonicity"], k) for k in ("id", "section", "source")},
                   claim=ledger.CLAIMS["monotonicity"].text, order=4)
    path = ledger.record(claim)  # default: next to the notebook's own outputs, never data/ledger
    assert path == root / "_build" / "results" / "theory_bounds" / "ledger" / "monotonicity.json"
    assert not list((root / "data" / "ledger").iterdir())
    custom = ledger.record(claim, tmp_path / "my-run" / "ledger")  # a papermill run's output_dir
    assert custom.parent == tmp_path / "my-run" / "ledger"
    assert not list((root / "data" / "ledger").iterdir())
    monkeypatch.setenv(ledger.RECORD_ENV, "1")  # the record command (make record)
    ledger.record(claim, tmp_path / "run2")
    assert [c.id for c in ledger.load()] == ["monotonicity"]


FIELDS_EXAMPLE = {"primary": "APALU − ReLU, test accuracy", "n_seeds": 10, "test": "paired t (scipy.stats.ttest_rel)",
                  "effect": 0.12, "ci_low": -0.3, "ci_high": 0.54, "p_adjusted": 0.5, "mde": 0.61,
                  "claimed_effect": 0.37, "verdict": "underpowered (MDE 0.61 pp > claimed 0.37 pp)",
                  "scale": "10 seeds, 300 steps, 2,000 digits", "unit": "pp"}


def test_structured_fields_round_trip_with_kind_from_the_registry(tmp_path):
    v = ledger.underpowered(0.61, 0.37, "pp")
    assert v == FIELDS_EXAMPLE["verdict"] and ledger.verdict_family(v) == "underpowered"
    ledger.record_verdict("exp-cifar10", verdict=v, evidence="e", fields=FIELDS_EXAMPLE, folder=tmp_path)
    (c,) = ledger.load(tmp_path)
    assert c.kind == "paper claim" and c.n_seeds == 10 and c.mde == 0.61 and c.unit == "pp" and c.verdict == v


def test_fields_nan_becomes_null_and_numpy_becomes_plain(tmp_path):
    import numpy as np

    path = ledger.record_verdict("exp-cifar10", verdict="incomplete (0 of 10 seeds)", evidence="e", folder=tmp_path,
                                 fields={"effect": float("nan"), "n_seeds": np.int64(0), "mde": np.float64(1.5)})
    data = json.loads(path.read_text())
    assert data["effect"] is None and data["n_seeds"] == 0 and data["mde"] == 1.5


@pytest.mark.parametrize("fields,match", [
    ({"verdict": "supported"}, "differs from verdict"), ({"p_value": 0.1}, "unknown record fields"),
    ({"kind": "proxy"}, "kind differ"),
])
def test_record_verdict_rejects_inconsistent_fields(tmp_path, fields, match):
    with pytest.raises(ValueError, match=match):
        ledger.record_verdict("exp-cifar10", verdict="inconclusive", evidence="e", fields=fields, folder=tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("text,family", [
    ("supported", "supported"), ("equivalent within ±0.5 pp", "equivalent"),
    ("underpowered (MDE 3.8 pp > claimed 0.37 pp)", "underpowered"), ("incomplete (missing arm: silu)", "incomplete"),
    ("holds with probability 0 under the paper's init", "holds with probability 0 under the paper's init"),
    ("true", None), ("underpowered", "underpowered"), ("underpowered because", None), ("equivalent-ish", None),
])
def test_verdict_vocabulary(text, family):
    if family is None:
        with pytest.raises(ValueError, match="not one of"):
            ledger.verdict_family(text)
        assert not ledger.is_verdict(text)
    else:
        assert ledger.verdict_family(text) == family and ledger.is_verdict(text)


def test_old_records_without_structured_fields_load(tmp_path):
    spec = registry.claim_spec("continuity")
    old = {"id": spec.id, "claim": spec.text, "verdict": "confirmed", "evidence": "e", "section": spec.section,
           "source": spec.source, "order": spec.order}
    (tmp_path / "continuity.json").write_text(json.dumps(old))
    (c,) = ledger.load(tmp_path)
    assert c.verdict == "confirmed" and c.kind is None and c.effect is None


@pytest.mark.parametrize("text,match", [("{not json", "not valid JSON"), ('{"id": "x", "bogus": 1}', "unknown fields"),
                                        ("[1, 2]", "unknown fields")])
def test_corrupt_records_fail_naming_the_file(tmp_path, text, match):
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        ledger.load(tmp_path)


def test_claim_kinds():
    kinds = {cid: spec.kind for cid, spec in registry.CLAIMS.items()}
    assert kinds["lipschitz"] == kinds["exp-ab-stay-positive"] == "book check"
    assert kinds["proxy-cifar10-mnist-cnn"] == kinds["proxy-mvtec-deep-svdd"] == "proxy"
    assert kinds["exp-cifar10"] == "paper claim" and kinds["exp-init-u02"] == "paper open question"
    cifar = [cid for cid, spec in registry.CLAIMS.items() if "CIFAR-10" in spec.text and spec.kind == "paper claim"]
    assert cifar == ["exp-cifar10"]  # the paper's CIFAR-10 claim is one row
