"""The book's reproducibility contract: what must match exactly, and what within a tolerance.

Floats from training differ across CPUs in their last digits (BLAS/oneDNN pick kernels per CPU
model, the APALU kernel's reductions follow its vector width, thread counts differ), so a
trained model's numbers cannot be compared bit for bit between machines. Everything else can.

* **Exact:** all text (words, verdicts, labels, punctuation), every integer (counts, sizes, the
  data a seed selects), and every number in a cell not marked as holding trained numbers
  (SymPy results, closed forms, data statistics).
* **Within a tolerance:** a float printed by a cell tagged :data:`TAG` (numbers from trained
  models) may move by ``rel`` of its value or ``digits`` units of its last printed digit,
  whichever is larger (:data:`DEFAULT`). A cell can narrow or widen this in its metadata,
  ``{"repro_tolerance": {"rel": ..., "digits": ...}}``.

The same rule compares ledger records: the verdict and every integer exactly, the evidence's
floats within :data:`DEFAULT`.

>>> compare_text("acc 0.3752 [0.3464, 0.4040], 5 seeds", "acc 0.3760 [0.3460, 0.4041], 5 seeds")
[]
>>> compare_text("acc 0.3752, 5 seeds", "acc 0.3752, 6 seeds")
['integer 5 became 6 (integers must match exactly) in: ...acc 0.3752, 5 seeds...']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .claims import EVIDENCE_TOLERANCE

__all__ = ["TAG", "Tolerance", "DEFAULT", "compare_text", "cell_tolerance", "tolerance_from", "compare_ledgers"]

TAG = "trained-numbers"  # notebook cell tag: this cell prints numbers from trained models


@dataclass(frozen=True)
class Tolerance:
    """How far a printed float may move: the largest of the allowances that apply to it."""

    rel: float = 0.02  # fraction of the reference value
    digits: float = 2.0  # units of the last printed digit (covers rounding near 0)
    abs: float = 0.0  # an absolute amount, for quantities on a known scale (a cell states why)
    ci: float = 0.2  # fraction of the interval's width, for each number of "m [low, high]"

    def allowance(self, ref: str, interval_width: float | None = None) -> float:
        value = float(ref.replace("\u2212", "-"))
        allowed = max(self.rel * abs(value), self.digits * _last_digit_unit(ref), self.abs)
        return max(allowed, self.ci * interval_width) if interval_width is not None else allowed

    def describe(self) -> str:
        parts = [f"rel {self.rel:g}", f"{self.digits:g} units of the last digit"]
        parts += [f"abs {self.abs:g}"] if self.abs else []
        parts += [f"{self.ci:g} of an interval's width"] if self.ci else []
        return "largest of " + ", ".join(parts)


# Across the CPUs and code paths measured (AVX512 / AVX2 ATen kernels, the APALU C++ kernel on
# or off, 1 or 2 threads) trained-model numbers moved by at most about 1.3% (a share of 0.2710
# against 0.2744); 2% leaves a margin and still catches a real change (tests/report/test_reproduce.py).
DEFAULT = Tolerance()

# A number: optional sign (ASCII or the Unicode minus that formatted text uses), digits with an
# optional fraction, optional exponent; not inside a word ("x2", "fp16", "3x32" stay text) and
# not part of a longer number. A sentence's final period is not part of the number.
_NUMBER = re.compile(r"(?<!\w)(?<!\d\.)[-+\u2212]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?!\w|\.\d)")
_SPACE = re.compile(r"\s+")
_OPENS_INTERVAL = re.compile(r" (?:[A-Za-z%]+ ){0,2}\[")  # " [", " pp [", " AUC pp ["


def _last_digit_unit(token: str) -> float:
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def _float(token: str) -> float:
    return float(token.replace("\u2212", "-"))


def _is_integer(token: str) -> bool:
    return not any(c in token for c in ".eE")


# A table's downloadable CSV, embedded as a data URI (apalu.report.tables): it repeats the
# printed numbers at full precision (6+ digits, URL-encoded), beyond what the page prints and
# what the contract compares; the printed table is compared instead.
_DATA_URI = re.compile(r"data:text/csv[^\"\s]*")  # ends with the href's closing quote


def _normalise(text: str) -> str:
    # Whitespace runs are layout (pandas pads columns to the widest number), not content; a p
    # printed "< 0.001" is compared as 0.001 (it crosses that threshold between machines).
    text = re.sub(r"\\?<\s*(?=\d)", "", text)  # also Markdown's escaped "\<"
    text = _DATA_URI.sub("data:text/csv,(full-precision CSV of the table above)", text)
    return _SPACE.sub(" ", text.replace("\u2212", "-")).strip()


def _context(text: str, start: int, width: int = 30) -> str:
    return "..." + text[max(0, start - width):start + width] + "..."


def _interval_widths(parts: list[str], numbers: list[re.Match]) -> dict[int, float]:
    """Index of each number printed as part of "m [low, high]" (or "m pp [low, high]": up to two
    unit words between) -> the interval's width."""
    widths = {}
    for i in range(len(numbers) - 2):
        if _OPENS_INTERVAL.fullmatch(parts[i + 1]) and parts[i + 2] == ", " and parts[i + 3].startswith("]"):
            low, high = (float(numbers[k].group().replace("\u2212", "-")) for k in (i + 1, i + 2))
            widths.update({k: abs(high - low) for k in (i, i + 1, i + 2)})
    return widths


