"""The book's house style for figures: one colour, marker and label per activation, one rc.

Every figure of the book is drawn with these, so APALU is the same colour on every page and a
reader compares figures at a glance. Rendered size: :func:`apply` sets 96 dpi, and the inline
backend saves PNG at twice that ("retina") with the 1x size in the output's metadata, so a
figure shows at its natural size (``new_figure`` widths fit the theme's text column, 672 px at
most) and its fonts (9 pt at least) are 9 pt on screen. PNG, not SVG: nbval compares SVG
outputs byte for byte, and figures of trained models differ across CPUs in their last pixels.

The notebook pattern for a numbered, captioned figure with alt text (one figure per cell)::

    from apalu.report import style
    style.apply()                                   # once, in the set-up cell

    fig, ax = style.new_figure("wide")
    for act, g in df.groupby("activation"):
        ax.plot(g["step"], g["loss"], **style.line(act))
    style.finish(ax, xlabel="training step", ylabel="training loss (log scale)",
                 legend="outside")
    plt.show()

and give that cell this metadata (Jupyter: *Property inspector → Cell metadata*; or
``scripts/format_notebooks.py --figure``)::

    {"mystnb": {"figure": {"caption": "Training loss per step: APALU against ReLU ...",
                           "name": "fig-exp-convergence-loss"},
                "image": {"alt": "Line chart: training loss falls for every activation; ..."}}}

The ``name`` is the label that ``{numref}`` cites ("Figure 3"); the caption says what the
figure shows and how to read it; the alt text says, for a reader who cannot see it, what it
shows (never a file name or a hash). Seaborn figures take ``hue_order=style.order(names)``
and ``palette=style.palette(names)`` (and ``markers=style.markers(names)``); figure-level
plots take ``**style.facet(ncols)`` for their size, and a FacetGrid is finished with
``style.finish(g, ...)``. Tables: :mod:`apalu.report.tables`.

Set-up and boilerplate: a cell that only sets up (imports, ``check_notebook``, ``apply``,
output folders) prints nothing (no "parameters ok", no version lines) and carries the tags
``remove-cell`` (not on the page at all) and ``no-output-ok`` (tests/docs/test_notebooks_meta.py);
a cell whose code a reader need not see but whose output they need carries ``hide-input``
(code folded behind a toggle) or ``remove-input``. Code lines stay within 88 characters
(``scripts/format_notebooks.py`` re-wraps them; tests/docs/test_notebook_style.py checks).
Verdicts are shown once, by the page's verdict table or a sentence, never as Python reprs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ACTIVATIONS", "SIZES", "apply", "color", "marker", "label", "line", "order", "palette",
           "markers", "new_figure", "facet", "finish", "check_label"]


@dataclass(frozen=True)
class Look:
    color: str
    marker: str
    label: str


# Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), then greys.
# APALU is vermillion everywhere; the baselines it is compared with most (ReLU, GELU) get the
# most distinct hues. Order = the order in legends.
ACTIVATIONS: dict[str, Look] = {
    "apalu": Look("#D55E00", "o", "APALU"),
    "relu": Look("#0072B2", "s", "ReLU"),
    "gelu": Look("#CC79A7", "D", "GELU"),
    "gelu_tanh": Look("#882255", "d", "GELU (tanh)"),
    "silu": Look("#009E73", "^", "SiLU"),
    "elu": Look("#E69F00", "v", "ELU"),
    "leaky_relu": Look("#56B4E9", "<", "Leaky ReLU"),
    "prelu": Look("#332288", ">", "PReLU"),
    "tanh": Look("#777777", "X", "tanh"),
    "sigmoid": Look("#BBBBBB", "P", "sigmoid"),
    # the lab's controls (apalu.lab.activations): APALU's family in a lighter/darker shade
    "apalu_frozen": Look("#F4A582", "h", "APALU (a, b frozen)"),
    "relu_scaled": Look("#003F5C", "*", "ReLU × APALU slope"),
}
_ALIASES = {"swish": "silu", "leakyrelu": "leaky_relu", "gelu-tanh": "gelu_tanh"}

# Figure sizes in inches at 96 dpi: 7 in = 672 px, the widest a figure shows unscaled in the
# theme's text column at 1400 px (tests/docs/test_reading.py checks the rendered scale).
SIZES: dict[str, tuple[float, float]] = {"wide": (7.0, 3.2), "single": (4.8, 3.2), "grid": (7.0, 2.6)}
FONT_PT = 10  # text and labels; ticks and legends 9 pt


def _key(activation: str) -> str:
    key = str(activation).strip().lower().replace(" ", "_")
    key = _ALIASES.get(key, key.replace("-", "_"))
    if key not in ACTIVATIONS:
        raise KeyError(f"no house style for activation {activation!r}; known: {', '.join(ACTIVATIONS)} "
                       "(add it to apalu.report.style.ACTIVATIONS)")
    return key


def color(activation: str) -> str:
    """The activation's colour (hex), the same in every figure."""
    return ACTIVATIONS[_key(activation)].color


