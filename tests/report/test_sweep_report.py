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


def test_gpu_spec_table_reads_what_the_specs_state(tmp_path):
    from apalu.report.sweep_report import gpu_spec_table

    (tmp_path / "a_gpu.yaml").write_text(
        "claims: [exp-init-u02]\nfixed: {inits: ['0,2', 'fixed:1,1'], seeds: [0, 1, 2]}\n"
        "expect: {mde: 0.48, mde_unit: pp, gpu_minutes: 3}\nsmoke: {device: cpu}\n")
    (tmp_path / "b_gpu.yaml").write_text("seeds: 10\nexpect: {gpu_minutes: 10}\n")
    (tmp_path / "c_cpu.yaml").write_text("seeds: 2\n")
    t = gpu_spec_table(tmp_path)
    assert list(t["spec"]) == ["a_gpu.yaml", "b_gpu.yaml"]
    assert t.iloc[0].to_dict() == {"spec": "a_gpu.yaml", "claims": "exp-init-u02", "arms": "0,2, fixed:1,1",
                                   "seeds": 3, "MDE": "0.48 pp", "GPU-minutes": 3, "CPU proof": "smoke"}
    assert t.iloc[1][["claims", "seeds", "MDE", "CPU proof"]].tolist() == ["—", 10, "—", "none"]
    shipped = gpu_spec_table(Path(__file__).resolve().parents[2] / "sweeps")
    assert len(shipped) >= 7 and (shipped["CPU proof"] == "smoke").all() and shipped["GPU-minutes"].gt(0).all()
