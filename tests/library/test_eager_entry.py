"""The kernel's eager entry (apalu._ext.eager_entry, used by apalu.functional.apalu_raw and so by
every APALU module): the same values and gradients as the float64 reference with gradients, under
torch.no_grad and torch.inference_mode, scalar and per-channel; None (the general path decides)
wherever it must not run; and the module's results without it (kernel absent or switched off).
"""

from __future__ import annotations

import pytest
import torch

import apalu._ext as ext
import apalu.functional as AF
from apalu.module import APALU, MIN_VALUE

torch.set_num_threads(2)


@pytest.fixture
def entry():
    if not ext.available() or ext.eager_entry() is None:
        pytest.skip(ext.status())
    return ext.eager_entry()


@pytest.fixture
def counted(monkeypatch, entry):
    """The entry, wrapped to count the calls that it answered with a tensor."""
    calls = {"tensor": 0, "none": 0}

    def wrapped(*args):
        y = entry(*args)
        calls["tensor" if y is not None else "none"] += 1
        return y

    monkeypatch.setitem(ext._STATE, "eager", wrapped)
    return calls


def _module(channels: int, constraint: str = "softplus") -> APALU:
    m = APALU(channels, init=(0.2, 2.0), constraint=constraint,
              generator=torch.Generator().manual_seed(5))
    if constraint == "softplus":
        with torch.no_grad():
            m.a_raw[0] = 25.0  # past softplus' threshold: the identity and slope 1
    return m


