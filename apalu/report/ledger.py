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
:mod:`apalu.report.verdicts`, each row with a stable anchor ``claim-<id>``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields as dataclass_fields, replace
from pathlib import Path

from ..lab.atomic import atomic_write_text
from ..lab.paths import repo_root
from ..lab.protocol import (CONFIRMED, EQUIVALENT, HOLDS_UNDER_CONDITION, HOLDS_WITH_PROBABILITY_0, INCOMPLETE,
                            INCONCLUSIVE, NOT_RUN, NOT_TESTED, REFUTED, SUPPORTED, UNDERPOWERED, VERDICTS, equivalent,
                            incomplete, is_verdict, underpowered, verdict_family)
from .claims import CLAIMS, claim_spec

__all__ = ["VERDICTS", "CLAIMS", "claim_spec", "Claim", "verdict", "record", "record_verdict", "load", "with_expected",
           "ledger_dir", "run_ledger_dir", "publishing",
           "RECORD_ENV", "FIELDS", "SUPPORTED", "REFUTED", "INCONCLUSIVE", "NOT_TESTED", "NOT_RUN", "CONFIRMED",
           "HOLDS_UNDER_CONDITION", "HOLDS_WITH_PROBABILITY_0", "equivalent", "underpowered", "incomplete",
           "verdict_family", "is_verdict"]

# The verdict vocabulary is defined once, in apalu.lab.protocol (the lab decides verdicts and
# may not import the report); the ledger validates records against it and re-exports it.
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# Structured fields of a record (null for analytic records and for old records without them).
FIELDS = ("kind", "primary", "n_seeds", "test", "effect", "ci_low", "ci_high", "p_adjusted", "mde",
          "claimed_effect", "scale", "unit", "condition")


@dataclass(frozen=True)
class Claim:
    id: str  # stable slug; the anchor is "claim-<id>"
    claim: str  # what the paper says
    verdict: str  # one of VERDICTS (or a parameterised member of a family)
    evidence: str  # the computed numbers that decided it
    section: str  # book page (and anchor) that shows it, e.g. "notebooks/theory_bounds"
    source: str  # notebook that recorded it
    order: float = 0.0  # position in the ledger table
    kind: str | None = None  # the registry's kind ("paper claim", "proxy", ...)
    primary: str | None = None  # e.g. "APALU − ReLU, test accuracy"
    n_seeds: int | None = None  # complete seed pairs in the primary comparison
    test: str | None = None  # e.g. "paired t (scipy.stats.ttest_rel)"
    effect: float | None = None  # mean paired difference, in ``unit``, positive = treatment better
    ci_low: float | None = None
    ci_high: float | None = None
    p_adjusted: float | None = None  # Holm within the claim
    mde: float | None = None  # minimal detectable effect (80% power, α = 0.05), in ``unit``
    claimed_effect: float | None = None  # what the paper reports, in ``unit``
    scale: str | None = None  # in words: seeds, steps, data size
    unit: str | None = None  # e.g. "pp", "AUC pp", "MSE"
    condition: str | None = None  # where a "holds under a condition" verdict holds, e.g. "n_train = 50"


def verdict(holds: bool, condition_holds: bool | None = None) -> str:
    """Map computed analytic facts to a verdict.

    ``holds``: the claim holds as stated. ``condition_holds``: it holds under a stated condition
    (only consulted when it does not hold as stated). Empirical claims use
    :func:`apalu.lab.protocol.decide` instead.
    """
    if holds:
        return CONFIRMED
    if condition_holds:
        return HOLDS_UNDER_CONDITION
    return REFUTED


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
    verdict_family(claim.verdict)  # raises, naming the vocabulary, for anything else
    spec = claim_spec(claim.id)
    registered = {"claim": spec.text, "order": spec.order, "section": spec.section, "source": spec.source,
                  "kind": spec.kind}
    if claim.kind is None:
        claim = replace(claim, kind=spec.kind)
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


def record_verdict(claim_id: str, *, verdict: str, evidence: str, folder: Path | None = None,
                   fields: dict | None = None) -> Path:
    """Record the computed ``verdict`` and ``evidence`` on the registered claim ``claim_id``.

    The claim's text, order, section, source and kind come from :mod:`apalu.report.claims`;
    an id that is not registered is an error. ``fields``: the structured fields (:data:`FIELDS`,
    e.g. :meth:`apalu.lab.protocol.Decision.fields`); a "verdict" or "kind" among them must
    agree with ``verdict`` and the registry. ``folder`` as in :func:`record`.
    """
    spec = claim_spec(claim_id)
    extra = dict(fields or {})
    if extra.pop("verdict", verdict) != verdict:
        raise ValueError(f"claim {claim_id!r}: fields['verdict'] differs from verdict={verdict!r}")
    unknown = sorted(set(extra) - set(FIELDS))
    if unknown:
        raise ValueError(f"claim {claim_id!r}: unknown record fields {unknown}; known: {', '.join(FIELDS)}")
    extra.setdefault("kind", spec.kind)
    return record(Claim(id=spec.id, claim=spec.text, verdict=verdict, evidence=evidence, section=spec.section,
                        source=spec.source, order=spec.order, **{k: _plain(v) for k, v in extra.items()}), folder)


def _plain(value):
    """JSON-safe: numpy scalars to Python, NaN to None (a missing number, not a string)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def load(folder: Path | None = None) -> list[Claim]:
    """Every recorded claim, ordered by ``order`` then id."""
    folder = folder or ledger_dir()
    known = {f.name for f in dataclass_fields(Claim)}
    claims = []
    for p in sorted(folder.glob("*.json")):
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"ledger record {p} is not valid JSON: {e}") from None
        unknown = sorted(set(data) - known) if isinstance(data, dict) else ["<not an object>"]
        if unknown:
            raise ValueError(f"ledger record {p} has unknown fields {unknown}")
        claims.append(Claim(**data))  # records written before the structured fields load with them None
    return sorted(claims, key=lambda c: (c.order, c.id))


def with_expected(claims: list[Claim]) -> list[Claim]:
    """``claims`` plus a "not tested here" row for each registered claim that has no record
    (so a notebook that stops recording shows), linking to the page that should decide it."""
    have = {c.id for c in claims}
    missing = [Claim(id=c.id, claim=c.text, verdict=NOT_TESTED, evidence="no computed record yet",
                     section=c.section, source=c.source, order=c.order, kind=c.kind)
               for c in CLAIMS.values() if c.id not in have]
    return sorted(claims + missing, key=lambda c: (c.order, c.id))
