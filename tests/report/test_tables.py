"""The table formatter: human headers, no index, one format per quantity, long tables cut
with the full CSV kept, captions required."""

from __future__ import annotations

from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest

from apalu.report.tables import format_table, format_value, interval


def frame(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"activation": (["apalu", "leaky_relu", "relu"] * n)[:n],
                         "acc_mean": np.linspace(0.9, 0.95, n), "effect": np.linspace(-1.0, 1.0, n),
                         "ci_low": np.linspace(-2.0, 0.0, n), "ci_high": np.linspace(0.0, 2.0, n),
                         "p_adjusted": np.linspace(0.0, 0.2, n)})


COLUMNS = {"activation": "Activation", "acc_mean": "Test accuracy (%)", "effect": "APALU − ReLU (pp)",
           "p_adjusted": "p (Holm)"}
FORMATS = {"acc_mean": "percent", "effect": "pp", "p_adjusted": "p"}


def test_headers_formats_labels_and_no_index():
    t = format_table(frame().set_index("activation"), columns=COLUMNS, number_formats=FORMATS,
                     intervals={"effect": ("ci_low", "ci_high")}, caption="Accuracy per activation.",
                     name="tbl-acc")
    lines = t.markdown.splitlines()
    assert lines[0] == ":::{table} Accuracy per activation." and ":name: tbl-acc" in lines
    assert "| Activation | Test accuracy (%) | APALU − ReLU (pp) | p (Holm) |" in lines
    assert "| APALU | 90.00 | −1.00 [−2.00, 0.00] | \\< 0.001 |" in lines
    assert "| Leaky ReLU | 92.50 | +0.00 [−1.00, 1.00] | 0.100 |" in lines
    assert "0 |" not in lines[4][:3]  # no pandas index column
    assert t._repr_mimebundle_()["text/plain"].startswith("Accuracy per activation.")


def test_raw_headers_and_missing_caption_refused():
    with pytest.raises(ValueError, match="read like column names"):
        format_table(frame(), caption="x")
    with pytest.raises(ValueError, match="needs a caption"):
        format_table(frame(), columns=COLUMNS, caption=" ")
    with pytest.raises(KeyError, match="columns not in the table: \\['nope'\\]"):
        format_table(frame(), columns={"nope": "Nope"}, caption="x")
    with pytest.raises(ValueError, match="number format 'pct'"):
        format_table(frame(), columns=COLUMNS, number_formats={"acc_mean": "pct"}, caption="x")


def test_long_table_cut_with_the_full_csv_written_and_downloadable(tmp_path):
    df = frame(40)
    t = format_table(df, columns=COLUMNS, number_formats=FORMATS, caption="Long.", max_rows=10,
                     csv_name="acc.csv", output_dir=tmp_path)
    assert len(t.frame) == 10 and "Showing the first 10 of 40 rows." in t.markdown
    assert pd.read_csv(tmp_path / "acc.csv").shape == (40, 6)
    href = t.markdown.split('href="')[1].split('"')[0]
    assert href.startswith("data:text/csv;charset=utf-8,")
    rows = unquote(href.split(",", 1)[1]).splitlines()
    assert rows[0] == "activation,acc_mean,effect,ci_low,ci_high,p_adjusted" and len(rows) == 41


def test_cells_escaped_but_raw_cells_kept():
    df = pd.DataFrame({"claim": ["a|b *c* $x$"], "link": ["[page](#x)"]})
    t = format_table(df, columns={"claim": "Claim", "link": "Where"}, caption="c", raw_cells=("link",))
    assert "a\\|b \\*c\\* \\$x\\$" in t.markdown and "[page](#x)" in t.markdown


def test_values():
    assert format_value(float("nan")) == "–" and format_value(True) == "yes"
    assert format_value(12345, "int") == "12,345" and format_value(-0.5, "pp") == "−0.50"
    assert interval(1.234, -0.3, 2.7, "pp") == "+1.23 [−0.30, 2.70]"
    assert interval(0.5, float("nan"), 1, "float") == "0.5"
