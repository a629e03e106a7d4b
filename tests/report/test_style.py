"""The house style: one colour, marker and label per activation; figures sized for the column;
axis labels in words; legends off the data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import seaborn as sns  # noqa: E402

from apalu.registry import ACTIVATIONS as REGISTERED  # noqa: E402
from apalu.report import style  # noqa: E402


def test_every_registered_activation_has_one_distinct_look():
    names = list(REGISTERED)
    assert set(names) <= set(style.ACTIVATIONS)
    colors = [style.color(n) for n in style.ACTIVATIONS]
    marks = [style.marker(n) for n in style.ACTIVATIONS]
    assert len(set(colors)) == len(colors) and len(set(marks)) == len(marks)


def test_names_normalised_and_unknown_refused():
    assert style.color("APALU") == style.color("apalu")
    assert style.label("leaky-relu") == "Leaky ReLU" and style.label("swish") == "SiLU"
    with pytest.raises(KeyError, match="no house style for activation 'softsign'; known: apalu"):
        style.color("softsign")


def test_order_palette_and_markers_follow_the_book_order():
    names = ["relu", "apalu", "gelu", "relu"]
    assert style.order(names) == ["apalu", "relu", "gelu"]
    assert list(style.palette(names)) == ["apalu", "relu", "gelu"]
    assert style.markers(names)["relu"] == style.marker("relu")


@pytest.mark.parametrize("bad", ["value", "log10_grad", "n_train", "treatment_mean"])
def test_column_names_refused_as_axis_labels(bad):
    with pytest.raises(ValueError, match="looks like a column name"):
        style.check_label(bad)


def test_figure_sizes_fit_the_text_column_and_fonts_are_at_least_9pt():
    style.apply()
    try:
        for kind in style.SIZES:
            fig, _ = style.new_figure(kind)
            assert fig.get_figwidth() * 96 <= 672
            plt.close(fig)
        fig, ax = style.new_figure("wide")
        for act in ("apalu", "relu"):
            ax.plot([0, 1], [0, 1], **style.line(act))
        style.finish(ax, xlabel="training step", ylabel="training loss")
        fig.canvas.draw()
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
        assert min(t.get_fontsize() for t in texts) >= 9
        (legend,) = fig.legends
        assert [t.get_text() for t in legend.texts] == ["APALU", "ReLU"]
        # outside the data: the legend's box does not overlap the axes' box
        r = fig.canvas.get_renderer()
        assert not legend.get_window_extent(r).overlaps(ax.get_window_extent(r))
        plt.close(fig)
    finally:
        matplotlib.rcdefaults()


def test_finish_a_facetgrid_one_legend_with_readable_labels():
    style.apply()
    try:
        df = pd.DataFrame({"n": np.tile([1, 2, 3], 4), "acc": np.arange(12.0),
                           "activation": np.repeat(["relu", "apalu"], 6), "data": np.tile(np.repeat(["a", "b"], 3), 2)})
        g = sns.relplot(data=df, x="n", y="acc", hue="activation", col="data", kind="line",
                        palette=style.palette(df.activation), hue_order=style.order(df.activation),
                        **style.facet(2))
        style.finish(g, xlabel="training examples", ylabel="test accuracy (%)")
        assert g._legend is None and len(g.figure.legends) == 1
        assert [t.get_text() for t in g.figure.legends[0].texts] == ["APALU", "ReLU"]
        assert g.axes.flat[0].get_ylabel() == "test accuracy (%)" and g.axes.flat[1].get_ylabel() == ""
        plt.close(g.figure)
    finally:
        matplotlib.rcdefaults()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="figure kind 'huge'"):
        style.new_figure("huge")
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="legend='inside'"):
        style.finish(ax, legend="inside")
    plt.close(fig)
