"""Datasets as tensors: scikit-learn digits, MNIST, Fashion-MNIST, CIFAR-10 and image folders.

Every loader returns :class:`Splits` of :class:`TensorSplit` (``X`` float32 in [0, 1], or the raw uint8
bytes with ``uint8=True``, shape (N, C, H, W); ``y`` int64, shape (N,)), small enough to live on the device
whole (see ``common.batches``). The files are read by torchvision's dataset classes (``download=False``);
this module adds the project's typed errors, the validation split and the subsets.

Real files are read from ``$DLHW_DATA`` in torchvision's layout::

    $DLHW_DATA/MNIST/raw/train-images-idx3-ubyte.gz        (or the uncompressed file)
    $DLHW_DATA/FashionMNIST/raw/...
    $DLHW_DATA/cifar-10-batches-py/data_batch_1 ... test_batch

Missing data is a ``DataNotFoundError`` that names the folder searched, the variable (or ``--data-root``) to set
and the download switch; an unreadable file is a ``CorruptDataError``; nothing is ever replaced by fake data.
The data root is only read: MNIST's .gz files are extracted into a cache copy (``$DLHW_CACHE``). Digits ship with scikit-learn, so they always load.
"""
from __future__ import annotations

import gzip
import math
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import CorruptDataError, DataNotFoundError
from .config import DATA_ENV, DOWNLOAD_ENV, cache_dir, data_root
from .pretrained import downloads_allowed
from .io import _atomic, settings_key

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
# The files are read by torchvision's own dataset classes (download=False); this layer only finds the files,
# turns "missing" and "unreadable" into the project's typed one-line errors, and returns tensors.
MNIST_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


def _missing(what: str, searched: Path | None, expected: str) -> DataNotFoundError:
    where = f"in {searched}" if searched else f"because ${DATA_ENV} is not set (and no --data-root was given)"
    return DataNotFoundError(f"{what} not found {where}. Set {DATA_ENV} (or --data-root) to the folder that holds "
                             f"{expected}, or set {DOWNLOAD_ENV}=1 (needs internet) to let torchvision download it.")


def _extract(path: Path, target: Path) -> Path:
    """Decompress ``path`` (.gz) to ``target`` atomically, unless already there."""
    if not target.exists():
        try:
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        except (OSError, EOFError, zlib.error) as err:
            raise CorruptDataError(f"{path} cannot be decompressed ({err}); the file is probably truncated. "
                                   f"Delete it and copy or download it again.") from None
        _atomic(target, lambda f: f.write(raw))
    return target


def _source_key(paths) -> str:
    """Cache folder name for copies of ``paths``: changes when any source's path, size or mtime changes."""
    return settings_key({str(p.resolve()): [p.stat().st_size, p.stat().st_mtime_ns] for p in paths})


def _uncompressed(path: Path) -> Path:
    """``path`` itself, or for a ``.gz`` file an extracted copy in the cache (never next to the source)."""
    if path.suffix != ".gz":
        return path
    return _extract(path, cache_dir("data", "extracted", _source_key([path])) / path.stem)


def _torchvision_root(root: Path | None, folder: str, found: dict[str, Path]) -> Path:
    """A root where torchvision finds ``<folder>/raw/<stem>`` uncompressed: the data root itself when every
    file is uncompressed there, else a cache folder with extracted copies (the data root is only read)."""
    if root is not None and all(p == root / folder / "raw" / stem for stem, p in found.items()):
        return root
    base = cache_dir("data", "extracted", _source_key(found.values()))
    for stem, path in found.items():
        target = base / folder / "raw" / stem
        if path.suffix == ".gz":
            _extract(path, target)
        elif not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    return base


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format, gzipped or not) as a uint8 array, read by torchvision's reader; a bad magic
    number or a size that disagrees with the header is a :class:`CorruptDataError`."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    path = Path(path)
    plain = _uncompressed(path)
    head = plain.read_bytes()[:4]
    if len(head) < 4 or head[:3] != b"\x00\x00\x08":
        raise CorruptDataError(f"{path} is not an unsigned-byte IDX file (bad magic number); replace it.")
    try:
        return read_sn3_pascalvincent_tensor(str(plain), strict=True).numpy()
    except (AssertionError, RuntimeError, ValueError, IndexError) as err:
        raise CorruptDataError(f"{path} holds fewer bytes than its IDX header promises ({type(err).__name__}); "
                               f"the file is truncated or corrupt. Replace it.") from None


