"""The claims ledger: one computed verdict per claim of the paper.

Every claim is defined once, by id, in :mod:`apalu.report.claims` (its text, order, section,
notebook and kind). Notebooks call :func:`record_verdict` with the claim's id and a verdict they
computed (never typed by hand: pass the boolean test that decides it through :func:`verdict`) and
the evidence; each record is one JSON file, written
atomically next to the run's own outputs (``<output_dir>/ledger/``; by default
``_build/results/<notebook>/ledger/``). Only the record command (``make record``, which sets
``APALU_RECORD=1``) also writes it into the committed ledger ``data/ledger/``: building the book,
running the tests or running a notebook with other parameters never changes a committed verdict.
The ledger page reads the committed records with :func:`load` and renders them with
:func:`to_markdown`, each row with a stable anchor ``claim-<id>``.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..lab.atomic import atomic_write_text
from ..lab.paths import repo_root
from .claims import CLAIMS, claim_spec

__all__ = ["VERDICTS", "CLAIMS", "claim_spec", "Claim", "verdict", "record", "record_verdict", "load", "with_expected",
           "to_markdown", "summary_markdown", "verdict_from_interval", "combine_verdicts", "ledger_dir",
           "run_ledger_dir", "publishing", "RECORD_ENV"]

VERDICTS = ("confirmed", "holds under a condition", "inconclusive", "refuted", "not tested here", "not run here")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Claim:
    id: str  # stable slug; the anchor is "claim-<id>"
    claim: str  # what the paper says
    verdict: str  # one of VERDICTS
    evidence: str  # the computed numbers that decided it
    section: str  # book page (and anchor) that shows it, e.g. "notebooks/theory_bounds"
    source: str  # notebook that recorded it
    order: float = 0.0  # position in the ledger table


def verdict(holds: bool, condition_holds: bool | None = None) -> str:
    """Map computed facts to a verdict.

    ``holds``: the claim holds as stated. ``condition_holds``: it holds under a stated condition
    (only consulted when it does not hold as stated).
    """
    if holds:
        return "confirmed"
    if condition_holds:
        return "holds under a condition"
    return "refuted"


def verdict_from_interval(low: float, high: float, claimed: str = "higher") -> str:
    """The verdict on a claimed direction of an effect, from its 95% interval.

    "confirmed" if the whole interval lies on the claimed side of 0, "refuted" if it lies on the
    other side, "inconclusive" if it contains 0 (the data at this scale cannot tell).
    """
    if claimed not in ("higher", "lower"):
        raise ValueError(f"claimed must be 'higher' or 'lower', got {claimed!r}")
    sign = 1.0 if claimed == "higher" else -1.0
    lo, hi = sorted((sign * low, sign * high))
    if lo > 0:
        return "confirmed"
    if hi < 0:
        return "refuted"
    return "inconclusive"


def combine_verdicts(parts: dict[str, str]) -> tuple[str, str]:
    """One verdict from per-comparison verdicts (e.g. one per baseline), and the condition.

    All confirmed → "confirmed"; some confirmed → "holds under a condition" (the condition names
    where it holds); none confirmed → "refuted" if any is refuted, else "inconclusive".
    """
    if not parts:
        raise ValueError("combine_verdicts needs at least one comparison")
    held = [k for k, v in parts.items() if v == "confirmed"]
    if len(held) == len(parts):
        return "confirmed", ""
    if held:
        return "holds under a condition", "holds for " + ", ".join(held) + " only"
    if any(v == "refuted" for v in parts.values()):
        return "refuted", ""
    return "inconclusive", ""


def ledger_dir() -> Path:
    return repo_root() / "data" / "ledger"


RECORD_ENV = "APALU_RECORD"  # "1" only under the record command: also publish to data/ledger


def run_ledger_dir(source: str) -> Path:
    """Where a notebook's run writes its records by default: ``_build/results/<notebook>/ledger``."""
    return repo_root() / "_build" / "results" / Path(source).stem / "ledger"


def publishing() -> bool:
    """True under the record command (``APALU_RECORD=1``), which alone writes ``data/ledger``."""
    return os.environ.get(RECORD_ENV) == "1"