def marker(activation: str) -> str:
    """The activation's matplotlib marker."""
    return ACTIVATIONS[_key(activation)].marker


def label(activation: str) -> str:
    """The activation's name as a reader writes it ("Leaky ReLU", not "leaky_relu")."""
    return ACTIVATIONS[_key(activation)].label


def line(activation: str, **kw) -> dict:
    """Keyword arguments for ``ax.plot``/``ax.errorbar``: colour, marker and label of ``activation``."""
    return {"color": color(activation), "marker": marker(activation), "label": label(activation),
            "markersize": 4, **kw}


def order(names: Iterable[str]) -> list[str]:
    """``names`` (activation names as in the data) in the book's legend order, each once."""
    unique = list(dict.fromkeys(names))
    return sorted(unique, key=lambda n: list(ACTIVATIONS).index(_key(n)))


def palette(names: Iterable[str]) -> dict[str, str]:
    """name -> colour, for seaborn's ``palette=`` (keys as they appear in the data)."""
    return {n: color(n) for n in order(names)}


def markers(names: Iterable[str]) -> dict[str, str]:
    """name -> marker, for seaborn's ``markers=``."""
    return {n: marker(n) for n in order(names)}


def apply() -> None:
    """The book's matplotlib/seaborn settings; call once in a notebook's set-up cell.

    White grid, 10 pt text and 9 pt ticks and legends at 96 dpi, constrained layout (nothing
    clipped or overlapping), and inline output as PNG at 2x with its 1x size in the metadata.
    """
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    mpl.rcParams.update({
        "figure.dpi": 96, "savefig.dpi": 192,
        "font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT,
        "xtick.labelsize": FONT_PT - 1, "ytick.labelsize": FONT_PT - 1,
        "legend.fontsize": FONT_PT - 1, "legend.title_fontsize": FONT_PT - 1,
        "figure.titlesize": FONT_PT + 1, "legend.frameon": False, "lines.linewidth": 1.6,
        "axes.titlelocation": "left", "savefig.bbox": "tight", "savefig.pad_inches": 0.05,
        "svg.hashsalt": "apalu-book", "image.cmap": "viridis",
    })
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # plain Python, no inline backend: rc alone
        return
    set_matplotlib_formats("retina", bbox_inches="tight")


def new_figure(kind: str = "wide", nrows: int = 1, ncols: int = 1, *, height: float | None = None,
               **subplot_kw):
    """``(fig, ax)`` (or ``(fig, axes)`` for several panels) sized for the book's text column.

    ``kind``: "wide" (one panel, or a row of panels, over the full column), "single" (one small
    panel) or "grid" (``nrows`` × ``ncols`` panels, ``height`` inches per row, 2.6 by default).
    Extra keywords go to ``plt.subplots`` (``sharex``, ``sharey``, ...).
    """
    import matplotlib.pyplot as plt

    if kind not in SIZES:
        raise ValueError(f"figure kind {kind!r}: use one of {', '.join(SIZES)}")
    if nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be at least 1, got {nrows} x {ncols}")
    width, h = SIZES[kind]
    total = (height or h) * (nrows if kind == "grid" else 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, total), layout="constrained", **subplot_kw)
    return fig, axes