def _find_raw(root: Path | None, folder: str, stem: str) -> Path | None:
    if root is None:
        return None
    for candidate in (root / folder / "raw" / stem, root / folder / "raw" / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _download_root() -> Path:
    return cache_dir("data")


def _idx_dataset(name: str, folder: str, classes: tuple[str, ...], tv_class: str,
                 root: Path | None, uint8: bool) -> tuple[TensorSplit, TensorSplit]:
    import torchvision.datasets as tvd

    stems = [s for pair in MNIST_STEMS.values() for s in pair]
    found = {s: _find_raw(root, folder, s) for s in stems}
    if any(p is None for p in found.values()) and downloads_allowed():
        target = _download_root()
        for train in (True, False):
            getattr(tvd, tv_class)(str(target), train=train, download=True)
        root = target
        found = {s: _find_raw(root, folder, s) for s in stems}
    for stem, path in found.items():
        if path is None:
            raise _missing(f"{name} file {folder}/raw/{stem}(.gz)", root, f"{folder}/raw/")
    tv_root = _torchvision_root(root, folder, found)
    for stem, path in found.items():  # header vs size, with the file's name in the message
        _check_idx_size(path, tv_root / folder / "raw" / stem)
    out = []
    for train in (True, False):
        try:
            ds = getattr(tvd, tv_class)(str(tv_root), train=train, download=False)
        except (RuntimeError, AssertionError, ValueError) as err:
            raise CorruptDataError(f"{name} files in {root}/{folder}/raw cannot be read by torchvision "
                                   f"({' '.join(str(err).split())[:120]}); replace them.") from None
        X = ds.data.unsqueeze(1).contiguous()                      # (N, 1, 28, 28) uint8
        out.append(TensorSplit(X if uint8 else X.float().div_(255.0), ds.targets.long(), classes, name))
    return out[0], out[1]


def _check_idx_size(original: Path, plain: Path) -> None:
    """Header dims x item size must equal the bytes present (torchvision would assert without a message)."""
    with open(plain, "rb") as fh:
        head = fh.read(16)
    if len(head) < 8 or head[:3] != b"\x00\x00\x08":
        raise CorruptDataError(f"{original} is not an unsigned-byte IDX file (bad magic number); replace it.")
    ndim = head[3]
    dims = [int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + math.prod(dims)
    if plain.stat().st_size != expected:
        raise CorruptDataError(f"{original} holds {plain.stat().st_size} bytes but its header promises {expected}; "
                               f"the file is truncated or corrupt. Replace it.")


def _cifar10(root: Path | None, uint8: bool) -> tuple[TensorSplit, TensorSplit]:
    import torchvision.datasets as tvd

    folder = root / "cifar-10-batches-py" if root is not None else None
    missing = [f for f in CIFAR10_FILES if folder is None or not (folder / f).is_file()]
    if missing and downloads_allowed():
        root = _download_root()
        tvd.CIFAR10(str(root), train=True, download=True)
        folder = root / "cifar-10-batches-py"
        missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
    if missing:
        what = ("CIFAR-10 (folder cifar-10-batches-py)" if folder is None or not folder.is_dir()
                else f"CIFAR-10 file(s) {', '.join(missing)}")
        raise _missing(what, folder if folder is not None and folder.is_dir() else root,
                       "the complete cifar-10-batches-py/")
    out = []
    for train in (True, False):
        try:  # torchvision checks every file's md5 before reading: a wrong or truncated file fails here
            ds = tvd.CIFAR10(str(root), train=train, download=False)
        except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, KeyError) as err:
            raise CorruptDataError(f"CIFAR-10 files in {folder} fail torchvision's checksum or cannot be "
                                   f"unpickled ({' '.join(str(err).split())[:100]}); replace them with the "
                                   f"official files.") from None
        X = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()   # (N, 3, 32, 32) uint8
        out.append(TensorSplit(X if uint8 else X.float().div_(255.0), torch.tensor(ds.targets, dtype=torch.long),
                               CIFAR10_CLASSES, "cifar10"))
    return out[0], out[1]


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
                 limit_train: int | None = None, limit_test: int | None = None, val_size: int | None = None,
                 uint8: bool = False) -> Splits:
    """Load ``name`` (one of :data:`DATASETS`) as train/val/test tensors.

    ``root`` defaults to ``$DLHW_DATA`` (entry points pass the root they resolved). Validation is a stratified,
    seeded ``val_fraction`` of the official training split, or exactly ``val_size`` images when given (the
    course's CIFAR-10 split is ``val_size=1000``: 49,000 / 1,000); ``limit_*`` take stratified subsets (the
    quick profile's small real data). ``uint8=True`` keeps the raw bytes (4x less memory; ``TensorBatches``
    scales them to [0, 1] per batch) for MNIST and CIFAR-10.
    """
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    if val_size is not None and val_size < 1:
        raise ValueError(f"val_size must be >= 1, got {val_size}")
    root_path = Path(root).expanduser().resolve() if root is not None else data_root()
    if root_path is not None and not root_path.is_dir() and key != "digits":
        raise DataNotFoundError(f"data root {root_path} does not exist or is not a folder. "
                                f"Fix {DATA_ENV} (or --data-root) to name the datasets folder.")
    if key == "digits":
        train, test = _digits(seed)
    elif key == "mnist":
        train, test = _idx_dataset("MNIST", "MNIST", MNIST_CLASSES, "MNIST", root_path, uint8)
    elif key == "fashion_mnist":
        train, test = _idx_dataset("Fashion-MNIST", "FashionMNIST", FASHION_MNIST_CLASSES, "FashionMNIST",
                                   root_path, uint8)
    else:
        train, test = _cifar10(root_path, uint8)
    if val_size is not None:
        if val_size >= len(train):
            raise ValueError(f"val_size={val_size} leaves no training images (the split has {len(train)})")
        # the validation images do not depend on limit_train: the same fixed split in every run
        train, val = _split_count(train, val_size, seed)
    else:
        if limit_train is not None:
            # one spare sample so that, after rounding the validation share, at least limit_train remain
            train = train.head(math.ceil(limit_train / (1 - val_fraction)) + 1, seed)
        train, val = split_off(train, val_fraction, seed)
    return Splits(train.head(limit_train, seed), val, test.head(limit_test, seed))


def _split_count(split: TensorSplit, n_out: int, seed: int) -> tuple[TensorSplit, TensorSplit]:
    out = stratified_indices(split.y, n_out, seed)
    keep = torch.ones(len(split), dtype=torch.bool)
    keep[out] = False
    return split.take(torch.nonzero(keep).flatten()), split.take(out)


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
