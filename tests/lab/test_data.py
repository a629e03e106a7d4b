import gzip
import pickle

import numpy as np
import pytest
import torch

from apalu.lab.data import DATASETS, EMBEDDED, check_dataset, load_dataset, one_class, read_idx, split_indices

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


# ------------------------------------------------------------- bad input: refused, naming the file


def _cifar_py(folder, n=6, labels=None, proto=pickle.HIGHEST_PROTOCOL):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 255, (n, 3072)).astype(np.uint8),
             b"labels": list(range(n)) if labels is None else labels, b"batch_label": b"x"}
        with open(folder / name, "wb") as fh:
            pickle.dump(d, fh, protocol=proto)
    return folder


def _cifar_bin(folder, n=5, label=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 255, (n, 3073)).astype(np.uint8)
        rec[:, 0] = np.arange(n) % 10 if label is None else label
        rec.tofile(folder / name)
    return folder


def test_cifar10_binary_loader_preferred_over_pickle(tmp_path):
    _cifar_bin(tmp_path / "cifar-10-batches-bin", n=7)
    _cifar_py(tmp_path / "cifar-10-batches-py", n=6)
    ds = load_dataset("cifar10", path=str(tmp_path))  # the binary form wins
    assert ds.input_shape == (3, 32, 32) and len(ds.X_test) == 7
    ds2 = load_dataset("cifar10", path=str(tmp_path / "cifar-10-batches-bin"))
    assert torch.equal(ds.X_test, ds2.X_test)


@pytest.mark.parametrize("proto", [0, 2, 4, 5])
def test_cifar10_pickle_protocols_load(tmp_path, proto):
    _cifar_py(tmp_path / "cifar-10-batches-py", proto=proto)
    assert len(load_dataset("cifar10", path=str(tmp_path)).X_test) == 6


class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


