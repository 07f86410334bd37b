"""Datasets as tensors: scikit-learn digits, MNIST, Fashion-MNIST, CIFAR-10 and image folders.

Every loader returns :class:`Splits` of :class:`TensorSplit` (``X`` float32 in [0, 1], shape (N, C, H, W);
``y`` int64, shape (N,)), small enough to live on the device whole (see ``common.batches``).

Real files are read from ``$DLHW_DATA`` in torchvision's layout::

    $DLHW_DATA/MNIST/raw/train-images-idx3-ubyte.gz        (or the uncompressed file)
    $DLHW_DATA/FashionMNIST/raw/...
    $DLHW_DATA/cifar-10-batches-py/data_batch_1 ... test_batch

Missing data is an error that names the folder searched, the variable to set and the download switch;
nothing is ever replaced by fake data. Digits ship with scikit-learn, so they always load.
"""
from __future__ import annotations

import gzip
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import CorruptDataError, DataError, DataNotFoundError
from .config import DATA_ENV, DOWNLOAD_ENV, cache_dir, data_root, download_allowed

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class TensorSplit:
    """One split held as tensors. ``X``: (N, C, H, W) float32 in [0, 1]; ``y``: (N,) int64."""

    X: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    name: str = ""

    def __post_init__(self):
        if self.X.shape[0] != self.y.shape[0]:
            raise ValueError(f"X has {self.X.shape[0]} rows but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def take(self, indices: torch.Tensor | Sequence[int]) -> "TensorSplit":
        indices = torch.as_tensor(indices, dtype=torch.long)
        return TensorSplit(self.X[indices], self.y[indices], self.classes, self.name)

    def head(self, n: int | None, seed: int = 0) -> "TensorSplit":
        """A class-stratified random subset of ``n`` samples (the whole split when ``n`` is None or too big)."""
        if n is None or n >= len(self):
            return self
        return self.take(stratified_indices(self.y, n, seed))

    def to(self, device) -> "TensorSplit":
        return TensorSplit(self.X.to(device), self.y.to(device), self.classes, self.name)


@dataclass(frozen=True)
class Splits:
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.X.shape[1:])

    def summary(self) -> str:
        shape = "x".join(str(s) for s in self.input_shape)
        return (f"{self.train.name}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)} "
                f"images of {shape}, {len(self.classes)} classes")


