import pytest
import torch

from apalu import APALU
from apalu.lab.data import load_dataset
from apalu.lab.models import MLP, MODELS, DeepSVDDEncoder, GRURegressor, SmallCNN, activation_params, build_model, check_model, count_parameters, variance_preserving_gain

torch.set_num_threads(1)


@pytest.mark.parametrize("act", ["apalu", "relu", "gelu", "tanh", "prelu"])
def test_mlp_depth_width(act):
    m = MLP(10, 3, width=7, depth=4, activation=act)
    assert len(m.hidden) == 4 and m(torch.randn(5, 10)).shape == (5, 3)
    assert all(l.out_features == 7 for l in m.hidden)


def test_mlp_per_channel_and_act_kwargs():
    m = MLP(4, 2, width=6, depth=2, activation="apalu", per_channel=True,
            act_kwargs={"init": {"a": 1.0, "b": 1.5}, "constraint": "none"})
    rows = activation_params(m)
    assert len(rows) == 12 and {r["layer_index"] for r in rows} == {0, 1}
    assert all(abs(r["a"] - 1.0) < 1e-6 and abs(r["b"] - 1.5) < 1e-6 for r in rows)
    assert all(a.constraint == "none" for a in m.acts)


def test_mlp_rejects_depth_zero_and_unknown_activation():
    with pytest.raises(ValueError):
        MLP(4, 2, depth=0)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(4, 2, activation="nope")


def test_gain_weight_init_preserves_variance():
    torch.manual_seed(0)
    for act in ("relu", "tanh", "apalu"):
        m = MLP(256, 1, width=256, depth=6, activation=act, weight_init="gain",
                act_kwargs={"init": {"a": 1.0, "b": 1.0}} if act == "apalu" else None)
        x = torch.randn(512, 256)
        with torch.no_grad():
            for lin, a in zip(m.hidden, m.acts):
                pre = lin(x)
                x = a(pre)
        assert 0.5 < float(pre.var()) < 2.0, act  # the last pre-activation stays near variance 1
    assert abs(variance_preserving_gain(torch.nn.ReLU()) - 2 ** 0.5) < 1e-6


def test_variance_preserving_gain_for_apalu_and_parametric_modules():
    from apalu import APALU, init_gain

    act = APALU(init="fixed:1,1.5")
    assert variance_preserving_gain(act) == pytest.approx(init_gain(1.0, 1.5), rel=1e-5)
    # PReLU at slope 0.25: E[f(z)^2] = (1 + 0.25^2) / 2
    assert variance_preserving_gain(torch.nn.PReLU()) == pytest.approx((2 / 1.0625) ** 0.5, rel=1e-6)


def test_weight_init_unknown():
    with pytest.raises(ValueError, match="weight_init"):
        MLP(4, 2, weight_init="nope")


@pytest.mark.parametrize("name", ["cnn", "resnet", "mobilenet", "inception"])
def test_image_models(name):
    ds = load_dataset("digits", n_train=20)
    m = build_model(name, ds, "apalu", width=4)
    assert m(ds.X_train[:3]).shape == (3, 10)
    assert any(isinstance(x, APALU) for x in m.modules())
    r = build_model(name, ds, "relu", width=4)
    assert not any(isinstance(x, APALU) for x in r.modules())


