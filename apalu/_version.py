# The one source of the package version: pyproject.toml reads it (setuptools `attr`, parsed
# statically, so building does not import torch), CITATION.cff must equal it (tests/report/test_citation.py),
# and the book's footer shows it. Bump it with a CHANGELOG.md entry.
__version__ = "0.3.1"
