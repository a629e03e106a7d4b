"""The book's one table formatter: human headers, no index, one number format per quantity.

Every table a notebook shows goes through :func:`show_table`, which prints it as a numbered,
captioned MyST table (the notebook's output is parsed as MyST, ``nb_render_markdown_format``),
so ``{numref}`` cites it ("Table 2"), the theme scrolls it sideways when it is wider than the
page (the first column stays pinned, ``book/_static/reading.css``) and nothing is cut off.
The notebook pattern::

    from apalu.report.tables import show_table

    show_table(
        summary,                                         # a DataFrame; its index is not shown
        columns={"activation": "Activation", "acc_mean": "Test accuracy (%)",
                 "effect": "APALU − baseline (pp)", "p_adjusted": "p (Holm)"},
        number_formats={"acc_mean": "percent", "effect": "pp", "p_adjusted": "p"},
        intervals={"effect": ("ci_low", "ci_high")},     # "+1.20 [-0.31, 2.71]"
        caption="Test accuracy per activation, mean over 10 seeds, and the paired effect.",
        name="tbl-exp-convergence-accuracy",
        csv_name="accuracy.csv", output_dir=OUT,          # the full table, next to the run's outputs
    )

Number formats (one per quantity, so the same quantity reads the same on every page):
"percent" (a fraction shown in %: 0.9206 -> 92.06), "points" (already in %), "pp" (a
difference in percentage points, signed: +1.20), "signed" (+0.0123), "int" (12,345),
"p" (p-values: 0.012, < 0.001), "sci" (1.2e-05), "float" (3 significant digits),
a format spec such as ".4f", or a function of the value. Activation names in the
``activation`` column (or any column listed in ``labels``) read as in the figures ("Leaky ReLU").
Missing values show as "–"; booleans as "yes"/"no". A table longer than ``max_rows`` shows its
first rows and says how many more there are; with ``csv_name`` the full table is written to
``output_dir`` and offered for download from the page (embedded, so it works offline).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = ["FORMATS", "format_value", "interval", "Table", "format_table", "show_table", "md_cell"]

DASH = "–"
Formatter = Callable[[object], str]


def _num(fmt: str) -> Formatter:
    return lambda v: format(float(v), fmt)


def _p(v) -> str:
    v = float(v)
    return "< 0.001" if v < 0.001 else format(v, ".3f")


def _int(v) -> str:
    return format(int(round(float(v))), ",d")


FORMATS: dict[str, Formatter] = {
    "percent": lambda v: format(100 * float(v), ".2f"),
    "points": _num(".2f"),
    "pp": _num("+.2f"),
    "signed": _num("+.3g"),
    "int": _int,
    "p": _p,
    "sci": _num(".2e"),
    "float": _num(".3g"),
    "text": str,
}


def _formatter(spec: str | Formatter) -> Formatter:
    if callable(spec):
        return spec
    if spec in FORMATS:
        return FORMATS[spec]
    try:
        format(1.5, spec)
    except (ValueError, TypeError):
        raise ValueError(f"number format {spec!r}: use one of {', '.join(FORMATS)}, a format spec "
                         "such as '.4f', or a function") from None
    return _num(spec)


def _missing(v) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v)) or v != v
    except (TypeError, ValueError):
        return False


def format_value(value, spec: str | Formatter = "float") -> str:
    """One value as the table shows it (missing -> "–", booleans -> yes/no, numbers by ``spec``)."""
    if _missing(value):
        return DASH
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    return _formatter(spec)(value).replace("-", "−")  # a typographic minus


def interval(value, low, high, spec: str | Formatter = "float") -> str:
    """``"m [low, high]"`` with one format for all three (the book's one way to write an interval)."""
    if _missing(value):
        return DASH
    f = _formatter(spec)
    g = _formatter(_unsigned(spec))
    bounds = "" if _missing(low) or _missing(high) else f" [{g(low)}, {g(high)}]"
    return (f(value) + bounds).replace("-", "−")


def _unsigned(spec: str | Formatter) -> str | Formatter:
    """The bounds of a signed quantity are written without a forced '+' ("+1.2 [-0.3, 2.7]")."""
    if spec == "pp":
        return "points"
    if spec == "signed":
        return "float"
    return spec


_RAW_HEADER = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")


def md_cell(text: str) -> str:
    """Text safe inside a MyST table cell: pipes, emphasis, backticks and ``$`` (maths) escaped."""
    text = str(text)
    for ch in ("\\", "|", "*", "_", "`", "$", "<", ">"):
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ")


@dataclass(frozen=True)
class Table:
    """A formatted table: ``markdown`` (MyST, what the page renders), ``text`` (plain),
    the shown rows as ``frame`` (strings), and ``csv_path`` where the full table was written."""

    markdown: str
    text: str
    frame: object
    csv_path: Path | None = None

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/markdown": self.markdown, "text/plain": self.text}


def format_table(df, *, columns: Mapping[str, str] | None = None,
                 number_formats: Mapping[str, str | Formatter] | None = None,
                 intervals: Mapping[str, tuple[str, str]] | None = None, caption: str,
                 name: str | None = None, csv_name: str | None = None, output_dir: Path | str | None = None,
                 max_rows: int = 25, labels: tuple[str, ...] = ("activation",), raw_cells: tuple[str, ...] = ()
                 ) -> Table:
    """The table :func:`show_table` shows, without showing it (see the module docstring).

    ``columns``: raw name -> header, in display order (other columns are not shown; without it
    every column is shown and must already have a readable header). ``intervals``: column ->
    (low column, high column), shown as "m [low, high]". ``raw_cells``: columns whose cells are
    MyST already (links, badges) and are not escaped.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"show_table needs a pandas DataFrame, got {type(df).__name__}")
    if not caption or not caption.strip():
        raise ValueError("every table needs a caption: say what it shows")
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    data = df.reset_index(drop=not _named_index(df))
    columns = dict(columns) if columns is not None else {c: c for c in data.columns}
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(f"columns not in the table: {missing}; it has {list(data.columns)}")
    raw = [h for h in columns.values() if _RAW_HEADER.match(str(h))]
    if raw:
        raise ValueError(f"headers {raw} read like column names: give them readable headers with "
                         "columns={'raw_name': 'Header (unit)'}")
    formats = {c: _formatter(s) for c, s in (number_formats or {}).items()}
    shown = pd.DataFrame(index=range(len(data)))
    for col, header in columns.items():
        spec = (number_formats or {}).get(col, "float")
        if intervals and col in intervals:
            lo, hi = intervals[col]
            cells = [interval(v, a, b, spec) for v, a, b in zip(data[col], data[lo], data[hi])]
        else:
            cells = [_cell(v, formats.get(col), col in labels) for v in data[col]]
        shown[header] = cells
    csv_path = None
    if csv_name:
        if not csv_name.endswith(".csv") or "/" in csv_name:
            raise ValueError(f"csv_name must be a file name ending in .csv, got {csv_name!r}")
        if output_dir is not None:
            from ..lab.atomic import atomic_write_text

            csv_path = Path(output_dir) / csv_name
            atomic_write_text(csv_path, data.to_csv(index=False))
    head = shown.head(max_rows)
    md = _myst(head, caption, name, escape=[h for c, h in columns.items() if c not in raw_cells])
    note = ""
    if len(shown) > len(head):
        note = f"Showing the first {len(head)} of {len(shown)} rows."
    if csv_name:
        note += (" " if note else "") + f"The full table: {_download(data, csv_name)}."
    if note:
        md += "\n\n" + note
    text = caption + "\n" + head.to_string(index=False)
    if len(shown) > len(head):
        text += f"\n({len(shown) - len(head)} more rows)"
    return Table(markdown=md, text=text, frame=head, csv_path=csv_path)


def show_table(df, **kwargs) -> None:
    """Display ``df`` in the book's style (arguments: :func:`format_table`, which returns the
    :class:`Table` without showing it). Returns None, so a cell that ends with it shows the
    table once (nbval does not honour a trailing ``;``)."""
    from IPython.display import display

    display(format_table(df, **kwargs))


def _named_index(df) -> bool:
    return any(n is not None for n in df.index.names)


def _cell(value, fmt: Formatter | None, is_label: bool) -> str:
    if is_label and isinstance(value, str):
        from .style import label

        try:
            return label(value)
        except KeyError:
            return value
    if fmt is None:
        if isinstance(value, float) and not _missing(value):
            return format_value(value, "float")
        return format_value(value, "text") if not _missing(value) else DASH
    return format_value(value, fmt)


def _myst(frame, caption: str, name: str | None, escape: list[str]) -> str:
    """Headers and the caption are the author's MyST (maths allowed); cells are data, escaped."""
    header = "| " + " | ".join(_pipe(h) for h in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(md_cell(v) if h in escape else str(v).replace("|", "\\|")
                              for h, v in zip(frame.columns, r)) + " |"
            for r in frame.itertuples(index=False)]
    opts = [f":name: {name}"] if name else []
    return "\n".join([f":::{{table}} {_pipe(caption)}", *opts, ":class: apalu-table", "",
                      header, rule, *rows, ":::"])


def _pipe(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _download(data, csv_name: str) -> str:
    """An ``<a download>`` link carrying the CSV itself (a data URI: works offline, from any copy
    of the page). Digits stay literal so the stored output compares under the contract."""
    body = quote(data.to_csv(index=False, float_format="%.6g"), safe=",.-_:;()[]+/=' ")
    body = body.replace(" ", "%20").replace("'", "%27")
    return f'<a download="{csv_name}" href="data:text/csv;charset=utf-8,{body}">{csv_name}</a>'
