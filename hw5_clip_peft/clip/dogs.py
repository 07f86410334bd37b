"""Stanford Dogs (Khosla et al., FGVC 2011) as lists of image ids and labels; images are decoded lazily.

A split is an :class:`ImageSplit`: stable ids (relative paths; they enter the feature-cache key), labels,
clean class names and a function that opens one image. Sources, in the order :func:`load_dogs` tries them:

- ``official``: a local copy of the official archive, ``<root>/Images/<wnid>-<name>/*.jpg`` plus
  ``<root>/lists/train_list.mat`` and ``test_list.mat`` (12,000 / 8,580 images, 120 breeds).
- ``hf``: a Hugging Face ``datasets`` copy (needs ``DLHW_DOWNLOAD=1`` and internet, or its local cache).
- ``sample``: ``$DLHW_DATA/stanford_dogs_sample`` (10 breeds x 12 real photos), split here.
- ``synthetic``: a generated image folder (coloured shapes per class), when no real image is available.

Validation is always carved from train (stratified), so choices (templates, early stopping) never see test.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence

import numpy as np
import torch

from common import (CorruptDataError, DataError, DataNotFoundError, cache_dir, data_root, download_allowed,
                    get_profile, list_image_folder, load_image, stratified_indices)

from .dog_breeds import STANFORD_DOGS_FOLDERS

OFFICIAL_SIZES = {"train": 12_000, "test": 8_580}
HF_DATASET = "tanganke/stanford_dogs"  # a parquet mirror with the official train/test split
SAMPLE_FOLDER = "stanford_dogs_sample"
OFFICIAL_FOLDER = "stanford_dogs"
ARCHIVE_URL = "http://vision.stanford.edu/aditya86/ImageNetDogs/"
_SYNSET = re.compile(r"^n\d{8}-(.*)$")


def clean_class_name(folder: str) -> str:
    """Human-readable breed from a synset folder name: drop the WordNet id, underscores become spaces.

    >>> clean_class_name("n02085620-Chihuahua")
    'Chihuahua'
    >>> clean_class_name("n02099712-Labrador_retriever")
    'Labrador retriever'
    >>> clean_class_name("n02089078-black-and-tan_coonhound")
    'black-and-tan coonhound'
    """
    folder = str(folder).strip().rstrip("/")
    match = _SYNSET.match(folder)
    name = (match.group(1) if match else folder).replace("_", " ").strip()
    if not name:
        raise ValueError(f"class folder {folder!r} has no breed name after the synset id")
    return " ".join(name.split())


@dataclass(frozen=True)
class ImageSplit:
    """One split: ``ids`` (N stable identifiers), ``y`` (N,) int64 labels into ``classes``."""

    name: str
    ids: tuple[str, ...]
    y: torch.Tensor
    classes: tuple[str, ...]
    source: str
    opener: Callable[[str], object]  # id -> RGB PIL image

    def __post_init__(self):
        if len(self.ids) != len(self.y):
            raise ValueError(f"split {self.name!r}: {len(self.ids)} ids but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def image(self, i: int):
        return self.opener(self.ids[i])

    def take(self, indices, name: str | None = None) -> ImageSplit:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageSplit(name or self.name, tuple(self.ids[i] for i in idx.tolist()), self.y[idx],
                          self.classes, self.source, self.opener)


@dataclass(frozen=True)
class DogSplits:
    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    source: str  # what was loaded, in words (printed by notebooks so a reader knows real vs generated)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    def summary(self) -> str:
        return (f"{self.source}: {len(self.classes)} classes, train {len(self.train)}, val {len(self.val)}, "
                f"test {len(self.test)}")


# ---------------------------------------------------------------------------------------------- splits
def carve_validation(train: ImageSplit, fraction: float, seed: int = 0,
                     names: tuple[str, str] = ("train", "val")) -> tuple[ImageSplit, ImageSplit]:
    """Stratified ``fraction`` of ``train`` moved to a second split; returns ``(rest, carved)``."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n_val = max(1, round(fraction * len(train)))
    val_idx = stratified_indices(train.y, n_val, seed)
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[val_idx] = False
    return train.take(torch.nonzero(keep).flatten(), names[0]), train.take(val_idx.sort().values, names[1])


