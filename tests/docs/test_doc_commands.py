"""Every shell command shown in the README and on the "Rerun this book" page runs here.

The commands are read from the ```bash blocks of those files (continuation lines joined,
comments dropped), so a command added to the docs is tested or this test fails. Each runs as
written, from the repository root, with three kinds of change, all listed in RUNNERS:

* outputs go to a temporary folder (``out.ipynb``, ``params.yaml``, ``--out data/bench``), so
  no file of the repository is touched (checked with ``git status`` afterwards);
* expensive runs get tiny sizes appended (papermill's later ``-p``/``-y`` values win);
* a data path is pointed at a tiny fixture made here (CIFAR-10 batches).

``make`` targets are run by CI itself (``.ci/run``: ``make test``, ``make test-configs``,
``make book``); here each named target is checked with ``make -n``. ``make record`` rewrites the
committed results, so it is only ever dry-run.
"""

from __future__ import annotations

import os
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "book/rerun.md")
BIN = Path(sys.executable).parent

# Tiny sizes appended to papermill runs, by notebook (later -p / -y values override earlier ones).
TINY = {
    "mnist_quickstart": ["-p", "epochs", "1", "-p", "n_train", "200", "-y", "seeds: [0, 1]"],
    "exp_paper": ["-p", "cls_epochs", "1", "-p", "cls_n_train", "200", "-y", "seeds: [0, 1]",
                  "-y", "oc_classes: [0]", "-p", "oc_epochs", "1", "-p", "oc_n_test", "60", "-p", "oc_n_val", "20",
                  "-p", "reg_epochs", "2", "-p", "gru_epochs", "1", "-p", "cifar_epochs", "1",
                  "-y", "cifar_models: [mobilenetv2]", "-y", "cls_activations: [apalu, relu]"],
}
BENCH_TINY = ["--shape", "2,4,8,8", "--repeats", "1", "--warmup", "0", "--e2e-repeats", "1", "--batch", "2",
              "--no-compile", "--skip", "compile-cost"]


def doc_commands(path: Path) -> list[str]:
    """The commands of a Markdown file's ```bash blocks, one string each."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()  # an end-of-line comment
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    return commands


ALL = sorted({(doc, cmd) for doc in DOCS for cmd in doc_commands(ROOT / doc)})


def _cifar_fixture(folder: Path) -> Path:
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 255, (20, 3072)).astype(np.uint8), b"labels": [i % 10 for i in range(20)]}
        with open(batches / name, "wb") as fh:
            pickle.dump(d, fh)
    return batches


def _runner(cmd: str, tmp: Path) -> list[str] | None:
    """The argv that runs ``cmd`` here (None: it is a make target, dry-run instead)."""
    argv = shlex.split(cmd)
    argv = [str(BIN / Path(a).name) if a.startswith(".venv/bin/") else a for a in argv]
    argv = [str(tmp / a) if a in ("out.ipynb", "params.yaml") else a for a in argv]
    if argv[0] == "make":
        return None
    if argv[0] == "printf":
        return ["bash", "-c", " ".join(shlex.quote(a) for a in argv[:-2]) + " > " + shlex.quote(argv[-1])]
    if Path(argv[0]).name == "papermill":
        argv = [str(_cifar_fixture(tmp)) if a == "/data/cifar-10-batches-py" else a for a in argv]
        notebook = Path(argv[1]).stem
        assert notebook in TINY, f"add tiny sizes for {notebook} to TINY"
        return argv + TINY[notebook] + ["-p", "output_dir", str(tmp / "results"), "--no-progress-bar"]
    if argv[1:3] == ["-m", "apalu.bench"]:
        if "--device" in argv and argv[argv.index("--device") + 1] == "cuda":
            import torch

            if not torch.cuda.is_available():
                pytest.skip("needs a CUDA device")
        if "--help" in argv:
            return argv
        argv = [str(tmp / "bench") if a == "data/bench" else a for a in argv]
        return argv + BENCH_TINY
    if argv[1:3] == ["-m", "pytest"] and "-m" in argv[3:] and "bench" in argv:
        # The timing test measures this machine, which CI does not judge: collect it, run nothing timed.
        return argv + ["--collect-only", "-q", "-p", "no:cacheprovider"]
    raise AssertionError(f"no runner for a command in the docs: {cmd!r}; add one to tests/docs/test_doc_commands.py")


def test_the_docs_show_commands():
    assert any("papermill" in c for _, c in ALL) and any(c == "make test" for _, c in ALL)


@pytest.mark.parametrize("doc,cmd", ALL, ids=[f"{d}:{c[:60]}" for d, c in ALL])
def test_doc_command_runs(doc, cmd, tmp_path):
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    argv = _runner(cmd, tmp_path)
    if argv is None:  # make: the target exists and its recipe expands (CI runs the real thing)
        argv = ["make", "-n", *shlex.split(cmd)[1:]]
    if argv[0] != "bash":
        # the printf of the same block writes params.yaml first
        for other in [c for d, c in ALL if d == doc and c.startswith("printf") and "params.yaml" in cmd]:
            subprocess.run(_runner(other, tmp_path), cwd=ROOT, check=True)
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, f"{cmd}\n-> {argv}\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    assert after == before, f"{cmd} changed files in the repository:\n{after}"