@pytest.mark.parametrize("how", ["os.system", "builtins.exec", "subprocess", "nested in labels"])
def test_cifar10_malicious_pickle_runs_nothing(tmp_path, how):
    import builtins
    import os
    import subprocess

    folder = _cifar_py(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    payload = {
        "os.system": _Evil(os.system, f"touch {marker}"),
        "builtins.exec": _Evil(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess": _Evil(subprocess.getoutput, f"touch {marker}"),
        "nested in labels": {b"data": np.zeros((6, 3072), np.uint8),
                             b"labels": [0, 1, _Evil(os.system, f"touch {marker}"), 3, 4, 5]},
    }[how]
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump(payload, fh, protocol=2)
    with pytest.raises(ValueError, match=r"data_batch_1: refusing to load (posix|__builtin__|commands)\."):
        load_dataset("cifar10", path=str(tmp_path))
    assert not marker.exists()


def test_cifar10_codecs_only_latin1(tmp_path):
    from apalu.lab.data import BatchUnpickler, UnsafePickleError
    import io

    # a hand-written protocol-2 stream calling _codecs.encode('abc', 'utf-16')
    blob = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x06\x00\x00\x00utf-16q\x02\x86q\x03Rq\x04."
    with pytest.raises(UnsafePickleError, match="latin-1 only"):
        BatchUnpickler(io.BytesIO(blob), source=tmp_path / "f").load()


def _bad_cifar(tmp_path, case):
    folder = _cifar_py(tmp_path / "cifar-10-batches-py")
    f = folder / "data_batch_2"
    good = f.read_bytes()
    if case == "not a pickle":
        f.write_text("hello, I am text\n")
    elif case == "truncated":
        f.write_bytes(good[: len(good) // 2])
    elif case == "empty":
        f.write_bytes(b"")
    elif case == "a list":
        f.write_bytes(pickle.dumps([np.zeros((6, 3072), np.uint8), [0] * 6]))
    elif case == "wrong shape":
        f.write_bytes(pickle.dumps({b"data": np.zeros((6, 1024), np.uint8), b"labels": [0] * 6}))
    elif case == "labels count":
        f.write_bytes(pickle.dumps({b"data": np.zeros((6, 3072), np.uint8), b"labels": [0] * 5}))
    elif case == "label 10":
        f.write_bytes(pickle.dumps({b"data": np.zeros((6, 3072), np.uint8), b"labels": [0, 1, 2, 3, 4, 10]}))
    elif case == "label -1":
        f.write_bytes(pickle.dumps({b"data": np.zeros((6, 3072), np.uint8), b"labels": [0, 1, 2, 3, 4, -1]}))
    elif case == "no data key":
        f.write_bytes(pickle.dumps({b"labels": [0] * 6}))
    return tmp_path


@pytest.mark.parametrize("case, message", [
    ("not a pickle", r"data_batch_2 is not a CIFAR-10 python batch \(not a pickle, or truncated"),
    ("truncated", r"data_batch_2 is not a CIFAR-10 python batch \((not a pickle, or )?truncated"),
    ("empty", r"data_batch_2 is not a CIFAR-10 python batch \(truncated"),
    ("a list", r"data_batch_2 holds a list; expected a dict"),
    ("wrong shape", r"data_batch_2: b'data' is a uint8 array of shape \(6, 1024\); expected a uint8 array \(N, 3072\)"),
    ("labels count", r"data_batch_2: b'labels' has 5 entries; expected a list of 6"),
    ("label 10", r"data_batch_2: label 10 \(row 5\) is outside 0..9"),
    ("label -1", r"data_batch_2: label -1 \(row 5\) is outside 0..9"),
    ("no data key", r"data_batch_2 has keys .*; expected b'data' and b'labels'"),
])
def test_cifar10_bad_python_batches(tmp_path, case, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("cifar10", path=str(_bad_cifar(tmp_path, case)))


def test_cifar10_bad_binary_batches(tmp_path):
    folder = _cifar_bin(tmp_path / "cifar-10-batches-bin")
    f = folder / "data_batch_3.bin"
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"data_batch_3.bin is 15364 bytes; expected a positive multiple of 3073"):
        load_dataset("cifar10", path=str(tmp_path))
    _cifar_bin(folder, label=10)
    with pytest.raises(ValueError, match=r"data_batch_1.bin: label 10 \(row 0\) is outside 0..9"):
        load_dataset("cifar10", path=str(tmp_path))


def _idx_folder(tmp_path, train_labels=None):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 255, (20, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(20) % 10 if train_labels is None else train_labels)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 255, (10, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(10))
    return tmp_path


def test_idx_bad_headers(tmp_path):
    f = tmp_path / "x-idx1-ubyte"
    f.write_bytes(bytes([0, 0, 8, 1, 0]))  # 5 bytes: a 1-D header needs 8
    with pytest.raises(ValueError, match=r"x-idx1-ubyte: IDX header is 5 bytes; 1 dimensions need 8"):
        read_idx(f)
    f.write_bytes(bytes([0, 0, 8, 255]) + bytes(40))
    with pytest.raises(ValueError, match=r"x-idx1-ubyte: IDX header says 255 dimensions; expected 1..4"):
        read_idx(f)
    f.write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(ValueError, match=r"header says 0 dimensions"):
        read_idx(f)
    g = tmp_path / "y-idx1-ubyte.gz"
    g.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]))  # a plain IDX file named .gz
    with pytest.raises(ValueError, match=r"y-idx1-ubyte.gz ends in .gz but is not a complete gzip file"):
        read_idx(g)
    g.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]))[:-6])  # truncated gzip
    with pytest.raises(ValueError, match=r"not a complete gzip file"):
        read_idx(g)


def test_idx_labels_out_of_range_and_mismatch(tmp_path):
    _idx_folder(tmp_path, train_labels=[3] * 19 + [10])
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: label 10 \(row 19\) is outside 0..9"):
        load_dataset("mnist", path=str(tmp_path))
    _idx_folder(tmp_path, train_labels=[1] * 19)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte holds shape \[19\]; expected \(20,\)"):
        load_dataset("mnist", path=str(tmp_path))


def _sign_folder(tmp_path, test_text=None, test_labels=None):
    import pandas as pd

    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 8)):
        t = pd.DataFrame(rng.integers(0, 255, (n, 784)), columns=[f"pixel{i}" for i in range(1, 785)])
        t.insert(0, "label", np.arange(n) % 24 if split == "train" or test_labels is None else test_labels)
        t.to_csv(tmp_path / f"sign_mnist_{split}.csv", index=False)
    if test_text is not None:
        (tmp_path / "sign_mnist_test.csv").write_text(test_text)
    return tmp_path


def _header():
    return "label," + ",".join(f"pixel{i}" for i in range(1, 785)) + "\n"


