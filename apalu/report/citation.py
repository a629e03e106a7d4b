"""BibTeX for the "How to cite" and Verdicts pages, from CITATION.cff, the book's references.bib,
the package version and the one repository setting, ``repository.url`` in ``_config.yml``.

While ``repository.url`` is empty the entries carry no ``url`` (no dead link) and say how a
reader gets the code instead (the archive or clone they have, at the version named).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

__all__ = ["book_bibtex", "bibtex_entry", "claim_bibtex", "repository_url", "book_version", "authors",
           "PLACEHOLDER_AUTHOR"]

PLACEHOLDER_AUTHOR = "The apalu-book authors"  # CITATION.cff's stand-in until real authors are filled in


def _root(root: Path | None) -> Path:
    if root is not None:
        return Path(root)
    from ..lab.paths import repo_root

    return repo_root()


def repository_url(root: Path | None = None) -> str:
    """``repository.url`` from ``_config.yml`` ("" while unset): the one place the repository is named."""
    cfg = yaml.safe_load((_root(root) / "_config.yml").read_text(encoding="utf-8")) or {}
    url = str(((cfg.get("repository") or {}).get("url")) or "").strip()
    if url and not re.match(r"^https?://\S+$", url):
        raise ValueError(f"_config.yml repository.url must be an http(s) URL or empty, got {url!r}")
    return url.rstrip("/")


def book_version(root: Path | None = None) -> str:
    text = (_root(root) / "apalu" / "_version.py").read_text(encoding="utf-8")
    m = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, flags=re.M)
    if not m:
        raise ValueError("apalu/_version.py assigns no __version__")
    return m.group(1)


def authors(cff: dict) -> str:
    """BibTeX ``author``: "Family, Given and ..." for persons, ``{Name}`` for an entity."""
    names = []
    for a in cff["authors"]:
        names.append(f"{{{a['name']}}}" if "name" in a else f"{a['family-names']}, {a['given-names']}")
    return " and ".join(names)


def _entry(kind: str, key: str, fields: dict[str, str]) -> str:
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items() if v)
    return f"@{kind}{{{key},\n{body},\n}}"


def book_bibtex(cff_path: Path, key: str = "apalubook", url: str | None = None) -> str:
    """A ``@software`` BibTeX entry for the book, from its CITATION.cff (``url``: the repository;
    by default ``_config.yml``'s ``repository.url`` next to the .cff, none while it is unset)."""
    cff = yaml.safe_load(Path(cff_path).read_text())
    url = repository_url(Path(cff_path).parent) if url is None else url
    fields = {
        "author": authors(cff),
        "title": f"{{{cff['title']}}}",
        "version": cff.get("version", ""),
        "year": str(cff["date-released"])[:4],
        "url": url,
        "note": "Executable research report; rebuild with `make book`"
        + ("" if url else f"; version {cff.get('version', '')} of its source archive"),
    }
    return _entry("software", key, fields)


def claim_bibtex(claim, *, root: Path | None = None, repository_url: str = "", book_url: str = "") -> str:
    """A ``@misc`` entry citing one verdict: the claim's anchor, its verdict and the book's version.

    ``book_url``: where the built book is published (the entry's ``url`` then points at the
    claim's anchor); else ``repository_url``; else no ``url`` and the anchor in ``note``.
    """
    root = _root(root)
    get = (lambda k: claim.get(k)) if isinstance(claim, dict) else (lambda k: getattr(claim, k, None))
    cid = get("id")
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    version = book_version(root)
    anchor = f"notebooks/ledger.html#claim-{cid}"
    url = f"{book_url.rstrip('/')}/{anchor}" if book_url else repository_url
    fields = {
        "author": authors(cff),
        "title": f"{{Verdict on ``{get('claim')}''}}",
        "howpublished": f"{cff['title']}, version {version}",
        "year": str(cff["date-released"])[:4],
        "url": url,
        "note": f"Verdict: {get('verdict')}. Claim {cid}, at {anchor} of the book, version {version}",
    }
    return _entry("misc", f"apalubook-{cid}", fields)


def bibtex_entry(bib_path: Path, key: str) -> str:
    """One entry of a .bib file, verbatim, by key (raises KeyError naming it if absent)."""
    text = Path(bib_path).read_text()
    match = re.search(r"@\w+\{" + re.escape(key) + r",.*?\n\}", text, flags=re.S)
    if not match:
        raise KeyError(f"no BibTeX entry {key!r} in {bib_path}")
    return match.group(0)
