"""Stanford Dogs (Khosla et al., FGVC 2011) as lists of image ids and labels; images are decoded lazily.

A split is an :class:`ImageSplit`: stable ids (relative paths; they enter the feature-cache key), labels, the
class folders (``n02085620-Chihuahua``, the class identity; :mod:`.breed_names` turns them into text) and a
function that opens one image. Sources (:func:`find_dogs` picks one, :func:`load_dogs` reads it):

- ``official``: the official archive, ``<dir>/Images/<wnid>-<name>/*.jpg`` plus ``<dir>/lists/train_list.mat``
  and ``test_list.mat`` (12,000 / 8,580 images, 120 breeds); the full profile's default is
  ``$DLHW_DATA/stanford_dogs``.
- ``folder``: a ``<dir>/<wnid>-<name>/*.jpg`` tree split here, e.g. ``$DLHW_DATA/stanford_dogs_sample`` (10
  breeds x 12 real photos, the quick profile's default). A ``classes.txt`` beside the folders (one class folder
  name a line, as the sample has for all 120 breeds) fixes the classes and their order, so the sample is a
  120-way problem like the real one.
- ``hf``: a Hugging Face ``datasets`` copy (``DLHW_DOWNLOAD=1`` and internet, or its local cache).

Nothing is ever generated here: a missing dataset is a :class:`~common.DataNotFoundError` that names the
folder searched and the fix. Validation is always carved from train (stratified), so choices (templates,
early stopping) never see test.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence

import numpy as np
import torch

from common import (CorruptDataError, DataError, DataNotFoundError, Profile, list_image_folder, load_image,
                    stratified_indices)
from common.pretrained import downloads_allowed

from .breed_names import breed_names
from .dog_breeds import STANFORD_DOGS_FOLDERS

OFFICIAL_SIZES = {"train": 12_000, "test": 8_580}
HF_DATASET = "tanganke/stanford_dogs"  # a parquet mirror with the official train/test split
SAMPLE_FOLDER = "stanford_dogs_sample"
OFFICIAL_FOLDER = "stanford_dogs"
CLASSES_FILE = "classes.txt"
ARCHIVE_URL = "http://vision.stanford.edu/aditya86/ImageNetDogs/"
SOURCES = ("auto", "official", "folder", "hf")


def per_class_indices(y: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` random indices per class present in ``y`` (all of a class when it has fewer), sorted."""
    if n < 1:
        raise ValueError(f"the number per class must be >= 1, got {n}")
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for cls in torch.unique(y):
        members = torch.nonzero(y == cls).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:n]])
    return torch.cat(picks).sort().values if picks else torch.empty(0, dtype=torch.long)


@dataclass(frozen=True)
class ImageSplit:
    """One split: ``ids`` (N stable identifiers), ``y`` (N,) int64 labels into ``classes`` (class folder
    names such as ``n02085620-Chihuahua``)."""

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

    def per_class(self, n: int | None, seed: int = 0) -> ImageSplit:
        """At most ``n`` images of each class (all of them when ``n`` is None)."""
        return self if n is None else self.take(per_class_indices(self.y, n, seed))


@dataclass(frozen=True)
class DogSplits:
    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    source: str  # what was loaded, in words (printed by notebooks so a reader knows real vs generated)

    @property
    def classes(self) -> tuple[str, ...]:
        """The class folders (``n02085620-Chihuahua``, ...), in label order."""
        return self.train.classes

    def names(self, style: str = "curated") -> tuple[str, ...]:
        """Class names for the text encoder (see :mod:`.breed_names`)."""
        return breed_names(self.classes, style)

    def present(self) -> int:
        """How many classes have at least one image in some split."""
        return len(torch.unique(torch.cat([self.train.y, self.val.y, self.test.y])))

    def per_class(self, n: int | None, seed: int = 0) -> DogSplits:
        """At most ``n`` images per class in every split (a small subset of the same data)."""
        if n is None:
            return self
        return DogSplits(self.train.per_class(n, seed), self.val.per_class(n, seed),
                         self.test.per_class(n, seed), f"{self.source}, at most {n} per class and split")

    def summary(self) -> str:
        return (f"{self.source}: {len(self.classes)} classes ({self.present()} with images), train "
                f"{len(self.train)}, val {len(self.val)}, test {len(self.test)}")


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
    classes = STANFORD_DOGS_FOLDERS
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
    # a mirror may name its labels without the WordNet id; with the official 120 they follow the official order
    classes = STANFORD_DOGS_FOLDERS if len(names) == len(STANFORD_DOGS_FOLDERS) else tuple(names)
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
def read_classes_file(folder: Path) -> tuple[str, ...] | None:
    """The class folder names listed in ``folder/classes.txt`` (one a line), or None without the file."""
    path = folder / CLASSES_FILE
    if not path.is_file():
        return None
    classes = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not classes or len(set(classes)) != len(classes):
        raise CorruptDataError(f"{path} must list distinct class folder names, one a line; fix or delete it.")
    return classes


