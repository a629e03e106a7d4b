import gzip
import pickle

import numpy as np
import pytest
import torch

from apalu.data import DATASETS, EMBEDDED, check_dataset, load_dataset, one_class, read_idx, split_indices

torch.set_num_threads(1)


def test_split_indices_deterministic_disjoint_complete():
    a = split_indices(100, (0.2, 0.8), seed=3)
    b = split_indices(100, (0.2, 0.8), seed=3)
    c = split_indices(100, (0.2, 0.8), seed=4)
    assert [list(x) for x in a] == [list(x) for x in b]
    assert list(a[0]) != list(c[0])
    assert sorted(np.concatenate(a)) == list(range(100)) and len(a[0]) == 20


def test_split_indices_rejects_bad_fractions():
    with pytest.raises(ValueError):
        split_indices(10, (0.8, 0.8), 0)


@pytest.mark.parametrize("name", ["digits", "diabetes", "stocks"])
def test_embedded_small(name):
    ds = load_dataset(name, seed=1)
    assert len(ds.X_train) and len(ds.X_val) and len(ds.X_test)
    assert ds.X_train.dtype == torch.float32
    assert torch.isfinite(ds.X_train).all()
    if ds.task == "classification":
        assert ds.y_train.dtype == torch.int64 and int(ds.y_train.max()) < ds.n_outputs
    else:
        assert ds.y_train.shape[1] == ds.n_outputs


def test_mnist5k_and_mnist1d_shapes():
    m = load_dataset("mnist5k", n_train=100)
    assert m.input_shape == (1, 28, 28) and len(m.X_train) == 100 and m.n_outputs == 10
    assert sum(m.sizes().values()) <= 5000
    d = load_dataset("mnist1d", n_train=50)
    assert d.input_shape == (1, 40)


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = (load_dataset("digits", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.X_train, c.X_train)


def test_train_and_test_disjoint_digits():
    ds = load_dataset("digits", seed=0)
    tr = {tuple(r) for r in ds.X_train.flatten(1).numpy().round(4)}
    te = [tuple(r) for r in ds.X_test.flatten(1).numpy().round(4)]
    # sklearn's digits has a few duplicate images; overlap must be tiny, not a leak of the split
    assert sum(r in tr for r in te) < 0.02 * len(te)


def test_stocks_split_by_time_and_window():
    ds = load_dataset("stocks", window=6)
    assert ds.input_shape == (6, 1)
    with pytest.raises(ValueError, match="window"):
        load_dataset("stocks", window=0)


def test_unknown_and_bad_sizes():
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("digits", n_train=-5)
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("digits", n_train=10**6)
    assert check_dataset("digits") == "digits" and set(EMBEDDED) < set(DATASETS)


def test_subset_deterministic():
    ds = load_dataset("digits")
    assert torch.equal(ds.subset(30, seed=2).X_train, ds.subset(30, seed=2).X_train)
    assert len(ds.subset(30).X_train) == 30
    with pytest.raises(ValueError):
        ds.subset(0)


def test_one_class():
    ds = load_dataset("digits")
    oc = one_class(ds, 3)
    assert oc.task == "one_class" and len(oc.X_train) == int((ds.y_train == 3).sum())
    assert set(oc.y_test.tolist()) == {0, 1}
    assert int((oc.y_test == 0).sum()) == int((ds.y_test == 3).sum())
    with pytest.raises(ValueError):
        one_class(ds, 10)


# ------------------------------------------------------------- path datasets, with tiny fakes


def _write_idx(path, arr, gz=False):
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_idx_roundtrip_and_loader(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (40, 28, 28)), gz=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(40) % 10, gz=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 255, (10, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(10))
    assert read_idx(tmp_path / "t10k-labels-idx1-ubyte").tolist() == list(range(10))
    ds = load_dataset("fashion_mnist", path=str(tmp_path))
    assert ds.input_shape == (1, 28, 28) and len(ds.X_test) == 10 and len(ds.X_train) + len(ds.X_val) == 40


def test_idx_errors(tmp_path):
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("mnist")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_dataset("mnist", path=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", path=str(tmp_path))
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")


def test_cifar10_loader(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 255, (6, 3072)).astype(np.uint8), b"labels": list(range(6))}
        pickle.dump(d, open(folder / name, "wb"))
    ds = load_dataset("cifar10", path=str(tmp_path))
    assert ds.input_shape == (3, 32, 32) and len(ds.X_test) == 6
    (folder / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="test_batch"):
        load_dataset("cifar10", path=str(folder))


def test_sign_mnist_loader(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 8)):
        t = pd.DataFrame(rng.integers(0, 255, (n, 784)), columns=[f"pixel{i}" for i in range(1, 785)])
        t.insert(0, "label", np.arange(n) % 24)
        t.to_csv(tmp_path / f"sign_mnist_{split}.csv", index=False)
    ds = load_dataset("sign_mnist", path=str(tmp_path))
    assert ds.n_outputs == 24 and len(ds.X_test) == 8
    pd.DataFrame({"label": [1], "x": [2]}).to_csv(tmp_path / "sign_mnist_test.csv", index=False)
    with pytest.raises(ValueError, match="784 pixel"):
        load_dataset("sign_mnist", path=str(tmp_path))


def test_mvtec_loader(tmp_path):
    from PIL import Image

    cat = tmp_path / "bottle"
    for sub, n in (("train/good", 4), ("test/good", 3), ("test/crack", 3)):
        (cat / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((20, 20, 3), i * 40, np.uint8)).save(cat / sub / f"{i:03d}.png")
    ds = load_dataset("mvtec", path=str(tmp_path), category="bottle", image_size=16)
    assert ds.task == "one_class" and ds.input_shape == (3, 16, 16) and len(ds.X_train) == 4
    assert set(torch.cat([ds.y_val, ds.y_test]).tolist()) == {0, 1}
    with pytest.raises(FileNotFoundError, match="train/good"):
        load_dataset("mvtec", path=str(tmp_path), category="cable")
