"""The built book, as a reader's browser shows it, with no network.

Run after `make book` (``make test`` does both):

    pytest -m browser tests/docs/test_browser.py

Pages: the landing page (``root`` of _toc.yml) and every other page that _toc.yml lists.
Each is rendered in headless Chromium (scripts/chromium_render.py) with every host name
unresolvable; a screenshot of each goes to artifacts/screenshots/<page>.png. Checks:

* math was typeset by the vendored MathJax: every Sphinx math element holds an
  ``mjx-container``, no MathJax error, no raw ``\\(``, ``\\[`` or ``$$`` left in the text;
* the page asked for nothing over the network (Chromium's NetLog);
* every ``<img>`` resolves to a file inside _build/html;
* statically, over all of _build/html: no script, stylesheet, image, font, iframe or media
  is referenced by an absolute http(s) URL, in HTML attributes, inline styles or CSS files.

The reading test (below ``# reading``) lays every page out at 1400 px and at 390 px (a phone) through
the DevTools protocol (tests/docs/cdp.py) and checks what a reader sees; screenshots go to
artifacts/screenshots/<page>-<width>.png:

* no element runs past the viewport's edge outside a scroll container, and nothing is cut;
* an equation's number never overlaps the equation;
* every figure has a caption and a number, every image alt text that says what it shows (not a
  hash or a file name); figures show at their natural size at 1400 px (so the house style's
  9 pt fonts are 9 pt) and no smaller than 480 px (or their natural size) on a phone;
* at most one search control is visible;
* no absolute path of the build machine in the text;
* statically: every command block's text is in the page's source as written (no ``<folder>``
  swallowed as HTML, no curly quotes), the verdict table has one row per claim and every link
  in it resolves to an existing anchor.

APALU_BOOK_HTML points the tests at another built tree (default: _build/html).
Without Chromium the rendering tests skip, unless APALU_REQUIRE_BROWSER=1 (set by
``make test``), where they fail.
"""

from __future__ import annotations

import html
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
    return [root] + [d for d in dict.fromkeys(docs) if d != root]


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



# ------------------------------------------------------------------ reading (laid out, 2 widths)
_cdp_spec = importlib.util.spec_from_file_location("apalu_cdp", Path(__file__).with_name("cdp.py"))
cdp = importlib.util.module_from_spec(_cdp_spec)
sys.modules.setdefault("apalu_cdp", cdp)
_cdp_spec.loader.exec_module(cdp)

WIDTHS = (1400, 390)
PHONE_MIN_FIGURE_PX = 480
HASHLIKE = re.compile(r"^(?:\.\./)*(?:_images/)?[0-9a-f]{16,}(?:\.\w+)?$|\.(?:png|svg|jpe?g)$", re.I)
MACHINE_PATHS = re.compile(r"(?<![\w.])/(?:work|home|root|tmp|private|Users|var/folders)/[\w.-]+")

