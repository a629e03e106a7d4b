"""The verdicts, as the book shows them: a table with badges, a forest plot, one block per claim.

Reads ledger records (:class:`apalu.report.ledger.Claim` or anything with the same attributes)
and renders what they carry; the structured fields (``kind``, ``effect``, ``ci_low``,
``ci_high``, ``claimed_effect``, ``unit``, ``scale``, ``n_seeds``, ``condition``) are optional,
so old records render too. Output is MyST (notebook outputs are parsed as MyST): verdict badges
are sphinx-design roles, maths in evidence is ``$...$``.

* :func:`verdict_table` — one row per registered claim (obsolete records are left out and named),
  proxies and book checks labelled, the condition named in the row, a scale column, and a link
  to the section that decides it (its chapter's title, not a file name);
* :func:`forest_plot` — every effect with its 95% interval and the paper's claimed value;
* :func:`claim_blocks` — per claim an anchor ``claim-<id>``, the evidence and a BibTeX entry.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

from .tables import interval, md_cell

__all__ = ["BADGES", "family", "badge", "condition", "current", "chapter_title", "math_text", "effect_text",
           "verdict_table", "summary_table", "verdict_counts", "forest_rows", "forest_plot", "claim_blocks"]

# Verdict family -> sphinx-design badge role (colour says which way it went).
BADGES = {
    "confirmed": "bdg-success", "supported": "bdg-success",
    "holds under a condition": "bdg-warning", "holds with probability 0 under the paper's init": "bdg-warning",
    "equivalent": "bdg-info",
    "inconclusive": "bdg-muted", "underpowered": "bdg-muted", "incomplete": "bdg-muted",
    "refuted": "bdg-danger",
    "not tested here": "bdg-muted-line", "not run here": "bdg-muted-line",
}
KIND_LABELS = {"paper open question": "open question", "book check": "book check", "proxy": "proxy"}


def family(verdict: str) -> str:
    """The verdict's family ("underpowered (MDE 2.1 pp > claimed 0.4 pp)" -> "underpowered")."""
    if verdict in BADGES:
        return verdict
    head = verdict.split(" (", 1)[0].split(" within", 1)[0]
    if head in BADGES:
        return head
    raise ValueError(f"unknown verdict {verdict!r}; known families: {', '.join(BADGES)}")


def badge(verdict: str) -> str:
    """The verdict as a coloured badge (MyST role); the family's name is the badge's text."""
    fam = family(verdict)
    return f"{{{BADGES[fam]}}}`{fam}`"


def _get(claim, name: str, default=None):
    value = getattr(claim, name, default) if not isinstance(claim, dict) else claim.get(name, default)
    return default if value is None else value


_CONDITION = re.compile(r"Condition:\s*(.+?)\.?\s*$", re.S)


def condition(claim) -> str:
    """The condition a "holds under a condition" verdict names: the record's ``condition`` field,
    else its evidence's closing "Condition: ..." sentence; "" when the record states none."""
    explicit = _get(claim, "condition", "")
    if explicit:
        return str(explicit).strip().rstrip(".")
    m = _CONDITION.search(_get(claim, "evidence", ""))
    return m.group(1).strip() if m else ""


def _kind(claim) -> str:
    kind = _get(claim, "kind")
    if kind:
        return kind
    from .claims import CLAIMS

    spec = CLAIMS.get(_get(claim, "id"))
    return getattr(spec, "kind", "paper claim") if spec else "paper claim"


def current(claims: Sequence) -> tuple[list, list[str]]:
    """The claims whose id is registered (:mod:`apalu.report.claims`), each once, and the ids of
    records that are not (e.g. a claim split or merged since): one row per claim, never two."""
    from .claims import CLAIMS

    seen: set[str] = set()
    keep, dropped = [], []
    for c in claims:
        cid = _get(c, "id")
        if cid not in CLAIMS:
            dropped.append(cid)
        elif cid not in seen:
            seen.add(cid)
            keep.append(c)
    return keep, dropped


@functools.lru_cache(maxsize=None)
def _title_of(path: str) -> str:
    p = Path(path)
    if p.suffix == ".ipynb":
        cells = json.loads(p.read_text(encoding="utf-8"))["cells"]
        texts = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    else:
        texts = [p.read_text(encoding="utf-8")]
    for text in texts:
        for line in text.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return p.stem


def chapter_title(section: str, root: Path | None = None) -> str:
    """The title of the page ``section`` ("notebooks/theory_bounds#anchor") points to, read from
    its first "# " heading; the file's name if it has none."""
    from ..lab.paths import repo_root

    root = root or repo_root()
    page = section.partition("#")[0]
    for suffix in (".ipynb", ".md"):
        if (root / f"{page}{suffix}").is_file():
            return _title_of(str(root / f"{page}{suffix}"))
    return page.rpartition("/")[2]


def _href(section: str, link_prefix: str) -> str:
    page, _, anchor = section.partition("#")
    return f"{link_prefix}{page}.html" + (f"#{anchor}" if anchor else "")


