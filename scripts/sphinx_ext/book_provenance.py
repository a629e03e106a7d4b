"""Sphinx extension for apalu-book: every page says which code built it, and notebooks are
re-executed when that code changed.

1. Execution cache. jupyter-cache keys a notebook on its code cells only (shared/STACK.md,
   pitfall 4): after an edit to apalu/ or the lock, the book would show outputs of the old code.
   At builder-inited, before myst-nb opens the cache, a hash of apalu/**/*.py, apalu/**/*.cpp
   and requirements.lock is compared with the one the last build stored (_build/.pkg-hash); on a
   change the cache and myst-nb's executed copies are removed and every page is re-read, so
   `jupyter-book build .` re-executes the notebooks without make.
2. Footer. Every page shows the package version (apalu/_version.py), the git commit ("+dirty"
   with uncommitted changes to tracked files, "unknown" outside git) and the UTC build date;
   the copyright year runs to the build year.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import html
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config
    from sphinx.environment import BuildEnvironment

ROOT = Path(__file__).resolve().parents[2]  # the repository: scripts/sphinx_ext/ is two below
HASH_FILE = ".pkg-hash"
HASHED_GLOBS = ("apalu/**/*.py", "apalu/**/*.cpp", "requirements.lock")


def package_hash(root: Path, globs: Iterable[str] = HASHED_GLOBS) -> str:
    """16 hex digits over the paths and contents of the files the notebooks' results depend on."""
    files = sorted({p.relative_to(root).as_posix() for g in globs for p in root.glob(g) if p.is_file()})
    h = hashlib.sha256()
    for rel in files:
        data = (root / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())  # path and length: a rename or a split changes it
        h.update(data)
    return h.hexdigest()[:16]


def clear_stale_cache(stamp: Path, cache_dirs: Iterable[Path], digest: str) -> bool:
    """Remove cache_dirs unless stamp holds digest; then store digest in stamp.

    Returns True when something was removed. Without a stamp (first build, or one from before
    this extension) any existing cache is treated as stale: nothing says which code filled it.
    """
    old = stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else None
    cleared = False
    if old != digest:
        for d in cache_dirs:
            if d.exists():
                shutil.rmtree(d)
                cleared = True
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n", encoding="utf-8")
    return cleared


def _cache_dirs(app: Sphinx) -> list[Path]:
    """The execution cache and executed copies, where myst-nb puts them (myst_nb.sphinx_ext)."""
    build = Path(app.outdir).parent
    configured = getattr(app.config, "nb_execution_cache_path", "")  # "" when myst-nb is absent
    cache = Path(configured).resolve() if configured else build / ".jupyter_cache"
    return [cache, build / "jupyter_execute"]


def _on_builder_inited(app: Sphinx) -> None:
    stamp = Path(app.outdir).parent / HASH_FILE
    dirs = _cache_dirs(app)
    if clear_stale_cache(stamp, dirs, package_hash(ROOT)):
        print(f"apalu/ or requirements.lock changed: clearing the notebook execution cache "
              f"({', '.join(str(d) for d in dirs)})")
        app.apalu_reread_all = True  # type: ignore[attr-defined]


def _on_env_get_outdated(app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str],
                         removed: set[str]) -> list[str]:
    # Sphinx re-reads only changed sources; a cleared cache means every notebook must re-run.
    return sorted(env.found_docs) if getattr(app, "apalu_reread_all", False) else []


def package_version(root: Path = ROOT) -> str:
    """apalu/_version.py's __version__, read without importing apalu (that imports torch)."""
    tree = ast.parse((root / "apalu" / "_version.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise ValueError("apalu/_version.py assigns no __version__")


def git_commit(root: Path = ROOT) -> str:
    """Short commit hash, "+dirty" with uncommitted changes to tracked files, "unknown" outside git."""
    def git(*args: str) -> str:
        # --no-optional-locks: a status must not take .git/index.lock from a concurrent commit.
        return subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args], check=True,
                              capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def build_date() -> dt.date:
    """Today in UTC, or SOURCE_DATE_EPOCH's date (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch else dt.datetime.now(dt.timezone.utc)
    return now.date()


def copyright_years(configured: str, year: int) -> str:
    """'2026' stays while the build year is 2026, then becomes '2026–2027'; other text is kept."""
    m = re.fullmatch(r"\s*(\d{4})\s*", configured or "")
    if not m:
        return configured or str(year)
    first = int(m.group(1))
    return str(first) if year <= first else f"{first}–{year}"


def footer_html(version: str, commit: str, date: dt.date) -> str:
    return (f'<p class="apalu-build">apalu {html.escape(version)} · commit '
            f"<code>{html.escape(commit)}</code> · built {date.isoformat()} (UTC)</p>")


def _on_config_inited(app: Sphinx, config: Config) -> None:
    date = build_date()
    line = footer_html(package_version(), git_commit(), date)
    # sphinx-book-theme 1.3 renders theme option extra_footer (raw HTML) in every page's footer.
    options = dict(config.html_theme_options or {})
    options["extra_footer"] = (options.get("extra_footer") or "") + line
    config.html_theme_options = options
    config.copyright = copyright_years(config.copyright, date.year)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", _on_config_inited)
    # Before myst-nb's own builder-inited handler (priority 500) sets up the cache.
    app.connect("builder-inited", _on_builder_inited, priority=100)
    app.connect("env-get-outdated", _on_env_get_outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