def facet(ncols: int = 1, *, legend: bool = True) -> dict:
    """``height`` and ``aspect`` for a seaborn figure-level plot (``relplot``, ``catplot``, ...)
    with ``ncols`` panels per row, so that it spans the text column (legend included)."""
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    width = SIZES["wide"][0] - (1.2 if legend else 0.2)
    height = SIZES["grid"][1]
    return {"height": height, "aspect": width / ncols / height}


_COLUMN_NAME = re.compile(r"^[A-Za-z0-9]+(_[A-Za-z0-9]+)+$")
_BARE = {"value", "values", "variable", "index", "count", "x", "y", "n", "mean", "score"}


def check_label(text: str) -> str:
    """``text`` if it reads as words; a ``ValueError`` for a raw column name ("log10_grad",
    "n_train", "value"): axis labels say what is measured, in words, with the unit."""
    stripped = text.strip()
    if _COLUMN_NAME.match(stripped) or stripped.lower() in _BARE:
        raise ValueError(f"axis label {text!r} looks like a column name: say what it measures, in words, "
                         "with its unit (e.g. 'training examples', 'log10 gradient norm')")
    return text


def _axes_of(target) -> list:
    import numpy as np

    if hasattr(target, "axes") and hasattr(target, "figure") and hasattr(target, "add_legend"):
        return list(np.ravel(target.axes))  # seaborn FacetGrid
    return list(np.ravel(np.asarray(target, dtype=object)))


def finish(target, *, xlabel: str | None = None, ylabel: str | None = None, legend: str = "outside",
           title: str | None = None, legend_title: str | None = None):
    """Label the axes in words and place the legend off the data; return ``target``.

    ``target``: an Axes, an array of Axes, or a seaborn FacetGrid. Labels are set on every
    panel's outer edge (bottom row: x, left column: y) and checked by :func:`check_label`.
    ``legend``: "outside" (one legend for the whole figure, right of the panels, with each
    entry once), "below" (under the panels, in columns; for wide figures) or "none".
    Activation names in legend entries become their readable labels.
    """
    if legend not in ("outside", "below", "none"):
        raise ValueError(f"legend={legend!r}: use 'outside', 'below' or 'none'")
    axes = _axes_of(target)
    fig = axes[0].figure
    for ax in axes:
        if xlabel is not None and (ax.get_subplotspec() is None or ax.get_subplotspec().is_last_row()):
            ax.set_xlabel(check_label(xlabel))
        elif xlabel is not None:
            ax.set_xlabel("")
        if ylabel is not None and (ax.get_subplotspec() is None or ax.get_subplotspec().is_first_col()):
            ax.set_ylabel(check_label(ylabel))
        elif ylabel is not None:
            ax.set_ylabel("")
    if title is not None:
        (fig.suptitle if len(axes) > 1 else axes[0].set_title)(title)
    grid_legend = getattr(target, "_legend", None)
    handles, labels = _collect_legend(axes, grid_legend)
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if grid_legend is not None:
        grid_legend.remove()
        target._legend = None
        fig.tight_layout()  # reclaim the space seaborn kept for its legend
    if legend == "none" or not handles:
        return target
    constrained = fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
    if legend == "outside":
        where = {"loc": "outside right upper"} if constrained else {"loc": "upper left",
                                                                     "bbox_to_anchor": (1.0, 0.97)}
        fig.legend(handles, labels, title=legend_title, **where)
    else:
        where = {"loc": "outside lower center"} if constrained else {"loc": "upper center",
                                                                      "bbox_to_anchor": (0.5, 0.0)}
        fig.legend(handles, labels, ncols=min(len(labels), 5), title=legend_title, **where)
    return target


def _readable(text: str) -> str:
    try:
        return label(text)
    except KeyError:
        return text


def _collect_legend(axes, grid_legend) -> tuple[list, list[str]]:
    seen: dict[str, object] = {}
    sources = [grid_legend] if grid_legend is not None else []
    for src in sources:
        for h, t in zip(src.legend_handles, src.texts):
            seen.setdefault(_readable(t.get_text()), h)
    for ax in axes:
        for h, t in zip(*ax.get_legend_handles_labels()):
            if not t.startswith("_"):
                seen.setdefault(_readable(t), h)
    return list(seen.values()), list(seen)
