"""pyproject.toml declares what the code imports, and nothing it does not use.

The activation library (apalu/*.py at the package root) imports core dependencies only, at any
level (`pip install apalu` must work); the lab's subpackages import at module level only core and
`lab` (and `sweep` for apalu.sweep); imports inside functions, and those of tests/, scripts/, the
notebooks and book/*.md, may sit in any extra. Every declared distribution must be imported somewhere, or be a tool listed below.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

# Import name -> distribution name, where they differ.
DIST_OF = {
    "sklearn": "scikit-learn", "yaml": "pyyaml", "bs4": "beautifulsoup4", "PIL": "pillow",
    "vega_datasets": "vega-datasets", "IPython": "ipython",
}
# Declared, never imported: programs, plugins and the pins that hold the book stack together.
USED_WITHOUT_IMPORT = {
    "ninja": "torch.utils.cpp_extension runs it to build the C++ kernel",
    "jupyter-book": "builds the book (jupyter-book build)",
    "sphinx": "pins the book stack (shared/STACK.md)",
    "docutils": "pins the book stack",
    "myst-parser": "pins the book stack",
    "myst-nb": "pins the book stack",
    "jupyter-cache": "pins the book stack",
    "sphinx-book-theme": "the book's theme (1.3.0: 1.4 needs Sphinx 8)",
    "sphinxcontrib-bibtex": "Sphinx extension in _config.yml",
    "ipykernel": "the notebooks' python3 kernel",
    "nbclient": "executes notebooks (myst-nb, nbval, papermill)",
    "nbval": "pytest plugin (make test-nbval)",
    "pytest-xdist": "pytest plugin (nbval -n)",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_names(specs: list[str]) -> set[str]:
    return {norm(re.match(r"[A-Za-z0-9._-]+", s).group(0)) for s in specs}


CORE = dist_names(PROJECT["dependencies"])
EXTRAS = {k: dist_names(v) for k, v in PROJECT["optional-dependencies"].items()}
DECLARED = CORE.union(*EXTRAS.values())

LOCAL = {"apalu"} | {p.stem for d in ("tests", "scripts") for p in (ROOT / d).rglob("*.py")}
THIRD_PARTY_SKIP = set(sys.stdlib_module_names) | LOCAL


def imports(source: str) -> Iterator[tuple[str, bool]]:
    """(top-level module, at module level?) for each import, importorskip and import_module."""
    def walk(node: ast.AST, top: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                yield from ((a.name.split(".")[0], top) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module.split(".")[0], top
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                  and child.func.attr in ("importorskip", "import_module") and child.args
                  and isinstance(child.args[0], ast.Constant) and isinstance(child.args[0].value, str)):
                yield child.args[0].value.split(".")[0], top
            yield from walk(child, inner)
    yield from walk(ast.parse(source), True)


def cell_source(lines: list[str] | str) -> str:
    # IPython magics and shell escapes are not Python.
    text = "".join(lines)
    return "\n".join("" if l.lstrip().startswith(("%", "!")) else l for l in text.splitlines())


def sources() -> Iterator[tuple[str, str]]:
    """(where, Python source) for every file, notebook cell and book code cell."""
    for folder in ("apalu", "tests", "scripts"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            yield p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8")
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(p.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "code":
                yield f"{p.name} cell {i}", cell_source(cell["source"])
    for p in sorted((ROOT / "book").glob("*.md")):
        for block in re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", p.read_text(encoding="utf-8"), re.S | re.M):
            block = re.sub(r"\A---\n.*?\n---\n", "", block, flags=re.S)  # the cell's YAML options
            yield p.name, cell_source([l + "\n" for l in block.splitlines() if not l.startswith(":")])


def third_party(where_prefix: str = "") -> dict[str, tuple[str, bool]]:
    """distribution -> (first place importing it, imported at module level there?)."""
    found: dict[str, tuple[str, bool]] = {}
    for where, src in sources():
        if not where.startswith(where_prefix):
            continue
        for mod, top in imports(src):
            if mod in THIRD_PARTY_SKIP:
                continue
            dist = norm(DIST_OF.get(mod, mod))
            if dist not in found or (top and not found[dist][1]):
                found[dist] = (where, top)
    return found


def _imports_of(folder: Path, recurse: bool) -> dict[str, tuple[str, bool]]:
    found: dict[str, tuple[str, bool]] = {}
    for p in sorted(folder.rglob("*.py") if recurse else folder.glob("*.py")):
        for mod, top in imports(p.read_text(encoding="utf-8")):
            if mod not in THIRD_PARTY_SKIP:
                found.setdefault(norm(DIST_OF.get(mod, mod)), (p.relative_to(ROOT).as_posix(), top))
    return found


# The library's optional accelerators: imported lazily, only where they are installed and asked
# for (the Triton kernel for CUDA tensors), so `import apalu` needs the core alone.
LIBRARY_OPTIONAL = set().union(*(EXTRAS.get(k, set()) for k in ("kernel", "gpu", "export")))


def test_the_library_needs_core_dependencies_only():
    missing = {d: w for d, (w, _) in _imports_of(ROOT / "apalu", recurse=False).items()
               if d not in CORE and d not in LIBRARY_OPTIONAL}
    assert not missing, f"imported by the activation library but not in [project] dependencies: {missing}"


def test_the_lab_imports_at_module_level_what_its_extras_declare():
    for sub in ("lab", "theory", "bench", "report", "sweep"):
        allowed = CORE | EXTRAS["lab"] | (EXTRAS["sweep"] if sub == "sweep" else set())
        found = _imports_of(ROOT / "apalu" / sub, recurse=True)
        missing = {d: w for d, (w, top) in found.items() if top and d not in allowed}
        assert not missing, f"apalu.{sub} imports at module level what neither core nor its extras declare: {missing}"


def test_every_import_is_declared():
    missing = {d: w for d, (w, _) in third_party().items() if d not in DECLARED}
    assert not missing, f"imported but declared in no pyproject group (or add to DIST_OF): {missing}"


def test_every_declared_distribution_is_used():
    used = set(third_party()) | set(USED_WITHOUT_IMPORT)
    unused = sorted(DECLARED - used)
    assert not unused, f"declared in pyproject.toml but never imported: {unused}"


def test_the_parser_sees_lazy_and_skipped_imports():
    src = "import a.b\nfrom c import d\ndef f():\n    import e\npytest.importorskip('g')\n"
    assert sorted(imports(src)) == [("a", True), ("c", True), ("e", False), ("g", True)]
