"""The built book, as a reader's browser shows it, with no network.

Run after `make book` (``make test`` does both):

    pytest -m browser tests/docs/test_browser.py

Pages: the landing page (``root`` of _toc.yml) and every page under notebooks/ that _toc.yml
lists. Each is rendered in headless Chromium (scripts/chromium_render.py) with every host name
unresolvable; a screenshot of each goes to artifacts/screenshots/<page>.png. Checks:

* math was typeset by the vendored MathJax: every Sphinx math element holds an
  ``mjx-container``, no MathJax error, no raw ``\\(``, ``\\[`` or ``$$`` left in the text;
* the page asked for nothing over the network (Chromium's NetLog);
* every ``<img>`` resolves to a file inside _build/html;
* statically, over all of _build/html: no script, stylesheet, image, font, iframe or media
  is referenced by an absolute http(s) URL, in HTML attributes, inline styles or CSS files.

APALU_BOOK_HTML points the tests at another built tree (default: _build/html).
Without Chromium the rendering tests skip, unless APALU_REQUIRE_BROWSER=1 (set by
``make test``), where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

bs4 = pytest.importorskip("bs4")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("APALU_BOOK_HTML", ROOT / "_build" / "html")).resolve()
SHOTS = ROOT / "artifacts" / "screenshots"

_spec = importlib.util.spec_from_file_location("chromium_render", ROOT / "scripts" / "chromium_render.py")
chromium_render = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("chromium_render", chromium_render)  # dataclasses look the module up
_spec.loader.exec_module(chromium_render)

EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.I)
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""", re.I)
# Attributes that make a browser fetch something (<a href> is a link, not a fetch).
FETCHING = {
    "script": ["src"], "link": ["href"], "img": ["src", "srcset"], "source": ["src", "srcset"],
    "iframe": ["src"], "video": ["src", "poster"], "audio": ["src"], "embed": ["src"],
    "object": ["data"], "track": ["src"], "image": ["href", "xlink:href"], "use": ["href", "xlink:href"],
}
RAW_TEX = ("\\(", "\\)", "\\[", "\\]", "$$", "\\begin{")


def toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


