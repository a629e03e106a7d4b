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
