"""Food-101 as Hugging Face ``datasets`` splits, preprocessed for a ViT (hw5.P5).

Sources (:func:`resolve_food_source` turns a ``--data`` value into one), one result (:class:`FoodData`: raw
``image``/``label`` splits, the label names and the held-out photos):

- ``hub``: Food-101 on the Hugging Face hub (:data:`FOOD101_HUB_ID`; its ``train`` split has 75,750 photos
  and ``validation`` 25,250, 101 classes). Read from the ``datasets`` cache, or downloaded only when
  ``DLHW_DOWNLOAD=1`` (:func:`common.pretrained.downloads_allowed`, the switch models use too);
- ``sample``: ``<data root>/food101_sample``, 10 classes x 10 real photos with the full 101-name
  ``classes.txt`` (the quick profile's data);
- ``archive``: the extracted official archive under the data root (``food-101/images`` beside
  ``food-101/meta``: class list and official test split from ``meta``);
- any folder ``<root>/<class>/<image>``, read with the ``imagefolder`` builder.

When a class list lies in (or, for the archive, beside) the folder, labels are re-indexed onto it, so the
head is 101-way exactly as with the hub; the validation split of a plain folder is a stratified
``val_fraction`` of it.

Preprocessing follows the model's image processor (size, mean, std) with torchvision transforms applied lazily
by ``Dataset.with_transform``: random resized crop + flip for training, resize + centre crop for evaluation::

    data = load_food(resolve_food_source("sample", data_root), hold_out=1)
    train_ds, val_ds = preprocess(data, processor)      # items: {"pixel_values": (3, H, W), "label": int}
    batch = collate([train_ds[i] for i in range(4)])     # {"pixel_values": (B, 3, H, W), "labels": (B,)}
"""
from __future__ import annotations

import contextlib
import glob
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from common import CorruptDataError, DataNotFoundError, UsageError, cache_dir, list_image_folder
from common.pretrained import downloads_allowed

FOOD101_HUB_ID = "ethz/food101"
SAMPLE_FOLDER = "food101_sample"
ARCHIVE_FOLDER = "food-101/images"
CLASS_LIST = "classes.txt"
NAMED_SOURCES = ("sample", "archive", "hub")


@dataclass(frozen=True)
class HeldOut:
    """A photo kept out of both training and validation, for "predict a new image"."""

    image: object  # a Path when the split was read from files, else a PIL image
    label: int
    name: str  # "<class>/<file name>" for files, "<split>[<index>]" otherwise


@dataclass(frozen=True)
class FoodData:
    """Raw splits (columns ``image``: PIL, ``label``: int), ``labels[i]`` = name of class ``i``, and the
    held-out photos (removed from the training split)."""

    train: object  # datasets.Dataset
    val: object
    labels: tuple[str, ...]
    source: str
    held_out: tuple[HeldOut, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def classes_with_images(self) -> int:
        return len(set(self.train["label"]) | set(self.val["label"]))

    def summary(self) -> str:
        return (f"{self.source}: {len(self.train)} train / {len(self.val)} val images "
                f"(+{len(self.held_out)} held out), {self.num_classes} classes")


def resolve_food_source(data: str, data_root: Path | None) -> str:
    """A ``--data`` value (``sample``, ``archive``, ``hub`` or a folder) as a folder path or the hub id.

    Checks that the source is there without reading it; raises :class:`DataNotFoundError` naming the fix.
    """
    if data in ("sample", "archive"):
        sub = SAMPLE_FOLDER if data == "sample" else ARCHIVE_FOLDER
        if data_root is None:
            raise DataNotFoundError(f"--data {data} reads <data root>/{sub}, but no data root is set; pass "
                                    f"--data-root (or set DLHW_DATA) to the datasets folder, e.g. ../shared/data.")
        folder = Path(data_root) / sub
        if not folder.is_dir():
            raise DataNotFoundError(f"--data {data} needs {folder}, which does not exist; put the photos there, "
                                    f"or pass another --data-root or --data.")
        list_image_folder(folder)  # an empty folder is a clear error now, not inside `datasets`
        return str(folder)
    if data == "hub":
        check_hub_dataset(FOOD101_HUB_ID)
        return FOOD101_HUB_ID
    folder = Path(data).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"--data {data} is neither one of {', '.join(NAMED_SOURCES)} nor an existing "
                                f"folder of <class>/<image> photos; pass one of those.")
    list_image_folder(folder)
    return str(folder.resolve())


