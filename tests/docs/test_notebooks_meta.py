"""Structural checks on every notebook in notebooks/ and on the book configuration.

nbval only compares cells that have stored outputs (STACK.md pitfall 6), so a notebook
committed with its outputs stripped would pass it. These checks close that gap and keep the
notebooks runnable by papermill, jupyter-book and nbval alike:

* kernelspec name is ``python3`` (pitfall 8);
* every code cell with source has an execution count and, unless tagged ``no-output-ok``
  (or ``parameters``: papermill's cell of plain assignments), at least one output;
* exactly one cell tagged ``parameters``, and it assigns ``device = "auto"``;
* the notebook is listed in ``_toc.yml``.

The checkers return lists of problems; ``test_checker_*`` feed them broken notebooks to show
that they can fail.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NO_OUTPUT_TAG = "no-output-ok"


# ----------------------------------------------------------------------------- helpers
def toc_files(toc: dict) -> set[str]:
    """All document paths (without suffix) named in a jupyter-book _toc.yml."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.add(str(Path(node[key]).with_suffix("")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def load_toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def cell_tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def assigns_device_auto(source: str) -> bool:
    """True when the source assigns the string "auto" to the name ``device``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "device" for t in targets):
            if isinstance(value, ast.Constant) and value.value == "auto":
                return True
    return False


def check_notebook(nb: dict, rel_path: str, listed: set[str]) -> list[str]:
    """Every problem found in one notebook (an empty list means it is fine)."""
    problems: list[str] = []
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec name is {kernel!r}, expected 'python3'")

    param_cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        tags = cell_tags(cell)
        if "parameters" in tags:
            param_cells.append(cell)
        if cell.get("cell_type") != "code" or not cell_source(cell).strip():
            continue
        if cell.get("execution_count") is None:
            problems.append(f"code cell {i} has no execution_count (notebook not executed?)")
        exempt = NO_OUTPUT_TAG in tags or "parameters" in tags
        if not cell.get("outputs") and not exempt:
            problems.append(
                f"code cell {i} has no stored output; re-execute and save the notebook, "
                f"or tag the cell {NO_OUTPUT_TAG!r}"
            )

    if len(param_cells) != 1:
        problems.append(f"{len(param_cells)} cells tagged 'parameters', expected exactly 1")
    elif not assigns_device_auto(cell_source(param_cells[0])):
        problems.append('the parameters cell does not assign device = "auto"')
    else:
        # bad parameters stop the notebook before any work: the next code cell checks them first
        cells = nb["cells"]
        after = cells.index(param_cells[0]) + 1
        first = next((c for c in cells[after:] if c.get("cell_type") == "code"), None)
        stem = Path(rel_path).stem
        head = "".join(cell_source(first).splitlines()[:3]) if first is not None else ""
        if not re.search(rf'check_(theory_)?notebook\("{re.escape(stem)}", globals\(\)\)', head):
            problems.append(f'the first code cell after the parameters does not start with check_notebook("{stem}", globals())')

    if str(Path(rel_path).with_suffix("")) not in listed:
        problems.append(f"{rel_path} is not listed in _toc.yml")
    return problems


# ----------------------------------------------------------------------------- notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_metadata(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb.get("nbformat") == 4, "nbformat 4 expected"
    rel = path.relative_to(ROOT).as_posix()
    problems = check_notebook(nb, rel, toc_files(load_toc()))
    assert not problems, f"{rel}:\n  " + "\n  ".join(problems)


# ----------------------------------------------------------------------------- the book
def test_toc_entries_exist():
    missing = []
    for entry in sorted(toc_files(load_toc())):
        if not any((ROOT / f"{entry}{ext}").is_file() for ext in (".md", ".ipynb", ".rst")):
            missing.append(entry)
    assert not missing, f"_toc.yml names files that do not exist: {missing}"


def test_config_fails_on_errors_and_stays_offline():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    execute = cfg["execute"]
    assert execute["raise_on_error"] is True
    assert execute["allow_errors"] is False
    assert execute["execute_notebooks"] in {"cache", "force"}
    sphinx = cfg["sphinx"]["config"]
    assert sphinx["nb_kernel_rgx_aliases"] == {".*": "python3"}
    mathjax = sphinx["mathjax_path"]
    assert "://" not in mathjax, "MathJax must be served locally, not from a CDN"
    local = ROOT / "book" / "_extra" / Path(mathjax).relative_to("..")
    assert local.is_file(), f"vendored MathJax missing: {local}"
    assert "sphinx_thebe" not in sphinx["extensions"], "sphinx_thebe writes a CDN URL"
    assert not cfg.get("repository", {}).get("url"), "no repository URL (STACK.md pitfall 11)"


def test_bibliography_keys():
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = [line.split("{", 1)[1].split(",", 1)[0].strip()
            for line in bib.splitlines() if line.startswith("@")]
    assert len(keys) == len(set(keys)), f"duplicate BibTeX keys: {keys}"
    for key in ("apalu2024", "leshno1993", "hendrycks2016gelu", "clevert2016elu",
                "he2015delving", "ramachandran2017swish", "ruff2018deepsvdd",
                "rudolph2021differnet"):
        assert key in keys


# ----------------------------------------------------------------------------- the checker
GOOD = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Title"},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": 1,
         "outputs": [], "source": 'epochs = 2\ndevice = "auto"\n'},
        {"cell_type": "code", "metadata": {}, "execution_count": 2,
         "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}],
         "source": 'check_notebook("good", globals())\nprint(1)'},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ""},
    ],
}
LISTED = {"notebooks/good"}


def test_checker_accepts_good_notebook():
    nb = copy.deepcopy(GOOD)
    assert check_notebook(nb, "notebooks/good.ipynb", LISTED) == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda nb: nb["metadata"]["kernelspec"].update(name="apalu-venv"), "kernelspec"),
        (lambda nb: nb["cells"][2].update(outputs=[]), "no stored output"),
        (lambda nb: nb["cells"][2].update(execution_count=None), "no execution_count"),
        (lambda nb: nb["cells"][1]["metadata"].update(tags=[]), "0 cells tagged"),
        (lambda nb: nb["cells"][2]["metadata"].update(tags=["parameters"]), "2 cells tagged"),
        (lambda nb: nb["cells"][2].update(outputs=[], metadata={"tags": [NO_OUTPUT_TAG]}),
         None),
        (lambda nb: nb["cells"][1].update(source='device = "cuda"\n'), 'device = "auto"'),
        (lambda nb: nb["cells"][1].update(source="# device\n"), 'device = "auto"'),
        (lambda nb: nb["cells"][2].update(source="print(1)"), "check_notebook"),
    ],
    ids=["kernel", "stripped-output", "unexecuted", "no-parameters", "two-parameters",
         "tagged-no-output-ok-is-allowed", "device-not-auto", "device-only-comment", "parameters-unchecked"],
)
def test_checker_rejects(mutate, expected):
    nb = copy.deepcopy(GOOD)
    mutate(nb)
    problems = check_notebook(nb, "notebooks/good.ipynb", LISTED)
    if expected is None:  # a control: the mutation is allowed
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_checker_rejects_unlisted_notebook():
    nb = copy.deepcopy(GOOD)
    problems = check_notebook(nb, "notebooks/other.ipynb", LISTED)
    assert any("not listed in _toc.yml" in p for p in problems)


def test_toc_files_walks_parts_and_sections():
    toc = {"root": "book/intro", "parts": [{"chapters": [
        {"file": "notebooks/a.ipynb", "sections": [{"file": "book/b"}]}]}]}
    assert toc_files(toc) == {"book/intro", "notebooks/a", "book/b"}
