"""Stanford Dogs loading: official .mat split lists, where the data is found, validation carving (offline)."""
import doctest
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from common import CorruptDataError, DataNotFoundError, get_profile
from hw5_clip_peft.clip import breed_names
from hw5_clip_peft.clip.breed_names import clean_class_name
from hw5_clip_peft.clip.dog_breeds import STANFORD_DOGS_FOLDERS
from hw5_clip_peft.clip.dogs import (OFFICIAL_SIZES, ImageSplit, carve_validation, find_dogs, load_dogs,
                                     load_folder_split, load_official, parse_split_list, splits_from_hf)

QUICK, FULL = get_profile("quick"), get_profile("full")


def write_split_list(path: Path, files: list[str], labels_1based: list[int]) -> None:
    """A .mat in the official layout: file_list and labels as N x 1 (cell / numeric) arrays."""
    file_list = np.empty((len(files), 1), dtype=object)
    for i, f in enumerate(files):
        file_list[i, 0] = np.array([f])
    annotation_list = np.empty((len(files), 1), dtype=object)
    for i, f in enumerate(files):
        annotation_list[i, 0] = np.array([f.rsplit(".", 1)[0]])
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"file_list": file_list, "annotation_list": annotation_list,
                   "labels": np.array(labels_1based, dtype=np.uint8).reshape(-1, 1)})


@pytest.mark.parametrize("folder, name", [
    ("n02085620-Chihuahua", "Chihuahua"),
    ("n02099712-Labrador_retriever", "Labrador retriever"),
    ("n02086240-Shih-Tzu", "Shih-Tzu"),
    ("n02116738-African_hunting_dog", "African hunting dog"),
    ("n02097474-Tibetan_terrier/", "Tibetan terrier"),
    ("golden_retriever", "golden retriever"),  # already without a synset id (e.g. HF label names)
])
def test_clean_class_name(folder, name):
    assert clean_class_name(folder) == name


def test_clean_class_name_rejects_empty_and_doctests_pass():
    with pytest.raises(ValueError, match="no breed name"):
        clean_class_name("n02085620-")
    assert doctest.testmod(breed_names).failed == 0
    cleaned = [clean_class_name(f) for f in STANFORD_DOGS_FOLDERS]
    assert len(set(cleaned)) == 120 and not any("_" in c or c.startswith("n0") for c in cleaned)


def test_parse_split_list_reads_official_structure(tmp_path):
    files = ["n02085620-Chihuahua/n02085620_10074.jpg", "n02088364-beagle/n02088364_1.jpg",
             "n02116738-African_hunting_dog/n02116738_9.jpg"]
    write_split_list(tmp_path / "train_list.mat", files, [1, 12, 120])
    parsed, labels = parse_split_list(tmp_path / "train_list.mat")
    assert parsed == files
    assert labels.tolist() == [0, 11, 119] and labels.dtype == np.int64


def test_parse_split_list_errors(tmp_path):
    write_split_list(tmp_path / "bad.mat", ["n02088364-beagle/x.jpg"], [1])  # beagle is label 12, not 1
    with pytest.raises(CorruptDataError, match="official class order"):
        parse_split_list(tmp_path / "bad.mat")
    write_split_list(tmp_path / "range.mat", ["n02085620-Chihuahua/x.jpg"], [121])
    with pytest.raises(CorruptDataError, match="labels must be in 1..120"):
        parse_split_list(tmp_path / "range.mat")
    (tmp_path / "junk.mat").write_text("not a mat file")
    with pytest.raises(CorruptDataError, match="not a readable MATLAB file"):
        parse_split_list(tmp_path / "junk.mat")
    savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
    with pytest.raises(CorruptDataError, match="file_list"):
        parse_split_list(tmp_path / "other.mat")
    with pytest.raises(DataNotFoundError, match="lists.tar"):
        parse_split_list(tmp_path / "missing.mat")


