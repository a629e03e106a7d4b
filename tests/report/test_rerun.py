"""The Rerun page's tables come from the notebooks and specs; every parameter has a meaning."""

from pathlib import Path

import pytest

from apalu.report.rerun import parameters_table, sweeps_table, toc_notebooks

ROOT = Path(__file__).resolve().parents[2]


def test_toc_notebooks_are_in_reading_order():
    notebooks = toc_notebooks(ROOT)
    assert notebooks and all(p.suffix == ".ipynb" and p.exists() for p in notebooks)


def test_every_parameter_has_a_meaning():
    table = parameters_table(ROOT)
    assert len(table) > 0
    missing = table[table["meaning"].str.strip() == ""]
    assert missing.empty, "parameters without a '# meaning' comment:\n" + missing.to_string()


def test_parameter_meanings_read_from_the_comment(tmp_path):
    import nbformat

    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'epochs = 3  # passes over the data\nname = "x"  # uses a # sign\nbare = 1\n',
        metadata={"tags": ["parameters"]})])
    nbformat.write(nb, tmp_path / "notebooks" / "n.ipynb")
    (tmp_path / "_toc.yml").write_text("root: intro\nchapters:\n  - file: notebooks/n\n")
    table = parameters_table(tmp_path).set_index("parameter")
    assert table.loc["epochs", "meaning"] == "passes over the data"
    assert table.loc["name", "meaning"] == "uses a # sign"
    assert table.loc["bare", "meaning"] == "" and table.loc["epochs", "default"] == "3"


def test_sweeps_table_lists_every_spec():
    table = sweeps_table(ROOT)
    assert len(table) == len(list((ROOT / "sweeps").glob("*.yaml")))
    assert (table["runs"] > 0).all()


def test_tolerance_table_lists_every_tolerant_cell_with_its_reason():
    from apalu.report.rerun import tolerance_table

    table = tolerance_table(ROOT)
    assert len(table) >= 10 and set(table.notebook) >= {"exp_convergence", "exp_paper", "mnist_quickstart"}
    own = table[table.tolerance != "default"]
    assert (own["why"].str.len() > 20).all()  # a cell with its own tolerance says why
