"""Plain-text tables for the terminal and the CSV files of a run."""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["text_table", "write_csv"]


def text_table(rows: list[dict], cols: list[str]) -> str:
    """``rows`` as aligned columns (floats to 3 significant digits)."""

    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    cells = [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    """One CSV with the keys of the first row as header (nothing written for no rows)."""
    if not rows:
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
