"""CIFAR-10 architectures and recipe, end to end on a tiny CIFAR-format fixture made here."""

from __future__ import annotations

import io
import math
import tarfile

import numpy as np
import pytest
import torch

from apalu import APALU
from apalu.lab.cifar import GoogLeNet, MobileNetV2, make_cifar_model
from apalu.lab.data import load_dataset
from apalu.lab.recipe import RELU_ANCHOR, CifarRecipe, augment, make_optimizer, train_cifar

STEMS = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _batch_bytes(n: int, rng: np.random.Generator) -> bytes:
    """``n`` records of the binary distribution: 1 label byte, 3072 pixel bytes. The label
    brightens the red plane, so a model can learn something from 60 images."""
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 128, (n, 3, 32, 32), dtype=np.uint8)
    pixels[:, 0] += (labels * 12)[:, None, None].astype(np.uint8)
    return np.concatenate([labels[:, None], pixels.reshape(n, -1)], axis=1).tobytes()


@pytest.fixture
def cifar_archive(tmp_path):
    """A cifar-10-binary.tar.gz with 10 images per batch (the real one has 10,000)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for stem in STEMS:
            data = _batch_bytes(10, rng)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{stem}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_loads_without_extracting(cifar_archive):
    for where in (cifar_archive, cifar_archive.parent):
        ds = load_dataset("cifar10", path=str(where), val_fraction=0.1)
        assert ds.input_shape == (3, 32, 32) and ds.n_outputs == 10
        assert len(ds.X_train) + len(ds.X_val) == 50 and len(ds.X_test) == 10
    assert sorted(p.name for p in cifar_archive.parent.iterdir()) == ["cifar-10-binary.tar.gz"]


def test_archive_missing_batch_or_truncated_is_refused(tmp_path):
    path = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = b"\x00" * 3073
        info = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(FileNotFoundError, match="lacks .*data_batch_2.bin"):
        load_dataset("cifar10", path=str(path))
    path.write_bytes(b"not a gzip file")
    with pytest.raises(ValueError, match="not a readable cifar-10-binary.tar.gz"):
        load_dataset("cifar10", path=str(path))


@pytest.mark.parametrize("name", ["mobilenetv2", "googlenet"])
def test_standard_size_matches_the_public_cifar_models(name):
    """Parameter counts of kuangliu/pytorch-cifar's CIFAR-10 models with ReLU (2,296,922 and
    6,166,250); its GoogLeNet's convolutions carry biases (each followed by batch norm, so
    redundant), which ours leave out: counted back in here."""
    model = make_cifar_model(name, "relu")
    n = sum(p.numel() for p in model.parameters())
    if name == "googlenet":
        n += sum(m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert n == {"mobilenetv2": 2_296_922, "googlenet": 6_166_250}[name]


@pytest.mark.parametrize("cls", [MobileNetV2, GoogLeNet])
def test_every_activation_comes_from_the_factory(cls):
    relu = cls("relu", width=0.125)
    apalu = cls("apalu", width=0.125)
    n_relu = sum(isinstance(m, torch.nn.ReLU) for m in relu.modules())
    assert n_relu > 10
    assert sum(isinstance(m, APALU) for m in apalu.modules()) == n_relu
    assert not any(isinstance(m, torch.nn.ReLU) for m in apalu.modules())


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="unknown CIFAR model 'resnet'.*googlenet, mobilenetv2"):
        make_cifar_model("resnet")


def test_augment_crops_and_flips_from_the_seed():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    assert torch.equal(augment(x, 0, False, torch.Generator().manual_seed(0)), x)
    a = augment(x, 4, True, torch.Generator().manual_seed(1))
    b = augment(x, 4, True, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    # every output row is a (possibly flipped, shifted) piece of the padded input
    padded = torch.nn.functional.pad(x, (4,) * 4)
    for i in range(2):
        found = any(torch.equal(a[i], v[i, :, dy:dy + 32, dx:dx + 32])
                    for v in (padded, padded.flip(3)) for dy in range(9) for dx in range(9))
        assert found


def test_recipe_rejects_bad_values_and_keeps_a_b_out_of_weight_decay():
    with pytest.raises(ValueError, match="epochs must be positive.*momentum must be >= 0"):
        CifarRecipe(epochs=0, momentum=-1)
    model = MobileNetV2("apalu", width=0.125)
    opt, sched = make_optimizer(model, CifarRecipe(epochs=2), steps_per_epoch=3)
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    ab = [p for m in model.modules() if isinstance(m, APALU) for p in m.parameters()]
    assert ab and not any(id(p) in decayed for p in ab)
    assert opt.param_groups[0]["weight_decay"] == 5e-4 and opt.param_groups[1]["weight_decay"] == 0
    lrs = []
    for _ in range(6):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs == sorted(lrs, reverse=True)
    assert sched.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    assert set(RELU_ANCHOR) == {"mobilenetv2", "googlenet"}


@pytest.mark.parametrize("name", ["mobilenetv2", "googlenet"])
def test_both_architectures_train_with_the_recipe_end_to_end(cifar_archive, name):
    ds = load_dataset("cifar10", path=str(cifar_archive), val_fraction=0.1)
    recipe = CifarRecipe(epochs=2, batch_size=16)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = make_cifar_model(name, "apalu", width=0.125)
        runs.append(train_cifar(model, ds.X_train, ds.y_train, ds.X_test, ds.y_test, recipe, seed=3))
    run = runs[0]
    assert [h["epoch"] for h in run.history] == [1, 2]
    assert all(math.isfinite(h["train_loss"]) for h in run.history)
    assert 0.0 <= run.test_accuracy <= 1.0 and math.isfinite(run.test_loss)
    assert run.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    # a run is a function of its seed and initial weights
    assert run.test_loss == runs[1].test_loss and run.history == runs[1].history


@pytest.mark.parametrize("name", ["mobilenetv2", "googlenet"])
def test_arms_are_paired_by_seed(name):
    """For one seed every non-activation parameter is the same whatever the activation (a and
    b are drawn from the model's own generator, never from the global RNG)."""
    def weights(act):
        torch.manual_seed(7)
        model = make_cifar_model(name, act, width=0.125)
        acts = {n for n, m in model.named_modules() if isinstance(m, (APALU, torch.nn.PReLU))}
        return {n: p for n, p in model.named_parameters() if n.rpartition(".")[0] not in acts}

    ref = weights("relu")
    for act in ("apalu", "apalu_frozen", "prelu", "gelu"):
        other = weights(act)
        assert other.keys() == ref.keys(), act
        assert all(torch.equal(other[k], ref[k]) for k in ref), act


def test_paired_cifar_runs_rows(cifar_archive):
    from apalu.lab.recipe import paired_cifar_runs

    ds = load_dataset("cifar10", path=str(cifar_archive), val_fraction=0.1)
    rows = paired_cifar_runs(ds, ["mobilenetv2"], ["apalu", "relu"], [0, 1],
                             recipe=CifarRecipe(epochs=1, batch_size=16), width=0.125)
    assert [(r["activation"], r["seed"]) for r in rows] == [("apalu", 0), ("relu", 0), ("apalu", 1),
                                                           ("relu", 1)]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
