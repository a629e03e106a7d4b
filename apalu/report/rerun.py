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
