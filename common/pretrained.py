"""One policy for pretrained models and hub datasets (CLIP, ViT, the LLMs, Hugging Face datasets).

A source is resolved in this order, and never touches the network unless downloads are on:

1. a local path given by the user (flag or environment variable): always used; one that does not exist is a
   :class:`~common.errors.ModelNotFoundError` naming it;
2. a copy already in the Hugging Face cache (``~/.cache/huggingface``): used offline, no network;
3. the hub id itself, only when :func:`downloads_allowed` (``DLHW_DOWNLOAD=1`` and not ``HF_HUB_OFFLINE=1``);
4. otherwise a :class:`ModelNotFoundError` that says how to supply the model: a local copy, or
   ``DLHW_DOWNLOAD=1`` on a connected machine.

So an offline machine fails at once with one line, instead of after the hub client's retries, and the same
switch (``DLHW_DOWNLOAD``) governs datasets and models alike.
"""
from __future__ import annotations

import os
from pathlib import Path

from .config import DOWNLOAD_ENV
from .errors import ModelNotFoundError

OFFLINE_ENVS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def downloads_allowed() -> bool:
    """``DLHW_DOWNLOAD=1``, unless the Hugging Face offline switch (``HF_HUB_OFFLINE=1``) is set."""
    return _flag(DOWNLOAD_ENV) and not any(_flag(v) for v in OFFLINE_ENVS)


def hub_cached(repo_id: str, filenames: tuple[str, ...] = ("config.json",), repo_type: str = "model") -> str | None:
    """Path of the first of ``filenames`` of ``repo_id`` already in the local Hugging Face cache, else None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename, repo_type=repo_type)
        if isinstance(cached, str) and Path(cached).is_file():
            return cached
    return None


def how_to_supply(what: str, hub_id: str, flag: str | None = None, env: str | None = None) -> str:
    """The fix, in words: where a local copy can be given, or how to allow the download."""
    local = " or ".join(x for x in (f"pass {flag} <path>" if flag else "", f"set {env}=<path>" if env else "") if x)
    local = local or "pass a local path"
    return (f"{local} to a local copy, or set {DOWNLOAD_ENV}=1 on a machine with internet to download "
            f"{hub_id} (cached afterwards)")


def resolve_pretrained(hub_id: str, local: str | Path | None = None, *, what: str = "model",
                       flag: str | None = None, env: str | None = None,
                       cache_files: tuple[str, ...] = ("config.json",), repo_type: str = "model",
                       must_be_file: bool = False) -> str:
    """Where to load ``hub_id`` from: a local path, the hub cache, or the hub id (downloads on).

    ``local`` (or ``$env``) wins; ``cache_files`` are the files whose presence in the HF cache means the model
    is there (e.g. ``("config.json",)`` for transformers, the weights file for open_clip). Returns a path or
    the hub id; raises :class:`ModelNotFoundError` with the fix.
    """
    local = local or (os.environ.get(env) if env else None) or None
    if local:
        path = Path(local).expanduser()
        ok = path.is_file() if must_be_file else path.exists()
        if not ok:
            source = flag or env or "the local path"
            raise ModelNotFoundError(f"{what}: {source} {path} does not exist; "
                                     f"{how_to_supply(what, hub_id, flag, env)}.")
        return str(path)
    cached = hub_cached(hub_id, cache_files, repo_type)
    if cached is not None:
        return cached if must_be_file else hub_id
    if downloads_allowed():
        return hub_id
    raise ModelNotFoundError(f"{what} {hub_id} is not on this machine and downloads are off; "
                             f"{how_to_supply(what, hub_id, flag, env)}.")