def _a(text: str, href: str) -> str:
    # Raw HTML: MyST would treat a relative .html link as a cross-reference and warn.
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>'


# ASCII maths in evidence ("3*a/2", "(3/2)^L", "b^L", "f'(0⁺)") -> inline maths.
_MATH_TOKEN = re.compile(r"(?<![\w$\\])((?:[\w.()']|\s?[*/^]\s?)*?[\w)'](?:\*|\^)[\w(.'/^*-]*[\w)'])")


def math_text(text: str) -> str:
    """``text`` escaped for a MyST cell, with its ASCII formulas (``3*a/2``, ``(3/2)^L``) as maths."""
    out, last = [], 0
    for m in _MATH_TOKEN.finditer(text):
        token = m.group(1)
        if "*" not in token and "^" not in token:
            continue
        out.append(md_cell(text[last:m.start(1)]))
        tex = token.replace("**", "^").replace("*", r"\,")
        tex = re.sub(r"\^\(([^()]*)\)", r"^{\1}", tex)
        tex = re.sub(r"\^(-?[\w.]+)", r"^{\1}", tex)
        out.append(f"${tex}$")
        last = m.end(1)
    out.append(md_cell(text[last:]))
    return "".join(out)


def effect_text(claim) -> str:
    """"+1.20 [−0.31, 2.71] pp (paper: +0.37)"; "–" for a record without a numeric effect."""
    effect = _get(claim, "effect")
    if effect is None:
        return "–"
    unit = _get(claim, "unit", "")
    text = interval(effect, _get(claim, "ci_low"), _get(claim, "ci_high"), "signed") + (f" {unit}" if unit else "")
    claimed = _get(claim, "claimed_effect")
    if claimed is not None:
        text += f" (paper: {interval(claimed, None, None, 'signed')})"
    return text


def _scale(claim) -> str:
    parts = []
    n, scale = _get(claim, "n_seeds"), _get(claim, "scale")
    if n is not None and f"{n} seeds" not in str(scale or ""):  # the scale text may say it already
        parts.append(f"{n} seeds")
    if scale:
        parts.append(str(scale))
    return "; ".join(parts) or "–"


def _verdict_cell(claim) -> str:
    v = _get(claim, "verdict")
    cell = badge(v)
    detail = v[len(family(v)):].strip()
    if detail:
        cell += " " + md_cell(detail)
    if family(v) == "holds under a condition":
        cond = condition(claim)
        cell += "<br>" + (f"if {math_text(cond)}" if cond else "(the record names no condition)")
    return cell


def _claim_cell(claim, anchor_prefix: str) -> str:
    kind = _kind(claim)
    label = f"{{bdg-light}}`{KIND_LABELS[kind]}` " if kind in KIND_LABELS else ""
    return label + _a(_get(claim, "claim"), f"{anchor_prefix}#claim-{_get(claim, 'id')}")


