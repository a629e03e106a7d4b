"""Where the book is: its root folder, found from the working directory or ``$APALU_BOOK_ROOT``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "display_path"]


def repo_root(start: Path | None = None) -> Path:
    """The book's root: ``$APALU_BOOK_ROOT`` or the nearest folder up from ``start`` with ``_toc.yml``."""
    env = os.environ.get("APALU_BOOK_ROOT")
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists():
            return folder
    raise FileNotFoundError(f"no _toc.yml above {here}; set APALU_BOOK_ROOT to the book's root")


def display_path(path: Path | str) -> str:
    """``path`` as a reader should see it: relative to the book's root when inside it (the build
    machine's absolute folders say nothing to a reader), else as given."""
    path = Path(path)
    try:
        return Path(path).resolve().relative_to(repo_root().resolve()).as_posix()
    except (ValueError, FileNotFoundError):
        return str(path)
