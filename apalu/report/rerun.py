"""The "Rerun this book" tables, generated from the notebooks and sweep specs themselves.

Each notebook's parameters come from its ``parameters`` cell (:func:`apalu.sweep.notebook_parameters`,
meaning = the comment that ends the line), so the table can never drift from the notebooks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

__all__ = ["toc_notebooks", "parameters_table", "sweeps_table"]


def toc_notebooks(root: Path) -> list[Path]:
    """The notebooks listed in ``_toc.yml``, in reading order."""
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((root / "_toc.yml").read_text()))
    return [root / f"{f}.ipynb" for f in files if (root / f"{f}.ipynb").exists()]


def parameters_table(root: Path) -> pd.DataFrame:
    """One row per (notebook, parameter): default (as written) and meaning."""
    from ..lab.notebook import notebook_parameters

    rows = []
    for path in toc_notebooks(root):
        for name, info in notebook_parameters(path).items():
            rows.append({"notebook": path.stem, "parameter": name,
                         "default": info["default"], "meaning": info["help"]})
    return pd.DataFrame(rows, columns=["notebook", "parameter", "default", "meaning"])


def sweeps_table(root: Path) -> pd.DataFrame:
    """One row per sweep spec in ``sweeps/``: name, notebook, number of runs, description."""
    from ..sweep.runs import expand
    from ..sweep.spec import load_spec

    rows = []
    for spec_path in sorted((root / "sweeps").glob("*.yaml")):
        spec = load_spec(spec_path, root)
        rows.append({"spec": f"sweeps/{spec_path.name}", "notebook": Path(spec.notebook).stem,
                     "runs": len(expand(spec)), "description": " ".join(spec.description.split())})
    return pd.DataFrame(rows, columns=["spec", "notebook", "runs", "description"])


def tolerance_table(root: Path) -> pd.DataFrame:
    """One row per notebook cell compared within a tolerance (tag ``trained-numbers``), in book order.

    The tolerance is the book's default unless the cell states its own, with the reason.
    """
    import json

    from .reproduce import DEFAULT, cell_tolerance

    rows = []
    for path in toc_notebooks(root):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        for number, cell in enumerate(code, start=1):
            tolerance = cell_tolerance(cell.get("metadata", {}))
            if tolerance is None:
                continue
            why = cell["metadata"].get("repro_tolerance", {}).get("why", "")
            rows.append({"notebook": path.stem, "code cell": number,
                         "tolerance": tolerance.describe() if tolerance != DEFAULT else "default",
                         "why": why or "-"})
    return pd.DataFrame(rows, columns=["notebook", "code cell", "tolerance", "why"])


def source_markdown(root: Path) -> str:
    """How a reader gets the source: ``git clone`` of ``repository.url`` when _config.yml sets it;
    else the archive or clone the book was built from (no dead link while it is unset)."""
    from .citation import book_version, repository_url

    url = repository_url(root)
    if url:
        return (f"Clone the repository and work in its top folder:\n\n```bash\ngit clone {url} apalu-book\n"
                "cd apalu-book\n```")
    return ("This book does not name a public repository yet (`repository.url` in `_config.yml` is unset). "
            f"Work in the top folder of the source archive or clone this book was built from (version "
            f"{book_version(root)}, shown in every page's footer): the folder that holds `Makefile`, "
            "`_config.yml` and `notebooks/`.")


def show_parameters(root: Path) -> None:
    """One table per notebook (its chapter title as caption): parameter, default, meaning."""
    from .tables import show_table
    from .verdicts import chapter_title

    params = parameters_table(root)
    for notebook, rows in params.groupby("notebook", sort=False):
        title = chapter_title(f"notebooks/{notebook}", root)
        show_table(rows, columns={"parameter": "Parameter", "default": "Default", "meaning": "Meaning"},
                   number_formats={"default": "text"}, raw_cells=(),
                   caption=f"{title} (`notebooks/{notebook}.ipynb`)", name=f"tbl-params-{notebook}", max_rows=60)


def show_tolerances(root: Path) -> None:
    """The cells compared within a tolerance that state their own, and why."""
    from .tables import show_table

    tol = tolerance_table(root)
    own = tol[tol.tolerance != "default"]
    show_table(own, columns={"notebook": "Notebook", "code cell": "Code cell", "tolerance": "Tolerance",
                             "why": "Why"}, number_formats={"code cell": "int"},
               caption=f"{len(tol)} cells in {tol.notebook.nunique()} notebooks are compared within a "
                       f"tolerance; these {len(own)} state their own.", name="tbl-own-tolerances")


def show_sweeps(root: Path) -> None:
    from .tables import show_table

    show_table(sweeps_table(root), columns={"spec": "Spec", "notebook": "Notebook", "runs": "Runs",
                                            "description": "What it runs"},
               number_formats={"runs": "int"}, caption="The sweep specs in `sweeps/`.", name="tbl-sweep-specs")