def hub_dataset_cached(hub_id: str) -> bool:
    """Whether ``datasets`` has a prepared copy of ``hub_id`` in its cache (what it reads offline)."""
    import datasets
    from datasets.naming import camelcase_to_snakecase

    namespace, _, name = hub_id.rpartition("/")  # the cache folder datasets' CachedDatasetModuleFactory reads
    folder = "___".join(x for x in (namespace, camelcase_to_snakecase(name)) if x)
    root = os.path.expanduser(str(datasets.config.HF_DATASETS_CACHE))
    return any(os.path.isdir(p) for p in glob.glob(os.path.join(root, folder, "*", "*", "*")))


def check_hub_dataset(hub_id: str) -> None:
    """Raise :class:`DataNotFoundError` unless ``hub_id`` is cached or downloads are on. No network."""
    if downloads_allowed() or hub_dataset_cached(hub_id):
        return
    raise DataNotFoundError(f"the dataset {hub_id} is not in the datasets cache and downloads are off; set "
                            f"DLHW_DOWNLOAD=1 on a machine with internet to download it (cached afterwards), "
                            f"or pass --data sample/archive/<folder> for local photos.")


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """One class name per line (Food-101's ``meta/classes.txt`` order; blank lines ignored)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    names = tuple(line.strip() for line in lines if line.strip())
    if len(set(names)) != len(names):
        raise CorruptDataError(f"{path} lists a class name twice; each line must be a distinct class.")
    return names


def load_food(source: str | Path, *, val_fraction: float = 0.2, train_limit: int | None = None,
              val_limit: int | None = None, hold_out: int = 0, seed: int = 0, progress: bool = False) -> FoodData:
    """Load ``source`` (an image folder or a hub id, see :func:`resolve_food_source`) as :class:`FoodData`.

    ``train_limit``/``val_limit`` keep a seeded random subset (the PEFT guide trains on 5,000 images).
    ``val_fraction`` only applies to plain folders (the hub and the archive have their own split).
    ``hold_out`` photos are drawn (seeded) from the training split and removed from it: images the model
    never sees, for the "predict a new image" step. ``progress``: show the ``datasets`` bars (off: in a
    notebook or a log they stay as frozen lines).
    """
    folder = Path(source).expanduser()
    with _datasets_quiet(not progress):
        if folder.is_dir():
            data = _from_folder(folder, val_fraction, seed)
        elif str(source).startswith((".", "/", "~")) or Path(source).suffix:
            raise DataNotFoundError(f"image folder {folder} does not exist; pass a folder holding one "
                                    f"sub-folder per class, or the hub id {FOOD101_HUB_ID!r}.")
        else:
            data = _from_hub(str(source))
    train, val = data.train, data.val
    if train_limit is not None and train_limit < len(train):
        train = train.shuffle(seed=seed).select(range(train_limit))
    if val_limit is not None and val_limit < len(val):
        val = val.shuffle(seed=seed).select(range(val_limit))
    held = ()
    if hold_out:
        if hold_out >= len(train):
            raise UsageError(f"cannot hold out {hold_out} of {len(train)} training photos; hold out fewer or "
                             f"train on more.")
        generator = torch.Generator().manual_seed(seed)
        picked = sorted(int(i) for i in torch.randperm(len(train), generator=generator)[:hold_out])
        held = tuple(HeldOut(image_source(train, i), int(train[i]["label"]), _photo_name(train, i))
                     for i in picked)
        keep = sorted(set(range(len(train))) - set(picked))
        train = train.select(keep)
    return FoodData(train, val, data.labels, data.source, held)


def _from_folder(folder: Path, val_fraction: float, seed: int) -> FoodData:
    """``folder/<class>/<image>``, with the class list from ``folder`` or, for the extracted Food-101
    archive (``food-101/images`` beside ``food-101/meta``), the list and official split from ``../meta``."""
    import datasets

    _, _, folder_classes = list_image_folder(folder)  # clear error when empty or not a class tree
    meta = folder.parent / "meta"
    class_file = next((p for p in (folder / CLASS_LIST, meta / CLASS_LIST) if p.is_file()), None)
    labels = read_class_names(class_file) if class_file else folder_classes
    unknown = sorted(set(folder_classes) - set(labels))
    if unknown:
        raise CorruptDataError(f"folders {unknown} of {folder} are not in {class_file}; rename them or fix the "
                               f"list.")
    ds = datasets.load_dataset("imagefolder", data_dir=str(folder), split="train",
                               cache_dir=str(cache_dir("hf_datasets")))
    # imagefolder numbers the sub-folders 0..9 in sorted order; move them onto the full label list
    ds = ds.align_labels_with_mapping({name: i for i, name in enumerate(labels)}, "label")
    if (meta / "test.txt").is_file():  # Food-101's official test split (= the hub's "validation")
        held_out = set((meta / "test.txt").read_text(encoding="utf-8").split())  # "apple_pie/1011328"
        paths = _file_paths(ds)
        in_val = [p is not None and f"{p.parent.name}/{p.stem}" in held_out for p in paths]
        return FoodData(ds.select([i for i, v in enumerate(in_val) if not v]),
                        ds.select([i for i, v in enumerate(in_val) if v]), labels, str(folder))
    if not 0 < val_fraction < 1:
        raise UsageError(f"val_fraction={val_fraction} must lie strictly between 0 and 1.")
    split = ds.train_test_split(test_size=val_fraction, stratify_by_column="label", seed=seed)
    return FoodData(split["train"], split["test"], labels, str(folder))


@contextlib.contextmanager
def _datasets_quiet(quiet: bool):
    """No ``datasets`` progress bars or info/warning lines for one call (restored afterwards)."""
    import datasets
    from datasets.utils import logging as ds_logging

    if not quiet:
        yield
        return
    bars, level = datasets.is_progress_bar_enabled(), ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity_error()
    try:
        yield
    finally:
        ds_logging.set_verbosity(level)
        if bars:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def _datasets_offline(offline: bool):
    """``datasets`` in offline mode for one call (reads its cache without asking the hub first)."""
    import datasets

    saved = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = saved or offline
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = saved


def _from_hub(hub_id: str) -> FoodData:
    import datasets

    check_hub_dataset(hub_id)  # no network unless downloads are on
    try:
        with _datasets_offline(not downloads_allowed()):
            splits = datasets.load_dataset(hub_id)
    except (OSError, ConnectionError, ValueError) as err:  # unknown id, incomplete cache, network down
        raise DataNotFoundError(
            f"could not load the dataset {hub_id!r} ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
            f"check DLHW_DOWNLOAD=1 and the network, or pass a local image folder "
            f"(<root>/<class>/<image>.jpg, e.g. --data sample).") from err
    if "train" not in splits or "validation" not in splits:
        raise CorruptDataError(f"{hub_id} has splits {list(splits)}; expected 'train' and 'validation'.")
    labels = tuple(splits["train"].features["label"].names)
    return FoodData(splits["train"], splits["validation"], labels, hub_id)


def _file_paths(split) -> list[Path | None]:
    """The source file of every row (None for images stored as bytes), without decoding any image."""
    import datasets

    items = split.cast_column("image", datasets.Image(decode=False))["image"]
    return [Path(item["path"]) if item.get("path") else None for item in items]


def image_source(split, index: int):
    """Example ``index``'s image file path when the split was read from files, else its PIL image."""
    import datasets

    raw = split.cast_column("image", datasets.Image(decode=False))[index]["image"]
    path = Path(raw["path"]) if raw.get("path") else None
    return path if path is not None and path.is_file() else split[index]["image"]


