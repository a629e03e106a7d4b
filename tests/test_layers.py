"""The package's layers, and the one direction its imports run.

``apalu`` (the root) is the activation library: it needs torch alone. The lab (``apalu.lab``:
data, models, training, experiments, parameters, statistics) builds on it; the theory
(``apalu.theory``), the cost bench (``apalu.bench``) and the sweeps (``apalu.sweep``) build on the
lab; the report (``apalu.report``: ledger, reproducibility contract, book pages) on all of them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "apalu"
# what each layer may import from the package (the root library is "")
ALLOWED = {
    "": {""},
    "lab": {"", "lab"},
    "theory": {"", "lab", "theory"},
    "bench": {"", "lab", "bench"},
    "sweep": {"", "lab", "sweep"},
    "report": {"", "lab", "sweep", "report"},
}
ENTRY_POINTS = {"__main__.py"}  # `python -m apalu` runs the sweep command line
LAB_ONLY = ("pandas", "seaborn", "sympy", "sklearn", "matplotlib")


def _layer(module: Path) -> str:
    rel = module.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else ""


def _imported_layers(module: Path) -> set[str]:
    """The layers a module imports (module level and inside functions)."""
    layers = set()
    own = list(module.relative_to(PKG).parent.parts)
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = own[: len(own) - (node.level - 1)] if node.level > 1 else own
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [] if node.module else [a.name for a in node.names]
            elif (node.module or "").split(".")[0] == "apalu":
                target, names = node.module.split(".")[1:], [a.name for a in node.names]
            else:
                continue
            for t in ([*target, n] for n in names) if names else [target]:
                layers.add(t[0] if t and t[0] in ALLOWED else "")
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "apalu":
                    layers.add(parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "")
    return layers


MODULES = sorted(p for p in PKG.rglob("*.py") if p.name not in ENTRY_POINTS)


@pytest.mark.parametrize("module", MODULES, ids=[str(p.relative_to(PKG)) for p in MODULES])
def test_imports_run_one_way(module):
    layer = _layer(module)
    assert _imported_layers(module) <= ALLOWED[layer], (
        f"{module.relative_to(PKG)} ({layer or 'library'}) imports {_imported_layers(module) - ALLOWED[layer]}")


def test_the_checker_sees_a_wrong_direction(tmp_path, monkeypatch):
    fake = tmp_path / "apalu"
    (fake / "lab").mkdir(parents=True)
    (fake / "functional.py").write_text("from .lab.data import load_dataset\n")  # library -> lab
    (fake / "lab" / "data.py").write_text("from ..report import ledger\nfrom .. import functional\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    assert _imported_layers(fake / "functional.py") == {"lab"}
    assert _imported_layers(fake / "lab" / "data.py") == {"report", ""}


def test_the_library_trains_without_the_lab_dependencies():
    code = f"""
import importlib.abc, sys
import torch, torch._dynamo  # torch itself imports sympy (dynamo): its dependency, loaded before the block
BLOCKED = {LAB_ONLY!r}
before = set(sys.modules)
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked for this test: " + name)
sys.meta_path.insert(0, Block())
import torch, apalu
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), apalu.APALU(8), torch.nn.Linear(8, 1), apalu.APALU())
for p in model:
    if isinstance(p, torch.nn.Linear):
        torch.nn.init.kaiming_normal_(p.weight, nonlinearity="linear"); p.weight.data.mul_(apalu.init_gain(1.0, 1.5))
opt = torch.optim.AdamW(apalu.param_groups(model, weight_decay=0.01))
loss = model(torch.randn(16, 4)).pow(2).mean()
loss.backward(); opt.step()
apalu.replace_activations(torch.nn.Sequential(torch.nn.ReLU()), "apalu")
y = apalu.functional.apalu(torch.randn(5), 1.0, 1.5)
loaded = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in BLOCKED or m.startswith(
    ("apalu.lab", "apalu.theory", "apalu.bench", "apalu.sweep", "apalu.report")))
assert not loaded, loaded
print("ok", float(loss))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stdout + run.stderr
