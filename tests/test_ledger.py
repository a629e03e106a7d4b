"""The claims ledger: records are validated, written atomically and rendered with anchors."""

import pytest

from apalu.report import ledger
from apalu.report.ledger import Claim


def _claim(**kw):
    base = dict(id="continuity", claim="f is continuous", verdict="confirmed",
                evidence="f(0+) - f(0-) = 0", section="notebooks/theory", source="theory.ipynb")
    return Claim(**{**base, **kw})


def test_verdict_mapping():
    assert ledger.verdict(True) == "confirmed"
    assert ledger.verdict(False, condition_holds=True) == "holds under a condition"
    assert ledger.verdict(False) == "refuted"
    assert ledger.verdict(False, condition_holds=False) == "refuted"


def test_record_load_render(tmp_path):
    ledger.record(_claim(order=2), tmp_path)
    ledger.record(_claim(id="lower-bound", verdict="refuted", order=1, evidence="inf f' = 0 | x<0"), tmp_path)
    claims = ledger.load(tmp_path)
    assert [c.id for c in claims] == ["lower-bound", "continuity"]
    md = ledger.to_markdown(claims)
    assert '<a id="claim-continuity" href="#claim-continuity">#</a>' in md and "**refuted**" in md
    assert '<a href="../notebooks/theory.html">theory</a>' in md
    assert "inf f' = 0 \\| x<0" in md  # pipes escaped so the table stays a table
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


@pytest.mark.parametrize("kw,match", [({"verdict": "true"}, "not one of"), ({"id": "Bad Id"}, "slug")])
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


def test_with_expected_fills_missing_paper_claims_and_summary_counts(tmp_path):
    ledger.record(_claim(order=1), tmp_path)
    claims = ledger.with_expected(ledger.load(tmp_path))
    ids = [c.id for c in claims]
    assert ids.count("continuity") == 1 and len(ids) == len(ledger.PAPER_CLAIMS)
    assert next(c for c in claims if c.id == "monotonicity").verdict == "not tested here"
    summary = ledger.summary_markdown(claims)
    assert summary.startswith(f"{len(claims)} claims: **1** confirmed; **{len(claims) - 1}** not tested here.")
    assert "ledger.html#claim-continuity" in summary


def test_committed_ledger_accounts_for_every_paper_claim():
    """Each paper claim has a record written by the notebook that decides it."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "data" / "ledger"
    have = {c.id for c in ledger.load(folder)}
    missing = [i for i, _, _ in ledger.PAPER_CLAIMS if i not in have]
    assert not missing, f"no ledger record for {missing}"


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
    ledger.record(_claim(evidence="f'(0+) = 3*a/2 | x_min"), tmp_path)
    md = ledger.to_markdown(ledger.load(tmp_path))
    assert r"3\*a/2 \| x\_min" in md


def test_record_writes_next_to_the_run_and_publishes_only_under_the_record_command(tmp_path, monkeypatch):
    root = tmp_path / "book"
    (root / "data" / "ledger").mkdir(parents=True)
    monkeypatch.setenv("APALU_BOOK_ROOT", str(root))
    monkeypatch.delenv(ledger.RECORD_ENV, raising=False)
    claim = _claim(source="notebooks/theory_bounds.ipynb")
    path = ledger.record(claim)  # default: next to the notebook's own outputs, never data/ledger
    assert path == root / "_build" / "results" / "theory_bounds" / "ledger" / "continuity.json"
    assert not list((root / "data" / "ledger").iterdir())
    custom = ledger.record(claim, tmp_path / "my-run" / "ledger")  # a papermill run's output_dir
    assert custom.parent == tmp_path / "my-run" / "ledger"
    assert not list((root / "data" / "ledger").iterdir())
    monkeypatch.setenv(ledger.RECORD_ENV, "1")  # the record command (make record)
    ledger.record(claim, tmp_path / "run2")
    assert [c.id for c in ledger.load()] == ["continuity"]