def record(claim: Claim, folder: Path | None = None) -> Path:
    """Write one claim's verdict to ``<folder>/<id>.json`` and return that path.

    ``claim`` must be a registered claim (:mod:`apalu.report.claims`) with the registry's text,
    order, section and source; :func:`record_verdict` builds it from the id. ``folder``: the
    run's own ledger folder (default :func:`run_ledger_dir` of the claim's source notebook).
    Under the record command (:func:`publishing`) the record is also written to the committed
    ledger, ``data/ledger``.
    """
    if not _ID.match(claim.id):
        raise ValueError(f"claim id {claim.id!r} must be a lowercase slug (letters, digits, '-')")
    if claim.verdict not in VERDICTS:
        raise ValueError(f"verdict {claim.verdict!r} is not one of {VERDICTS}")
    spec = claim_spec(claim.id)
    registered = {"claim": spec.text, "order": spec.order, "section": spec.section, "source": spec.source}
    differs = [k for k, v in registered.items() if getattr(claim, k) != v]
    if differs:
        raise ValueError(f"claim {claim.id!r}: {', '.join(differs)} differ from apalu/report/claims.py "
                         "(record by id with record_verdict)")
    text = json.dumps(asdict(claim), indent=1, ensure_ascii=False) + "\n"
    path = Path(folder or run_ledger_dir(claim.source)) / f"{claim.id}.json"
    atomic_write_text(path, text)
    if publishing():
        atomic_write_text(ledger_dir() / f"{claim.id}.json", text)
    return path


def record_verdict(claim_id: str, *, verdict: str, evidence: str, folder: Path | None = None) -> Path:
    """Record the computed ``verdict`` and ``evidence`` on the registered claim ``claim_id``.

    The claim's text, order, section and source come from :mod:`apalu.report.claims`; an id
    that is not registered is an error. ``folder`` as in :func:`record`.
    """
    spec = claim_spec(claim_id)
    return record(Claim(id=spec.id, claim=spec.text, verdict=verdict, evidence=evidence, section=spec.section,
                        source=spec.source, order=spec.order), folder)


def load(folder: Path | None = None) -> list[Claim]:
    """Every recorded claim, ordered by ``order`` then id."""
    folder = folder or ledger_dir()
    claims = [Claim(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
    return sorted(claims, key=lambda c: (c.order, c.id))


def _href(section: str, link_prefix: str) -> str:
    """``page#anchor`` -> ``<prefix>page.html#anchor`` (the anchor is optional)."""
    page, _, anchor = section.partition("#")
    return f"{link_prefix}{page}.html" + (f"#{anchor}" if anchor else "")


def with_expected(claims: list[Claim]) -> list[Claim]:
    """``claims`` plus a "not tested here" row for each registered claim that has no record
    (so a notebook that stops recording shows), linking to the page that should decide it."""
    have = {c.id for c in claims}
    missing = [Claim(id=c.id, claim=c.text, verdict="not tested here", evidence="no computed record yet",
                     section=c.section, source=c.source, order=c.order)
               for c in CLAIMS.values() if c.id not in have]
    return sorted(claims + missing, key=lambda c: (c.order, c.id))


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: pipes and emphasis marks (3*a/2) escaped."""
    for ch in ("\\", "|", "*", "_", "`"):
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ")


def _link(text: str, href: str) -> str:
    # Raw HTML, not [text](href): MyST would resolve a relative .html link as a cross-reference
    # and warn; an <a> passes through to the page unchanged.
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>'


def summary_markdown(claims: list[Claim], link_prefix: str = "../") -> str:
    """Counts per verdict and a compact claim → verdict table linking into the ledger page."""
    counts = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
    line = "; ".join(f"**{n}** {v}" for v, n in counts.items() if n)
    rows = ["| Claim | Verdict |", "|---|---|"]
    for c in claims:
        href = f"{link_prefix}notebooks/ledger.html#claim-{c.id}"
        rows.append(f"| {_link(_cell(c.claim), href)} | {c.verdict} |")
    return f"{len(claims)} claims: {line}.\n\n" + "\n".join(rows)


def to_markdown(claims: list[Claim], link_prefix: str = "../") -> str:
    """A Markdown table with one anchored row per claim (render with IPython's Markdown)."""
    rows = ["| | Claim (paper) | Verdict | Where | Evidence (computed) |", "|---|---|---|---|---|"]
    for c in claims:
        page = c.section.partition("#")[0].rpartition("/")[2]
        rows.append(
            f'| <a id="claim-{c.id}" href="#claim-{c.id}">#</a> | {_cell(c.claim)} | **{c.verdict}** '
            f"| {_link(page, _href(c.section, link_prefix))} | {_cell(c.evidence)} |"
        )
    return "\n".join(rows)
