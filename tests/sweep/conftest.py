"""Fixtures of the sweep tests: a throwaway book root that writes specs and gives the
environment a subprocess `apalu` needs (shared by test_sweep.py and test_slurm.py as fixtures,
not imports: several conftest.py files exist, so `from conftest import ...` is ambiguous)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "tiny.ipynb"


def _apalu_env() -> dict:
    """This environment with the repository first on PYTHONPATH and no inherited book root."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("APALU_BOOK_ROOT", None)
    return e


class BookRoot(type(Path())):
    """A book root (``_toc.yml``, ``nb/tiny.ipynb``) that writes sweep specs into ``sweeps/``."""

    def write_spec(self, spec: dict, name: str = "s", unique: bool = False) -> Path:
        """The spec as ``sweeps/<name>.yaml``; ``unique``: a fresh name (its Slurm jobs,
        apalu-<name>, are then this test's alone)."""
        name = f"sl-{uuid.uuid4().hex[:8]}" if unique else name
        path = self / "sweeps" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    def env(self) -> dict:
        return _apalu_env()


@pytest.fixture()
def sweep_env() -> dict:
    """The environment for a subprocess `python -m apalu` outside a book fixture."""
    return _apalu_env()


@pytest.fixture()
def book(tmp_path: Path):
    """A throwaway book root; under ``APALU_SLURM_TEST_DIR`` when set (a folder the Slurm
    nodes share), removed afterwards. Slurm jobs of its specs are cancelled at the end."""
    base = os.environ.get("APALU_SLURM_TEST_DIR")
    root = Path(base) / f"apalu-slurm-{uuid.uuid4().hex[:8]}" if base else tmp_path
    (root / "nb").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    shutil.copy(FIXTURE, root / "nb" / "tiny.ipynb")
    yield BookRoot(root)
    if shutil.which("scancel") and (root / "sweeps").is_dir():
        for spec in (root / "sweeps").glob("*.yaml"):
            subprocess.run(["scancel", "-n", f"apalu-{spec.stem}"], capture_output=True, timeout=30)
    if base:
        shutil.rmtree(root, ignore_errors=True)
