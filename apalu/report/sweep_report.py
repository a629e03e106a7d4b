"""How the "Results at scale" chapter shows one committed sweep: a description and a figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .ledger import Claim

__all__ = ["describe_sweep", "plot_sweep_summary", "at_scale_table", "gpu_spec_table"]

_SUMMARY_COLUMNS = ("metric", "n", "mean", "std", "ci95", "ci95_low", "ci95_high")


def describe_sweep(overview: dict[str, Any], claims: Iterable[Claim]) -> str:
    """Markdown for one sweep (from :func:`apalu.collect.sweep_overview`): anchor
    ``sweep-<name>``, notebook, fixed and varied parameters, runs, machines, invocations and the
    ledger claims it bears on (named in the spec, or decided by the same notebook)."""
    o, spec = overview, overview["spec"]
    lines = [f'<a id="sweep-{o["name"]}"></a>', f"**Sweep `{o['name']}`**: {o['description']}", ""]
    nb = Path(o["notebook"]).stem
    lines.append(f'- notebook: <a href="{nb}.html">{o["notebook"]}</a>; fixed parameters: `{spec.get("fixed", {})}`')
    varied = {**spec.get("grid", {})}
    for group in ([spec["zip"]] if isinstance(spec.get("zip"), dict) else spec.get("zip") or []):
        varied.update(group)
    if spec.get("seeds"):
        varied[spec.get("seed_param") or "seed"] = spec["seeds"]
    lines.append(f"- varied: `{varied}`: {o['expected']} runs, {o['complete']} complete, {o['failed']} failed")
    for machine, n in o["machines"].items():
        lines.append(f"- ran on: {machine} ({n} runs)")
    for inv in o["invocations"]:
        how = f"{inv['executor']}" + (f", {inv['jobs']} jobs" if inv["executor"] == "local" else "")
        lines.append(f"- invocation ({how}): {inv['executed']} runs executed in {inv['wall_s']:.0f} s wall "
                     f"({inv['finished'][:10]})")
    lines.append(f"- compute: {o['run_time_s']:.0f} s over all runs, median {o['median_run_s']:.1f} s a run")
    related = [c for c in claims if c.id in o["claims"] or c.source == o["notebook"]]
    if related:
        lines.append("- claims: " + "; ".join(f'<a href="ledger.html#claim-{c.id}">{c.id}</a> (**{c.verdict}**)'
                                               for c in related))
    else:
        lines.append("- claims: none of the ledger's claims is decided by this notebook yet")
    return "\n".join(lines)


def plot_sweep_summary(overview: dict[str, Any], collected: dict[str, pd.DataFrame], max_rows: int = 30):
    """Mean and 95% CI per setting of the sweep's first metric, with every run as a dot.

    ``collected`` is :func:`apalu.collect.collect`'s result (``summary`` and ``results``).
    """
    import matplotlib.pyplot as plt

    summ = collected["summary"]
    metric = next((m for m in overview["metrics"] if m in set(summ["metric"])), None) or sorted(summ["metric"])[0]
    s = summ[summ["metric"] == metric].head(max_rows)
    keys = [c for c in s.columns if c not in _SUMMARY_COLUMNS]
    labels = [", ".join(f"{k}={r[k]}" for k in keys) or "all" for _, r in s.iterrows()]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(s) + 1.2))
    y = range(len(s))
    ax.errorbar(s["mean"], y, xerr=s["ci95"].fillna(0), fmt="o", color="C0", capsize=3, label="mean, 95% CI")
    pts = collected["results"][collected["results"].get("metric") == metric]
    for i, (_, r) in enumerate(s.iterrows()):
        mask = pd.Series(True, index=pts.index)
        for k in keys:
            mask &= pts[k].astype(str) == str(r[k])
        ax.plot(pts.loc[mask, "value"], [i] * int(mask.sum()), ".", color="0.5", alpha=0.7)
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set(xlabel=metric, title=f"{overview['name']}: {metric}")
    fig.tight_layout()
    return fig


def _interval(f: dict) -> str:
    if f.get("effect") is None:
        return "—"
    unit = f.get("unit") or ""
    lo, hi = f.get("ci_low"), f.get("ci_high")
    ci = f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None else ""
    return f"{f['effect']:+.2f}{ci} {unit}".strip()


def at_scale_table(records: dict[str, dict]) -> pd.DataFrame:
    """One row per claim from :func:`apalu.sweep.verdicts.load_at_scale`: the at-scale verdict,
    its primary comparison and its provenance (sweep, commit, machine, date, runs)."""
    rows = []
    for claim, rec in sorted(records.items()):
        f, prov = rec.get("fields") or {}, rec["provenance"]
        mde = f.get("mde")
        rows.append({
            "claim": claim, "verdict": rec["verdict"], "primary": f.get("primary") or "—",
            "effect [95% CI]": _interval(f),
            "MDE": "—" if mde is None else f"{mde:.2g} {f.get('unit') or ''}".strip(),
            "seeds": f.get("n_seeds"), "sweep": prov["sweep"],
            "runs": f"{prov['runs_complete']} of {prov['runs_expected']}"
                    + ("" if prov["sweep_complete"] else " (incomplete)"),
            "commit": ", ".join(c[:12] + ("+dirty" if c.endswith("+dirty") else "")
                                for c in prov["commits"]) or "—",
            "machine": "; ".join(prov["machines"]) or "—",
            "numerics": "; ".join(prov.get("numerics_env") or []) or "default",
            "date": prov["date"] or "—"})
    return pd.DataFrame(rows)


def gpu_spec_table(sweeps_dir: str | Path) -> pd.DataFrame:
    """One row per GPU spec (``<sweeps_dir>/*_gpu.yaml``): the claims it decides, the arms it
    compares, its seeds, the MDE and GPU-minutes its ``expect`` states (with their bases in
    the spec) and whether it has a CPU proof (``smoke``), as the specs say them.

    Example:
        >>> t = gpu_spec_table("sweeps")  # doctest: +SKIP
        >>> list(t.columns)[:3]  # doctest: +SKIP
        ['spec', 'claims', 'arms']
    """
    import yaml

    rows = []
    for path in sorted(Path(sweeps_dir).glob("*_gpu.yaml")):
        spec = yaml.safe_load(path.read_text())
        fixed, expect = spec.get("fixed") or {}, spec.get("expect") or {}
        arms = next((fixed[k] for k in ("activations", "inits", "cls_activations") if k in fixed), [])
        seeds = fixed.get("seeds", spec.get("seeds"))
        n_seeds = len(seeds) if isinstance(seeds, list) else seeds
        mde = f"{expect['mde']:g} {expect.get('mde_unit', '')}".strip() if "mde" in expect else "—"
        rows.append({"spec": path.name, "claims": ", ".join(spec.get("claims") or []) or "—",
                     "arms": ", ".join(map(str, arms)) or "—", "seeds": n_seeds, "MDE": mde,
                     "GPU-minutes": expect.get("gpu_minutes"),
                     "CPU proof": "smoke" if spec.get("smoke") else "none"})
    return pd.DataFrame(rows)
