"""The feature cache: keys, hits and misses, and that batched encoding equals a per-image loop."""
import dataclasses

import pytest
import torch

from hw5_clip_peft.clip.clip_models import TINY, TINY_WIDE, load_clip
from hw5_clip_peft.clip.dogs import load_folder_split
from hw5_clip_peft.clip.features import (FeatureCache, cache_key, encode_images, encode_texts, encode_tokens,
                                         image_features)


@pytest.fixture(scope="module")
def bundle():
    return load_clip(TINY, device="cpu", seed=0)


@pytest.fixture(scope="module")
def splits(generated_dog_folder_module):
    folder = generated_dog_folder_module(num_classes=3, per_class=6, size=24)
    return load_folder_split(folder, source="generated images")


def test_cache_key_depends_on_every_part():
    parts = {"kind": "image", "arch": "a", "weights": "w", "preprocess": "p", "ids": ("x", "y")}
    key = cache_key(**parts)
    assert key == cache_key(**dict(reversed(list(parts.items()))))  # order of arguments is irrelevant
    for name, value in [("kind", "text"), ("arch", "b"), ("weights", "w2"), ("preprocess", "q"),
                        ("ids", ("x", "z")), ("ids", ("y", "x"))]:
        assert cache_key(**{**parts, name: value}) != key, name


def test_miss_then_hit_then_miss_on_any_change(bundle, splits, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    calls = []
    real = encode_images

    def counting(*args, **kwargs):
        calls.append(args[1].name)
        return real(*args, **kwargs)

    monkeypatch.setattr("hw5_clip_peft.clip.features.encode_images", counting)
    first = image_features(bundle, splits.test, cache, batch_size=4)
    assert not first.hit and calls == ["test"] and first.X.shape == (len(splits.test), 64)
    second = image_features(bundle, splits.test, cache, batch_size=4)
    assert second.hit and calls == ["test"] and torch.equal(first.X, second.X)
    assert torch.equal(second.y, splits.test.y)
    # another split, another file list, other weights, other preprocessing: each is a miss
    assert not image_features(bundle, splits.val, cache).hit
    assert not image_features(bundle, splits.test.take([0, 1]), cache).hit
    other_weights = dataclasses.replace(bundle, weights_id="another fingerprint")
    assert not image_features(other_weights, splits.test, cache).hit
    other_preprocess = dataclasses.replace(bundle, preprocess=lambda im: bundle.preprocess(im.rotate(90)))
    assert not image_features(other_preprocess, splits.test, cache).hit
    assert calls == ["test", "val", "test", "test", "test"]
    assert len(list(tmp_path.glob("*.pt"))) == 5


def test_corrupt_cache_file_counts_as_a_miss(bundle, splits, tmp_path):
    cache = FeatureCache(tmp_path)
    first = image_features(bundle, splits.val, cache)
    cache.path(first.key).write_bytes(b"truncated")
    again = image_features(bundle, splits.val, cache)
    assert not again.hit and torch.allclose(again.X, first.X)
    assert image_features(bundle, splits.val, cache).hit


def test_batched_encoding_equals_per_image(bundle, splits):
    batched = encode_images(bundle, splits.train, batch_size=5)
    single = torch.cat([bundle.model.encode_image(bundle.preprocess(splits.train.image(i))[None])
                        for i in range(len(splits.train))])
    assert torch.allclose(batched, single, atol=1e-5)


def test_cut_padding_is_exact(bundle):
    """Encoding only up to the longest prompt's end token equals open_clip's full 77-token encode_text."""
    prompts = ["a photo of a pug.", "a photo of a Pembroke Welsh Corgi, a type of dog.", "x"]
    tokens = bundle.tokenizer(prompts)
    with torch.no_grad():
        assert torch.allclose(encode_tokens(bundle.model, tokens), bundle.model.encode_text(tokens), atol=1e-5)
        wide = load_clip(TINY_WIDE, device="cpu")
        assert torch.allclose(encode_tokens(wide.model, tokens), wide.model.encode_text(tokens), atol=1e-5)


def test_text_embeddings_are_cached(bundle, tmp_path):
    cache = FeatureCache(tmp_path)
    prompts = ["a photo of a Staffordshire Bull Terrier.", "a photo of a pug.", "a photo of a beagle."]
    first = encode_texts(bundle, prompts, cache, batch_size=2)  # sorted by length, batched, put back in order
    assert first.shape == (3, 64) and len(list(tmp_path.glob("*.pt"))) == 1
    assert torch.equal(encode_texts(bundle, prompts, cache), first)
    direct = bundle.model.encode_text(bundle.tokenizer(prompts))
    assert torch.allclose(first, direct, atol=1e-5)
