"""The verdicts as shown: badges, named conditions, one row per registered claim, links to the
deciding section by chapter title, maths in evidence, the forest plot, per-claim BibTeX."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from apalu.report import verdicts  # noqa: E402
from apalu.report.claims import CLAIMS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Rec:
    id: str
    claim: str
    verdict: str
    evidence: str
    section: str
    source: str = ""
    order: float = 0
    kind: str | None = None
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    claimed_effect: float | None = None
    unit: str | None = None
    n_seeds: int | None = None
    scale: str | None = None


def rec(cid: str, **kw) -> Rec:
    spec = CLAIMS[cid]
    base = {"claim": spec.text, "verdict": "confirmed", "evidence": "e", "section": spec.section}
    return Rec(id=cid, **{**base, **kw})


ANALYTIC = next(c.id for c in CLAIMS.values() if c.section.startswith("notebooks/theory_bounds"))
OTHER = next(c.id for c in CLAIMS.values() if c.id != ANALYTIC)


def test_badges_per_family():
    assert verdicts.badge("confirmed") == "{bdg-success}`confirmed`"
    assert verdicts.badge("refuted").startswith("{bdg-danger}")
    assert verdicts.badge("underpowered (MDE 2.1 pp > claimed 0.4 pp)") == "{bdg-muted}`underpowered`"
    with pytest.raises(ValueError, match="unknown verdict 'maybe'"):
        verdicts.badge("maybe")


def test_condition_named_in_the_row():
    r = rec(ANALYTIC, verdict="holds under a condition", evidence="x. Condition: with the softplus constraint.")
    assert verdicts.condition(r) == "with the softplus constraint"
    table = verdicts.verdict_table([r], root=ROOT)
    assert "{bdg-warning}`holds under a condition`<br>if with the softplus constraint" in table
    bare = verdicts.verdict_table([rec(ANALYTIC, verdict="holds under a condition")], root=ROOT)
    assert "(the record names no condition)" in bare


def test_one_row_per_registered_claim_and_chapter_titles():
    records = [rec(ANALYTIC), rec(ANALYTIC), Rec("exp-old-split", "old", "confirmed", "e", "notebooks/x")]
    table = verdicts.verdict_table(records, root=ROOT)
    rows = [line for line in table.splitlines() if line.startswith("| <a") or line.startswith("| {bdg-light}")]
    assert len(rows) == 1 and "`exp-old-split`" in table
    page = CLAIMS[ANALYTIC].section.partition("#")[0]
    assert f'href="../{page}.html#' in rows[0] and "theory_bounds</a>" not in rows[0]  # a title, not a file


def test_scale_effect_and_kind_labels():
    r = rec(OTHER, kind="proxy", effect=1.2, ci_low=-0.3, ci_high=2.7, claimed_effect=0.37, unit="pp",
            n_seeds=10, scale="4 epochs")
    row = verdicts.verdict_table([r], root=ROOT).splitlines()[-2]
    assert "{bdg-light}`proxy`" in row and "+1.2 [−0.3, 2.7] pp (paper: +0.37)" in row
    assert "10 seeds; 4 epochs" in row
    r2 = rec(OTHER, n_seeds=10, scale="10 seeds, 80 steps")  # the scale says it already: once
    row2 = verdicts.verdict_table([r2], root=ROOT).splitlines()[-2]
    assert row2.count("10 seeds") == 1


def test_maths_in_evidence():
    assert verdicts.math_text("slope 3*a/2 at 0") == "slope $3\\,a/2$ at 0"
    assert "$(3/2)^{L}$" in verdicts.math_text("at least (3/2)^L here")
    assert verdicts.math_text("a < b") == "a \\< b"


def test_forest_plot_draws_effects_and_claimed_values():
    assert verdicts.forest_plot([rec(ANALYTIC)]) is None
    r = rec(OTHER, effect=1.0, ci_low=0.2, ci_high=1.8, claimed_effect=0.5, unit="pp")
    fig = verdicts.forest_plot([r])
    (ax,) = fig.axes
    assert ax.get_xlabel() == "APALU − baseline (pp)"
    labels = [t.get_text() for t in fig.legends[0].texts]
    assert sorted(labels) == ["APALU − baseline, 95% CI", "the paper's value"]
    plt.close(fig)


def test_claim_block_has_anchor_and_bibtex_with_version():
    from apalu._version import __version__

    block = verdicts.claim_blocks([rec(ANALYTIC, evidence="f' = 3*a/2")], root=ROOT)
    assert block.startswith(f"(claim-{ANALYTIC})=")
    assert "$3\\,a/2$" in block
    bib = re.search(r"```bibtex\n(.*?)\n```", block, re.S).group(1)
    assert bib.startswith(f"@misc{{apalubook-{ANALYTIC},") and f"version {__version__}" in bib
    assert f"notebooks/ledger.html#claim-{ANALYTIC}" in bib
    with_url = verdicts.claim_blocks([rec(ANALYTIC)], root=ROOT, book_url="https://example.org/book/")
    assert f"url = {{https://example.org/book/notebooks/ledger.html#claim-{ANALYTIC}}}" in with_url


def test_commands_in_evidence_become_code_blocks():
    r = rec(ANALYTIC, verdict="not run here",
            evidence="needs the data: papermill notebooks/exp_paper.ipynb out.ipynb -p mvtec_path <folder> "
                     "-y 'cifar_models: [inception]'")
    block = verdicts.claim_blocks([r], root=ROOT)
    assert "**Evidence.** needs the data:\n\n```bash\npapermill notebooks/exp_paper.ipynb out.ipynb -p mvtec_path " \
           "<folder> -y 'cifar_models: [inception]'\n```" in block
