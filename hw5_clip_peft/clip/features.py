"""Encode every image once, cache the features on disk, and run every experiment on the cache.

The key of a cached entry is a SHA-256 of (architecture, weights, split name, preprocessing, image ids), so a
different model, checkpoint, transform or file list can never be served a stale entry. A template sweep,
per-class metrics, class-embedding training and the linear probe then cost milliseconds to seconds.

Encoding batches images through a ``DataLoader`` (PIL decode + open_clip's eval transform in worker
processes when ``num_workers > 0``), one forward per batch, ``no_grad`` and bf16 autocast on CUDA;
``benchmarks/bench_clip.py`` compares it with a per-image loop.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from common import cache_dir

from .clip_models import ClipBundle
from .dogs import ImageSplit

CACHE_VERSION = 1  # bump when the stored format or the encoding changes


@dataclass(frozen=True)
class FeatureSet:
    """Image features of one split: ``X`` (N, D) float32 un-normalised embeddings, ``y`` (N,) labels."""

    X: torch.Tensor
    y: torch.Tensor
    ids: tuple[str, ...]
    key: str
    hit: bool  # True when read from the cache

    def __len__(self) -> int:
        return len(self.y)


def cache_key(**parts) -> str:
    """SHA-256 of the JSON of ``parts`` (sorted keys): equal inputs, equal key; any change, new key."""
    blob = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class FeatureCache:
    """A folder of ``<key>.pt`` files (default ``common.cache_dir('clip_features')``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir("clip_features")
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str) -> dict | None:
        """The stored payload, or ``None`` when absent or unreadable (a corrupt file counts as a miss)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 -- any unreadable file (truncated, foreign, old format) is a miss
            return None

    def save(self, key: str, payload: dict) -> Path:
        path = self.path(key)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(payload, tmp)
        os.replace(tmp, path)  # atomic: a killed run never leaves half a file under the real name
        return path

    def get_or_compute(self, key: str, compute: Callable[[], dict]) -> tuple[dict, bool]:
        """``(payload, hit)``: the cached payload, or ``compute()`` saved under ``key``."""
        payload = self.load(key)
        if payload is not None:
            return payload, True
        payload = compute()
        self.save(key, payload)
        return payload, False


class _Preprocessed(torch.utils.data.Dataset):
    def __init__(self, split: ImageSplit, preprocess):
        self.split, self.preprocess = split, preprocess

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(self.split.image(i))


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def encode_images(bundle: ClipBundle, split: ImageSplit, *, batch_size: int = 64, num_workers: int = 0,
                  progress: bool | None = None) -> torch.Tensor:
    """(N, D) float32 image embeddings of ``split`` (un-normalised, on CPU), in split order."""
    loader = torch.utils.data.DataLoader(_Preprocessed(split, bundle.preprocess), batch_size=batch_size,
                                         shuffle=False, num_workers=num_workers,
                                         pin_memory=bundle.device.type == "cuda")
    out = []
    for images in tqdm(loader, desc=f"encode {split.name}", disable=not progress, leave=False):
        with _autocast(bundle.device):
            out.append(bundle.model.encode_image(images.to(bundle.device, non_blocking=True)).float().cpu())
    return torch.cat(out) if out else torch.empty(0, bundle.embed_dim)


def image_features(bundle: ClipBundle, split: ImageSplit, cache: FeatureCache | None = None, *,
                   batch_size: int = 64, num_workers: int = 0, progress: bool | None = None) -> FeatureSet:
    """Features of ``split`` from the cache, encoding (once) on a miss."""
    cache = cache or FeatureCache()
    key = cache_key(kind="image", arch=bundle.spec.arch, weights=bundle.weights, split=split.name,
                    preprocess=repr(bundle.preprocess), ids=split.ids)

    def compute() -> dict:
        X = encode_images(bundle, split, batch_size=batch_size, num_workers=num_workers, progress=progress)
        return {"X": X, "y": split.y.clone(), "ids": list(split.ids)}

    payload, hit = cache.get_or_compute(key, compute)
    if tuple(payload["ids"]) != split.ids:  # a hash collision is unthinkable; a hand-copied file is not
        payload, hit = compute(), False
        cache.save(key, payload)
    return FeatureSet(payload["X"], payload["y"], split.ids, key, hit)


@torch.no_grad()
def encode_texts(bundle: ClipBundle, prompts: Sequence[str], cache: FeatureCache | None = None,
                 batch_size: int = 256) -> torch.Tensor:
    """(P, D) float32 text embeddings of ``prompts`` (un-normalised), cached like image features."""
    cache = cache or FeatureCache()
    key = cache_key(kind="text", arch=bundle.spec.arch, weights=bundle.weights, prompts=list(prompts))

    def compute() -> dict:
        out = []
        for start in range(0, len(prompts), batch_size):
            tokens = bundle.tokenizer(list(prompts[start:start + batch_size])).to(bundle.device)
            with _autocast(bundle.device):
                out.append(bundle.model.encode_text(tokens).float().cpu())
        return {"X": torch.cat(out) if out else torch.empty(0, bundle.embed_dim)}

    payload, _ = cache.get_or_compute(key, compute)
    return payload["X"]
