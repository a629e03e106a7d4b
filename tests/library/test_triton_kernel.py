"""The Triton APALU kernels, run by Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``),
against the float64 reference (:func:`apalu.functional.apalu_reference` in float64 with autograd):
values, grad x and the in-kernel reductions for grad a and grad b, scalar and per-channel
(both reduction layouts), float32, bfloat16 and float16.

Bounds: float32 values and grad x within 8 ulp of the float64 result (plus 8·2⁻¹⁴⁹ near
underflow); the reduced grads of a and b within 1e-6 of Σ|term| (float32 sums in a different
order). Half types: computed in float32 and converted once, at the reference's value at the
rounded inputs within 2⁻¹¹ (float16, rounded) and 2⁻⁷ (bfloat16: the interpreter truncates)
relative; their subnormal inputs are left out (the interpreter reads them as 0).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from apalu.functional import apalu_reference

pytest.importorskip("triton", reason="triton is not installed (extra 'gpu')")

SUB = 2.0**-149
# relative bounds of the half types: float16 rounded once (2⁻¹¹); bfloat16 one ulp (2⁻⁷), since
# the interpreter's float32 → bfloat16 conversion truncates (a GPU rounds to nearest)
HALF = {torch.bfloat16: 2.0**-7, torch.float16: 2.0**-11}


_CHILD = r"""
import sys, torch
import apalu.triton_kernel as tk
assert tk.interpreted()
cases = torch.load(sys.argv[1], weights_only=True)
out = {}
for name, (x, a, b, g) in cases.items():
    try:
        y = tk.forward(x, a, b)
        gx, ga, gb = tk.backward(g, x, a, b)
        leaves = [t.clone().requires_grad_() for t in (x, a, b)]
        tk.apalu_triton(*leaves).backward(g)
        out[name] = [y, gx, ga, gb, *[t.grad for t in leaves]]
    except Exception as e:  # reported by the test (e.g. a dtype the interpreter lacks)
        out[name] = f"{type(e).__name__}: {e}"
errors = {}
x = torch.randn(4, 3)
for what, call in (("channels", lambda: tk.forward(x, torch.ones(2), torch.ones(2))),
                   ("dtype", lambda: tk.forward(x.double(), torch.ones(1), torch.ones(1)))):
    try:
        call()
        errors[what] = "no error"
    except Exception as e:
        errors[what] = f"{type(e).__name__}: {e}"
out["errors"] = errors
out["available"] = tk.available()
torch.save(out, sys.argv[2])
"""


def _case_name(shape, channels, dtype) -> str:
    return f"{'x'.join(map(str, shape))}|{channels}|{str(dtype).replace('torch.', '')}"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case run once by the kernels in a fresh process with ``TRITON_INTERPRET=1`` (the
    interpreter is chosen when triton is first imported, so not in this process, where another
    test may have imported triton already): {case: inputs and outputs}."""
    folder = tmp_path_factory.mktemp("triton")
    cases = {}
    for shape, channels in LAYOUTS:
        for dtype in (torch.float32, *HALF):
            if dtype != torch.float32 and (shape, channels) not in LAYOUTS[:2]:
                continue
            x, a, b, g = _inputs(shape, channels, dtype)
            if dtype == torch.float16:
                x = x.clamp(-60000, 60000)
            cases[_case_name(shape, channels, dtype)] = [x, a, b, g]
    torch.save(cases, folder / "in.pt")
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, "-c", _CHILD, str(folder / "in.pt"), str(folder / "out.pt")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return cases, torch.load(folder / "out.pt", weights_only=True)