def make_archive(root: Path, per_class: dict[int, tuple[int, int]]) -> None:
    """A miniature official archive: Images/<folder>/<file>.jpg and lists/{train,test}_list.mat."""
    lists = {"train": ([], []), "test": ([], [])}
    for label, (n_train, n_test) in per_class.items():
        folder = STANFORD_DOGS_FOLDERS[label]
        (root / "Images" / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n_train + n_test):
            rel = f"{folder}/{folder.split('-')[0]}_{i}.jpg"
            Image.new("RGB", (8, 8), (label, i, 0)).save(root / "Images" / rel)
            split = "train" if i < n_train else "test"
            lists[split][0].append(rel)
            lists[split][1].append(label + 1)
    for split, (files, labels) in lists.items():
        write_split_list(root / "lists" / f"{split}_list.mat", files, labels)


def test_load_official_archive_and_validation_carving(tmp_path):
    make_archive(tmp_path, {0: (10, 4), 11: (10, 4), 119: (10, 4)})
    splits = load_official(tmp_path, val_fraction=0.2, seed=0)
    assert splits.classes == STANFORD_DOGS_FOLDERS and splits.names("raw")[0] == "Chihuahua"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 6, 12)
    assert torch.bincount(splits.val.y, minlength=120)[[0, 11, 119]].tolist() == [2, 2, 2]  # stratified
    assert not set(splits.train.ids) & set(splits.val.ids)
    image = splits.test.image(0)
    assert image.size == (8, 8) and image.mode == "RGB"
    # labels follow the folders of the ids
    for split in (splits.train, splits.val, splits.test):
        folders = [i.split("/")[0] for i in split.ids]
        assert folders == [STANFORD_DOGS_FOLDERS[int(label)] for label in split.y]


def test_load_official_missing_parts(tmp_path):
    with pytest.raises(DataNotFoundError, match="images.tar and lists.tar"):
        load_official(tmp_path)
    make_archive(tmp_path, {0: (2, 1)})
    os.remove(tmp_path / "Images" / STANFORD_DOGS_FOLDERS[0] / "n02085620_0.jpg")
    with pytest.raises(DataNotFoundError, match="missing"):
        load_official(tmp_path)


def test_carve_validation_is_stratified_and_disjoint():
    y = torch.arange(5).repeat_interleave(20)
    split = ImageSplit("train", tuple(f"f{i}" for i in range(100)), y, tuple("abcde"), "test", str)
    train, val = carve_validation(split, 0.1, seed=3)
    assert len(train) == 90 and len(val) == 10
    assert torch.bincount(val.y).tolist() == [2] * 5
    assert sorted(train.ids + val.ids) == sorted(split.ids)
    with pytest.raises(ValueError, match="val_fraction"):
        carve_validation(split, 1.0)


def test_generated_folder_split(generated_dog_folder):
    folder = generated_dog_folder(num_classes=4, per_class=6, size=16)
    splits = load_folder_split(folder, source="generated")
    assert len(splits.classes) == 4 and all(c.startswith("n0") for c in splits.classes)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 24
    assert len({*splits.train.ids, *splits.val.ids, *splits.test.ids}) == 24
    assert torch.bincount(splits.test.y).tolist() == [2, 2, 2, 2]
    small = splits.per_class(1)
    assert torch.bincount(small.train.y).tolist() == [1, 1, 1, 1] and len(small.test) == 4


def test_classes_file_makes_the_folder_a_120_way_problem(generated_dog_folder, tmp_path):
    folder = generated_dog_folder(num_classes=3, per_class=6, size=16, classes_file=True)
    splits = load_folder_split(folder)
    assert splits.classes == STANFORD_DOGS_FOLDERS and splits.present() == 3
    for split in (splits.train, splits.val, splits.test):  # labels index the 120 listed folders
        assert [i.split("/")[0] for i in split.ids] == [STANFORD_DOGS_FOLDERS[int(k)] for k in split.y]
    (folder / "classes.txt").write_text("n02085620-Chihuahua\n")
    with pytest.raises(CorruptDataError, match="not listed in classes.txt"):
        load_folder_split(folder)


