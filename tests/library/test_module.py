"""The APALU module: parameters, constraints, init, serialization, and the helpers around it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import apalu
from apalu import APALU, make_activation, param_groups, parse_init, replace_activations
from apalu.functional import apalu as apalu_fn

torch.set_num_threads(1)


@pytest.mark.parametrize("constraint", ["softplus", "none"])
@pytest.mark.parametrize("num_parameters", [1, 4])
def test_gradcheck_through_module_parameters(constraint, num_parameters):
    g = torch.Generator().manual_seed(1)
    m = APALU(num_parameters, init=(0.5, 1.5), constraint=constraint, generator=g, dtype=torch.float64)
    x = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_()  # stay off the kink at 0

    def f(x, a_raw, b_raw):
        return torch.func.functional_call(m, {"a_raw": a_raw, "b_raw": b_raw}, (x,))

    inputs = (x, m.a_raw.detach().clone().requires_grad_(), m.b_raw.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def test_effective_values_follow_init_and_shape():
    m = APALU(5, init={"a": 0.7, "b": 1.3})
    assert m.a.shape == (5,) and m.b.shape == (5,)
    torch.testing.assert_close(m.a, torch.full((5,), 0.7), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.b, torch.full((5,), 1.3), rtol=1e-5, atol=1e-6)
    none = APALU(5, init={"a": 0.7, "b": 1.3}, constraint="none")
    torch.testing.assert_close(none.a, torch.full((5,), 0.7))


def test_uniform_init_is_independent_and_in_range():
    m = APALU(4000, init=(0.0, 2.0), generator=torch.Generator().manual_seed(0))
    a, b = m.a.detach(), m.b.detach()
    assert 0 < a.min() and a.max() < 2 and 0 < b.min() and b.max() < 2
    assert abs(a.mean().item() - 1.0) < 0.05 and abs(b.mean().item() - 1.0) < 0.05
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.06


def test_c1_init_ties_b_to_three_halves_a():
    m = APALU(8, init="c1:0,2", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(m.b, 1.5 * m.a, rtol=1e-5, atol=1e-5)


def test_seeded_generator_reproduces_init():
    m1 = APALU(3, generator=torch.Generator().manual_seed(7))
    m2 = APALU(3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(m1.a, m2.a)


def test_forward_matches_functional_per_channel():
    m = APALU(3, init=(0.5, 1.5))
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(m(x), apalu_fn(x, m.a, m.b))


@pytest.mark.parametrize("constraint,stays_positive", [("softplus", True), ("none", False)])
def test_positivity_under_huge_learning_rate(constraint, stays_positive):
    torch.manual_seed(0)
    m = APALU(4, init=(0.5, 1.5), constraint=constraint)
    opt = torch.optim.SGD(m.parameters(), lr=1e6)
    x = torch.randn(64, 4)
    for _ in range(5):
        opt.zero_grad()
        m(x).sum().backward()  # pushes a and b down hard: d(sum f)/da, /db have fixed signs
        opt.step()
    positive = bool((m.a > 0).all() and (m.b > 0).all())
    assert positive == stays_positive
    if stays_positive:
        assert torch.isfinite(m(x)).all()


def test_state_dict_round_trip():
    m = APALU(6, init=(0.0, 2.0), generator=torch.Generator().manual_seed(3))
    copy = APALU(6, init={"a": 1.0, "b": 1.0})
    copy.load_state_dict(m.state_dict())
    x = torch.randn(2, 6)
    torch.testing.assert_close(copy(x), m(x))
    assert set(m.state_dict()) == {"a_raw", "b_raw"}


def test_extra_repr_and_dtype_device():
    m = APALU(2, init="fixed:1,1.5", constraint="none", dtype=torch.float64, device="cpu")
    assert "num_parameters=2" in repr(m) and "fixed:1,1.5" in repr(m) and "'none'" in repr(m)
    assert m.a_raw.dtype == torch.float64


def test_extra_repr_shows_every_option():
    assert repr(APALU()) == "APALU(num_parameters=1, init='0,2', constraint='softplus', compile=False, inplace=False)"
    m = APALU(3, init="c1:0,2", constraint="none", compile=True, inplace=True)
    assert m.extra_repr() == "num_parameters=3, init='c1:0,2', constraint='none', compile=True, inplace=True"


def test_signature_ends_with_device_and_dtype_like_prelu():
    import inspect

    names = list(inspect.signature(APALU).parameters)
    assert names[-2:] == ["device", "dtype"] == list(inspect.signature(nn.PReLU).parameters)[-2:]
    assert names[:2] == ["num_parameters", "init"]
    assert {"compile", "inplace", "constraint", "generator"} <= set(names)


def test_compile_keyword_does_not_shadow_module_compile():
    m = APALU(2, init={"a": 1.1, "b": 0.9}, compile=True)
    assert m.use_compiled is True and APALU().use_compiled is False
    assert callable(m.compile)  # nn.Module.compile, not the stored switch
    eager = APALU(2, init={"a": 1.1, "b": 0.9})
    x = torch.randn(3, 2, 4)
    want = eager(x)
    eager.compile(backend="eager")  # raised "'bool' object is not callable" when the switch shadowed it
    torch.testing.assert_close(eager(x), want)


def test_old_pickles_with_a_compile_attribute_still_load():
    m = APALU(2, init={"a": 1.0, "b": 1.0})
    state = m.__getstate__() if hasattr(m, "__getstate__") else dict(m.__dict__)
    state = dict(state)
    state["compile"] = state.pop("use_compiled")
    state.pop("inplace")
    old = APALU.__new__(APALU)
    old.__setstate__(state)
    assert old.use_compiled is False and old.inplace is False and callable(old.compile)
    x = torch.randn(4, 2)
    torch.testing.assert_close(old(x), m(x))


@pytest.mark.parametrize("num_parameters", [1, 3])
def test_inplace_is_accepted_and_changes_nothing(num_parameters):
    """torchvision's Conv2dNormActivation and timm build ``activation_layer(inplace=True)``."""
    kw = dict(init={"a": 0.8, "b": 1.3})
    x = torch.randn(2, 3, 5)
    x_before = x.clone()
    y_in = APALU(num_parameters, inplace=True, **kw)(x)
    y_out = APALU(num_parameters, **kw)(x)
    torch.testing.assert_close(x, x_before, rtol=0, atol=0)  # the input is left alone
    torch.testing.assert_close(y_in, y_out, rtol=0, atol=0)
    assert make_activation("apalu", inplace=True).inplace is True