def verdict_table(claims: Sequence, link_prefix: str = "../", anchor_prefix: str = "",
                  root: Path | None = None, name: str = "tbl-verdicts") -> str:
    """The Verdicts table (MyST): claim (linking to its block on this page), verdict badge and
    condition, effect with 95% interval and the paper's value, scale, and the deciding section."""
    claims, dropped = current(claims)
    header = ["Claim", "Verdict", "Effect, 95% CI", "Scale", "Decided in"]
    rows = []
    for c in claims:
        section = _get(c, "section", "")
        where = _a(chapter_title(section, root), _href(section, link_prefix))
        rows.append([_claim_cell(c, anchor_prefix), _verdict_cell(c), md_cell(effect_text(c)),
                     md_cell(_scale(c)), where])
    lines = [f":::{{table}} One computed verdict per claim; the effect is APALU − baseline (positive: "
             f"APALU better), with the value the paper reports.", f":name: {name}", ":class: apalu-table verdicts",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append(":::")
    if dropped:
        lines += ["", "Records of claims no longer registered (not shown): "
                  + ", ".join(f"`{d}`" for d in dropped) + "."]
    return "\n".join(lines)


def verdict_counts(claims: Sequence) -> dict[str, int]:
    claims, _ = current(claims)
    counts: dict[str, int] = {}
    for c in claims:
        fam = family(_get(c, "verdict"))
        counts[fam] = counts.get(fam, 0) + 1
    return counts


def summary_table(claims: Sequence, link_prefix: str = "../") -> str:
    """The landing page's compact table: counts per verdict, then claim -> verdict, each claim
    linking to its block on the Verdicts page and the row naming its condition."""
    counts = verdict_counts(claims)
    line = "; ".join(f"{badge(f)} {n}" for f, n in counts.items())
    table = verdict_table(claims, link_prefix=link_prefix, anchor_prefix=f"{link_prefix}notebooks/ledger.html",
                          name="tbl-verdicts-summary")
    return f"{sum(counts.values())} claims: {line}.\n\n" + table


def forest_rows(claims: Sequence) -> list[dict]:
    """The claims with a numeric effect and interval: id, label, kind, effect, bounds, claimed, unit."""
    claims, _ = current(claims)
    rows = []
    for c in claims:
        if _get(c, "effect") is None or _get(c, "ci_low") is None or _get(c, "ci_high") is None:
            continue
        rows.append({"id": _get(c, "id"), "claim": _get(c, "claim"), "kind": _kind(c),
                     "effect": float(_get(c, "effect")), "low": float(_get(c, "ci_low")),
                     "high": float(_get(c, "ci_high")), "claimed": _get(c, "claimed_effect"),
                     "unit": _get(c, "unit", "") or "", "verdict": family(_get(c, "verdict"))})
    return rows


def _wrap(text: str, width: int = 44) -> str:
    import textwrap

    lines = textwrap.wrap(text, width)
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def forest_plot(claims: Sequence):
    """A forest plot: per claim the APALU − baseline effect with its 95% interval (one panel per
    unit), the paper's claimed value as a diamond, 0 as a line; ``None`` when no record carries
    an effect yet (say so in the text instead of showing an empty figure)."""
    from . import style

    rows = forest_rows(claims)
    if not rows:
        return None
    units = list(dict.fromkeys(r["unit"] for r in rows))
    heights = [len([r for r in rows if r["unit"] == u]) for u in units]
    fig, axes = style.new_figure("wide", nrows=len(units), height=0.55 * sum(heights) + 0.9 * len(units),
                                 squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, unit in zip(axes[:, 0], units):
        sub = [r for r in rows if r["unit"] == unit]
        ys = list(range(len(sub)))[::-1]
        for y, r in zip(ys, sub):
            colour = style.color("apalu") if r["kind"] != "proxy" else "#777777"
            ax.errorbar(r["effect"], y, xerr=[[r["effect"] - r["low"]], [r["high"] - r["effect"]]], fmt="o",
                        color=colour, capsize=3, label="APALU − baseline, 95% CI" if y == ys[0] else None)
            if r["claimed"] is not None:
                ax.plot(float(r["claimed"]), y, "D", mfc="white", mec="black", ms=6,
                        label="the paper's value" if y == ys[0] else None)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(ys, [_wrap(("(proxy) " if r["kind"] == "proxy" else "") + r["claim"]) for r in sub])
        ax.set_xlabel(f"APALU − baseline ({unit})" if unit else "APALU − baseline")
        ax.grid(axis="y", visible=False)
    style.finish(axes, legend="below")
    return fig


_COMMAND = re.compile(r"(?:^|(?<=: ))((?:\.venv/bin/)?(?:papermill|python -m|make|apalu) .+)$")


def _evidence(text: str) -> list[str]:
    """The evidence paragraph; a command in it (the run a "not run here" claim needs) becomes a
    code block, so it copies into a shell as written: straight quotes, ``<folder>`` intact."""
    m = _COMMAND.search(text)
    if not m:
        return [f"**Evidence.** {math_text(text)}"]
    before = text[:m.start(1)].rstrip().rstrip(":")
    return [f"**Evidence.** {math_text(before)}:", "", "```bash", m.group(1).strip(), "```"]


def claim_blocks(claims: Sequence, link_prefix: str = "../", root: Path | None = None,
                 repository_url: str = "", book_url: str = "") -> str:
    """Per claim: the anchor ``claim-<id>`` (what a review cites), verdict, condition, evidence
    (maths as maths), scale, the deciding section, and a copyable BibTeX ``@misc`` entry."""
    from .citation import claim_bibtex

    claims, _ = current(claims)
    out = []
    for c in claims:
        cid, section = _get(c, "id"), _get(c, "section", "")
        kind = _kind(c)
        lines = [f"({'claim-' + cid})=", f"### {md_cell(_get(c, 'claim'))}", "",
                 f"{_verdict_cell(c).replace('<br>', ' ')} · {kind} · decided in "
                 f"{_a(chapter_title(section, root), _href(section, link_prefix))}", "",
                 *_evidence(_get(c, "evidence", "")), ""]
        if _get(c, "primary") or _get(c, "effect") is not None:
            lines += [f"**Primary comparison.** {md_cell(_get(c, 'primary', ''))}: {md_cell(effect_text(c))}"
                      + (f", {md_cell(str(_get(c, 'test')))}" if _get(c, "test") else "")
                      + (f", p (Holm) = {_get(c, 'p_adjusted'):.3g}" if _get(c, "p_adjusted") is not None else "")
                      + (f", MDE {_get(c, 'mde'):.3g} {_get(c, 'unit', '')}" if _get(c, "mde") is not None else "")
                      + f". Scale: {md_cell(_scale(c))}.", ""]
        bib = claim_bibtex(c, root=root, repository_url=repository_url, book_url=book_url)
        lines += [":::{dropdown} Cite this verdict (BibTeX)", "```bibtex", bib, "```", ":::", ""]
        out.append("\n".join(lines))
    return "\n".join(out)
