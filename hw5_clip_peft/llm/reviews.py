"""Persian review sentiment data for the soft prompt (hw5.P4): where it comes from, a shuffled
class-balanced subset, and a stratified split.

Sources (``--reviews``):

- the committed sample ``data/persian_reviews.tsv``: 40 short reviews written for this repository (20 per
  class), enough for a pipeline check, far too few for a benchmark (the quick profile's default);
- any TSV with ``text`` and ``label`` (positive/negative) columns; a relative path not found in the working
  folder is looked up under the data root (``--data-root``, ``$DLHW_DATA``);
- a Hugging Face dataset id, by default ``universitytehran/ParsiNLU_SentenceSentiment`` (ParsiNLU, Khashabi
  et al. 2021; the full profile's default), read from the HF cache, or downloaded with ``DLHW_DOWNLOAD=1``.

A hub dataset may be sorted by label or skewed towards one class, so the data used is a *shuffled,
class-balanced* subset (:func:`balanced_subset`) whose counts (available and used) are reported with the
results.
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from common.errors import CorruptDataError, DataNotFoundError
from common.pretrained import downloads_allowed

from .llm_models import looks_like_hub_id

DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLE_REVIEWS = DATA_DIR / "persian_reviews.tsv"
HUB_REVIEWS = "universitytehran/ParsiNLU_SentenceSentiment"
LABELS = ("negative", "positive")  # label index 0, 1


@dataclass(frozen=True)
class Review:
    text: str
    label: int  # 0 negative, 1 positive


def load_reviews(path: str | Path = SAMPLE_REVIEWS) -> list[Review]:
    """Reviews from a TSV with ``text`` and ``label`` (positive/negative) columns."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"review file {path} not found; pass --reviews with a TSV that has 'text' "
                                f"and 'label' columns (e.g. {SAMPLE_REVIEWS}).")
    try:
        with open(path, encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (UnicodeDecodeError, csv.Error) as err:
        raise CorruptDataError(f"{path} is not a UTF-8 TSV ({type(err).__name__}); pass a TSV with 'text' "
                               f"and 'label' columns.") from None
    bad = sorted({str(r.get("label")) for r in rows if r.get("label") not in LABELS or not r.get("text")})
    if bad or not rows:
        raise CorruptDataError(f"{path}: every row needs a text and a label in {list(LABELS)}; found "
                               f"{bad[:5] or 'no rows'}.")
    return [Review(r["text"].strip(), LABELS.index(r["label"])) for r in rows]


def _sentiment_sign(label) -> int | None:
    """+1 / -1 / None (neutral or unknown) for numeric (-2..2) or text ("positive", "منفی") labels."""
    if isinstance(label, (int, float)):
        return 1 if label > 0 else (-1 if label < 0 else None)
    text = str(label).strip().lower()
    if "neg" in text or "منفی" in text:
        return -1
    if "pos" in text or "مثبت" in text:
        return 1
    try:
        return _sentiment_sign(float(text))
    except ValueError:
        return None


def load_hub_reviews(dataset_id: str, split: str = "train", text_column: str | None = None,
                     label_column: str | None = None) -> list[Review]:
    """Every clearly positive/negative row of a Hugging Face dataset (cached, or downloads on).

    Columns are auto-detected when not given: the label column is the first whose name contains "label" or
    "sentiment"; the text column is the string column with the longest average text. Class-label indices
    are read through their names; other numeric labels by sign (-2..2 scales), text labels by
    "pos"/"neg"/"مثبت"/"منفی". Neutral rows are dropped.
    """
    import datasets
    from huggingface_hub import snapshot_download

    try:
        source = dataset_id
        if not downloads_allowed():
            # read the cached snapshot as a local folder: the datasets client would first try the network
            source = snapshot_download(dataset_id, repo_type="dataset", local_files_only=True)
        ds = datasets.load_dataset(source, split=split)
    except Exception as err:  # the datasets library raises many types for "not there"
        raise DataNotFoundError(f"dataset {dataset_id} cannot be loaded ({type(err).__name__}: "
                                f"{' '.join(str(err).split())[:120]}); pass --reviews with a TSV, or set "
                                f"DLHW_DOWNLOAD=1 on a machine with internet.") from None
    columns = ds.column_names
    label_column = label_column or next(
        (c for c in columns if "label" in c.lower() or "sentiment" in c.lower()), None)
    if text_column is None:
        sample = ds.select(range(min(len(ds), 200)))
        lengths = {c: sum(len(str(v)) for v in sample[c]) / max(len(sample), 1) for c in columns
                   if c != label_column and isinstance(sample[0][c], str)}
        text_column = max(lengths, key=lengths.get) if lengths else None
    if text_column not in columns or label_column not in columns:
        raise CorruptDataError(f"{dataset_id} has columns {columns}, no text and label column found.")
    feature = ds.features[label_column]
    # a ClassLabel stores indices (0 may well be "negative"); read its names, never the index's sign
    names = feature.int2str if hasattr(feature, "int2str") else None
    out = []
    for row in ds:
        sign = _sentiment_sign(names(row[label_column]) if names else row[label_column])
        if sign is not None and row[text_column]:
            out.append(Review(str(row[text_column]).strip(), int(sign > 0)))
    if not out:
        raise CorruptDataError(f"no positive/negative rows in {dataset_id}[{split}] column {label_column!r}.")
    return out


def resolve_reviews(value: str | None, full: bool, data_root: Path | None = None) -> str:
    """The review source to use: a TSV path or a hub dataset id that is on this machine (or downloadable).
    ``None`` means the profile's default. Raises :class:`DataNotFoundError` naming the fix."""
    if value is None:
        value = HUB_REVIEWS if full else str(SAMPLE_REVIEWS)
    path = Path(value).expanduser()
    if path.is_file():
        return str(path)
    if not path.is_absolute() and data_root is not None and (data_root / path).is_file():
        return str(data_root / path)
    if looks_like_hub_id(value) and not value.endswith((".tsv", ".csv")):
        if _snapshot_cached(value) or downloads_allowed():
            return value
        raise DataNotFoundError(f"dataset {value} is not in the Hugging Face cache and downloads are off; "
                                f"set DLHW_DOWNLOAD=1 on a machine with internet, or pass --reviews with a "
                                f"TSV (e.g. {SAMPLE_REVIEWS}).")
    raise DataNotFoundError(f"--reviews {value} is neither a file (here or under the data root) nor a hub "
                            f"dataset id; pass a TSV with 'text' and 'label' columns.")


def _snapshot_cached(dataset_id: str) -> bool:
    """Whether the HF cache holds a snapshot of ``dataset_id`` (what :func:`load_hub_reviews` reads
    offline)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(dataset_id, repo_type="dataset", local_files_only=True)
    except Exception:  # LocalEntryNotFoundError and friends: not cached
        return False
    return True


def read_reviews(source: str) -> list[Review]:
    """Reviews from a source returned by :func:`resolve_reviews`."""
    return load_reviews(source) if Path(source).is_file() else load_hub_reviews(source)


def class_counts(reviews: list[Review]) -> dict[str, int]:
    return {name: sum(r.label == i for r in reviews) for i, name in enumerate(LABELS)}


def balanced_subset(reviews: list[Review], per_class: int | None = None, seed: int = 0) -> list[Review]:
    """``per_class`` reviews of each class (fewer if the smaller class has fewer; all of it when ``None``),
    drawn at random (seeded) and shuffled together, so neither the file's order nor its skew leaks in."""
    rng = random.Random(seed)
    groups = [[r for r in reviews if r.label == i] for i in range(len(LABELS))]
    n = min(len(g) for g in groups)
    n = n if per_class is None else min(n, per_class)
    subset = [r for g in groups for r in rng.sample(g, n)]
    rng.shuffle(subset)
    return subset


def split_reviews(reviews: list[Review], val_fraction: float = 0.3, seed: int = 0):
    """Stratified ``(train, validation)`` split, each shuffled; at least one review per class in each."""
    rng = random.Random(seed)
    train, val = [], []
    for label in range(len(LABELS)):
        group = [r for r in reviews if r.label == label]
        rng.shuffle(group)
        n_val = min(max(1, round(val_fraction * len(group))), len(group) - 1)
        val += group[:n_val]
        train += group[n_val:]
    rng.shuffle(train)
    rng.shuffle(val)
    return train, val