def test_docstring_has_math_shapes_and_example():
    doc = APALU.__doc__
    for part in (".. math::", "Shape:", "Example::", ">>> m = APALU(", "inplace:", "compile:", "device, dtype:"):
        assert part in doc, part


def test_docstring_examples_run():
    import doctest

    import apalu.module

    result = doctest.testmod(apalu.module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_parameters": 0}, "num_parameters"),
        ({"constraint": "clamp"}, "unknown APALU constraint 'clamp'"),
        ({"init": (2.0, 1.0)}, "low < high"),
        ({"init": "fixed:1,-1"}, "b > 0"),
        ({"init": "beta:0,1"}, "unknown kind 'beta'"),
        ({"init": "0,1,2"}, "two comma-separated numbers"),
        ({"init": {"a": 1.0}}, "keys 'a' and 'b'"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        APALU(**kwargs)


def test_parse_init_round_trips_through_str():
    for spec in ["0,2", "fixed:1,1.5", "c1:0,2", "0.5,5"]:
        assert str(parse_init(spec)) == spec


def test_make_activation_every_name():
    x = torch.randn(4, 3)
    for name in apalu.ACTIVATIONS:
        layer = make_activation(name)
        assert isinstance(layer, nn.Module) and layer(x).shape == x.shape
    assert make_activation("gelu_tanh").approximate == "tanh"
    assert make_activation("apalu", num_parameters=3, init="fixed:1,2").b.shape == (3,)


def test_unknown_activation_lists_known_names():
    with pytest.raises(ValueError, match="unknown activation 'relux'.*apalu.*relu"):
        make_activation("relux")


def test_replace_activations_at_any_depth():
    shared = nn.ReLU()
    model = nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(),
        nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.ModuleList([nn.Tanh(), nn.Dropout()])),
        nn.ModuleDict({"act": nn.SiLU(), "norm": nn.LayerNorm(8)}),
        shared, nn.Linear(8, 8), shared,
    )
    n = replace_activations(model, "apalu", init="fixed:1,1")
    assert n == 6
    kinds = [type(m) for m in model.modules()]
    assert not any(k in kinds for k in (nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU))
    assert kinds.count(nn.Dropout) == 1 and kinds.count(nn.LayerNorm) == 1 and kinds.count(nn.Linear) == 3
    assert model[4] is model[6] and isinstance(model[4], APALU)  # sharing kept
    assert model[1] is not model[2][1]  # independent parameters elsewhere


def test_replace_activations_rejects_unknown_name_before_touching_model():
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(ValueError, match="unknown activation"):
        replace_activations(model, "nope")
    assert isinstance(model[0], nn.ReLU)


def test_param_groups_exempt_apalu_bias_and_norm():
    model = nn.Sequential(nn.Linear(4, 8), APALU(8), nn.BatchNorm1d(8), nn.PReLU(), nn.Linear(8, 2))
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == {id(model[0].weight), id(model[4].weight)}
    assert ids(model[1].parameters()) <= ids(no_decay["params"])
    assert id(model[3].weight) in ids(no_decay["params"])
    n_total = len(list(model.parameters()))
    assert len(decay["params"]) + len(no_decay["params"]) == n_total
    torch.optim.AdamW([decay, no_decay], lr=1e-3)  # accepted by an optimizer
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(model, -1.0)
