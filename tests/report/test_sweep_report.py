"""The Results-at-scale rendering of a committed sweep: description and figure."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from apalu.sweep.collect import collect, list_sweeps, sweep_overview# noqa: E402
from apalu.report.ledger import Claim# noqa: E402
from apalu.report.sweep_report import describe_sweep, plot_sweep_summary# noqa: E402

RESULTS = Path(__file__).resolve().parents[2] / "data" / "results"


def test_committed_sweep_is_described_and_plotted():
    sweep = list_sweeps(RESULTS)[0]
    overview = sweep_overview(sweep)
    claim = Claim(id="x-claim", claim="c", verdict="confirmed", evidence="e", section="notebooks/x",
                  source=overview["notebook"])
    text = describe_sweep(overview, [claim])
    assert f'<a id="sweep-{overview["name"]}"></a>' in text
    assert f"{overview['complete']} complete" in text and "- ran on: " in text
    assert 'href="ledger.html#claim-x-claim"' in text
    assert "none of the ledger's claims" in describe_sweep(overview, [])
    collected = collect(sweep, write=False)
    fig = plot_sweep_summary(overview, collected, max_rows=5)
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == min(5, (collected["summary"]["metric"] == ax.get_xlabel()).sum())
