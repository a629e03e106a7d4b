"""Sphinx extension for apalu-book: load MathJax (and the other page assets) on every page.

Sphinx adds MathJax only to pages that contain math themselves, but titles with math
(e.g. "Sensitivity to the initialization of $a$ and $b$") also appear in the sidebar and the
previous/next links of other pages, where they stayed raw TeX. tests/docs/test_browser.py checks it.
"""


def setup(app):
    app.set_html_assets_policy("always")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
