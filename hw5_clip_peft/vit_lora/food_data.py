"""Food-101 as Hugging Face ``datasets`` splits, preprocessed for a ViT (hw5.P5).

Two sources, one result (:class:`FoodData`: raw ``image``/``label`` splits and the label names):

- a hub id (default :data:`FOOD101_HUB_ID`, the ``full`` profile): Food-101's own ``train`` (75,750 images)
  and ``validation`` (25,250) splits, 101 classes; needs the network or a filled ``datasets`` cache;
- a local folder ``<root>/<class>/<image>`` (the ``quick`` profile: ``$DLHW_DATA/food101_sample``,
  10 classes × 10 photos), read with the ``imagefolder`` builder. When a ``classes.txt`` lies in the folder
  (the full 101-name list) the labels are re-indexed onto it, so the head is 101-way exactly as in ``full``;
  the validation split is a stratified ``val_fraction`` of the folder. The extracted Food-101 archive works
  too (pass ``food-101/images``): class list and official test split come from ``food-101/meta``.

Preprocessing follows the model's image processor (size, mean, std) with torchvision transforms applied lazily
by ``Dataset.with_transform``: random resized crop + flip for training, resize + centre crop for evaluation::

    data = load_food(default_food_source(get_profile()))
    train_ds, val_ds = preprocess(data, processor)      # items: {"pixel_values": (3, H, W), "label": int}
    batch = collate(train_ds[:4] ...)                    # {"pixel_values": (B, 3, H, W), "labels": (B,)}
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from common import DataNotFoundError, Profile, cache_dir, data_root, list_image_folder

FOOD101_HUB_ID = "ethz/food101"
SAMPLE_FOLDER = "food101_sample"
CLASS_LIST = "classes.txt"


@dataclass(frozen=True)
class FoodData:
    """Raw splits (columns ``image``: PIL, ``label``: int) and ``labels[i]`` = name of class ``i``."""

    train: object  # datasets.Dataset
    val: object
    labels: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def summary(self) -> str:
        return (f"{self.source}: {len(self.train)} train / {len(self.val)} val images, "
                f"{self.num_classes} classes")


def default_food_source(profile: Profile) -> str:
    """``full``: the hub dataset; ``quick``: the 100-photo sample under ``$DLHW_DATA``."""
    if profile.full:
        return FOOD101_HUB_ID
    root = data_root()
    if root is None or not (root / SAMPLE_FOLDER).is_dir():
        raise DataNotFoundError(
            f"the quick profile reads Food-101 photos from $DLHW_DATA/{SAMPLE_FOLDER}/<class>/*.jpg, but "
            f"{'DLHW_DATA is not set' if root is None else f'{root / SAMPLE_FOLDER} does not exist'}. "
            f"Set DLHW_DATA=../shared/data (or pass any image folder as `source`).")
    return str(root / SAMPLE_FOLDER)


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """One class name per line (Food-101's ``meta/classes.txt`` order; blank lines ignored)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    names = tuple(line.strip() for line in lines if line.strip())
    if len(set(names)) != len(names):
        raise ValueError(f"{path} lists a class name twice; each line must be a distinct class.")
    return names


def load_food(source: str | Path, *, val_fraction: float = 0.2, train_limit: int | None = None,
              val_limit: int | None = None, seed: int = 0) -> FoodData:
    """Load ``source`` (an image folder or a hub id) as :class:`FoodData`.

    ``train_limit``/``val_limit`` keep a seeded random subset (the PEFT guide trains on 5,000 images).
    ``val_fraction`` only applies to folders (the hub dataset has its own validation split).
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        data = _from_folder(folder, val_fraction, seed)
    elif str(source).startswith((".", "/", "~")) or Path(source).suffix:
        raise DataNotFoundError(f"image folder {folder} does not exist; pass a folder holding one sub-folder "
                                f"per class, or the hub id {FOOD101_HUB_ID!r}.")
    else:
        data = _from_hub(str(source))
    train, val = data.train, data.val
    if train_limit is not None and train_limit < len(train):
        train = train.shuffle(seed=seed).select(range(train_limit))
    if val_limit is not None and val_limit < len(val):
        val = val.shuffle(seed=seed).select(range(val_limit))
    return FoodData(train, val, data.labels, data.source)


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
        raise ValueError(f"folders {unknown} of {folder} are not in {class_file}; rename them or fix the "
                         f"list.")
    ds = datasets.load_dataset("imagefolder", data_dir=str(folder), split="train",
                               cache_dir=str(cache_dir("hf_datasets")))
    # imagefolder numbers the sub-folders 0..9 in sorted order; move them onto the full label list
    ds = ds.align_labels_with_mapping({name: i for i, name in enumerate(labels)}, "label")
    if (meta / "test.txt").is_file():  # Food-101's official test split (= the hub's "validation")
        held_out = set((meta / "test.txt").read_text(encoding="utf-8").split())  # "apple_pie/1011328"
        files = ds.cast_column("image", datasets.Image(decode=False))["image"]  # {"path", "bytes"} per row
        paths = [Path(item["path"]) for item in files]
        in_val = [f"{p.parent.name}/{p.stem}" in held_out for p in paths]
        return FoodData(ds.select([i for i, v in enumerate(in_val) if not v]),
                        ds.select([i for i, v in enumerate(in_val) if v]), labels, str(folder))
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must lie strictly between 0 and 1.")
    split = ds.train_test_split(test_size=val_fraction, stratify_by_column="label", seed=seed)
    return FoodData(split["train"], split["test"], labels, str(folder))


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face hub opens within ``timeout`` s.

    False under ``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1``; assumed true behind a proxy. Asked before
    any download, so that an offline machine fails at once, not after the hub client's retries (~30 s a file).
    """
    if _flag("HF_HUB_OFFLINE") or _flag("TRANSFORMERS_OFFLINE"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hub(hub_id: str) -> FoodData:
    import datasets

    # offline, `datasets` can only use its cache if it saw HF_HUB_OFFLINE=1 when imported; otherwise it would
    # retry the hub for half a minute per file before failing
    if not hub_reachable() and not datasets.config.HF_HUB_OFFLINE:
        raise DataNotFoundError(
            f"the dataset {hub_id!r} needs the Hugging Face hub, which this machine cannot reach. Offline, "
            f"pass a local image folder (<root>/<class>/<image>.jpg, e.g. $DLHW_DATA/{SAMPLE_FOLDER}) as "
            f"`source`, or start Python with HF_HUB_OFFLINE=1 to read a copy already in the datasets cache.")
    try:
        splits = datasets.load_dataset(hub_id)
    except (OSError, ConnectionError, ValueError) as err:  # offline, unknown id, no cache
        raise DataNotFoundError(
            f"could not load the dataset {hub_id!r} from the Hugging Face hub or its cache "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]}). Offline, pass a local image folder "
            f"(<root>/<class>/<image>.jpg, e.g. $DLHW_DATA/{SAMPLE_FOLDER}) as `source`.") from err
    if "train" not in splits or "validation" not in splits:
        raise ValueError(f"{hub_id} has splits {list(splits)}; expected 'train' and 'validation'.")
    labels = tuple(splits["train"].features["label"].names)
    return FoodData(splits["train"], splits["validation"], labels, hub_id)


def image_source(split, index: int):
    """Example ``index``'s image file path when the split was read from files, else its PIL image."""
    import datasets

    raw = split.cast_column("image", datasets.Image(decode=False))[index]["image"]
    path = Path(raw["path"]) if raw.get("path") else None
    return path if path is not None and path.is_file() else split[index]["image"]


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
