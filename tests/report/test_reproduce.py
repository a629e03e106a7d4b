"""The reproducibility contract: text, verdicts and integers exact; trained floats within tolerance.

Each check is shown to fail on a change beyond the contract, so the contract cannot pass vacuously.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from apalu.report.reproduce import DEFAULT, TAG, Tolerance, cell_tolerance, compare_ledgers, compare_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stored,fresh", [
    ("acc 0.3752 [0.3464, 0.4040]", "acc 0.3749 [0.3470, 0.4031]"),  # last digits of a trained model
    ("441 [0.3858, 0.7024]", "441 [0.3857, 0.7026]"),  # the cross-CPU difference reported in the issue
    ("share 0.2710", "share 0.2744"),  # 1.25%: the largest difference measured
    ("diff -0.0001", "diff 0.0001"),  # a sign flip within 2 units of the last digit
    ("mean  1.7516\nrelu  10.01", "mean 1.7520\nrelu 9.99"),  # pandas re-pads columns
    ("APALU − baseline: −0.0432", "APALU − baseline: −0.0431"),  # Unicode minus
])
def test_within_the_contract(stored, fresh):
    assert compare_text(stored, fresh) == []


@pytest.mark.parametrize("stored,fresh,why", [
    ("acc 0.3752", "acc 0.3940", "beyond the tolerance"),  # moved 5%
    ("share 0.2710", "share 0.2800", "beyond the tolerance"),  # moved 3.3%
    ("**Verdict: confirmed.** 0.5", "**Verdict: inconclusive.** 0.5", "text differs"),
    ("20 runs, 128 steps", "20 runs, 127 steps", "integers must match"),
    ("n [0.1, 0.2]", "n [0.1, 0.2, 0.3]", "text differs"),
])
def test_beyond_the_contract(stored, fresh, why):
    problems = compare_text(stored, fresh)
    assert problems and why in problems[0]


def test_exact_cells_and_tolerance_metadata():
    assert compare_text("x 0.1234", "x 0.1235", tolerance=None)  # an untagged cell: exact
    assert cell_tolerance({"tags": ["hide-input"]}) is None
    assert cell_tolerance({"tags": [TAG]}) == DEFAULT
    assert cell_tolerance({"tags": [TAG], "repro_tolerance": {"abs": 0.1, "why": "log scale"}}) == Tolerance(abs=0.1)
    with pytest.raises(ValueError, match="unknown keys"):
        cell_tolerance({"tags": [TAG], "repro_tolerance": {"atol": 1}})
    with pytest.raises(ValueError, match="says why"):
        cell_tolerance({"tags": [TAG], "repro_tolerance": {"abs": 1}})


def test_intervals_move_by_a_fraction_of_their_width():
    # measured between two CPUs: the mean moved 23% of itself but 1% of the interval's width
    assert compare_text("-0.0031 [-0.0389, 0.0328]", "-0.0024 [-0.0358, 0.0310]") == []
    assert compare_text("-0.0031 [-0.0389, 0.0328]", "-0.0251 [-0.0389, 0.0328]")  # 31% of the width
    assert compare_text("-0.0031 and -0.0389, 0.0328", "-0.0024 and -0.0358, 0.0310")  # not an interval


def _write(folder: Path, cid: str, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"id": cid, "claim": "c", "verdict": "confirmed", "evidence": "e", "section": "s", "source": "n",
           "order": 1.0, **fields}
    (folder / f"{cid}.json").write_text(json.dumps(rec))


def test_compare_ledgers(tmp_path):
    committed, run = tmp_path / "data", tmp_path / "_build" / "nb" / "ledger"
    _write(committed, "a", evidence="loss 1.7516 [1.6946, 1.8086], 5 seeds")
    _write(run, "a", evidence="loss 1.7520 [1.6950, 1.8080], 5 seeds")
    assert compare_ledgers(committed, [run]) == []
    _write(run, "a", evidence="loss 1.7516 [1.6946, 1.8086], 5 seeds", verdict="inconclusive")
    assert compare_ledgers(committed, [run]) == ["a: verdict changed from 'confirmed' to 'inconclusive'"]
    _write(run, "a", evidence="loss 1.9000 [1.6946, 1.8086], 5 seeds")
    assert "beyond the tolerance" in compare_ledgers(committed, [run])[0]
    _write(run, "a", evidence="loss 1.7516 [1.6946, 1.8086], 5 seeds")
    _write(committed, "b")
    assert compare_ledgers(committed, [run]) == ["b: committed, but no re-run notebook recorded it"]


def _notebook(path: Path, stored: str, tags: list[str]) -> None:
    cell = nbformat.v4.new_code_cell("print('acc 0.5000 over 3 seeds')", metadata={"tags": tags}, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored + "\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.parametrize("stored,tags,passes", [
    ("acc 0.5050 over 3 seeds", [TAG], True),  # 1% off: within the contract
    ("acc 0.5250 over 3 seeds", [TAG], False),  # 5% off: a moved number fails
    ("acc 0.5000 over 4 seeds", [TAG], False),  # integers stay exact in a tolerant cell
    ("acc 0.5050 over 3 seeds", [], False),  # untagged cells stay exact
])
def test_nbval_plugin(tmp_path, stored, tags, passes):
    nb = tmp_path / "t.ipynb"
    _notebook(nb, stored, tags)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval", str(nb), "--nbval-current-env", "-p",
                          "nbval_tolerance", "-p", "no:cacheprovider", "-q", "-o", "addopts=", "--rootdir", str(tmp_path)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert (run.returncode == 0) == passes, run.stdout[-3000:]


def test_a_claim_can_state_its_own_evidence_tolerance(tmp_path):
    from apalu.report.claims import EVIDENCE_TOLERANCE

    assert all(len(t.get("why", "")) > 20 for t in EVIDENCE_TOLERANCE.values())
    committed, run = tmp_path / "data", tmp_path / "run"
    _write(committed, "exp-ab-stay-positive", evidence="share that went negative 0.2761")
    _write(run, "exp-ab-stay-positive", evidence="share that went negative 0.2677")  # 3%: within its abs 0.05
    assert compare_ledgers(committed, [run]) == []
    _write(run, "exp-ab-stay-positive", evidence="share that went negative 0.3500")
    assert "beyond the tolerance" in compare_ledgers(committed, [run])[0]
    _write(committed, "other", evidence="share 0.2761")
    _write(run, "other", evidence="share 0.2677")  # the default applies to other claims
    assert any("beyond the tolerance" in p for p in compare_ledgers(committed, [run]))


def test_a_tables_full_precision_csv_is_not_compared_but_its_printed_numbers_are():
    """A table's downloadable CSV (a data URI) repeats the printed numbers at full precision:
    the contract compares the printed ones."""
    stored = '| 0.189 |\n<a download="t.csv" href="data:text/csv;charset=utf-8,U(0,%205),0.189306">t</a>'
    moved_csv = '| 0.189 |\n<a download="t.csv" href="data:text/csv;charset=utf-8,U(0,%205),0.182222">t</a>'
    assert compare_text(stored, moved_csv) == []
    moved_printed = '| 0.170 |\n<a download="t.csv" href="data:text/csv;charset=utf-8,U(0,%205),0.189306">t</a>'
    assert compare_text(stored, moved_printed)


def test_an_interval_may_carry_its_unit():
    # kernel off against on: the mean moved 3%, within a fifth of the interval's width
    assert compare_text("+1.89 pp [+0.0277, +3.76]", "+1.95 pp [+0.0478, +3.85]") == []
    assert compare_text("+1.89 pp [+0.0277, +3.76]", "+2.89 pp [+0.0277, +3.76]")  # 27% of the width
    assert compare_text("+1.89 p = 0.5 [+0.0277, +3.76]", "+1.95 p = 0.5 [+0.0478, +3.85]")  # not a unit


def test_structured_trained_fields_move_within_the_contract(tmp_path):
    committed, run = tmp_path / "committed", tmp_path / "run"
    base = dict(verdict="inconclusive", effect=-0.39, ci_low=-0.906, ci_high=0.126, p_adjusted=0.365, mde=0.72,
                n_seeds=10)
    _write(committed, "c1", **base)
    _write(run, "c1", **{**base, "effect": -0.35, "ci_low": -0.88, "p_adjusted": 0.37})  # 4% of the width
    assert compare_ledgers(committed, [run]) == []
    _write(run, "c1", **{**base, "effect": -0.10})  # 28% of the interval's width
    assert any("effect moved" in p for p in compare_ledgers(committed, [run]))
    _write(run, "c1", **{**base, "n_seeds": 9})  # integers stay exact
    assert any("n_seeds changed" in p for p in compare_ledgers(committed, [run]))
    _write(run, "c1", **{**base, "p_adjusted": None})
    assert any("p_adjusted moved" in p for p in compare_ledgers(committed, [run]))


def test_a_p_below_its_printed_threshold_compares_as_the_threshold():
    assert compare_text("| +0.95 | < 0.001 |", "| +0.95 | 0.001 |") == []
    assert compare_text("| +0.95 | \\< 0.001 |", "| +0.95 | 0.001 |") == []  # Markdown escapes "<"