def test_cifar_sized_resnet():
    from apalu.lab.models import ResNetCNN

    m = ResNetCNN(3, 10, width=4, activation="gelu")
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_small_cnn_hidden_and_depth():
    m = SmallCNN(1, 10, width=4, depth=5, activation="elu", input_size=28)
    assert len(m.hidden) == 5 and m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_gru_and_deepsvdd():
    g = GRURegressor(1, 1, hidden=8, width=8, activation="apalu")
    assert g(torch.randn(4, 12, 1)).shape == (4, 1)
    e = DeepSVDDEncoder(1, rep_dim=16, activation="apalu")
    assert e(torch.randn(3, 1, 28, 28)).shape == (3, 16)
    assert all(getattr(m, "bias", None) is None for m in e.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


def test_build_model_checks():
    ds = load_dataset("diabetes")
    assert build_model("mlp", ds, "tanh", width=8)(ds.X_train[:2]).shape == (2, 1)
    with pytest.raises(ValueError, match="image input"):
        build_model("cnn", ds)
    with pytest.raises(ValueError, match="unknown model"):
        check_model("transformer")
    assert "gru" in MODELS


def test_count_parameters():
    m = MLP(3, 2, width=4, depth=1, activation="apalu")
    assert count_parameters(m) == (3 * 4 + 4) + (4 * 2 + 2) + 2


# --- paired arms: the same seed gives the same non-activation weights for every activation ---

from types import SimpleNamespace  # noqa: E402

from apalu.lab.activations import LAB_ACTIVATIONS, ScaledReLU, apalu_mean_slope  # noqa: E402
from apalu.lab.models import non_activation_parameters  # noqa: E402
from apalu.lab.training import seed_everything  # noqa: E402

_IMAGE = SimpleNamespace(name="fake-images", input_shape=(1, 8, 8), n_outputs=10, in_features=64)
_SEQ = SimpleNamespace(name="fake-sequence", input_shape=(6, 2), n_outputs=1, in_features=12)
_DS = {"mlp": _IMAGE, "cnn": _IMAGE, "resnet": _IMAGE, "mobilenet": _IMAGE, "inception": _IMAGE,
       "gru": _SEQ, "deepsvdd": _IMAGE}
_SMALL = {"mlp": {"width": 6}, "cnn": {"width": 4}, "resnet": {"width": 4}, "mobilenet": {"width": 4},
          "inception": {"width": 2}, "gru": {"hidden": 4, "width": 4}, "deepsvdd": {"width": 4}}


def _build(name, act, seed=3, **kw):
    seed_everything(seed)
    return build_model(name, _DS[name], act, **{**_SMALL[name], **kw})


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("per_channel", [False, True])
def test_every_arm_gets_the_same_non_activation_weights(name, per_channel):
    assert set(_DS) == set(MODELS)  # a new model must be added here
    ref = non_activation_parameters(_build(name, "relu", per_channel=per_channel))
    assert ref
    for act in LAB_ACTIVATIONS:
        got = non_activation_parameters(_build(name, act, per_channel=per_channel))
        assert got.keys() == ref.keys(), (name, act)
        assert all(torch.equal(got[k], ref[k]) for k in ref), (name, act)
    other = non_activation_parameters(_build(name, "relu", seed=4, per_channel=per_channel))
    assert any(not torch.equal(other[k], ref[k]) for k in ref)  # the check can fail: seeds differ


def test_apalu_draws_are_seeded_and_leave_the_global_rng_alone():
    a1 = activation_params(_build("mlp", "apalu"))
    a2 = activation_params(_build("mlp", "apalu"))
    a3 = activation_params(_build("mlp", "apalu", seed=4))
    assert a1 == a2 and a1 != a3
    assert len({(r["a"], r["b"]) for r in a1}) == len(a1)  # each layer draws its own a and b
    seed_everything(3)
    build_model("mlp", _IMAGE, "apalu", width=6)
    after_apalu = torch.rand(3)
    seed_everything(3)
    build_model("mlp", _IMAGE, "relu", width=6)
    assert torch.equal(after_apalu, torch.rand(3))


def test_gain_init_scales_the_same_draws():
    relu = _build("mlp", "relu", weight_init="gain")
    apalu = _build("mlp", "apalu", weight_init="gain")
    for lr_, la in zip(relu.hidden[1:], apalu.hidden[1:]):  # layer 0 sees the data, gain 1
        ratio = la.weight / lr_.weight
        assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4)


def test_lab_controls():
    frozen = _build("mlp", "apalu_frozen")
    assert count_parameters(frozen) == count_parameters(_build("mlp", "relu"))  # a, b not trained
    assert activation_params(frozen) == activation_params(_build("mlp", "apalu"))  # same init draws
    assert 1.5 < apalu_mean_slope() < 2.0 and apalu_mean_slope(2.0) == pytest.approx(2 * apalu_mean_slope())
    x = torch.linspace(-2, 2, 9)
    assert torch.allclose(ScaledReLU()(x), torch.relu(x) * apalu_mean_slope())
    with pytest.raises(ValueError, match="scale"):
        ScaledReLU(0.0)
    with pytest.raises(ValueError, match="unknown activation"):
        build_model("mlp", _IMAGE, "relu_scaledd")