def compare_text(expected: str, actual: str, tolerance: Tolerance | None = DEFAULT) -> list[str]:
    """Problems found comparing ``actual`` output text with the ``expected`` (stored) text.

    Text between numbers must be equal (after collapsing whitespace); integers must be equal;
    floats must be within ``tolerance`` (``None``: equal as written). Empty list: they match.
    """
    exp, act = _normalise(expected), _normalise(actual)
    exp_nums, act_nums = list(_NUMBER.finditer(exp)), list(_NUMBER.finditer(act))
    parts = _NUMBER.split(exp)
    if parts != _NUMBER.split(act) or len(exp_nums) != len(act_nums):
        return [f"the text differs, not only its numbers: expected {_first_difference(exp, act)}"]
    widths = _interval_widths(parts, exp_nums)
    problems = []
    for i, (e, a) in enumerate(zip(exp_nums, act_nums)):
        ref, new = e.group(), a.group()
        if ref == new:
            continue
        if _is_integer(ref) and _is_integer(new):
            problems.append(f"integer {ref} became {new} (integers must match exactly) in: {_context(exp, e.start())}")
        elif tolerance is None:
            problems.append(f"{ref} became {new} (this cell must match exactly) in: {_context(exp, e.start())}")
        elif abs(_float(new) - _float(ref)) > tolerance.allowance(ref, widths.get(i)):
            problems.append(f"{ref} became {new}, beyond the tolerance ({tolerance.describe()}) in: "
                            f"{_context(exp, e.start())}")
    return problems


def _first_difference(exp: str, act: str) -> str:
    i = next((k for k, (x, y) in enumerate(zip(exp, act)) if x != y), min(len(exp), len(act)))
    return f"{exp[max(0, i - 40):i + 40]!r}, got {act[max(0, i - 40):i + 40]!r}"


def tolerance_from(override: dict) -> Tolerance:
    """The default tolerance with an override's fields (``rel``, ``digits``, ``abs``, ``ci``); an
    override must say ``why``."""
    fields = {"rel", "digits", "abs", "ci"}
    unknown = set(override) - fields - {"why"}
    if unknown:
        raise ValueError(f"repro_tolerance: unknown keys {sorted(unknown)}; use {sorted(fields)} and 'why'")
    if set(override) - {"why"} and not override.get("why"):
        raise ValueError("repro_tolerance: a cell that sets its own tolerance says why, in 'why'")
    return Tolerance(**{**DEFAULT.__dict__, **{k: v for k, v in override.items() if k != "why"}})


def cell_tolerance(metadata: dict) -> Tolerance | None:
    """The tolerance a notebook cell's metadata declares; ``None`` for an exact cell."""
    if TAG not in metadata.get("tags", []):
        return None
    return tolerance_from(metadata.get("repro_tolerance", {}))