def stratified_indices(y: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` indices drawn without replacement, each class represented in proportion to its frequency."""
    generator = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(y, return_counts=True)
    quota = torch.floor(counts.double() * n / len(y)).long()
    # hand the remainder to the largest classes so the total is exactly n
    for i in torch.argsort(counts, descending=True)[: n - int(quota.sum())]:
        quota[i] += 1
    picks = []
    for cls, k in zip(classes, quota):
        members = torch.nonzero(y == cls).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:k]])
    out = torch.cat(picks)
    return out[torch.randperm(len(out), generator=generator)]


def split_off(split: TensorSplit, fraction: float, seed: int = 0) -> tuple[TensorSplit, TensorSplit]:
    """Carve a stratified ``fraction`` of ``split`` into a second split (e.g. validation out of train)."""
    if not 0.0 < fraction <= 0.5:
        raise ValueError(f"fraction must be in (0, 0.5], got {fraction}")
    n_out = max(1, int(round(fraction * len(split))))
    out = stratified_indices(split.y, n_out, seed)
    keep = torch.ones(len(split), dtype=torch.bool)
    keep[out] = False
    return split.take(torch.nonzero(keep).flatten()), split.take(out)


# ---------------------------------------------------------------------------------------------- readers
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not, checking magic number and size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise CorruptDataError(f"{path} cannot be read ({err}); the file is probably truncated. "
                               f"Delete it and copy or download it again.") from err
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptDataError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    header = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise CorruptDataError(f"{path} holds {len(raw) - header} bytes of data but its header promises "
                               f"{expected} ({dims}); the file is truncated or corrupt. Replace it.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _missing(what: str, searched: Path | None, expected: str, downloadable: bool = True) -> DataNotFoundError:
    where = f"in {searched}" if searched else f"because ${DATA_ENV} is not set"
    how = (f" Set {DATA_ENV} to the folder that holds {expected}"
           + (f", or set {DOWNLOAD_ENV}=1 (needs internet) to let torchvision download it." if downloadable else "."))
    return DataNotFoundError(f"{what} not found {where}.{how}")


def _find_raw(root: Path | None, folder: str, stem: str) -> Path | None:
    if root is None:
        return None
    for candidate in (root / folder / "raw" / f"{stem}.gz", root / folder / "raw" / stem):
        if candidate.exists():
            return candidate
    return None


def _idx_dataset(name: str, folder: str, classes: tuple[str, ...], tv_class: str,
                 root: Path | None) -> tuple[TensorSplit, TensorSplit]:
    stems = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    paths = {key: [_find_raw(root, folder, s) for s in pair] for key, pair in stems.items()}
    if any(p is None for pair in paths.values() for p in pair) and download_allowed():
        import torchvision.datasets as tvd

        target = root if root is not None and _writable(root) else cache_dir("data")
        for train in (True, False):
            getattr(tvd, tv_class)(str(target), train=train, download=True)
        root = target
        paths = {key: [_find_raw(root, folder, s) for s in pair] for key, pair in stems.items()}
    for key, pair in paths.items():
        for stem, path in zip(stems[key], pair):
            if path is None:
                raise _missing(f"{name} file {folder}/raw/{stem}(.gz)", root, f"{folder}/raw/")
    out = []
    for key, (images_path, labels_path) in paths.items():
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise CorruptDataError(f"{images_path} and {labels_path} do not form an image/label pair "
                                   f"(shapes {images.shape} and {labels.shape}).")
        X = torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0)
        out.append(TensorSplit(X, torch.from_numpy(labels.astype(np.int64)), classes, name))
    return out[0], out[1]


def _writable(path: Path) -> bool:
    import os

    return path.exists() and os.access(path, os.W_OK)


def _cifar10(root: Path | None) -> tuple[TensorSplit, TensorSplit]:
    folder = root / "cifar-10-batches-py" if root is not None else None
    if (folder is None or not folder.exists()) and download_allowed():
        import torchvision.datasets as tvd

        target = root if root is not None and _writable(root) else cache_dir("data")
        tvd.CIFAR10(str(target), train=True, download=True)
        folder = target / "cifar-10-batches-py"
    if folder is None or not folder.exists():
        raise _missing("CIFAR-10 (folder cifar-10-batches-py)", root, "cifar-10-batches-py/")

    def load(names):
        xs, ys = [], []
        for name in names:
            path = folder / name
            if not path.exists():
                raise _missing(f"CIFAR-10 batch {name}", folder, "the complete cifar-10-batches-py/")
            try:
                with open(path, "rb") as fh:
                    batch = pickle.load(fh, encoding="latin1")
                data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            except Exception as err:  # pickle raises many types on truncation
                raise CorruptDataError(f"{path} is not a readable CIFAR-10 batch ({type(err).__name__}: {err}); "
                                       f"it is probably truncated. Replace it.") from err
            xs.append(data)
            ys.append(np.asarray(batch["labels"], dtype=np.int64))
        X = torch.from_numpy(np.concatenate(xs)).float().div_(255.0)
        return TensorSplit(X, torch.from_numpy(np.concatenate(ys)), CIFAR10_CLASSES, "cifar10")

    return load([f"data_batch_{i}" for i in range(1, 6)]), load(["test_batch"])


def _digits(seed: int) -> tuple[TensorSplit, TensorSplit]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    X = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=0.2, stratify=bunch.target,
                                           random_state=seed)
    full = TensorSplit(X, y, MNIST_CLASSES, "digits")
    return full.take(train_idx), full.take(test_idx)


def load_dataset(name: str, *, root: str | Path | None = None, val_fraction: float = 0.1, seed: int = 0,
                 limit_train: int | None = None, limit_test: int | None = None) -> Splits:
    """Load ``name`` (one of :data:`DATASETS`) as train/val/test tensors.

    ``root`` defaults to ``$DLHW_DATA``. Validation is a stratified ``val_fraction`` of the official training
    split (seeded); ``limit_*`` take stratified subsets (the quick profile's small real data).
    """
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    root_path = Path(root).expanduser().resolve() if root is not None else data_root()
    if root_path is not None and not root_path.is_dir() and key != "digits":
        raise DataNotFoundError(f"data root {root_path} does not exist or is not a folder. "
                                f"Fix {DATA_ENV} (or the root argument) to name the datasets folder.")
    if key == "digits":
        train, test = _digits(seed)
    elif key == "mnist":
        train, test = _idx_dataset("MNIST", "MNIST", MNIST_CLASSES, "MNIST", root_path)
    elif key == "fashion_mnist":
        train, test = _idx_dataset("Fashion-MNIST", "FashionMNIST", FASHION_MNIST_CLASSES, "FashionMNIST",
                                   root_path)
    else:
        train, test = _cifar10(root_path)
    if limit_train is not None:
        # one spare sample so that, after rounding the validation share, at least limit_train remain
        train = train.head(math.ceil(limit_train / (1 - val_fraction)) + 1, seed)
    train, val = split_off(train, val_fraction, seed)
    return Splits(train.head(limit_train, seed), val, test.head(limit_test, seed))


# ------------------------------------------------------------------------------------------ image folders
def list_image_folder(folder: str | Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Files and labels of a ``folder/<class>/<image>`` tree, classes in sorted order."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"image folder {folder} does not exist. Give the folder that holds one "
                                f"sub-folder per class (e.g. $DLHW_DATA/food101_sample).")
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    files, labels = [], []
    for label, cls in enumerate(classes):
        for path in sorted((folder / cls).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                files.append(path)
                labels.append(label)
    if not files:
        raise DataNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {folder}/<class>/.")
    return files, labels, classes


def load_image(path: str | Path):
    """Open an image as RGB PIL, with a clear error for unreadable files."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise DataNotFoundError(f"image {path} does not exist; check the path.")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise CorruptDataError(f"{path} is not a readable image ({err}). Remove or replace it.") from err


def load_image_folder(folder: str | Path, image_size: int = 32,
                      transform: Callable | None = None) -> TensorSplit:
    """A small ``folder/<class>/<image>`` tree as one resized tensor split (for folders that fit in memory)."""
    from torchvision.transforms import functional as TF

    files, labels, classes = list_image_folder(folder)
    images = []
    for path in files:
        image = load_image(path)
        tensor = transform(image) if transform else TF.to_tensor(TF.resize(image, [image_size, image_size]))
        images.append(tensor)
    return TensorSplit(torch.stack(images), torch.tensor(labels), classes, Path(folder).name)