READING_JS = r"""
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await Promise.all([...document.images].map(i => i.complete ? 0 :
    new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  const W = document.documentElement.clientWidth;
  const describe = el => {
    const id = el.id ? '#' + el.id : '';
    const cls = (typeof el.className === 'string' && el.className.trim())
      ? '.' + el.className.trim().split(/\s+/).slice(0, 2).join('.') : '';
    return el.tagName.toLowerCase() + id + cls + ' "' + (el.textContent || el.alt || '').trim().slice(0, 50) + '"';
  };
  const shown = el => {
    for (let e = el; e && e !== document.documentElement; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || s.opacity === '0') return false;
    }
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  // The nearest ancestor that scrolls or clips: what overflows it stays inside it (and that
  // ancestor is judged on its own).
  const scroller = el => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement)
      if (getComputedStyle(p).overflowX !== 'visible') return p;
    return null;
  };
  const inside = r => r.left >= -1 && r.right <= W + 1;
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const overflow = [], flagged = new Set();
  for (const el of article.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || inside(r)) continue;
    if (el.closest('mjx-assistive-mml') || [...flagged].some(f => f.contains(el)) || !shown(el)) continue;
    if (scroller(el)) continue;
    flagged.add(el);
    overflow.push(describe(el) + ' spans ' + Math.round(r.left) + '..' + Math.round(r.right) + ' px');
  }
  if (document.documentElement.scrollWidth > W + 1)
    overflow.push('the page itself is ' + document.documentElement.scrollWidth + ' px wide');
  const eqOverlap = [];
  for (const m of article.querySelectorAll('div.math')) {
    const no = m.querySelector('.eqno'), eq = m.querySelector('mjx-container mjx-math');
    if (!no || !eq || !shown(no)) continue;
    const a = no.getBoundingClientRect(), b = eq.getBoundingClientRect();
    const box = scroller(eq);
    const vis = box ? box.getBoundingClientRect() : {left: -1e9, right: 1e9};
    const right = Math.min(b.right, vis.right);
    if (a.left < right - 1 && a.right > b.left + 1 && a.top < b.bottom - 1 && a.bottom > b.top + 1)
      eqOverlap.push(describe(m));
  }
  const images = [...article.querySelectorAll('img')].filter(shown).map(i => {
    const fig = i.closest('figure');
    const cap = fig && fig.querySelector('figcaption');
    // the 1x size myst-nb writes for a 2x ("retina") PNG: style width, else the width attribute
    const attrW = parseFloat(i.style.width) || parseFloat(i.getAttribute('width'));
    return {src: i.getAttribute('src') || '', alt: i.getAttribute('alt') || '',
            caption: cap ? cap.textContent.trim() : '',
            number: !!(cap && cap.querySelector('.caption-number')),
            natural: attrW > 0 ? attrW : i.naturalWidth, shown: i.getBoundingClientRect().width};
  });
  const searches = [...document.querySelectorAll(
    '.search-button-field, .search-button, form.bd-search input, input[type=search]')]
    .filter(shown).filter(e => { const r = e.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; });
  return {overflow, eqOverlap, images, searches: searches.map(describe), text: article.innerText};
})()
"""


@pytest.fixture(scope="module")
def layouts(built, chromium):
    out = {}
    with cdp.Browser(chromium) as browser:
        for doc in PAGES:
            page_file = built / f"{doc}.html"
            if not page_file.is_file():
                pytest.fail(f"_toc.yml lists {doc} but {page_file} was not built")
            for width in WIDTHS:
                page = browser.open(page_file.as_uri(), width=width)
                out[doc, width] = page.evaluate(READING_JS)
                page.screenshot(SHOTS / f"{doc.replace('/', '-')}-{width}.png")
                page.close()
    return out


READING = [(d, w) for d in PAGES for w in WIDTHS]


def _id(case) -> str:
    return f"{case[0]}@{case[1]}"


@pytest.mark.parametrize("case", READING, ids=_id)
def test_nothing_runs_off_the_page(layouts, case):
    report = layouts[case]
    assert not report["overflow"], f"{_id(case)}: past the viewport outside a scroll container:\n" + \
        "\n".join(report["overflow"][:15])


@pytest.mark.parametrize("case", READING, ids=_id)
def test_equation_numbers_hide_nothing(layouts, case):
    assert not layouts[case]["eqOverlap"], f"{_id(case)}: equation numbers over equations: {layouts[case]['eqOverlap']}"


@pytest.mark.parametrize("case", READING, ids=_id)
def test_figures_numbered_captioned_described_and_readable(layouts, case):
    doc, width = case
    problems = []
    for img in layouts[case]["images"]:
        name = img["src"].rsplit("/", 1)[-1][:20]
        alt = img["alt"].strip()
        if not alt or HASHLIKE.search(alt) or len(alt) < 15:
            problems.append(f"{name}: alt text {alt!r} does not say what the image shows")
        if not img["caption"] or not img["number"]:
            problems.append(f"{name}: no numbered caption")
        natural, shown = img["natural"], img["shown"]
        if width >= 1000 and natural and shown < 0.9 * natural:
            problems.append(f"{name}: shown at {shown:.0f} of {natural:.0f} px: fonts below the house 9 pt")
        if width < 1000 and natural and shown < min(natural, PHONE_MIN_FIGURE_PX) - 1:
            problems.append(f"{name}: a thumbnail on a phone ({shown:.0f} px wide)")
    assert not problems, f"{_id(case)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("case", READING, ids=_id)