def _records(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def compare_ledgers(committed: Path, fresh: list[Path], tolerance: Tolerance = DEFAULT) -> list[str]:
    """Problems found comparing freshly written ledger records with the committed ones.

    ``fresh``: the folders the re-run notebooks wrote their records to. Every committed record
    must be written again; the verdict and every field but the evidence and the trained numbers
    (:data:`TRAINED_FIELDS`) must be equal; the evidence is compared with :func:`compare_text`
    under ``tolerance``, or under the claim's own (:data:`apalu.report.claims.EVIDENCE_TOLERANCE`),
    and the trained numbers under the same allowances (an effect or CI bound by a fifth of the
    interval's width).
    """
    old = _records(committed)
    new: dict[str, dict] = {}
    for folder in fresh:
        for cid, rec in _records(folder).items():
            if cid in new:
                return [f"claim {cid!r} is recorded by two notebooks ({folder})"]
            new[cid] = rec
    problems = [f"{cid}: committed, but no re-run notebook recorded it" for cid in sorted(set(old) - set(new))]
    problems += [f"{cid}: recorded, but not in the committed ledger" for cid in sorted(set(new) - set(old))]
    for cid in sorted(set(old) & set(new)):
        o, n = old[cid], new[cid]
        for key in sorted(set(o) | set(n)):
            if key == "evidence":
                problems += [f"{cid}: evidence: {p}" for p in
                             compare_text(o.get(key, ""), n.get(key, ""), own_tolerance(cid, tolerance))]
            elif key in TRAINED_FIELDS and _float_field_moved(o, n, key, own_tolerance(cid, tolerance)):
                problems.append(f"{cid}: {key} moved from {o.get(key)!r} to {n.get(key)!r}, beyond "
                                "the tolerance")
            elif key not in TRAINED_FIELDS and o.get(key) != n.get(key):
                problems.append(f"{cid}: {key} changed from {o.get(key)!r} to {n.get(key)!r}")
    return problems


# A record's structured numbers that come from trained models (apalu.report.ledger.FIELDS):
# compared like the evidence that prints them, not bit for bit.
TRAINED_FIELDS = ("effect", "ci_low", "ci_high", "p_adjusted", "mde")
_FIELD_FLOOR = 0.002  # the evidence prints p and MDE to 2-3 digits: 2 units of the third decimal


def own_tolerance(cid: str, default: Tolerance) -> Tolerance:
    """The claim's own evidence tolerance (:data:`apalu.report.claims.EVIDENCE_TOLERANCE`), else
    ``default``."""
    return tolerance_from(EVIDENCE_TOLERANCE[cid]) if cid in EVIDENCE_TOLERANCE else default


def _float_field_moved(old: dict, new: dict, key: str, tol: Tolerance) -> bool:
    a, b = old.get(key), new.get(key)
    if a is None or b is None:
        return (a is None) != (b is None)
    allowed = max(tol.rel * abs(a), tol.abs, _FIELD_FLOOR)
    if key in ("effect", "ci_low", "ci_high") and None not in (old.get("ci_low"), old.get("ci_high")):
        allowed = max(allowed, tol.ci * abs(old["ci_high"] - old["ci_low"]))
    return abs(b - a) > allowed


def main(argv: list[str] | None = None) -> int:
    """``python -m apalu.reproduce``: compare the ledger records the re-run notebooks wrote
    (``_build/results/*/ledger``) with the committed ones (``data/ledger``); exit 1 on a problem."""
    import argparse

    from .ledger import ledger_dir
    from ..lab.paths import repo_root

    parser = argparse.ArgumentParser(prog="python -m apalu.reproduce", description=main.__doc__)
    parser.add_argument("--results", type=Path, default=None,
                        help="folder holding <notebook>/ledger/ (default: _build/results)")
    args = parser.parse_args(argv)
    results = args.results or repo_root() / "_build" / "results"
    fresh = sorted(p for p in results.glob("*/ledger") if p.is_dir())
    if not fresh:
        print(f"ledger: no re-run records under {results}/*/ledger: run the notebooks first (make test-nbval)")
        return 1
    problems = compare_ledgers(ledger_dir(), fresh)
    for p in problems:
        print("ledger:", p)
    if problems:
        print(f"ledger: {len(problems)} problem(s): the re-run notebooks do not reproduce the committed verdicts "
              f"within the contract. If the change is intended, run `make record` and add a CHANGELOG entry.")
        return 1
    print(f"ledger: {len(_records(ledger_dir()))} committed records reproduced (verdicts exactly, evidence "
          f"within the {DEFAULT.describe()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
