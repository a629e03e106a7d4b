"""One registry style for activations, datasets and models, and the activation registry as the
one place that says which activations are per-channel and which are exempt from weight decay."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import apalu
from apalu import optim, registry
from apalu.lab import data, models
from apalu.registry import ACTIVATIONS, ActivationInfo, Registry

KINDS = [
    ("activation", ACTIVATIONS, registry.check_activation),
    ("dataset", data.DATASETS, data.check_dataset),
    ("model", models.MODELS, models.check_model),
]


@pytest.mark.parametrize("kind,reg,check", KINDS, ids=[k[0] for k in KINDS])
def test_every_kind_is_a_registry_with_one_error_format(kind, reg, check):
    assert isinstance(reg, Registry) and reg.kind == kind
    assert all(callable(reg[name]) for name in reg)
    first = next(iter(reg))
    assert check(first) == first
    want = f"unknown {kind} 'nope'; known: {', '.join(sorted(reg))}"
    for bad in ("nope", ["nope"]):
        with pytest.raises(ValueError) as err:
            check(bad)
        assert str(err.value) == want.replace("'nope'", repr(bad))


def test_make_functions_go_through_the_registries():
    assert isinstance(apalu.make_activation("silu"), nn.SiLU)
    assert isinstance(ACTIVATIONS["relu"](), nn.ReLU)  # entries are builders
    ds = data.make_dataset("digits", n_train=20)
    assert data.make_dataset is data.load_dataset and ds.sizes()["train"] == 20
    assert models.build_model is models.make_model
    net = models.make_model("mlp", ds, "relu", width=4)
    assert isinstance(net, models.MLP) and net(ds.X_train[:2]).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown model 'vit'; known: cnn, deepsvdd"):
        models.make_model("vit", ds)


def test_dataset_names_are_embedded_then_path():
    assert tuple(data.DATASETS) == data.EMBEDDED + data.PATH_DATASETS
    assert set(data.PATH_DATASETS) <= set(data.DATASETS)


def test_public_activation_names_keep_working():
    assert "apalu" in apalu.ACTIVATIONS and apalu.check_activation("gelu_tanh") == "gelu_tanh"
    assert apalu.make_activation("gelu_tanh").approximate == "tanh"
    assert ACTIVATIONS["gelu_tanh"].module_type is nn.GELU
    assert registry.per_channel_activations() == ("apalu", "prelu")
    assert registry.no_decay_types() == (apalu.APALU, nn.PReLU)
    assert set(registry.ACTIVATION_TYPES) >= {info.module_type for info in ACTIVATIONS.values()}


class _Scaled(nn.Module):
    """A made-up activation with a 2-D parameter (so the dim < 2 rule does not exempt it)."""

    def __init__(self, num_parameters: int = 1):
        super().__init__()
        self.w = nn.Parameter(torch.ones(num_parameters, 1))

    def forward(self, x):
        return x * self.w[:, 0]


@pytest.mark.parametrize("no_decay", [True, False])
def test_param_groups_follow_the_registrys_no_decay(monkeypatch, no_decay):
    monkeypatch.setitem(ACTIVATIONS._entries, "scaled", ActivationInfo(_Scaled, per_channel=True, no_decay=no_decay))
    net = models.MLP(3, 2, width=4, depth=2, activation="scaled", per_channel=True)
    assert [a.w.shape for a in net.acts] == [(4, 1), (4, 1)]  # per_channel from the registry too
    decay, exempt = optim.param_groups(net, 0.1)
    act_ids = {id(a.w) for a in net.acts}
    assert (act_ids <= {id(p) for p in exempt["params"]}) == no_decay
    assert (act_ids <= {id(p) for p in decay["params"]}) == (not no_decay)


def test_per_channel_comes_from_the_registry(monkeypatch):
    assert models.MLP(3, 2, width=5, depth=1, activation="prelu", per_channel=True).acts[0].weight.shape == (5,)
    monkeypatch.setitem(ACTIVATIONS._entries, "prelu", ActivationInfo(nn.PReLU, per_channel=False, no_decay=True))
    assert models.MLP(3, 2, width=5, depth=1, activation="prelu", per_channel=True).acts[0].weight.shape == (1,)
    # an activation without the flag never gets num_parameters
    assert isinstance(models.MLP(3, 2, width=5, depth=1, activation="relu", per_channel=True).acts[0], nn.ReLU)


def test_param_groups_unchanged_for_the_stock_activations():
    net = nn.Sequential(nn.Linear(3, 4), apalu.APALU(4), nn.Linear(4, 4), nn.PReLU(4), nn.BatchNorm1d(4),
                        nn.Linear(4, 2, bias=False))
    decay, exempt = optim.param_groups(net, 0.05)
    assert [p.shape for p in decay["params"]] == [(4, 3), (4, 4), (2, 4)]
    assert len(exempt["params"]) == 2 + 2 + 1 + 2 and exempt["weight_decay"] == 0.0
