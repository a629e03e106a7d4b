"""DifferNet and KD on MVTec AD (exp-mvtec): backbones from .safetensors, paired arms, the claim.

Everything runs on a tiny MVTec category made here and on random backbone weights saved to a
.safetensors file; the sizes are CPU-tiny (the paper's are the configs' defaults).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from apalu.lab.backbones import backbone, check_weights, expected_shapes, load_backbone
from apalu.lab.data import load_dataset
from apalu.lab.differnet import DifferNetConfig, Flow, config_from, run_differnet
from apalu.lab.kd import Cloner, KDConfig, run_kd
from apalu.lab.mvtec_runs import mvtec_claim, mvtec_runs, not_run_evidence
from apalu.lab.training import seed_everything

ROOT = Path(__file__).resolve().parents[2]
TINY_DIFFERNET = DifferNetConfig(image_size=64, scales=1, blocks=2, hidden=16, epochs=2, batch_size=8,
                                 n_transforms=2, n_transforms_test=2)
TINY_KD = KDConfig(image_size=32, epochs=2, batch_size=8)

# torchvision's names and shapes (torchvision.models.alexnet / vgg16, features only)
ALEXNET = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a loaded 2-core machine, more only contend (tiny tensors)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory):
    """MVTec layout: bottle/train/good (8), test/good (6), test/crack (6: a bright square)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("mvtec")
    rng = np.random.default_rng(0)
    for sub, n in (("train/good", 8), ("test/good", 6), ("test/crack", 6)):
        (root / "bottle" / sub).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(60, 120, (24, 24, 3)).astype(np.uint8)
            if "crack" in sub:
                img[6:16, 6:16] = 250
            Image.fromarray(img).save(root / "bottle" / sub / f"{i:03d}.png")
    return root


def _save(net: nn.Module, path, drop: str | None = None, reshape: str | None = None, extra: bool = True):
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if extra:  # a full torchvision file also holds the classifier: ignored
        state["classifier.1.weight"] = torch.zeros(4, 4)
    if drop:
        del state[drop]
    if reshape:
        state[reshape] = torch.zeros(2, 2)
    save_file(state, str(path))
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    return {arch: _save(backbone(arch), folder / f"{arch}.safetensors") for arch in ("alexnet", "vgg16")}


def test_state_dict_keys_are_torchvision_s():
    alex = expected_shapes("alexnet")
    assert alex == {**{f"features.{i}.weight": s for i, s in ALEXNET.items()},
                    **{f"features.{i}.bias": (s[0],) for i, s in ALEXNET.items()}}
    vgg = expected_shapes("vgg16")
    assert sorted(vgg) == sorted(f"features.{i}.{p}" for i in VGG16_CONVS for p in ("weight", "bias"))
    assert vgg["features.28.weight"] == (512, 512, 3, 3) and vgg["features.0.weight"] == (64, 3, 3, 3)


@pytest.mark.parametrize("arch", ["alexnet", "vgg16"])
def test_loaded_backbone_holds_the_file_s_weights_frozen(weights, arch):
    from safetensors.torch import load_file

    net = load_backbone(weights[arch], arch)
    stored = load_file(str(weights[arch]))
    for k, v in net.state_dict().items():
        assert torch.equal(v, stored[k]), k
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_bad_weight_files_are_refused_naming_the_problem(tmp_path, weights):
    net = backbone("alexnet")
    pth = tmp_path / "alexnet.pth"
    pth.write_bytes(b"not read")
    with pytest.raises(ValueError, match=r"alexnet_weights: .*never unpickles.*safetensors.torch import save_file"):
        check_weights(pth, "alexnet", "alexnet_weights")
    with pytest.raises(FileNotFoundError, match="alexnet_weights: .*does not exist"):
        check_weights(tmp_path / "none.safetensors", "alexnet", "alexnet_weights")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a safetensors file"):
        check_weights(corrupt, "alexnet")
    lacking = _save(net, tmp_path / "lacking.safetensors", drop="features.3.weight")
    with pytest.raises(ValueError, match=r"lacks key 'features.3.weight' \(expected shape \[192, 64, 5, 5\]\)"):
        load_backbone(lacking, "alexnet")
    shaped = _save(net, tmp_path / "shaped.safetensors", reshape="features.6.weight")
    with pytest.raises(ValueError, match=r"'features.6.weight' has shape \[2, 2\], expected \[384, 192, 3, 3\]"):
        load_backbone(shaped, "alexnet")
    with pytest.raises(ValueError, match="lacks key 'features.0.weight'"):  # VGG-16 is not AlexNet
        check_weights(_save(nn.Linear(2, 2), tmp_path / "other.safetensors", extra=False), "vgg16")


