"""Sphinx extension for apalu-book: page assets and the one repository setting.

1. MathJax on every page. Sphinx adds MathJax only to pages that contain math themselves, but
   titles with math (e.g. "Sensitivity to the initialization of $a$ and $b$") also appear in
   the sidebar and the previous/next links of other pages, where they stayed raw TeX.
2. The reading stylesheet (book/_static/reading.css): equations, tables, figures and code fit
   the page at any width (tests/docs/test_browser.py checks it at 1400 and 390 px).
3. ``repository.url`` in _config.yml is the one place the repository is named. When set, it
   turns on the theme's source and issue buttons (the Rerun and Cite pages and the BibTeX read
   it too, apalu.report.citation); while unset, the build says so in one line and nothing links
   to a repository.
4. Author–year references: the bibliography's labels read like the citations in the text
   ("Subramanian et al., 2024"), not "[1]" (bibtex style ``apalu_authoryear``).
5. No stale images: after a build, files in _images that no page references (left by earlier
   builds of changed figures) are removed.
"""

from __future__ import annotations

import re
from pathlib import Path

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle

STATIC = Path(__file__).resolve().parents[2] / "book" / "_static"


def _on_config_inited(app, config) -> None:
    options = dict(config.html_theme_options or {})
    url = str(options.get("repository_url") or "").strip()
    if url:
        options.update(use_repository_button=True, use_issues_button=True, use_source_button=True)
    else:
        for key in ("use_repository_button", "use_issues_button", "use_source_button", "use_edit_page_button"):
            options[key] = False
        print("apalu-book: repository.url is unset in _config.yml: no source or issue buttons; the Rerun "
              "and Cite pages name the archive or clone a reader needs instead")
    config.html_theme_options = options
    config.html_static_path = [*config.html_static_path, str(STATIC)]


class AuthorYearLabels(BaseLabelStyle):
    """ "Family, Year", "Family and Other, Year" or "Family et al., Year", as the citations read."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            persons = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [" ".join(p.last_names) for p in persons] or [entry.fields.get("title", entry.key)]
            who = names[0] + (" et al." if len(names) > 2 else f" and {names[1]}" if len(names) == 2 else "")
            yield f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(PlainStyle):
    default_label_style = AuthorYearLabels


register_plugin("pybtex.style.formatting", "apalu_authoryear", AuthorYearStyle)

_IMAGE_REF = re.compile(r"_images/([^\"'?#)\s]+)")


def unreferenced_images(outdir: Path) -> list[Path]:
    """Files in ``outdir/_images`` that no HTML page under ``outdir`` refers to."""
    images = outdir / "_images"
    if not images.is_dir():
        return []
    used = set()
    for page in outdir.rglob("*.html"):
        used.update(_IMAGE_REF.findall(page.read_text(encoding="utf-8", errors="replace")))
    return sorted(p for p in images.iterdir() if p.is_file() and p.name not in used)


def _on_build_finished(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        for path in unreferenced_images(Path(app.outdir)):
            path.unlink()


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("config-inited", _on_config_inited)
    app.add_css_file("reading.css")
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
