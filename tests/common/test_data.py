import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from common import (CorruptDataError, DataNotFoundError, channel_stats, load_dataset, load_image, load_image_folder, read_idx,
                    split_off, stratified_indices)
from common.data import TensorSplit


def test_digits_ship_with_sklearn_and_split_disjointly():
    splits = load_dataset("digits", seed=0)
    assert splits.input_shape == (1, 8, 8)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 1797
    assert 0.0 <= float(splits.train.X.min()) and float(splits.train.X.max()) <= 1.0
    # each image appears in exactly one split
    rows = [tuple(x.flatten().tolist()) + (int(y),) for s in (splits.train, splits.val, splits.test)
            for x, y in zip(s.X, s.y)]
    assert len(rows) == 1797


def test_real_mnist_from_data_root(mnist_root):
    splits = load_dataset("mnist", root=mnist_root)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54000, 6000, 10000)
    assert splits.input_shape == (1, 28, 28)
    # label histogram of the official test set (MANIFEST.md)
    assert torch.bincount(splits.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    small = load_dataset("mnist", root=mnist_root, limit_train=1000, limit_test=200)
    assert (len(small.train), len(small.test)) == (1000, 200)
    assert torch.bincount(small.train.y).min() >= 80  # stratified: every class present


def test_missing_data_error_names_folder_variable_and_download(tmp_path, monkeypatch):
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "DLHW_DATA" in message and "DLHW_DOWNLOAD=1" in message
    with pytest.raises(DataNotFoundError, match="MNIST/raw/train-images"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset("mnist", root=tmp_path / "nowhere")


def test_fashion_mnist_without_images_is_reported(data_root):
    # the shared folder holds the Fashion-MNIST labels only: the loader must say which file is missing
    with pytest.raises(DataNotFoundError, match="FashionMNIST/raw/train-images"):
        load_dataset("fashion_mnist", root=data_root)


@pytest.mark.parametrize("limit", [1, 37, 1000, 4999, 5000, 5001])
def test_limit_train_is_exact(limit):
    splits = load_dataset("digits", limit_train=min(limit, 1200))
    assert len(splits.train) == min(limit, 1200)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_dataset("svhn")


def test_mnist_through_torchvision_never_writes_into_the_data_root(tmp_path, mnist_root, monkeypatch):
    monkeypatch.setenv("DLHW_CACHE", str(tmp_path / "cache"))
    before = sorted(p.name for p in (mnist_root / "MNIST" / "raw").iterdir())
    splits = load_dataset("mnist", root=mnist_root, uint8=True, limit_train=500, limit_test=100)
    assert splits.train.X.dtype == torch.uint8 and splits.train.X.shape[1:] == (1, 28, 28)
    assert sorted(p.name for p in (mnist_root / "MNIST" / "raw").iterdir()) == before
    extracted = list((tmp_path / "cache" / "data" / "extracted").rglob("*-ubyte"))
    assert len(extracted) == 4                                   # the cache copy torchvision reads
    # the extracted copy equals the IDX reader's view of the .gz file
    labels = read_idx(mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz")
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_truncated_idx_file_is_corrupt(tmp_path, mnist_root):
    src = mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(src.read_bytes())
    assert read_idx(src).shape == (10000,)
    truncated = tmp_path / "t10k-labels-idx1-ubyte"
    truncated.write_bytes(raw[:5000])
    with pytest.raises(CorruptDataError, match="truncated"):
        read_idx(truncated)
    cut_gz = tmp_path / "cut.gz"
    cut_gz.write_bytes(src.read_bytes()[:2000])
    with pytest.raises(CorruptDataError, match="truncated"):
        read_idx(cut_gz)
    bad = tmp_path / "bad"
    bad.write_bytes(b"not an idx file at all")
    with pytest.raises(CorruptDataError, match="magic"):
        read_idx(bad)


def test_truncated_mnist_inside_a_root(tmp_path, mnist_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (mnist_root / "MNIST" / "raw").iterdir():
        shutil.copy(f, raw / f.name)
    data = (raw / "t10k-images-idx3-ubyte.gz").read_bytes()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDataError):
        load_dataset("mnist", root=tmp_path)


def test_stratified_subset_and_split_off():
    y = torch.arange(10).repeat_interleave(50)
    idx = stratified_indices(y, 100, seed=1)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert torch.bincount(y[idx]).tolist() == [10] * 10
    split = TensorSplit(torch.zeros(500, 1, 2, 2), y, tuple("0123456789"))
    train, val = split_off(split, 0.2, seed=0)
    assert (len(train), len(val)) == (400, 100)


def test_image_folder_real_sample_and_bad_image(data_root, tmp_path):
    folder = data_root / "food101_sample"
    if not folder.exists():
        pytest.skip("needs food101_sample under $DLHW_DATA")
    split = load_image_folder(folder, image_size=16)
    assert split.X.shape == (100, 3, 16, 16) and split.num_classes == 10
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not really a jpeg")
    with pytest.raises(CorruptDataError, match="not a readable image"):
        load_image(bad)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")


# ------------------------------------------------------------------------------------------------ CIFAR-10
@pytest.fixture(scope="module")
def cifar_root(data_root):
    if not (data_root / "cifar-10-batches-py").is_dir():
        pytest.skip(f"needs CIFAR-10 under {data_root}/cifar-10-batches-py")
    return data_root


@pytest.fixture(scope="module")
def cifar(cifar_root):
    return load_dataset("cifar10", root=cifar_root, val_size=1000, uint8=True)


@pytest.mark.slow
def test_real_cifar10_course_split(cifar):
    assert (len(cifar.train), len(cifar.val), len(cifar.test)) == (49000, 1000, 10000)
    assert cifar.train.X.dtype == torch.uint8 and cifar.input_shape == (3, 32, 32)
    assert torch.bincount(cifar.val.y).tolist() == [100] * 10           # stratified, fixed by the seed
    assert torch.bincount(cifar.test.y).tolist() == [1000] * 10
    assert cifar.classes[0] == "airplane" and cifar.classes[-1] == "truck"
    # the three splits are disjoint: no training image is also a validation image
    key = lambda X: {hash(x.numpy().tobytes()) for x in X}
    assert not key(cifar.val.X) & key(cifar.train.X[:10000])


@pytest.mark.slow
def test_real_cifar10_statistics_and_float_view(cifar, cifar_root):
    # per-channel statistics of the 50,000 official training images (MANIFEST.md): 0.4914, 0.4822, 0.4465
    full = torch.cat([cifar.train.X, cifar.val.X])
    mean, std = channel_stats(full)
    assert torch.allclose(mean, torch.tensor([0.491400, 0.482158, 0.446531]), atol=1e-5)
    assert torch.allclose(std, torch.tensor([0.247032, 0.243485, 0.261588]), atol=1e-4)
    as_float = load_dataset("cifar10", root=cifar_root, val_size=1000, limit_train=200, limit_test=50)
    as_bytes = load_dataset("cifar10", root=cifar_root, val_size=1000, limit_train=200, limit_test=50, uint8=True)
    assert as_float.train.X.dtype == torch.float32
    assert torch.equal(as_float.train.X, as_bytes.train.X.float() / 255)
    assert torch.equal(as_float.val.y, cifar.val.y)                      # same validation split with a limit


def test_cifar10_missing_file_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"x")
    with pytest.raises(DataNotFoundError, match="data_batch_2.*test_batch") as err:
        load_dataset("cifar10", root=tmp_path)
    assert "DLHW_DATA" in str(err.value) and str(folder) in str(err.value)


@pytest.mark.slow
def test_cifar10_truncated_batch_is_corrupt(tmp_path, cifar_root):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for f in (cifar_root / "cifar-10-batches-py").iterdir():
        (folder / f.name).symlink_to(f)
    (folder / "data_batch_3").unlink()
    (folder / "data_batch_3").write_bytes((cifar_root / "cifar-10-batches-py" / "data_batch_3").read_bytes()[:10000])
    with pytest.raises(CorruptDataError, match="checksum"):
        load_dataset("cifar10", root=tmp_path)


def test_val_size_takes_exactly_that_many():
    splits = load_dataset("digits", val_size=100, limit_train=500)
    assert (len(splits.train), len(splits.val)) == (500, 100)
    assert torch.bincount(splits.val.y).min() >= 9
    with pytest.raises(ValueError, match="val_size"):
        load_dataset("digits", val_size=0)