def test_one_search_box(layouts, case):
    found = layouts[case]["searches"]
    assert len(found) <= 1, f"{_id(case)}: {len(found)} search controls visible: {found}"


@pytest.mark.parametrize("case", READING, ids=_id)
def test_no_build_machine_paths(layouts, case):
    hits = sorted(set(MACHINE_PATHS.findall(layouts[case]["text"])))
    assert not hits, f"{_id(case)}: absolute paths of the build machine in the text: {hits}"


@pytest.mark.parametrize("case", READING, ids=_id)
def test_reading_screenshots_saved(layouts, case):
    shot = SHOTS / f"{case[0].replace('/', '-')}-{case[1]}.png"
    assert shot.is_file() and shot.stat().st_size > 5_000, f"no usable screenshot at {shot}"


def source_text(doc: str) -> str:
    """What the page was built from: the .md, or the notebook's sources and stored outputs."""
    import json

    md, nb = ROOT / f"{doc}.md", ROOT / f"{doc}.ipynb"
    if md.is_file():
        return md.read_text(encoding="utf-8")
    parts = []
    for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
        parts.append("".join(cell.get("source", "")))
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for mime in ("text/markdown", "text/plain", "text/html"):
                parts.append("".join((out.get("data") or {}).get(mime, "")))
    return "\n".join(parts)


COMMAND_BLOCKS = "div.highlight-bash pre, div.highlight-shell pre, div.highlight-console pre, div.highlight-sh pre"
CURLY = "‘’“”"


@pytest.mark.parametrize("doc", PAGES)
def test_commands_copy_as_written(built, doc):
    soup = bs4.BeautifulSoup((built / f"{doc}.html").read_text(encoding="utf-8"), "html.parser")
    source = source_text(doc)
    problems = []
    for pre in soup.select(COMMAND_BLOCKS):
        for line in pre.get_text().splitlines():
            line = line.strip()
            if not line:
                continue
            if any(q in line for q in CURLY):
                problems.append(f"curly quotes: {line[:80]}")
            elif line not in source and html.escape(line, quote=False) not in source:
                problems.append(f"not in the page's source as written: {line[:80]}")
    assert not problems, f"{doc}:\n" + "\n".join(problems[:15])


def verdict_tables(built: Path):
    for doc in PAGES:
        page = built / f"{doc}.html"
        soup = bs4.BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for table in soup.select("table.verdicts"):
            yield doc, page, table


def test_verdict_table_one_row_per_claim(built):
    found = False
    for doc, _, table in verdict_tables(built):
        found = True
        claims = [tr.find("td").get_text(" ", strip=True) for tr in table.select("tbody tr")]
        dupes = sorted({c for c in claims if claims.count(c) > 1})
        assert not dupes, f"{doc}: claims listed twice in the verdict table: {dupes}"
    assert found, "no verdict table (table.verdicts) in the book"


def test_verdict_table_links_resolve_to_anchors(built):
    bad = []
    for doc, page, table in verdict_tables(built):
        for a in table.find_all("a", href=True):
            parts = urlsplit(a["href"])
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if not target.is_file():
                bad.append(f"{doc}: {a['href']} (no such page)")
                continue
            if parts.fragment:
                ids = bs4.BeautifulSoup(target.read_text(encoding="utf-8"), "html.parser")
                if ids.find(id=parts.fragment) is None:
                    bad.append(f"{doc}: {a['href']} (no anchor #{parts.fragment} there)")
    assert not bad, "verdict-table links that do not resolve:\n" + "\n".join(bad)
