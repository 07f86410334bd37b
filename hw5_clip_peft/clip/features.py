"""Encode every image once, cache the features on disk, and run every experiment on the cache.

The key of a cached entry is ``common.settings_key`` of everything that changes the features (architecture,
a fingerprint of the weights file or the random-init seed, preprocessing, image ids or prompts), so a
different model, checkpoint, transform or file list can never be served a stale entry. A template sweep,
per-class metrics, class-embedding training and the linear probe then cost milliseconds to seconds.

Encoding batches images through a ``DataLoader`` (PIL decode + open_clip's eval transform in worker
processes when ``num_workers > 0``), one forward per batch, ``no_grad`` and bf16 autocast on CUDA;
``benchmarks/bench_clip.py`` compares it with a per-image loop. Prompts are encoded sorted by length and each
batch is cut after its longest prompt's end token: CLIP's text mask is causal and the end token's output is
the text embedding, so the padding after it never changes the result (checked in the tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from common import cache_dir, load_checkpoint, progress_enabled, save_atomic, settings_key

from .clip_models import ClipBundle
from .dogs import ImageSplit

CACHE_VERSION = 2  # bump when the stored format or the encoding changes


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
    """``common.settings_key`` of ``parts`` and the cache version: equal inputs, equal key; any change, new key."""
    return settings_key({"version": CACHE_VERSION, **parts}, length=24)


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
            return load_checkpoint(path)
        except Exception:  # noqa: BLE001 -- CheckpointError, or IndexError from torch's weights-only unpickler
            return None  # on some garbage bytes: a truncated or foreign file is recomputed, never trusted

    def save(self, key: str, payload: dict) -> Path:
        return save_atomic(payload, self.path(key))  # a killed run never leaves half a file under the name

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
    for images in tqdm(loader, desc=f"encode {split.name}", disable=not progress_enabled(progress), leave=False):
        with _autocast(bundle.device):
            out.append(bundle.model.encode_image(images.to(bundle.device, non_blocking=True)).float().cpu())
    return torch.cat(out) if out else torch.empty(0, bundle.embed_dim)


def image_features(bundle: ClipBundle, split: ImageSplit, cache: FeatureCache | None = None, *,
                   batch_size: int = 64, num_workers: int = 0, progress: bool | None = None) -> FeatureSet:
    """Features of ``split`` from the cache, encoding (once) on a miss."""
    cache = cache or FeatureCache()
    key = cache_key(kind="image", arch=bundle.spec.arch, weights=bundle.weights_id or bundle.weights,
                    preprocess=repr(bundle.preprocess), ids=list(split.ids))

    def compute() -> dict:
        X = encode_images(bundle, split, batch_size=batch_size, num_workers=num_workers, progress=progress)
        return {"X": X, "y": split.y.clone(), "ids": list(split.ids)}

    payload, hit = cache.get_or_compute(key, compute)
    if tuple(payload["ids"]) != split.ids:  # a hash collision is unthinkable; a hand-copied file is not
        payload, hit = compute(), False
        cache.save(key, payload)
    return FeatureSet(payload["X"], payload["y"], split.ids, key, hit)


def _trimmable(model) -> bool:
    """Whether cutting the padding is exact: a causal text mask and pooling at the end token."""
    return (getattr(model, "text_pool_type", None) == "argmax" and getattr(model, "attn_mask", None) is not None
            and hasattr(model, "token_embedding"))


def encode_tokens(model, tokens: torch.Tensor) -> torch.Tensor:
    """(B, D) text embeddings of (B, L) token ids, like ``model.encode_text`` but only up to the longest
    prompt's end token (the end token has the largest id, so ``argmax`` finds it)."""
    if not _trimmable(model):
        return model.encode_text(tokens)
    from open_clip.model import text_global_pool

    length = int(tokens.argmax(-1).max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    projection = model.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection
    return x


@torch.no_grad()
def encode_texts(bundle: ClipBundle, prompts: Sequence[str], cache: FeatureCache | None = None,
                 batch_size: int = 256) -> torch.Tensor:
    """(P, D) float32 text embeddings of ``prompts`` (un-normalised), cached like image features."""
    cache = cache or FeatureCache()
    key = cache_key(kind="text", arch=bundle.spec.arch, weights=bundle.weights_id or bundle.weights,
                    prompts=list(prompts))

    def compute() -> dict:
        tokens = bundle.tokenizer(list(prompts))  # (P, 77)
        order = torch.argsort(tokens.argmax(-1)) if len(prompts) else torch.empty(0, dtype=torch.long)
        out = torch.empty(len(prompts), bundle.embed_dim)
        for start in range(0, len(prompts), batch_size):  # similar lengths together: little padding
            idx = order[start:start + batch_size]
            with _autocast(bundle.device):
                out[idx] = encode_tokens(bundle.model, tokens[idx].to(bundle.device)).float().cpu()
        return {"X": out}

    payload, _ = cache.get_or_compute(key, compute)
    return payload["X"]