def test_sample_folder_from_data_root(data_root):
    if not (data_root / "stanford_dogs_sample").is_dir():
        pytest.skip(f"needs the Stanford Dogs sample under {data_root}")
    source, folder = find_dogs(QUICK, data_root)
    splits = load_dogs(source, folder)
    assert source == "folder" and "real photos" in splits.source
    assert splits.classes == STANFORD_DOGS_FOLDERS and splits.present() == 10  # classes.txt: all 120 breeds
    assert "Labrador Retriever" in splits.names() and "Labrador retriever" in splits.names("raw")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (60, 20, 40)
    assert splits.test.image(0).size == (224, 224)


def test_missing_data_is_an_error_in_every_profile(tmp_path, monkeypatch):
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    for profile in (QUICK, FULL):
        with pytest.raises(DataNotFoundError, match="DLHW_DATA is not set"):
            find_dogs(profile, None)
    with pytest.raises(DataNotFoundError, match="sample is not in .*--dogs-dir"):
        find_dogs(QUICK, tmp_path)
    with pytest.raises(DataNotFoundError, match="images.tar and lists.tar.*DLHW_DOWNLOAD=1.*--dogs-dir"):
        find_dogs(FULL, tmp_path)
    with pytest.raises(DataNotFoundError, match="--dogs-dir .*nowhere is not a folder"):
        find_dogs(QUICK, tmp_path, tmp_path / "nowhere")
    (tmp_path / "stanford_dogs_sample").mkdir()
    with pytest.raises(DataNotFoundError, match="images.tar"):  # the full profile never falls back to the sample
        find_dogs(FULL, tmp_path)
    monkeypatch.setenv("DLHW_DOWNLOAD", "1")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    assert find_dogs(FULL, tmp_path) == ("hf", None)
    with pytest.raises(ValueError, match="source must be one of"):
        find_dogs(QUICK, tmp_path, source="imagenet")


def test_find_dogs_reads_the_layout_of_dogs_dir(tmp_path, generated_dog_folder):
    make_archive(tmp_path / "archive", {0: (2, 1)})
    assert find_dogs(QUICK, None, tmp_path / "archive") == ("official", tmp_path / "archive")
    folder = generated_dog_folder(num_classes=2, per_class=3, size=8)
    assert find_dogs(FULL, None, folder) == ("folder", folder)
    with pytest.raises(DataNotFoundError, match="Images does not exist"):
        find_dogs(FULL, None, folder, source="official")
    (tmp_path / "data" / "stanford_dogs").mkdir(parents=True)
    (tmp_path / "archive").rename(tmp_path / "data" / "stanford_dogs" / "x")
    make_archive(tmp_path / "data" / "stanford_dogs", {0: (2, 1)})
    assert find_dogs(FULL, tmp_path / "data") == ("official", tmp_path / "data" / "stanford_dogs")
    assert find_dogs(QUICK, tmp_path / "data", source="official") == ("official", tmp_path / "data" / "stanford_dogs")
    with pytest.raises(DataNotFoundError, match="sample is not in"):  # asked for the folder: no archive instead
        find_dogs(FULL, tmp_path / "data", source="folder")


def test_splits_from_hf_datasets_objects():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=list(STANFORD_DOGS_FOLDERS[:3]))})
    images = [Image.new("RGB", (6, 6), (i, 0, 0)) for i in range(12)]
    train = datasets.Dataset.from_dict({"image": images[:9], "label": [0, 1, 2] * 3}, features=features)
    test = datasets.Dataset.from_dict({"image": images[9:], "label": [0, 1, 2]}, features=features)
    with pytest.raises(Exception, match="12,000/8,580"):
        splits_from_hf(train, test, dataset_id="tiny")
    splits = splits_from_hf(train, test, dataset_id="tiny", val_fraction=1 / 3, strict_sizes=False)
    assert splits.classes == STANFORD_DOGS_FOLDERS[:3]
    assert splits.names() == ("Chihuahua", "Japanese Chin", "Maltese")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 3, 3)
    assert splits.test.image(2).getpixel((0, 0)) == (11, 0, 0)
    assert OFFICIAL_SIZES == {"train": 12_000, "test": 8_580}
