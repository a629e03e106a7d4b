"""Deployment: a model with APALU layers through torch.export and ONNX (checked in onnxruntime
against PyTorch within float32 tolerance). While exporting, APALU decomposes to standard ATen
ops (the reference backend; see apalu.functional.choose_backend)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from apalu import APALU


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), APALU(8), nn.Conv2d(8, 4, 3, padding=1), APALU(),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 5),
    ).eval()


def _input() -> torch.Tensor:
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1)) * 3
    x.view(-1)[:3] = torch.tensor([0.0, -1e-8, 30.0])
    return x


def test_torch_export_matches_eager():
    model, x = _model(), _input()
    program = torch.export.export(model, (x,))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("apalu" in op for op in ops), ops  # standard ops only
    torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)


def test_onnx_export_runs_in_onnxruntime(tmp_path):
    pytest.importorskip("onnx", reason="onnx not installed (extra 'export')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (extra 'export')")
    pytest.importorskip("onnxscript", reason="onnxscript not installed (extra 'export')")
    model, x = _model(), _input()
    path = tmp_path / "apalu.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"],
                      output_names=["y"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed in (1, 2):
        xi = _input() if seed == 1 else torch.randn(2, 3, 6, 6) * 5
        (got,) = session.run(None, {"x": xi.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), model(xi).detach(), rtol=1e-4, atol=1e-5)