def _inputs(shape, channels, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 4
    flat = x.view(-1)
    named = torch.tensor([0.0, -0.0, 1e-8, -1e-8, -0.2499, -0.2501, -20.0, -110.0, 30.0, 3e38, -3e38,
                          1e-40, -1e-40], dtype=torch.float64)
    flat[: named.numel()] = named
    a = torch.rand(channels, generator=gen, dtype=torch.float64) * 2 + 1e-3
    b = torch.rand(channels, generator=gen, dtype=torch.float64) * 2 + 1e-3
    g = torch.randn(shape, generator=gen, dtype=torch.float64)
    return [t.to(dtype) for t in (x, a, b, g)]


def _reference(x, a, b, g):
    """Value and the three gradients in float64, at the (rounded) inputs, with the terms' Σ|·|."""
    leaves = [t.double().requires_grad_() for t in (x, a, b)]
    aa = leaves[1] if leaves[1].numel() == 1 else leaves[1].view(-1, *[1] * (x.dim() - 2))
    bb = leaves[2] if leaves[2].numel() == 1 else leaves[2].view(-1, *[1] * (x.dim() - 2))
    y = apalu_reference(leaves[0], aa, bb)
    y.backward(g.double())
    xd = x.double()
    pos = xd >= 0
    s = torch.sigmoid(1.702 * xd.clamp(0, 1e4))
    ga_abs = (g.double().abs() * xd.clamp(min=0) * (1 + s)).where(pos, torch.zeros(()))
    gb_abs = (g.double() * torch.expm1(xd.clamp(max=0))).abs().where(~pos, torch.zeros(()))
    return y.detach(), leaves[0].grad, leaves[1].grad, leaves[2].grad, ga_abs, gb_abs


def _per_channel_sum(t, channels):
    return t.sum() if channels == 1 else t.transpose(0, 1).reshape(channels, -1).sum(1)


def _ulp32(w):
    e = torch.floor(torch.log2(w.abs().clamp(min=2.0**-126)))
    return torch.exp2(e - 23)


LAYOUTS = [((64, 32), 1), ((8, 4, 40, 40), 4), ((16, 32), 32), ((3, 5, 7), 5)]


@pytest.mark.parametrize("shape,channels", LAYOUTS, ids=lambda v: str(v))
def test_float32_against_float64_reference(results, shape, channels):
    cases, out = results
    name = _case_name(shape, channels, torch.float32)
    x, a, b, g = cases[name]
    assert not isinstance(out[name], str), out[name]
    y, gx, ga, gb = out[name][:4]
    want_y, want_gx, want_ga, want_gb, ga_abs, gb_abs = _reference(x, a, b, g)
    for got, want, what in ((y, want_y, "value"), (gx, want_gx, "grad x")):
        assert got.dtype == torch.float32 and got.shape == x.shape
        finite = want.abs() < 3e38
        err = (got.double() - want).abs()[finite]
        bound = (8 * _ulp32(want) + 8 * SUB)[finite]
        assert (err <= bound).all(), f"{what}: worst error {(err / bound).max():.2f} x the bound"
    assert ga.shape == a.shape and gb.shape == b.shape and ga.dtype == torch.float32
    for got, want, mag, what in ((ga, want_ga, ga_abs, "grad a"), (gb, want_gb, gb_abs, "grad b")):
        scale = _per_channel_sum(mag, channels)
        finite = scale < 1e30
        err = (got.double() - want).abs()
        assert (err[finite] <= 1e-6 * scale[finite] + 1e-30).all(), f"{what}: {err} vs {scale}"


@pytest.mark.parametrize("dtype", list(HALF), ids=str)
@pytest.mark.parametrize("shape,channels", LAYOUTS[:2], ids=lambda v: str(v))
def test_half_types_round_once(results, dtype, shape, channels):
    cases, out = results
    name = _case_name(shape, channels, dtype)
    x, a, b, g = cases[name]
    if isinstance(out[name], str):
        pytest.skip(f"Triton's interpreter does not run {dtype} here: {out[name]}")
    y, gx, ga, gb = out[name][:4]
    want_y, want_gx, want_ga, want_gb, ga_abs, gb_abs = _reference(x, a, b, g)
    rel = HALF[dtype]
    tiny = torch.finfo(dtype).tiny
    # the interpreter converts half-type subnormal inputs to float32 as 0 (a GPU keeps them):
    # those elements are left out of the elementwise check
    normal = (x.double().abs() >= tiny) | (x == 0)
    for got, want, what in ((y, want_y, "value"), (gx, want_gx, "grad x")):
        assert got.dtype == dtype
        ok = (want.abs() < torch.finfo(dtype).max) & normal
        err = (got.double() - want).abs()[ok]
        bound = (rel * want.abs() + tiny)[ok]
        assert (err <= bound).all(), f"{dtype} {what}: worst {(err / bound).max():.2f} x the bound"
    for got, want, mag in ((ga, want_ga, ga_abs), (gb, want_gb, gb_abs)):
        assert got.dtype == dtype
        scale = _per_channel_sum(mag, channels)
        ok = scale < torch.finfo(dtype).max
        assert ((got.double() - want).abs()[ok] <= (rel * scale + 1e-3)[ok]).all()


def test_autograd_wrapper_matches_backward(results):
    cases, out = results
    for name, res in out.items():
        if name in ("errors", "available") or isinstance(res, str):
            continue
        for got, want in zip(res[4:], res[1:4]):  # grads through autograd == backward()
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_bad_input_is_refused(results):
    errors = results[1]["errors"]
    assert errors["channels"].startswith("ValueError") and "channels in dim 1" in errors["channels"]
    assert errors["dtype"].startswith("TypeError") and "float32, bfloat16 or float16" in errors["dtype"]


def test_available_needs_cuda(results):
    assert results[1]["available"] == torch.cuda.is_available()