def _photo_name(split, index: int) -> str:
    source = image_source(split, index)
    return f"{source.parent.name}/{source.name}" if isinstance(source, Path) else f"training row {index}"


# ------------------------------------------------------------------------------------------ preprocessing
def processor_geometry(processor) -> tuple[int, list[float], list[float]]:
    """``(side, mean, std)`` of a ViT image processor (square inputs)."""
    size = processor.size
    side = size["height"] if size.get("height") else size["shortest_edge"]
    return int(side), list(processor.image_mean), list(processor.image_std)


def image_transforms(processor, train: bool):
    """torchvision pipeline PIL -> (3, side, side) float tensor, normalised like the processor does."""
    from torchvision import transforms as T

    side, mean, std = processor_geometry(processor)
    if train:
        steps = [T.RandomResizedCrop(side), T.RandomHorizontalFlip()]
    else:  # resize the short side then crop the centre: no distortion of the aspect ratio
        steps = [T.Resize(side), T.CenterCrop(side)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


def preprocess(data: FoodData, processor) -> tuple[object, object]:
    """``(train, val)`` datasets whose items are ``{"pixel_values": (3, H, W), "label": int}``.

    The transforms run lazily on access (``with_transform``), so augmentation differs each epoch.
    """
    return (data.train.with_transform(_batch_transform(image_transforms(processor, train=True))),
            data.val.with_transform(_batch_transform(image_transforms(processor, train=False))))


def _batch_transform(transform):
    def apply(batch: dict) -> dict:
        return {"pixel_values": [transform(image.convert("RGB")) for image in batch["image"]],
                "label": batch["label"]}
    return apply


def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack preprocessed items: ``pixel_values`` (B, 3, H, W) float32 and ``labels`` (B,) int64."""
    return {"pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "labels": torch.tensor([e["label"] for e in examples], dtype=torch.long)}
