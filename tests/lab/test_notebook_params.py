"""Bad notebook parameters are refused in the first cell, with a message naming the parameter.

Each case is what papermill would inject (``-p`` gives numbers or text, ``-y`` YAML values):
:func:`apalu.lab.params.check_notebook` sees the notebook's namespace after injection and the names
the injected cell assigned. Every notebook calls it first thing after its parameters
(tests/docs/test_notebooks_meta.py); a few cases also run through papermill end to end below.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apalu.lab import params

ROOT = Path(__file__).resolve().parents[2]

# (notebook, injected parameters, the text the message must contain)
BAD = [
    ("exp_convergence", {"activations": "relu"}, "'activations': expects a list"),
    ("exp_convergence", {"seeds": "[0, 1, 2]"}, "-y 'seeds: [0, 1, 2]'"),
    ("exp_convergence", {"epochz": 1}, "unknown parameter 'epochz'"),
    ("exp_convergence", {"epochs": 100000}, "confirm_long_run"),
    ("exp_convergence", {"epochs": -1}, "'epochs'"),
    ("exp_convergence", {"lrs": ["fast"]}, "'lrs[]': expects a number"),
    ("exp_convergence", {"device": "cuda"}, "'device'"),
    ("exp_convergence", {"device": "tpu"}, "'device': unknown device"),
    ("mnist_quickstart", {"output_dir": "../data/results/mnist-quickstart-cpu"}, "holds committed results"),
    ("exp_convergence", {"activations": ["relux"]}, "'activations': unknown activation"),
    ("exp_convergence", {"optimizer": "adamx"}, "'optimizer'"),
    ("exp_convergence", {"seeds": [0, 0]}, "'seeds': seeds repeat"),
    ("exp_paper", {"cifar10_path": "/nonexistent"}, "'cifar10_path'"),
    ("exp_paper", {"cifar_models": '["mobilenet"]'}, "-y 'cifar_models: [\"mobilenet\"]'"),
    ("exp_paper", {"oc_classes": "3"}, "'oc_classes': expects a list"),
    ("exp_paper", {"mvtec_path": "/no/such/mvtec"}, "'mvtec_path'"),
    ("exp_paper", {"alexnet_weights": "/no/such/alexnet.safetensors"}, "parameter 'alexnet_weights': "),
    ("exp_paper", {"vgg16_weights": 16}, "parameter 'vgg16_weights': must be a path"),
    ("exp_paper", {"differnet_sizes": '{"epochs": 2}'}, "-y 'differnet_sizes: {\"epochs\": 2}'"),
    ("exp_gradient_flow", {"depths": [0]}, "'depths'"),
    ("exp_gradient_flow", {"width": 3.5}, "'width': expects an integer"),
    ("exp_init_sensitivity", {"lrs": [0.1, -1]}, "'lrs'"),
    ("exp_init_sensitivity", {"inits": ["2,1"]}, "'inits'"),
    ("exp_small_data", {"sizes": "[50]"}, "'sizes': expects a list"),
    ("mnist_quickstart", {"n_train": 0}, "'n_train'"),
    ("mnist_quickstart", {"data_path": "/no/such/mnist"}, "'data_path'"),
    ("theory_bounds", {"ab_pairs": "[(1, 1)]"}, "-y 'ab_pairs: [[1, 1]]'"),
    ("theory_bounds", {"grid_points": "abc"}, "'grid_points': expects an integer"),
    ("theory_bounds", {"ab_pairs": [[1, 1, 1]]}, "'ab_pairs': expects a list of 2-element pairs"),
    ("theory_approximation", {"widths": "[2,3,4]"}, "'widths': expects a list"),
    ("theory_depth_init", {"mc_samples": 12345.5}, "'mc_samples': expects an integer"),
    ("theory_definition", {"x_max": "4"}, "'x_max': expects a number"),
    ("results_at_scale", {"results_dir": "../.."}, "'results_dir'"),
    ("results_at_scale", {"max_rows": -1}, "'max_rows'"),
    ("ledger", {"link_prefix": "javascript:alert(1)//"}, "'link_prefix'"),
    ("cost", {"results_dir": "/no/such/bench"}, "'results_dir'"),
]


@pytest.fixture(autouse=True)
def _in_notebooks(monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")  # notebooks run from notebooks/, and paths are relative to it


def _namespace(notebook: str, injected: dict) -> dict:
    return {**params.declared_parameters(ROOT / "notebooks" / f"{notebook}.ipynb"), **injected}


@pytest.mark.parametrize("notebook,injected,message", BAD, ids=[f"{n}:{next(iter(p))}" for n, p, _ in BAD])
def test_bad_parameter_is_refused_naming_it(notebook, injected, message):
    if injected.get("device") == "cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    with pytest.raises(ValueError) as err:
        params.check_notebook(notebook, _namespace(notebook, injected), injected=set(injected))
    assert message in str(err.value)


def test_there_are_at_least_30_cases_across_the_notebooks():
    assert len(BAD) >= 30 and len({n for n, _, _ in BAD}) >= 10


@pytest.mark.parametrize("notebook", sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_defaults_pass(notebook):
    params.check_notebook(notebook, _namespace(notebook, {}), injected=set())


def test_yaml_lists_pairs_and_confirmed_long_runs_pass():
    ok = {"ab_pairs": [[1, 1], [0.5, 2]]}  # -y gives lists, not tuples
    params.check_notebook("theory_bounds", _namespace("theory_bounds", ok), injected=set(ok))
    long = {"epochs": 100000, "confirm_long_run": True}
    params.check_notebook("exp_convergence", _namespace("exp_convergence", long), injected=set(long))


def _papermill(notebook: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    return subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / f"{notebook}.ipynb"),
                           str(tmp_path / "out.ipynb"), "-k", "python3", "--cwd", str(ROOT / "notebooks"),
                           "--no-progress-bar", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("notebook,args,message", [
    ("exp_convergence", ["-p", "epochz", "1"], "unknown parameter 'epochz'"),
    ("exp_paper", ["-p", "cifar10_path", "/nonexistent"], "parameter 'cifar10_path'"),
    ("theory_bounds", ["-p", "grid_points", "abc"], "parameter 'grid_points'"),
])
def test_papermill_stops_in_the_first_cells(notebook, args, message, tmp_path):
    status = ["git", "-C", str(ROOT), "status", "--porcelain"]
    before = subprocess.run(status, capture_output=True, text=True).stdout
    run = _papermill(notebook, tmp_path, *args)
    assert subprocess.run(status, capture_output=True, text=True).stdout == before  # no committed file changed
    assert run.returncode != 0 and message in run.stderr + run.stdout
    import nbformat

    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    failed = [i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    code_before = [c for c in cells[:failed[0]] if c.cell_type == "code"]
    assert len(code_before) <= 2  # parameters, injected parameters
    assert not list(tmp_path.glob("results*"))  # nothing ran
