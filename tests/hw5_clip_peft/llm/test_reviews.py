"""Review data: the committed sample, errors, the shuffled class-balanced subset and the stratified split."""
import pytest

from common import CorruptDataError, DataNotFoundError
from hw5_clip_peft.llm.reviews import (SAMPLE_REVIEWS, Review, _sentiment_sign, balanced_subset, class_counts,
                                       load_reviews, read_reviews, resolve_reviews, split_reviews)


def test_sample_is_balanced_and_split_stratified_without_overlap():
    reviews = load_reviews()
    assert class_counts(reviews) == {"negative": 20, "positive": 20}
    train, val = split_reviews(reviews, 0.3)
    assert class_counts(val) == {"negative": 6, "positive": 6} and len(train) == 28
    assert not {r.text for r in train} & {r.text for r in val}


def test_balanced_subset_of_a_sorted_skewed_source():
    # a source sorted by label with three negatives per positive, as a hub corpus may be
    reviews = [Review(f"neg {i}", 0) for i in range(30)] + [Review(f"pos {i}", 1) for i in range(10)]
    subset = balanced_subset(reviews, seed=0)
    assert class_counts(subset) == {"negative": 10, "positive": 10}
    labels = [r.label for r in subset]
    assert labels != sorted(labels) and labels != sorted(labels, reverse=True)  # shuffled together
    assert {r.text for r in subset if r.label == 0} != {f"neg {i}" for i in range(10)}  # not the first ten
    assert class_counts(balanced_subset(reviews, per_class=4, seed=0)) == {"negative": 4, "positive": 4}
    assert balanced_subset(reviews, 4, seed=1) == balanced_subset(reviews, 4, seed=1)
    assert balanced_subset(reviews, 4, seed=1) != balanced_subset(reviews, 4, seed=2)


def test_tiny_split_keeps_a_training_review_per_class():
    reviews = [Review("a", 0), Review("b", 0), Review("c", 1), Review("d", 1)]
    train, val = split_reviews(reviews, 0.9)
    assert class_counts(train) == class_counts(val) == {"negative": 1, "positive": 1}


def test_bad_and_missing_files(tmp_path):
    bad = tmp_path / "r.tsv"
    bad.write_text("text\tlabel\nخوب\tgood\n", encoding="utf-8")
    with pytest.raises(CorruptDataError, match="label in"):
        load_reviews(bad)
    with pytest.raises(DataNotFoundError, match="--reviews"):
        load_reviews(tmp_path / "none.tsv")


def test_resolving_the_source(tmp_path, monkeypatch):
    assert resolve_reviews(None, full=False) == str(SAMPLE_REVIEWS)
    (tmp_path / "persian").mkdir()
    (tmp_path / "persian" / "r.tsv").write_text(SAMPLE_REVIEWS.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "persian")
    assert resolve_reviews("r.tsv", full=True) == "r.tsv"
    monkeypatch.chdir(tmp_path)
    assert resolve_reviews("persian/r.tsv", full=True, data_root=None) == "persian/r.tsv"
    monkeypatch.chdir("/")
    found = resolve_reviews("persian/r.tsv", full=True, data_root=tmp_path)  # looked up under the data root
    assert found == str(tmp_path / "persian" / "r.tsv") and len(read_reviews(found)) == 40
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    with pytest.raises(DataNotFoundError, match="DLHW_DOWNLOAD=1"):
        resolve_reviews(None, full=True)  # the hub corpus, not cached, downloads off
    with pytest.raises(DataNotFoundError, match="neither a file"):
        resolve_reviews("missing.tsv", full=True)


def test_sentiment_label_reading():
    assert [_sentiment_sign(v) for v in (-2, -1, 0, 1, 2)] == [-1, -1, None, 1, 1]
    words = ("positive", "Very Negative", "منفی", "neutral", "1")
    assert [_sentiment_sign(v) for v in words] == [1, -1, -1, None, 1]


def test_hub_dataset_labels_are_read_by_name_not_index(tmp_path, monkeypatch):
    """A ClassLabel column stores indices: 0 = "negative" must not be dropped as a neutral 0, nor
    2 = "neutral" read as positive. (The dataset is built locally; nothing is downloaded.)"""
    import datasets

    features = datasets.Features({"review": datasets.Value("string"), "id": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive", "neutral"])})
    ds = datasets.Dataset.from_dict({"review": ["بد بود", "خوب بود", "معمولی بود", "عالی بود"],
                                     "id": ["1", "2", "3", "4"], "label": [0, 1, 2, 1]}, features=features)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: ds)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda repo_id, **k: repo_id)
    from hw5_clip_peft.llm.reviews import load_hub_reviews

    reviews = load_hub_reviews("some/dataset")
    assert [(r.text, r.label) for r in reviews] == [("بد بود", 0), ("خوب بود", 1), ("عالی بود", 1)]


def test_cached_hub_dataset_is_read_from_its_local_snapshot(tmp_path, monkeypatch):
    """Offline (downloads off), the cached snapshot folder is what datasets reads: a folder holding
    data/train-*.parquet, as the hub stores ParsiNLU. Built here; nothing is downloaded."""
    import datasets
    import huggingface_hub

    (tmp_path / "data").mkdir()
    datasets.Dataset.from_dict({"sentence": ["خیلی بد بود", "عالی بود"], "label": ["negative", "positive"]}) \
        .to_parquet(str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    asked = {}

    def snapshot(repo_id, repo_type, local_files_only):
        asked.update(repo_id=repo_id, repo_type=repo_type, local_files_only=local_files_only)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    from hw5_clip_peft.llm.reviews import load_hub_reviews

    reviews = load_hub_reviews("universitytehran/ParsiNLU_SentenceSentiment")
    assert asked == {"repo_id": "universitytehran/ParsiNLU_SentenceSentiment", "repo_type": "dataset",
                     "local_files_only": True}
    assert [(r.text, r.label) for r in reviews] == [("خیلی بد بود", 0), ("عالی بود", 1)]


def test_a_cached_hub_dataset_resolves_offline(monkeypatch):
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda repo_id, **k: "/cache/snapshot")
    assert resolve_reviews("universitytehran/ParsiNLU_SentenceSentiment", full=True) == \
        "universitytehran/ParsiNLU_SentenceSentiment"