@pytest.mark.parametrize("case, message", [
    ("empty", r"sign_mnist_test.csv is empty"),
    ("header only", r"sign_mnist_test.csv has a header but no rows"),
    ("long row", r"sign_mnist_test.csv has a row with more fields than the header"),
    ("short row", r"sign_mnist_test.csv: data row 3 has missing values"),
    ("negative label", r"sign_mnist_test.csv: label -1 \(row 3\) is outside 0..25"),
    ("label 26", r"sign_mnist_test.csv: label 26 \(row 0\) is outside 0..25"),
    ("float label", r"sign_mnist_test.csv: labels should be integers"),
    ("pixel 300", r"sign_mnist_test.csv: pixel values span 0..300; expected 0..255"),
])
def test_sign_mnist_bad_csv(tmp_path, case, message):
    row = "1," + ",".join(["0"] * 784) + "\n"
    text = labels = None
    if case == "empty":
        text = ""
    elif case == "header only":
        text = _header()
    elif case == "long row":
        text = _header() + row + "1," + ",".join(["0"] * 790) + "\n"
    elif case == "short row":
        text = _header() + row + row + "1," + ",".join(["0"] * 700) + "\n"
    elif case == "negative label":
        labels = [0, 1, 2, -1, 4, 5, 6, 7]
    elif case == "label 26":
        labels = [26] * 8
    elif case == "float label":
        labels = [0.5] * 8
    elif case == "pixel 300":
        text = _header() + row + "1,300," + ",".join(["0"] * 783) + "\n"
    with pytest.raises(ValueError, match=message):
        load_dataset("sign_mnist", path=str(_sign_folder(tmp_path, text, labels)))


@pytest.mark.parametrize("subs, message", [
    (("train/good", "test/crack"), r"bottle/test has only defect images \(crack\); expected test/good"),
    (("train/good", "test/good"), r"bottle/test has only test/good; expected at least one defect folder"),
])
def test_mvtec_test_set_needs_both_classes(tmp_path, subs, message, monkeypatch):
    from PIL import Image

    cat = tmp_path / "bottle"
    for sub in subs:
        (cat / sub).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(cat / sub / f"{i:03d}.png")
    opened = []
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or pytest.fail("read an image"))
    with pytest.raises(FileNotFoundError, match=message):
        load_dataset("mvtec", path=str(tmp_path), category="bottle")
    assert not opened  # refused before reading any image


def test_no_dead_task_list():
    """``TASKS`` had no reader; a Dataset's task is documented on the class."""
    import apalu.lab.data as data

    assert not hasattr(data, "TASKS")
    assert "one_class" in data.Dataset.__doc__


# ---------------------------------------------------------------- MNIST-1D at any size


def test_mnist1d_at_any_size_keeps_validation_and_test():
    """A training set above the standard 3,600 adds generated signals; validation and test
    are the standard ones, value for value, and the standard training set is its prefix."""
    from apalu.lab.data import mnist1d_stream

    standard = load_dataset("mnist1d")
    big = load_dataset("mnist1d", n_train=5000)
    assert standard.sizes() == {"train": 3600, "val": 400, "test": 1000}
    assert big.sizes() == {"train": 5000, "val": 400, "test": 1000}
    assert torch.equal(big.X_val, standard.X_val) and torch.equal(big.X_test, standard.X_test)
    assert torch.equal(big.X_train[:3600], standard.X_train)
    assert big.meta["generated_train"] == 1400
    extra = big.X_train[3600:]
    assert abs(float(extra.mean())) < 0.1 and abs(float(extra.std()) - 1) < 0.1  # same scale
    assert set(big.y_train[3600:].tolist()) == set(range(10))
    # not a copy of the standard signals, and a larger set only adds signals (a prefix)
    assert not any(torch.equal(extra[0], row) for row in standard.X_train)
    x_small, y_small = mnist1d_stream(1400)
    x_more, y_more = mnist1d_stream(1500)
    assert np.array_equal(x_small, x_more[:1400]) and np.array_equal(y_small, y_more[:1400])
    # the seed draws the training subset; validation and test stay put
    a, b = big.subset(2000, seed=1), big.subset(2000, seed=2)
    assert not torch.equal(a.X_train, b.X_train) and torch.equal(a.X_val, b.X_val)
    with pytest.raises(ValueError, match="above the generated maximum"):
        load_dataset("mnist1d", n_train=10**7)


def test_training_pool_lists_the_sizes_a_dataset_lacks():
    from apalu.lab.data import training_pool

    digits, lacking = training_pool("digits", [50, 1000, 3600, 50_000])
    assert lacking == [3600, 50_000] and len(digits.X_train) < 3600
    mnist5k, lacking = training_pool("mnist5k", [50, 3600, 10_000])
    assert lacking == [10_000] and len(mnist5k.X_train) == 3600  # its full size
    pool, lacking = training_pool("mnist1d", [50, 4000])
    assert lacking == [] and len(pool.X_train) == 4000
    small, lacking = training_pool("mnist1d", [50, 100])  # within the standard set: as it is
    assert lacking == [] and len(small.X_train) == 3600
