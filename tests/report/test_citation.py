"""CITATION.cff validates against the CFF 1.2.0 schema; the cite page's BibTeX is generated."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from apalu._version import __version__
from apalu.report.citation import bibtex_entry, book_bibtex

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "cff-1.2.0.schema.json").read_text())


def test_citation_cff_is_valid_cff_1_2():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    cff["date-released"] = str(cff["date-released"])  # YAML parses dates; the schema wants a string
    jsonschema.validate(cff, SCHEMA)


def test_schema_check_can_fail():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"cff-version": "1.2.0", "title": "x"}, SCHEMA)  # no authors/message


def test_bibtex_for_book_and_paper():
    book = book_bibtex(ROOT / "CITATION.cff")
    assert book.startswith("@software{apalubook,") and "APALU, derived and tested" in book
    paper = bibtex_entry(ROOT / "book" / "references.bib", "apalu2024")
    assert "2402.08244" in paper and paper.endswith("}")
    with pytest.raises(KeyError, match="nosuchkey"):
        bibtex_entry(ROOT / "book" / "references.bib", "nosuchkey")


def test_citation_version_is_the_package_version():
    # One source: apalu/_version.py. A release bumps it and CITATION.cff together.
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(cff["version"]) == __version__


def test_book_bibtex_carries_the_version():
    # A review cites a verdict by claim anchor plus version: the BibTeX must name the version.
    assert f"version = {{{__version__}}}" in book_bibtex(ROOT / "CITATION.cff")


def test_repository_named_once_cff_agrees_with_config():
    from apalu.report.citation import repository_url

    url = repository_url(ROOT)
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff.get("repository-code", "") == url  # both unset, or the same URL
    book = book_bibtex(ROOT / "CITATION.cff")
    assert ("url = {" in book) == bool(url)


def test_repository_url_must_be_http(tmp_path):
    from apalu.report.citation import repository_url

    (tmp_path / "_config.yml").write_text("repository:\n  url: git@host:x/y\n")
    with pytest.raises(ValueError, match="repository.url must be an http"):
        repository_url(tmp_path)
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/o/r/\n")
    assert repository_url(tmp_path) == "https://github.com/o/r"