def toc_docs(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                out.append(str(Path(node[key]).with_suffix("")))
        for value in node.values():
            if isinstance(value, (dict, list)):
                out += toc_docs(value)
    elif isinstance(node, list):
        for item in node:
            out += toc_docs(item)
    return out


def pages_under_test() -> list[str]:
    docs = toc_docs(toc())
    root = str(Path(toc()["root"]).with_suffix(""))
    return [root] + sorted({d for d in docs if d.startswith("notebooks/")})


PAGES = pages_under_test()


@pytest.fixture(scope="module")
def built() -> Path:
    if not (HTML / "index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` first")
    return HTML


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_render.find_chromium()
    if path is None:
        reason = "chromium not installed (apt-get install -y chromium); /usr/bin/chromium missing"
        if os.environ.get("APALU_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and APALU_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    return path


def visible_text(soup) -> str:
    soup = bs4.BeautifulSoup(str(soup), "html.parser")
    # <head> holds <title>, which browsers show as plain text (math there cannot be typeset).
    for tag in soup(["head", "script", "style", "pre", "code", "textarea", "noscript", "mjx-container", "template"]):
        tag.decompose()
    return soup.get_text(" ")


def local_target(page: Path, ref: str) -> Path | None:
    """The file a relative reference points to, or None for data: URIs and anchors."""
    ref = ref.strip()
    if not ref or ref.startswith(("data:", "#", "about:", "blob:")):
        return None
    parts = urlsplit(ref)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return (page.parent / unquote(parts.path)).resolve()


# ------------------------------------------------------------------ rendered in Chromium
@pytest.fixture(scope="module")
def renders(built, chromium):
    results = {}
    for doc in PAGES:
        page = built / f"{doc}.html"
        if not page.is_file():
            pytest.fail(f"_toc.yml lists {doc} but {page} was not built")
        shot = SHOTS / f"{doc.replace('/', '-')}.png"
        results[doc] = (page, chromium_render.render(page.as_uri(), shot, chromium=chromium), shot)
    return results


@pytest.mark.parametrize("doc", PAGES)
def test_math_is_typeset(renders, doc):
    page, result, _ = renders[doc]
    static = bs4.BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    n_math = len(static.select(".math"))
    dom = bs4.BeautifulSoup(result.dom, "html.parser")
    containers = dom.find_all("mjx-container")
    if doc == PAGES[0]:
        assert n_math > 0, "the landing page is expected to show math (it did before)"
    assert len(containers) >= n_math, (
        f"{doc}: {n_math} math elements in the HTML but {len(containers)} typeset by MathJax")
    unrendered = [el for el in dom.select(".math") if el.find("mjx-container") is None]
    assert not unrendered, f"{doc}: math left as raw TeX: {[el.get_text()[:60] for el in unrendered[:3]]}"
    assert not dom.find_all("mjx-merror"), f"{doc}: MathJax reported TeX errors"
    text = visible_text(dom)
    raw = [tok for tok in RAW_TEX if tok in text]
    assert not raw, f"{doc}: raw TeX delimiters {raw} left in the page text"


@pytest.mark.parametrize("doc", PAGES)
def test_no_network_requests(renders, doc):
    _, result, _ = renders[doc]
    assert result.page_requests == [], f"{doc} tried to fetch: {result.page_requests}"


@pytest.mark.parametrize("doc", PAGES)
def test_images_resolve_inside_build(renders, doc):
    page, result, _ = renders[doc]
    dom = bs4.BeautifulSoup(result.dom, "html.parser")
    bad = []
    for img in dom.find_all("img"):
        src = img.get("src", "")
        if EXTERNAL.match(src):
            bad.append(f"external: {src}")
            continue
        target = local_target(page, src)
        if target is None:
            continue
        if not target.is_file() or HTML.resolve() not in target.resolve().parents:
            bad.append(f"missing or outside _build/html: {src}")
    assert not bad, f"{doc}: " + "; ".join(bad)


@pytest.mark.parametrize("doc", PAGES)
def test_screenshot_saved(renders, doc):
    _, _, shot = renders[doc]
    assert shot.is_file() and shot.stat().st_size > 10_000, f"no usable screenshot at {shot}"


# ------------------------------------------------------------------ static scan of the build
def test_no_external_assets_in_html(built):
    offenders = []
    for page in sorted(built.rglob("*.html")):
        soup = bs4.BeautifulSoup(page.read_text(encoding="utf-8", errors="replace"), "html.parser")
        for tag, attrs in FETCHING.items():
            for el in soup.find_all(tag):
                if tag == "link" and not set(el.get("rel") or []) & {
                        "stylesheet", "preload", "prefetch", "modulepreload", "icon",
                        "shortcut", "apple-touch-icon", "manifest", "preconnect", "dns-prefetch"}:
                    continue
                for attr in attrs:
                    value = el.get(attr)
                    if value and any(EXTERNAL.match(v.strip().split(" ")[0]) for v in value.split(",")):
                        offenders.append(f"{page.relative_to(built)}: <{tag} {attr}={value}>")
        for el in soup.find_all(style=True):
            for m in CSS_URL.finditer(el["style"]):
                if EXTERNAL.match(m.group(1) or m.group(2)):
                    offenders.append(f"{page.relative_to(built)}: inline style {m.group(0)}")
        for el in soup.find_all("style"):
            for m in CSS_URL.finditer(el.get_text()):
                if EXTERNAL.match(m.group(1) or m.group(2)):
                    offenders.append(f"{page.relative_to(built)}: <style> {m.group(0)}")
    assert not offenders, "external assets:\n" + "\n".join(offenders[:30])


def test_no_external_urls_in_css(built):
    offenders = []
    for css in sorted(built.rglob("*.css")):
        for m in CSS_URL.finditer(css.read_text(encoding="utf-8", errors="replace")):
            ref = m.group(1) or m.group(2)
            if EXTERNAL.match(ref):
                offenders.append(f"{css.relative_to(built)}: {m.group(0)}")
    assert not offenders, "external URLs in CSS:\n" + "\n".join(offenders[:30])


def test_all_images_in_build_resolve(built):
    bad = []
    for page in sorted(built.rglob("*.html")):
        soup = bs4.BeautifulSoup(page.read_text(encoding="utf-8", errors="replace"), "html.parser")
        for img in soup.find_all("img"):
            target = local_target(page, img.get("src", ""))
            if target is not None and not target.is_file():
                bad.append(f"{page.relative_to(built)}: {img.get('src')}")
    assert not bad, "images that do not resolve:\n" + "\n".join(bad[:30])


def test_mathjax_is_local(built):
    page = built / f"{PAGES[0]}.html"
    soup = bs4.BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    srcs = [s["src"] for s in soup.find_all("script", src=True) if "mathjax" in s["src"].lower()]
    assert srcs, "no MathJax script on the landing page"
    for src in srcs:
        assert not EXTERNAL.match(src), f"MathJax from a CDN: {src}"
        target = local_target(page, src.split("?")[0])
        assert target is not None and target.is_file(), f"MathJax script missing: {src}"
