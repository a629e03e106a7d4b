"""The backends and the one chooser: which backend each call takes (CPU, environment switch,
compile, export, a GPU faked by a flag), and that every backend computes the same function
(values and gradients for x, a, b against the float64 reference, per dtype and layout)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import apalu
import apalu._ext as ext
import apalu.functional as AF
from apalu import APALU
from apalu.module import MIN_VALUE

torch.set_num_threads(1)
LIBRARY = Path(AF.__file__).parent


def _choose(x, a, b, **kw):
    kw.setdefault("requires_grad", True)
    kw.setdefault("compiled", False)
    return AF.choose_backend(x, a, b, **kw)


def _params(n, dtype=torch.float32):
    return torch.ones(n, dtype=dtype), torch.ones(n, dtype=dtype)


@pytest.fixture
def kernel():
    if not ext.available():
        pytest.skip(ext.status())


def test_cpu_float32_takes_the_kernel_and_the_switch_turns_it_off(kernel):
    x = torch.randn(4, 3)
    for n in (1, 3):
        a, b = _params(n)
        assert _choose(x, a.view(-1, 1).t() if n > 1 else a, b.view(1, -1) if n > 1 else b) == "kernel"
        assert _choose(x, a, b, env={ext.ENV_SWITCH: "0"}) == "aten"
    assert _choose(x.double(), *_params(1, torch.float64)) == "aten"
    assert _choose(x.bfloat16(), *_params(1)) == "aten"


def test_layout_the_kernel_can_not_take_goes_to_aten(kernel):
    x = torch.randn(2, 3, 4)
    a = b = torch.ones(1, 3, 4)  # two channel dims
    assert _choose(x, a, b) == "aten"


def test_compile_export_and_transforms(kernel):
    x = torch.randn(2, 3)
    a, b = _params(1)
    assert _choose(x, a, b, compiled=True) == "compiled-kernel"
    assert _choose(x, a, b, compiled=True, env={ext.ENV_SWITCH: "0"}) == "compiled"
    assert _choose(x.double(), *_params(1, torch.float64), compiled=True) == "compiled"
    assert _choose(x, a, b, exporting=True) == "reference"
    seen = []
    torch.func.vmap(lambda r: seen.append(_choose(r, a, b)) or r)(x)
    assert seen == ["reference"]


def test_gpu_choice_with_a_fake_device_flag(monkeypatch):
    x = torch.randn(2, 3)
    a, b = _params(1)
    monkeypatch.setattr(AF, "_TRITON", {"ok": True, "backward": True})
    assert _choose(x, a, b, device_type="cuda") == "triton"
    assert _choose(x, a, b, device_type="cuda", compiled=True) == "compiled"
    assert _choose(x.double(), *_params(1, torch.float64), device_type="cuda") == "aten"
    x4, per_channel = torch.randn(2, 3, 4, 5), torch.ones(1, 3, 1, 1)
    assert _choose(x4, per_channel, per_channel, device_type="cuda") == "triton"
    other = torch.ones(1, 1, 1, 5)  # one value per position of the last dim: not its layout
    assert _choose(x4, other, other, device_type="cuda") == "aten"
    monkeypatch.setattr(AF, "_TRITON", {"ok": True, "backward": False})
    assert _choose(x, a, b, device_type="cuda", requires_grad=False) == "triton"
    assert _choose(x, a, b, device_type="cuda") == "aten"  # gradients needed, no backward
    monkeypatch.setattr(AF, "_TRITON", {"ok": False})
    assert _choose(x, a, b, device_type="cuda") == "aten"


def test_missing_triton_module_means_aten(monkeypatch):
    monkeypatch.setattr(AF, "_TRITON", {})

    def absent():
        raise ImportError("no module named apalu.triton_kernel")

    monkeypatch.setattr(AF, "_triton", absent)
    assert AF._triton_available(with_backward=True) is False


def test_import_apalu_does_not_import_triton():
    code = ("import sys, torch, apalu; x = torch.randn(3, requires_grad=True); "
            "apalu.APALU()(x).sum().backward(); print('apalu.triton_kernel' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_describe_backends_names_every_backend():
    text = AF.describe_backends()
    assert all(name in text for name in AF.BACKENDS) and "CPU float32 ->" in text


def test_k_is_defined_once():
    """k = 1.702 has one definition in the library (docstrings may name the value)."""
    defs = []
    for path in [*LIBRARY.glob("*.py"), *LIBRARY.glob("csrc/*")]:
        for line in path.read_text().splitlines():
            code = line.split("#")[0].split("//")[0]
            if re.search(r"1\.702", code) and not re.search(r"\\|``|σ", code):
                defs.append(f"{path.name}: {line.strip()}")
    assert len(defs) == 1 and defs[0].startswith("functional.py: K = 1.702"), defs


# ---- every backend computes the same function ------------------------------------------------

BACKENDS = ["reference", "aten", "kernel", "compiled", "compiled-kernel"]


def _run_backend(name, x, a, b):
    a_, b_ = AF.expand_param(a, x), AF.expand_param(b, x)
    return AF._run(name, x, a_, b_)


def _case(shape, channels, dtype, seed=0, noncontiguous=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    x.view(-1)[:6] = torch.tensor([0.0, -0.0, 1e-8, -1e-8, 30.0, -30.0])
    if noncontiguous:  # every other element of a twice-as-wide tensor: same shape, strided
        x = torch.stack([x, -x], dim=-1).flatten(-2)[..., ::2]
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    work = AF.compute_dtype(dtype)
    a = (torch.rand(channels, generator=gen, dtype=torch.float64) + 0.3).to(work)
    b = (torch.rand(channels, generator=gen, dtype=torch.float64) + 0.3).to(work)
    return x.to(dtype), a, b, g.to(dtype)


TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=2e-5),
       torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


@pytest.mark.parametrize("noncontiguous", [False, True])
@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_matches_the_float64_reference(grads, name, dtype, channels, noncontiguous):
    if "kernel" in name:
        if not ext.available():
            pytest.skip(ext.status())
        if dtype != torch.float32:
            pytest.skip("the C++ kernel is float32 only (the chooser never picks it otherwise)")
    x, a, b, g = _case((3, 4, 6), channels, dtype, noncontiguous=noncontiguous)
    got = grads(lambda *t: _run_backend(name, *t), x, a, b, g)
    want = grads(AF.apalu_reference, x.double(), a.double(), b.double(), g.double())
    assert got[0].dtype == dtype and got[1].dtype == dtype
    for u, v, what in zip(got, want, ("value", "grad x", "grad a", "grad b")):
        torch.testing.assert_close(u.double(), v, **TOL[dtype], msg=f"{name} {what}")


def _module_reference(m, x, g):
    """Values and grads of (x, a_raw, b_raw) through softplus and the float64 reference."""
    xr = x.detach().double().requires_grad_()
    ar = m.a_raw.detach().double().requires_grad_()
    br = m.b_raw.detach().double().requires_grad_()
    a = torch.nn.functional.softplus(ar) + MIN_VALUE
    b = torch.nn.functional.softplus(br) + MIN_VALUE
    y = AF.apalu_reference(xr, a, b)
    y.backward(g.double())
    return y.detach(), xr.grad, ar.grad, br.grad


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("channels", [1, 5])
@pytest.mark.parametrize("switch", ["1", "0"])
def test_module_one_operator_call_matches_reference(monkeypatch, switch, channels, inplace):
    monkeypatch.setenv(ext.ENV_SWITCH, switch)
    m = APALU(channels, init=(0.2, 2.0), generator=torch.Generator().manual_seed(3), inplace=inplace)
    with torch.no_grad():
        m.a_raw[0] = 25.0  # past softplus' threshold: the identity branch and slope 1
    gen = torch.Generator().manual_seed(4)
    x = (torch.randn(6, 5, 7, generator=gen) * 3).requires_grad_()
    g = torch.randn(6, 5, 7, generator=gen)
    x_before = x.detach().clone()
    y = m(x)
    y.backward(g)
    assert torch.equal(x.detach(), x_before)
    want = _module_reference(m, x, g)
    for u, v in zip((y.detach(), x.grad, m.a_raw.grad, m.b_raw.grad), want):
        torch.testing.assert_close(u.double(), v, rtol=2e-5, atol=2e-5)


def test_module_parameter_gradients_only_when_asked(kernel):
    m = APALU(5, init=(0.5, 1.5))
    m.requires_grad_(False)
    x = torch.randn(4, 5, requires_grad=True)
    m(x).sum().backward()
    assert x.grad is not None and m.a_raw.grad is None and m.b_raw.grad is None
    with torch.inference_mode():
        y = m(torch.randn(4, 5))
    assert y.grad_fn is None


def test_module_double_backward_on_the_kernel_path(kernel):
    m = APALU(3, init=(0.5, 1.5))
    x = (torch.randn(2, 3, 4) + 0.05).requires_grad_()
    (gx,) = torch.autograd.grad(m(x).sum(), x, create_graph=True)
    gx.pow(2).sum().backward()
    xd = x.detach().double().requires_grad_()
    a = (torch.nn.functional.softplus(m.a_raw.detach().double()) + MIN_VALUE).requires_grad_()
    b = (torch.nn.functional.softplus(m.b_raw.detach().double()) + MIN_VALUE).requires_grad_()
    (gxd,) = torch.autograd.grad(AF.apalu_reference(xd, a, b).sum(), xd, create_graph=True)
    gxd.pow(2).sum().backward()
    torch.testing.assert_close(x.grad.double(), xd.grad, rtol=1e-4, atol=1e-5)


def test_per_channel_mismatch_is_a_value_error_on_every_path(monkeypatch):
    for switch in ("1", "0"):
        monkeypatch.setenv(ext.ENV_SWITCH, switch)
        with pytest.raises(ValueError, match="per-channel APALU parameter has 3 values"):
            APALU(3)(torch.randn(2, 4))
