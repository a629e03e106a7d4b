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


def test_record_load_render(tmp_path):
    ledger.record_verdict("monotonicity", verdict="refuted", evidence="inf f' = 0 | x<0", folder=tmp_path)
    ledger.record(_claim(), tmp_path)
    claims = ledger.load(tmp_path)
    assert [c.id for c in claims] == ["continuity", "monotonicity"]  # by the registry's order
    md = ledger.to_markdown(claims)
    assert '<a id="claim-continuity" href="#claim-continuity">#</a>' in md and "**refuted**" in md
    assert '<a href="../notebooks/theory_definition.html#theory-c1">theory_definition</a>' in md
    assert "inf f' = 0 \\| x<0" in md  # pipes escaped so the table stays a table
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
        "source": spec.source, "order": spec.order}
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


def test_with_expected_fills_missing_registered_claims_and_summary_counts(tmp_path):
    ledger.record(_claim(), tmp_path)
    claims = ledger.with_expected(ledger.load(tmp_path))
    ids = [c.id for c in claims]
    assert ids.count("continuity") == 1 and len(ids) == len(ledger.CLAIMS)
    mono = next(c for c in claims if c.id == "monotonicity")
    assert mono.verdict == "not tested here" and mono.section == "notebooks/theory_bounds#theory-monotonicity"
    summary = ledger.summary_markdown(claims)
    assert summary.startswith(f"{len(claims)} claims: **1** confirmed; **{len(claims) - 1}** not tested here.")
    assert "ledger.html#claim-continuity" in summary


def test_committed_ledger_is_the_registry():
    """Each registered claim has a record written by the notebook that decides it, with the
    registry's text, order, section and source; no record is of an unregistered claim."""
    records = {c.id: c for c in ledger.load(ROOT / "data" / "ledger")}
    assert set(records) == set(ledger.CLAIMS)
    for cid, spec in ledger.CLAIMS.items():
        r = records[cid]
        assert (r.claim, r.order, r.section, r.source) == (spec.text, spec.order, spec.section, spec.source), cid


def test_notebooks_record_verdicts_by_id_only():
    """The claim's text lives in the registry alone: no notebook builds a Claim or calls record()."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
            assert not re.search(r"\bClaim\(|(?<![\w.])record\(|ledger\.record\(", src), path.name


@pytest.mark.parametrize("low,high,claimed,want", [
    (0.1, 2.0, "higher", "confirmed"), (-2.0, -0.1, "higher", "refuted"), (-1.0, 3.0, "higher", "inconclusive"),
    (-2.0, -0.1, "lower", "confirmed"), (0.1, 2.0, "lower", "refuted"), (-0.5, 0.5, "lower", "inconclusive"),
])
def test_verdict_from_interval(low, high, claimed, want):
    assert ledger.verdict_from_interval(low, high, claimed) == want


def test_verdict_from_interval_rejects_unknown_direction():
    with pytest.raises(ValueError, match="claimed"):
        ledger.verdict_from_interval(0, 1, "up")


@pytest.mark.parametrize("parts,want", [
    ({"relu": "confirmed", "gelu": "confirmed"}, ("confirmed", "")),
    ({"relu": "confirmed", "gelu": "inconclusive"}, ("holds under a condition", "holds for relu only")),
    ({"relu": "refuted", "gelu": "inconclusive"}, ("refuted", "")),
    ({"relu": "inconclusive"}, ("inconclusive", "")),
])
def test_combine_verdicts(parts, want):
    assert ledger.combine_verdicts(parts) == want


def test_markdown_cells_escape_emphasis_and_pipes(tmp_path):
    ledger.record_verdict("continuity", verdict="confirmed", evidence="f'(0+) = 3*a/2 | x_min", folder=tmp_path)
    md = ledger.to_markdown(ledger.load(tmp_path))
    assert r"3\*a/2 \| x\_min" in md


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