def _non_activation_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v for name, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))
            for k, v in m.state_dict().items()} | {k: v for k, v in net.named_buffers() if "perm" in k}


@pytest.mark.parametrize("build", [lambda act: Flow(32, act, blocks=2, hidden=8), lambda act: Cloner(act)],
                         ids=["differnet-flow", "kd-cloner"])
def test_arms_are_paired_identical_non_activation_weights(build):
    nets = {}
    for act in ("apalu", "relu"):
        seed_everything(3)
        nets[act] = build(act)
    a, r = (_non_activation_weights(nets[k]) for k in ("apalu", "relu"))
    assert a.keys() == r.keys() and len(a) > 4
    assert all(torch.equal(a[k], r[k]) for k in a)
    assert any(p.numel() for n, p in nets["apalu"].named_parameters() if n not in a)  # APALU's a, b exist
    seed_everything(4)
    assert not torch.equal(_non_activation_weights(build("relu"))[next(iter(a))], r[next(iter(a))])


def test_both_methods_run_end_to_end_and_the_claim_is_decided(mvtec, weights):
    runs = mvtec_runs(str(mvtec), ["bottle"], [0, 1], alexnet_weights=str(weights["alexnet"]),
                      vgg16_weights=str(weights["vgg16"]), differnet=TINY_DIFFERNET, kd=TINY_KD,
                      lr_factors=(0.5, 2.0))
    tuning = runs[runs.metric == "val_loss"]  # per arm and method, on seed 2 (no test seed)
    assert len(tuning) == 2 * 2 * 2 and set(tuning.seed) == {2} and tuning["value"].notna().all()
    for (method, act), g in tuning.groupby(["method", "activation"]):
        chosen = runs[(runs.metric == "test_auc") & (runs.method == method) & (runs.activation == act)]["lr"]
        assert set(chosen) == {g.loc[g["value"].idxmin(), "lr"]}
    auc = runs[runs.metric == "test_auc"]
    assert len(auc) == 2 * 2 * 2 and set(auc.method) == {"differnet", "kd"} and set(auc.activation) == {"apalu", "relu"}
    assert auc["value"].between(0, 1).all()
    losses = runs[runs.metric == "train_loss"]
    assert (losses.groupby(["method", "activation", "seed"]).size() == 2).all()  # one per epoch
    d, per_method, evidence = mvtec_claim(runs, scale="tiny")
    assert d.verdict == "incomplete (2 of 10 seeds)" and d.primary.n == 2
    assert [c.baseline for c in per_method] == ["relu (differnet)", "relu (kd)"]
    assert "DifferNet" in evidence and "KD" in evidence and "Holm across the two" in evidence


def test_tuning_never_uses_a_test_seed(weights):
    with pytest.raises(ValueError, match="tune_seed 1 is one of the test seeds"):
        mvtec_runs("unused", ["bottle"], [0, 1], alexnet_weights=str(weights["alexnet"]),
                   vgg16_weights=str(weights["vgg16"]), lr_factors=(0.5, 2.0), tune_seed=1)


def test_single_method_drivers_take_a_dataset(mvtec, weights):
    ds = load_dataset("mvtec", path=str(mvtec), category="bottle", image_size=32)
    res = run_kd(ds, load_backbone(weights["vgg16"], "vgg16"), "apalu", 0, TINY_KD)
    assert 0 <= res.auc <= 1 and len(res.losses) == TINY_KD.epochs and len(res.scores) == len(ds.X_test)
    with pytest.raises(ValueError, match="image_size=64"):
        run_differnet(ds, backbone("alexnet"), "relu", 0, TINY_DIFFERNET)


