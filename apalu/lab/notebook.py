"""A notebook's ``parameters`` cell, read without running it (names, defaults and meanings), and
the set-up every experiment notebook runs once its parameters are checked."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Callable

__all__ = ["notebook_parameters", "start_experiment"]


def start_experiment(name: str, output_dir: str = "") -> tuple[Path, Callable[[], float]]:
    """Set up an experiment notebook, after its parameters are checked: torch on one thread (the
    stored numbers were computed so), the book's plot theme; return the output folder
    (``output_dir``, or ``_build/results/<name>`` when empty) and a wall-clock timer started now."""
    import seaborn as sns
    import torch

    from .experiments import resolve_output_dir, timer

    torch.set_num_threads(1)
    sns.set_theme(style="whitegrid", context="notebook")
    return resolve_output_dir(output_dir, name), timer()


def _trailing_comments(src: str) -> dict[int, str]:
    """Line number -> the text of the ``# comment`` that ends that line (the parameter's meaning)."""
    import io
    import tokenize

    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def notebook_parameters(path: Path) -> dict[str, dict]:
    """The names the notebook's ``parameters`` cell assigns (name -> papermill-style info:
    ``default`` source text, ``inferred_type_name`` from an annotation, ``help`` from the
    comment that ends the assignment's line).

    The cell is read with Python's own parser; papermill's ``inspect_notebook`` (a line-based
    reader that gives up on lines such as ``x = ""  # ('' = default)``) is the fallback for a
    cell that is not plain Python (e.g. holds IPython magics)."""
    nb = json.loads(Path(path).read_text())
    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    src = "".join(cells[0]["source"]) if cells else ""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        import papermill

        return papermill.inspect_notebook(str(path))
    comments = _trailing_comments(src)
    out: dict[str, dict] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = [t for t in node.targets if isinstance(t, ast.Name)]
            ann = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            targets, ann = [node.target], ast.get_source_segment(src, node.annotation)
        else:
            continue
        for t in targets:
            out[t.id] = {"name": t.id, "inferred_type_name": ann or "None",
                         "default": ast.get_source_segment(src, node.value) or "",
                         "help": comments.get(node.end_lineno, "")}
    return out


def _has_parameters_cell(path: Path) -> bool:
    nb = json.loads(path.read_text())
    return any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.get("cells", []))