def _effective(m: APALU, raw: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(raw) + MIN_VALUE if m.constraint == "softplus" else raw


def _reference(m: APALU, x: torch.Tensor, g: torch.Tensor):
    """Float64 value and gradients of (x, a_raw, b_raw)."""
    xr = x.detach().double().requires_grad_()
    ar = m.a_raw.detach().double().requires_grad_()
    br = m.b_raw.detach().double().requires_grad_()
    y = AF.apalu_reference(xr, _effective(m, ar), _effective(m, br))
    y.backward(g.double())
    return y.detach(), xr.grad, ar.grad, br.grad


def _input(shape):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(shape, generator=gen) * 3
    x.view(-1)[:4] = torch.tensor([0.0, -0.0, -1e-8, 50.0])
    return x, torch.randn(shape, generator=gen)


SHAPES = {1: [(64, 32), (3, 5, 7), (1000,)], 5: [(6, 5), (4, 5, 3, 2)], 32: [(64, 32)]}
CASES = [(c, s) for c, shapes in SHAPES.items() for s in shapes]


@pytest.mark.parametrize("constraint", ["softplus", "none"])
@pytest.mark.parametrize("channels, shape", CASES)
def test_values_and_gradients_match_the_float64_reference(counted, channels, shape, constraint):
    m = _module(channels, constraint)
    x, g = _input(shape)
    x.requires_grad_()
    y = m(x)
    y.backward(g)
    assert counted == {"tensor": 1, "none": 0}
    for got, want, what in zip((y.detach(), x.grad, m.a_raw.grad, m.b_raw.grad),
                               _reference(m, x, g), ("value", "grad x", "grad a", "grad b")):
        assert got.dtype == torch.float32 and got.shape == want.shape, what
        torch.testing.assert_close(got.double(), want, rtol=2e-5, atol=2e-5, msg=what)


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
@pytest.mark.parametrize("channels, shape", CASES)
def test_forward_only_has_no_graph_and_the_reference_values(counted, channels, shape, mode):
    m = _module(channels)
    x, g = _input(shape)
    x.requires_grad_()
    with getattr(torch, mode)():
        y = m(x)
    assert counted["tensor"] == 1
    assert y.grad_fn is None and not y.requires_grad
    assert y.is_inference() == (mode == "inference_mode")
    torch.testing.assert_close(y.double(), _reference(m, x, g)[0], rtol=2e-5, atol=2e-5)


def test_no_node_when_no_input_requires_grad(counted):
    m = _module(1).requires_grad_(False)
    y = m(torch.randn(8, 4))
    assert counted["tensor"] == 1 and y.grad_fn is None


def test_only_gradients_that_are_asked_for(counted):
    m = _module(5).requires_grad_(False)
    x = torch.randn(4, 5, requires_grad=True)
    m(x).sum().backward()
    assert x.grad is not None and m.a_raw.grad is None and m.b_raw.grad is None
    m = _module(5)
    m(torch.randn(4, 5)).sum().backward()
    assert m.a_raw.grad is not None and m.b_raw.grad is not None


@pytest.mark.parametrize("what", ["float64", "bfloat16", "2-D parameters", "noncontiguous a",
                                  "switched off", "subclass"])
def test_answers_none_where_the_general_path_decides(monkeypatch, entry, what):
    x, a, b = torch.randn(4, 3), torch.zeros(3), torch.zeros(3)
    if what == "float64":
        x = x.double()
    elif what == "bfloat16":
        x = x.bfloat16()
    elif what == "2-D parameters":
        a, b = a.view(1, 3), b.view(1, 3)
    elif what == "noncontiguous a":
        a = torch.zeros(6)[::2]
    elif what == "switched off":
        monkeypatch.setenv(ext.ENV_SWITCH, "0")
    elif what == "subclass":
        class Traced(torch.Tensor):
            @classmethod
            def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
                return func(*args, **(kwargs or {}))

        x = torch.Tensor._make_subclass(Traced, x)
    assert entry(x, a, b, AF.K, True, MIN_VALUE) is None
    assert entry(torch.randn(4, 3), torch.zeros(3), torch.zeros(3), AF.K, True, MIN_VALUE) is not None \
        or what == "switched off"


def test_none_inside_torch_func_and_traces(entry):
    a, b = torch.zeros(3), torch.zeros(3)
    seen = []

    def f(x):
        seen.append(entry(x, a, b, AF.K, True, MIN_VALUE))
        return x.sum()

    torch.func.grad(f)(torch.randn(4, 3))
    torch.jit.trace(f, (torch.randn(4, 3),), check_trace=False)
    assert seen == [None, None]


def test_functorch_and_float64_modules_still_match_the_reference(counted):
    m = _module(3)
    x, g = _input((4, 3))
    gx = torch.func.grad(lambda t: (m(t) * g).sum())(x)
    torch.testing.assert_close(gx.double(), _reference(m, x, g)[1], rtol=2e-5, atol=2e-5)
    m64 = _module(3).double()
    torch.testing.assert_close(m64(x.double()), _reference(m64, x, g)[0])
    assert counted["tensor"] == 0


@pytest.mark.parametrize("absent", ["not built", "switched off"])
@pytest.mark.parametrize("channels, shape", [(1, (64, 32)), (32, (64, 32)), (5, (6, 5, 2))])
def test_module_without_the_entry_matches_the_reference(monkeypatch, absent, channels, shape):
    if absent == "not built":  # as on a machine without a C++ compiler
        monkeypatch.setattr(ext, "_STATE", {"tried": True, "module": None, "error": "no compiler"})
        assert ext.eager_entry() is None
    else:
        monkeypatch.setenv(ext.ENV_SWITCH, "0")
    m = _module(channels)
    x, g = _input(shape)
    x.requires_grad_()
    y = m(x)
    y.backward(g)
    want = _reference(m, x, g)
    for got, w in zip((y.detach(), x.grad, m.a_raw.grad, m.b_raw.grad), want):
        torch.testing.assert_close(got.double(), w, rtol=2e-5, atol=2e-5)
    with torch.inference_mode():
        y = m(x)
    torch.testing.assert_close(y.double(), want[0], rtol=2e-5, atol=2e-5)


def test_compiled_module_does_not_call_the_entry(counted):
    m = _module(1)
    x, g = _input((8, 4))
    compiled = torch.compile(m, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x).double(), _reference(m, x, g)[0], rtol=2e-5, atol=2e-5)
    assert counted["tensor"] == 0


def test_parameters_moved_out_by_parametrize_are_found(counted):
    """The module reads a_raw, b_raw from _parameters (fast) and falls back to attributes."""
    from torch.nn.utils import parametrize

    class Halve(torch.nn.Module):
        def forward(self, raw):
            return raw / 2

    m = _module(5)
    x, g = _input((4, 5))
    want_raw = m.a_raw.detach() / 2
    parametrize.register_parametrization(m, "a_raw", Halve())
    assert "a_raw" not in m._parameters
    torch.testing.assert_close(m.a_raw, want_raw)
    torch.testing.assert_close(m(x).double(), _reference(m, x, g)[0], rtol=2e-5, atol=2e-5)
    assert counted["tensor"] == 1


def test_functional_call_reaches_the_entry_with_its_tensors(counted):
    m = _module(3)
    x, g = _input((4, 3))
    a = torch.full((3,), 0.3, requires_grad=True)
    b = torch.full((3,), -0.2, requires_grad=True)
    y = torch.func.functional_call(m, {"a_raw": a, "b_raw": b}, (x,))
    y.backward(g)
    assert counted["tensor"] == 1
    ref = APALU(3)
    with torch.no_grad():
        ref.a_raw.copy_(a)
        ref.b_raw.copy_(b)
    want = _reference(ref, x, g)
    torch.testing.assert_close(y.detach().double(), want[0], rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(a.grad.double(), want[2], rtol=2e-5, atol=2e-5)