def test_claim_averages_methods_and_categories_within_seed_and_holms_the_methods():
    rng = np.random.default_rng(1)
    rows = []
    for method, gain in (("differnet", 0.03), ("kd", 0.0)):
        for cat in ("bottle", "cable"):
            for seed in range(10):
                base = 0.8 + rng.normal(0, 0.01)
                rows += [{"method": method, "category": cat, "activation": "relu", "seed": seed, "metric": "test_auc",
                          "value": base},
                         {"method": method, "category": cat, "activation": "apalu", "seed": seed,
                          "metric": "test_auc", "value": base + gain + rng.normal(0, 0.002)}]
    d, per_method, _ = mvtec_claim(pd.DataFrame(rows), scale="synthetic")
    assert d.verdict == "supported" and d.primary.effect == pytest.approx(1.5, abs=0.1)  # (3 + 0) / 2 pp
    assert d.protocol.claimed_effect == pytest.approx((1.81 + 1.11) / 2)  # the paper's two, averaged
    assert per_method[0].effect == pytest.approx(3.0, abs=0.1) and per_method[0].p_adjusted < 0.05
    assert abs(per_method[1].effect) < 0.2 and per_method[1].p_adjusted >= per_method[1].p


def test_sizes_overrides_name_the_parameter():
    assert config_from(DifferNetConfig, {"epochs": 3}, "differnet_sizes").epochs == 3
    with pytest.raises(ValueError, match="parameter 'differnet_sizes': unknown key.*'epoch'"):
        config_from(DifferNetConfig, {"epoch": 3}, "differnet_sizes")
    with pytest.raises(ValueError, match="parameter 'kd_sizes': KD epochs"):
        config_from(KDConfig, {"epochs": 0}, "kd_sizes")
    with pytest.raises(ValueError, match="below AlexNet's minimum"):
        DifferNetConfig(image_size=64, scales=2)


def test_not_run_evidence_gives_the_command():
    text = not_run_evidence("papermill notebooks/exp_paper.ipynb out.ipynb", "", None, None)
    assert ("-p mvtec_path <folder> -p alexnet_weights <file> -p vgg16_weights <file>" in text
            and "not given: mvtec_path, alexnet_weights, vgg16_weights" in text)


def test_the_notebook_decides_exp_mvtec_from_the_weights_and_the_data(mvtec, weights, tmp_path):
    """papermill at tiny sizes on the fixture: the exp-mvtec row comes from DifferNet and KD
    (written to the run's own ledger folder; nothing tracked changes)."""
    import yaml

    params = {"seeds": [0, 1], "cls_activations": ["apalu", "relu"], "cls_n_train": 100, "cls_lrs": [0.003],
              "oc_classes": [0, 1], "oc_seeds": [0], "oc_epochs": 1, "oc_n_test": 50, "oc_n_val": 20,
              "reg_epochs": 1, "gru_epochs": 1, "reg_lrs": [0.01], "cifar_epochs": 1, "device": "cpu",
              "mvtec_path": str(mvtec), "alexnet_weights": str(weights["alexnet"]),
              "vgg16_weights": str(weights["vgg16"]), "output_dir": str(tmp_path / "out"),
              "differnet_sizes": {k: getattr(TINY_DIFFERNET, k) for k in ("image_size", "scales", "blocks",
                                                                           "hidden", "epochs", "n_transforms",
                                                                           "n_transforms_test")},
              "kd_sizes": {"image_size": TINY_KD.image_size, "epochs": TINY_KD.epochs}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    ledger = sorted((ROOT / "data" / "ledger").glob("*.json"))
    before = {p: p.read_bytes() for p in ledger}
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "exp_paper.ipynb"),
                          str(tmp_path / "out.ipynb"), "-k", "python3", "--cwd", str(ROOT / "notebooks"),
                          "--no-progress-bar", "-f", str(tmp_path / "params.yaml")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "ledger" / "exp-mvtec.json").read_text())
    assert record["verdict"] == "incomplete (2 of 10 seeds)" and record["n_seeds"] == 2
    assert record["primary"].startswith("APALU − ReLU, test AUROC") and "KD (32 px" in record["evidence"]
    assert {p: p.read_bytes() for p in ledger} == before