def load_folder_split(folder: str | Path, *, test_fraction: float = 1 / 3, val_fraction: float = 0.25,
                      seed: int = 0, source: str | None = None) -> DogSplits:
    """A ``folder/<wnid>-<name>/*.jpg`` tree split here: stratified test, then validation out of the rest.

    With a ``classes.txt`` the classes are its lines (sub-folders must be among them), else the sub-folders.
    """
    folder = Path(folder)
    files, labels, folders = list_image_folder(folder)
    classes = read_classes_file(folder) or folders
    missing = [f for f in folders if f not in classes]
    if missing:
        raise CorruptDataError(f"{folder}: class folder {missing[0]!r} is not listed in {CLASSES_FILE}; add it "
                               f"there or remove the folder.")
    labels = [classes.index(folders[label]) for label in labels]
    source = source or f"image folder {folder}"
    everything = ImageSplit("all", tuple(str(p.relative_to(folder)) for p in files),
                            torch.as_tensor(labels), classes, source, functools.partial(_open_file, folder))
    rest, test = carve_validation(everything, test_fraction, seed, names=("rest", "test"))
    train, val = carve_validation(rest, val_fraction, seed + 1)
    return DogSplits(train, val, test, source)


# ---------------------------------------------------------------------------------------------- where
def find_dogs(profile: Profile, data_root: str | Path | None = None, dogs_dir: str | Path | None = None,
              source: str = "auto", hf_dataset: str = HF_DATASET) -> tuple[str, Path | None]:
    """``(source, folder)`` of the Stanford Dogs copy to use; raises :class:`DataNotFoundError` with the fix.

    ``dogs_dir`` (the ``--dogs-dir`` flag) wins; its layout decides the source (``Images/`` + ``lists/``:
    official, else an image folder). Otherwise the full profile (or ``source="official"``) wants the archive
    at ``<data_root>/stanford_dogs`` (or, with ``DLHW_DOWNLOAD=1``, the Hugging Face copy), and the quick
    profile (or ``source="folder"``) the real sample at ``<data_root>/stanford_dogs_sample``. ``data_root``
    is the ``$DLHW_DATA`` folder.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
    if source == "hf":
        if not downloads_allowed():
            raise DataNotFoundError(f"--data-source hf reads {hf_dataset!r} from the Hugging Face hub: set "
                                    f"DLHW_DOWNLOAD=1 on a machine with internet, or use the official archive "
                                    f"(--dogs-dir).")
        return "hf", None
    if dogs_dir is not None:
        folder = Path(dogs_dir).expanduser()
        if not folder.is_dir():
            raise DataNotFoundError(f"--dogs-dir {folder} is not a folder; give the Stanford Dogs archive folder "
                                    f"(with Images/ and lists/) or an image folder such as "
                                    f"$DLHW_DATA/{SAMPLE_FOLDER}.")
        official = (folder / "Images").is_dir()
        if source == "official" and not official:
            raise DataNotFoundError(f"{folder}/Images does not exist: extract images.tar and lists.tar from "
                                    f"{ARCHIVE_URL} into {folder}.")
        return ("official" if official and source != "folder" else "folder"), folder
    if data_root is None:
        raise DataNotFoundError(f"Stanford Dogs: $DLHW_DATA is not set; set it (or --data-root) to the data "
                                f"folder holding {OFFICIAL_FOLDER}/ or {SAMPLE_FOLDER}/, or pass --dogs-dir.")
    root = Path(data_root)
    if source == "official" or (profile.full and source == "auto"):
        if (root / OFFICIAL_FOLDER / "Images").is_dir():
            return "official", root / OFFICIAL_FOLDER
        if downloads_allowed() and source == "auto":
            return "hf", None
        raise DataNotFoundError(
            f"the full profile needs the Stanford Dogs archive: extract images.tar and lists.tar from "
            f"{ARCHIVE_URL} into {root / OFFICIAL_FOLDER}, or set DLHW_DOWNLOAD=1 online to use the Hugging "
            f"Face copy {hf_dataset!r}; for a run on the 120-photo sample pass --dogs-dir "
            f"{root / SAMPLE_FOLDER}.")
    sample = root / SAMPLE_FOLDER
    if not sample.is_dir():
        raise DataNotFoundError(f"the Stanford Dogs sample is not in {sample}; set $DLHW_DATA (or --data-root) "
                                f"to the folder holding {SAMPLE_FOLDER}/, or pass --dogs-dir.")
    return "folder", sample


def load_dogs(source: str, folder: str | Path | None = None, *, val_fraction: float = 0.1, seed: int = 0,
              hf_dataset: str = HF_DATASET) -> DogSplits:
    """Stanford Dogs splits from ``source`` (``official``, ``folder`` or ``hf``; see :func:`find_dogs`)."""
    if source == "official":
        return load_official(folder, val_fraction, seed)
    if source == "folder":
        folder = Path(folder)
        sample = "real photos, 10-breed sample" if folder.name == SAMPLE_FOLDER else "real photos"
        return load_folder_split(folder, seed=seed, source=f"{sample}: {folder}")
    if source == "hf":
        return load_hf(hf_dataset, val_fraction, seed)
    raise ValueError(f"source must be one of official, folder, hf; got {source!r}")
