"""BibTeX for the "How to cite" page, generated from CITATION.cff and the book's references.bib."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

__all__ = ["book_bibtex", "bibtex_entry"]


def book_bibtex(cff_path: Path, key: str = "apalubook") -> str:
    """A ``@software`` BibTeX entry for the book, from its CITATION.cff."""
    cff = yaml.safe_load(Path(cff_path).read_text())
    authors = " and ".join(
        a.get("name") or f"{a['family-names']}, {a['given-names']}" for a in cff["authors"]
    )
    year = str(cff["date-released"])[:4]
    fields = {
        "author": f"{{{authors}}}" if "name" in cff["authors"][0] else authors,
        "title": cff["title"],
        "version": cff.get("version", ""),
        "year": year,
        "note": "Executable research report; rebuild with `make book`",
    }
    body = ",\n".join(f"  {k:<7} = {{{v}}}" for k, v in fields.items() if v)
    return f"@software{{{key},\n{body},\n}}"


def bibtex_entry(bib_path: Path, key: str) -> str:
    """One entry of a .bib file, verbatim, by key (raises KeyError naming it if absent)."""
    text = Path(bib_path).read_text()
    match = re.search(r"@\w+\{" + re.escape(key) + r",.*?\n\}", text, flags=re.S)
    if not match:
        raise KeyError(f"no BibTeX entry {key!r} in {bib_path}")
    return match.group(0)
