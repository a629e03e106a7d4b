"""The book's Sphinx extension: a stale notebook execution cache is cleared, and the footer data."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from apalu._version import __version__

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "book_provenance", ROOT / "scripts" / "sphinx_ext" / "book_provenance.py")
bp = importlib.util.module_from_spec(_spec)
sys.modules["book_provenance"] = bp
_spec.loader.exec_module(bp)


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    (tmp_path / "apalu" / "csrc").mkdir(parents=True)
    (tmp_path / "apalu" / "__init__.py").write_text("x = 1\n")
    (tmp_path / "apalu" / "csrc" / "k.cpp").write_text("int f();\n")
    (tmp_path / "requirements.lock").write_text("torch==2.13.0\n")
    return tmp_path


def test_hash_follows_package_sources_and_lock(pkg: Path):
    h0 = bp.package_hash(pkg)
    assert re.fullmatch(r"[0-9a-f]{16}", h0) and bp.package_hash(pkg) == h0
    for rel, text in [("apalu/__init__.py", "x = 2\n"), ("apalu/csrc/k.cpp", "int g();\n"),
                      ("requirements.lock", "torch==2.12.0\n")]:
        before = bp.package_hash(pkg)
        (pkg / rel).write_text(text)
        assert bp.package_hash(pkg) != before, rel
    before = bp.package_hash(pkg)
    (pkg / "apalu" / "__init__.py").rename(pkg / "apalu" / "core.py")  # same bytes, new module
    assert bp.package_hash(pkg) != before
    before = bp.package_hash(pkg)
    (pkg / "apalu" / "notes.txt").write_text("not code\n")  # outside the hashed globs
    assert bp.package_hash(pkg) == before


def test_cache_cleared_only_when_the_hash_changes(tmp_path: Path):
    build = tmp_path / "_build"
    dirs = [build / ".jupyter_cache", build / "jupyter_execute"]
    stamp = build / bp.HASH_FILE

    def fill() -> None:
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
            (d / "f").write_text("x")

    fill()
    assert bp.clear_stale_cache(stamp, dirs, "aaaa")  # no stamp: nothing says which code filled it
    assert not any(d.exists() for d in dirs) and stamp.read_text().strip() == "aaaa"
    fill()
    assert not bp.clear_stale_cache(stamp, dirs, "aaaa")  # unchanged: kept
    assert all((d / "f").exists() for d in dirs)
    assert bp.clear_stale_cache(stamp, dirs, "bbbb")  # changed: removed, new hash stored
    assert not any(d.exists() for d in dirs) and stamp.read_text().strip() == "bbbb"
    assert not bp.clear_stale_cache(stamp, dirs, "cccc")  # nothing left to remove
    assert stamp.read_text().strip() == "cccc"


def test_footer_data():
    assert bp.package_version() == __version__
    assert re.fullmatch(r"[0-9a-f]{4,40}(\+dirty)?|unknown", bp.git_commit())
    html = bp.footer_html("0.2.0", "abc1234+dirty", dt.date(2026, 12, 3))
    assert "apalu 0.2.0" in html and "<code>abc1234+dirty</code>" in html and "2026-12-03 (UTC)" in html


def test_git_commit_outside_git(tmp_path: Path):
    assert bp.git_commit(tmp_path) == "unknown"


def test_build_date_honours_source_date_epoch(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1798675200")  # 2026-12-31T00:00:00Z
    assert bp.build_date() == dt.date(2026, 12, 31)


@pytest.mark.parametrize("configured, year, expected", [
    ("2026", 2026, "2026"), ("2026", 2027, "2026–2027"), ("", 2026, "2026"),
    ("2026 the authors", 2027, "2026 the authors"),
])
def test_copyright_years(configured: str, year: int, expected: str):
    assert bp.copyright_years(configured, year) == expected


def test_unreferenced_images_are_found(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("book_assets", ROOT / "scripts" / "sphinx_ext" / "book_assets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "_images").mkdir()
    for name in ("used.png", "stale.png"):
        (tmp_path / "_images" / name).write_bytes(b"x")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "a.html").write_text('<img src="../_images/used.png" alt="x">')
    assert [p.name for p in mod.unreferenced_images(tmp_path)] == ["stale.png"]


def test_author_year_labels():
    import importlib.util

    from pybtex.database import parse_string

    spec = importlib.util.spec_from_file_location("book_assets", ROOT / "scripts" / "sphinx_ext" / "book_assets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    bib = parse_string("@article{k, author={Subramanian, B. and Jeyaraj, R. and Kim, J.}, title={T}, year={2024}}"
                       "@article{m, author={Leshno, M. and Lin, V.}, title={U}, year={1993}}", "bibtex")
    labels = list(mod.AuthorYearLabels().format_labels(bib.entries.values()))
    assert labels == ["Subramanian et al., 2024", "Leshno and Lin, 1993"]
