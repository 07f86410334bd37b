"""What the text encoder is told each breed is called: curated ImageNet names (default) or raw folder names.

Stanford Dogs folders are ``<WordNet id>-<first WordNet lemma>``: ``n02088238-basset``, ``n02112137-chow``,
``n02113023-Pembroke``, ``n02096585-Boston_bull``. Many lemmas are ambiguous English words (a basset is also a
card game, a chow is food, Pembroke and Cardigan are Welsh towns and a cardigan is a sweater), which is the
kind of error the per-class analysis finds. The CLIP authors hand-wrote unambiguous names for the 1,000
ImageNet classes (``Basset Hound``, ``Chow Chow``, ``Pembroke Welsh Corgi``, ``Boston Terrier``); open_clip
ships them as ``open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES``. The dog breeds are ImageNet synsets, so
each folder maps to its curated name through its WordNet id (``dog_breeds.IMAGENET_INDEX``).

- ``curated``: the ImageNet name (a folder outside Stanford Dogs keeps its raw name);
- ``raw``: the folder name without the id, underscores as spaces (``Boston bull``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from .dog_breeds import IMAGENET_INDEX, STANFORD_DOGS_FOLDERS, wnid

NAME_STYLES: tuple[str, ...] = ("curated", "raw")
_SYNSET = re.compile(r"^n\d{8}-(.*)$")
_STANFORD_BY_WNID = {wnid(folder): i for i, folder in enumerate(STANFORD_DOGS_FOLDERS)}


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


def imagenet_index(folder: str) -> int | None:
    """The ImageNet-1k class index of a Stanford Dogs folder (by WordNet id), ``None`` for other folders."""
    i = _STANFORD_BY_WNID.get(wnid(folder))
    return None if i is None else IMAGENET_INDEX[i]


def curated_name(folder: str) -> str:
    """open_clip's curated ImageNet name of ``folder`` (its raw name when it is not an ImageNet dog).

    >>> curated_name("n02113023-Pembroke"), curated_name("n02112137-chow")
    ('Pembroke Welsh Corgi', 'Chow Chow')
    """
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    index = imagenet_index(folder)
    return IMAGENET_CLASSNAMES[index] if index is not None else clean_class_name(folder)


def breed_names(folders: Sequence[str], style: str = "curated") -> tuple[str, ...]:
    """One text-side name per class folder, in ``style`` (one of :data:`NAME_STYLES`)."""
    if style not in NAME_STYLES:
        raise ValueError(f"name style {style!r} is not one of {', '.join(NAME_STYLES)}")
    name = curated_name if style == "curated" else clean_class_name
    return tuple(name(folder) for folder in folders)