def parse_split_list(path: str | Path, folders: Sequence[str] = STANFORD_DOGS_FOLDERS
                     ) -> tuple[list[str], np.ndarray]:
    """Read an official ``train_list.mat`` / ``test_list.mat``: relative file paths and 0-based labels.

    The file holds ``file_list`` (N x 1 cell of ``'<wnid>-<name>/<file>.jpg'``) and ``labels`` (N x 1,
    1-based). Each path's folder must be ``folders[label - 1]``, which catches a list from another dataset.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"split list {path} not found; it comes with the official archive "
                                f"(lists.tar from {ARCHIVE_URL}), extracted to <root>/lists/.")
    try:
        mat = loadmat(path)
    except Exception as err:  # scipy raises several types for non-.mat files
        message = f"{path} is not a readable MATLAB file ({err}); re-extract lists.tar."
        raise CorruptDataError(message) from err
    if "file_list" not in mat or "labels" not in mat:
        raise CorruptDataError(f"{path} has no 'file_list'/'labels' entries (found {sorted(mat)}); it is not "
                               f"a Stanford Dogs split list.")
    files = [str(np.asarray(entry).ravel()[0]) for entry in np.asarray(mat["file_list"]).ravel()]
    labels = np.asarray(mat["labels"]).astype(np.int64).ravel() - 1
    if len(files) != len(labels):
        raise CorruptDataError(f"{path}: {len(files)} files but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(folders)):
        raise CorruptDataError(f"{path}: labels must be in 1..{len(folders)}, found "
                               f"{labels.min() + 1}..{labels.max() + 1}")
    for file, label in zip(files, labels):
        if file.split("/")[0] != folders[label]:
            raise CorruptDataError(f"{path}: {file!r} has label {label + 1} = {folders[label]!r}; the list "
                                   f"does not follow the official class order.")
    return files, labels


def _open_file(root: Path, rel: str):
    return load_image(root / rel)


def load_official(root: str | Path, val_fraction: float = 0.1, seed: int = 0) -> DogSplits:
    """The official split from ``<root>/Images`` + ``<root>/lists/{train,test}_list.mat``."""
    root = Path(root).expanduser()
    images = root / "Images"
    if not images.is_dir():
        raise DataNotFoundError(f"{images} does not exist. Download images.tar and lists.tar from "
                                f"{ARCHIVE_URL} and extract both into {root} (giving {root}/Images and {root}/lists).")
    classes = tuple(clean_class_name(f) for f in STANFORD_DOGS_FOLDERS)
    source = f"official Stanford Dogs archive at {root}"
    opener = functools.partial(_open_file, images)
    splits = {}
    for name in ("train", "test"):
        files, labels = parse_split_list(root / "lists" / f"{name}_list.mat")
        missing = [f for f in files[:: max(1, len(files) // 50)] if not (images / f).is_file()]
        if missing:  # a cheap spot check (every ~50th file), not a full scan of 20k files
            raise DataNotFoundError(f"{len(missing)} checked images of the {name} list are missing under "
                                    f"{images}, e.g. {missing[0]}; re-extract images.tar.")
        splits[name] = ImageSplit(name, tuple(files), torch.as_tensor(labels), classes, source, opener)
    train, val = carve_validation(splits["train"], val_fraction, seed)
    return DogSplits(train, val, splits["test"], source)


# ---------------------------------------------------------------------------------------------- HF datasets
def _open_hf(dataset, image_column: str, item_id: str):
    return dataset[int(item_id.rsplit(":", 1)[1])][image_column].convert("RGB")


def splits_from_hf(train_ds, test_ds, *, dataset_id: str = HF_DATASET, val_fraction: float = 0.1,
                   seed: int = 0, strict_sizes: bool = True) -> DogSplits:
    """Wrap two ``datasets.Dataset`` objects (columns ``image`` and a label column) as :class:`DogSplits`."""
    label_col = next((c for c in ("label", "labels", "target") if c in train_ds.column_names), None)
    image_col = next((c for c in ("image", "img") if c in train_ds.column_names), None)
    if label_col is None or image_col is None:
        raise DataError(f"{dataset_id}: expected an image column and a label column, found "
                        f"{train_ds.column_names}")
    names = getattr(train_ds.features[label_col], "names", None) or list(STANFORD_DOGS_FOLDERS)
    classes = tuple(clean_class_name(n) for n in names)
    if strict_sizes and (len(train_ds), len(test_ds)) != (OFFICIAL_SIZES["train"], OFFICIAL_SIZES["test"]):
        raise DataError(f"{dataset_id} has {len(train_ds)}/{len(test_ds)} train/test images, not the "
                        f"official 12,000/8,580 split; use the official archive ({ARCHIVE_URL}) or another mirror.")
    source = f"Hugging Face dataset {dataset_id}"
    splits = {}
    for name, ds in (("train", train_ds), ("test", test_ds)):
        ids = tuple(f"hf:{dataset_id}:{name}:{i}" for i in range(len(ds)))
        y = torch.as_tensor(np.asarray(ds[label_col], dtype=np.int64))
        splits[name] = ImageSplit(name, ids, y, classes, source, functools.partial(_open_hf, ds, image_col))
    train, val = carve_validation(splits["train"], val_fraction, seed)
    return DogSplits(train, val, splits["test"], source)


def load_hf(dataset_id: str = HF_DATASET, val_fraction: float = 0.1, seed: int = 0) -> DogSplits:
    """Stanford Dogs through ``datasets.load_dataset`` (internet or a populated HF cache)."""
    try:
        import datasets

        loaded = datasets.load_dataset(dataset_id)
    except Exception as err:
        raise DataNotFoundError(f"could not load {dataset_id!r} with Hugging Face datasets "
                                f"({type(err).__name__}: {err}). Offline, use the official archive instead "
                                f"({ARCHIVE_URL}).") from err
    return splits_from_hf(loaded["train"], loaded["test"], dataset_id=dataset_id, val_fraction=val_fraction,
                          seed=seed)


# ---------------------------------------------------------------------------------------------- small folders
def load_folder_split(folder: str | Path, *, test_fraction: float = 1 / 3, val_fraction: float = 0.25,
                      seed: int = 0, source: str | None = None) -> DogSplits:
    """A ``folder/<wnid>-<name>/*.jpg`` tree split here: stratified test, then validation out of the rest."""
    folder = Path(folder)
    files, labels, folders = list_image_folder(folder)
    classes = tuple(clean_class_name(f) for f in folders)
    source = source or f"image folder {folder}"
    everything = ImageSplit("all", tuple(str(p.relative_to(folder)) for p in files),
                            torch.as_tensor(labels), classes, source, functools.partial(_open_file, folder))
    rest, test = carve_validation(everything, test_fraction, seed, names=("rest", "test"))
    train, val = carve_validation(rest, val_fraction, seed + 1)
    return DogSplits(train, val, test, source)


def make_synthetic_folder(dest: str | Path, num_classes: int = 10, per_class: int = 12, size: int = 64,
                          seed: int = 0) -> Path:
    """Write a generated ``dest/<wnid>-<name>/NNN.png`` folder: one colour + ellipse shape per class.

    Real breed folder names are used so the text side sees real class names; the pixels are not dogs.
    """
    from PIL import Image, ImageDraw

    dest = Path(dest)
    rng = np.random.default_rng(seed)
    folders = STANFORD_DOGS_FOLDERS[:: max(1, len(STANFORD_DOGS_FOLDERS) // num_classes)][:num_classes]
    for k, name in enumerate(folders):
        (dest / name).mkdir(parents=True, exist_ok=True)
        colour = np.array([(k * 97) % 256, (k * 57 + 80) % 256, (k * 31 + 160) % 256])
        for i in range(per_class):
            noise = rng.normal(0, 25, (size, size, 3)) + 128
            image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(image)
            cx, cy = rng.integers(size // 4, 3 * size // 4, 2)
            rx, ry = size // 6 + k % 3 * 3, size // 6 + (k // 3) % 3 * 3
            jitter = rng.integers(-20, 21, 3)
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(c) for c in
                                                                          np.clip(colour + jitter, 0, 255)))
            image.save(dest / name / f"{i:03d}.png")
    return dest


def load_dogs(source: str = "auto", root: str | Path | None = None, *, val_fraction: float = 0.1,
              seed: int = 0, hf_dataset: str = HF_DATASET) -> DogSplits:
    """Stanford Dogs splits from ``source`` in {auto, official, hf, sample, synthetic}.

    ``auto``: in the full profile the official archive (``root`` or ``$DLHW_DATA/stanford_dogs``), else the
    HF copy when downloads are allowed; in the quick profile the real 120-photo sample under ``$DLHW_DATA``,
    else a generated folder. ``DogSplits.source`` says which one was used.
    """
    base = data_root()
    if source == "auto":
        if get_profile().full:
            official = Path(root) if root else (base / OFFICIAL_FOLDER if base else None)
            if official is not None and (official / "Images").is_dir():
                source, root = "official", official
            elif download_allowed():
                source = "hf"
            else:
                raise DataNotFoundError(
                    f"the full profile needs Stanford Dogs: extract images.tar and lists.tar from "
                    f"{ARCHIVE_URL} into $DLHW_DATA/{OFFICIAL_FOLDER} (or pass root=), or set "
                    f"DLHW_DOWNLOAD=1 online to use the Hugging Face copy {hf_dataset!r}.")
        else:
            sample = Path(root) if root else (base / SAMPLE_FOLDER if base else None)
            source = "sample" if sample is not None and sample.is_dir() else "synthetic"
            root = sample if source == "sample" else root
    if source == "official":
        official = root or (base / OFFICIAL_FOLDER if base else Path(OFFICIAL_FOLDER))
        return load_official(official, val_fraction, seed)
    if source == "hf":
        return load_hf(hf_dataset, val_fraction, seed)
    if source == "sample":
        folder = Path(root) if root else (base / SAMPLE_FOLDER if base else None)
        if folder is None or not folder.is_dir():
            raise DataNotFoundError(f"the Stanford Dogs sample folder is missing ({folder}); set DLHW_DATA to "
                                    f"the folder holding {SAMPLE_FOLDER}/, or use source='synthetic'.")
        return load_folder_split(folder, seed=seed, source=f"real photos: {folder} (10-breed sample)")
    if source == "synthetic":
        folder = Path(root) if root else cache_dir("clip_dogs_synthetic", f"k10_n12_seed{seed}")
        if not any(folder.glob("*/*.png")):
            make_synthetic_folder(folder, seed=seed)
        return load_folder_split(folder, seed=seed, source=f"GENERATED images (not dogs) at {folder}")
    raise ValueError(f"source must be one of auto, official, hf, sample, synthetic; got {source!r}")
