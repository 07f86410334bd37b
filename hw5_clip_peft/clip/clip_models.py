"""open_clip ConvNeXt models: the pretrained ones of the homework, and tiny random-weight stand-ins.

- ``CONVNEXT_BASE`` (``convnext_base`` / ``laion400m_s13b_b51k``), ``CONVNEXT_BASE_W`` (a second Base,
  ``convnext_base_w`` / ``laion2b_s13b_b82k_augreg``) and ``CONVNEXT_XXLARGE`` (``convnext_xxlarge`` /
  ``laion2b_s34b_b82k_augreg_soup``) load LAION weights: from ``checkpoint=`` (or the environment variable
  ``DLHW_CLIP_CHECKPOINT_<ARCH>``), from the Hugging Face cache, or downloaded when ``DLHW_DOWNLOAD=1``.
  Otherwise :class:`MissingWeightsError` says what is missing and the three ways to supply it.
- ``TINY`` and ``TINY_WIDE``: small ConvNeXt CLIPs (timm ``convnext_atto`` / ``convnext_femto`` image towers,
  2-3 layer text transformers) registered with ``open_clip.add_model_config`` from ``model_configs/``.
  They are built with ``pretrained=None`` (random weights) and use the real CLIP BPE tokenizer that ships with
  open_clip, so the quick profile runs the same code path offline; their accuracies mean nothing.

Usage::

    bundle = load_clip(CONVNEXT_BASE, checkpoint="open_clip_pytorch_model.bin")
    bundle.model.encode_image(bundle.preprocess(img)[None])
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from common import download_allowed, get_device

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class ClipSpec:
    """An open_clip architecture name and a pretrained tag (``None``: random weights)."""

    arch: str
    pretrained: str | None
    label: str

    @property
    def env_var(self) -> str:
        return "DLHW_CLIP_CHECKPOINT_" + self.arch.upper().replace("-", "_")


CONVNEXT_BASE = ClipSpec("convnext_base", "laion400m_s13b_b51k", "ConvNeXt-Base (LAION-400M)")
CONVNEXT_BASE_W = ClipSpec("convnext_base_w", "laion2b_s13b_b82k_augreg", "ConvNeXt-Base-W (LAION-2B)")
CONVNEXT_XXLARGE = ClipSpec("convnext_xxlarge", "laion2b_s34b_b82k_augreg_soup",
                            "ConvNeXt-XXLarge (LAION-2B)")
TINY = ClipSpec("dlhw-tiny-convnext", None, "tiny ConvNeXt-atto CLIP, random weights")
TINY_WIDE = ClipSpec("dlhw-tiny-convnext-wide", None, "tiny ConvNeXt-femto CLIP, random weights")


class MissingWeightsError(FileNotFoundError):
    """Pretrained CLIP weights were asked for but are not on this machine and cannot be downloaded."""


@dataclass
class ClipBundle:
    """A loaded model with what every experiment needs next to it."""

    model: torch.nn.Module  # open_clip.CLIP in eval mode
    preprocess: object  # PIL image -> (3, H, W) tensor (open_clip's eval transform)
    tokenizer: object  # list[str] -> (B, 77) token ids
    spec: ClipSpec
    weights: str  # where the weights came from, in words (part of the feature-cache key)
    device: torch.device

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature ``exp(t)``: 100 for trained CLIPs, 1/0.07 at random init."""
        return float(self.model.logit_scale.detach().exp())

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1])

    @property
    def pretrained(self) -> bool:
        return self.spec.pretrained is not None


def register_tiny_configs() -> None:
    """Make ``dlhw-tiny-*`` known to open_clip (idempotent)."""
    import open_clip

    if TINY.arch not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


def _hf_repo(spec: ClipSpec) -> tuple[str, dict]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.arch)
        raise ValueError(f"open_clip has no pretrained tag {spec.pretrained!r} for {spec.arch!r}; "
                         f"known: {tags}")
    return cfg.get("hf_hub", "").rstrip("/"), cfg


def missing_weights_message(spec: ClipSpec, reason: str) -> str:
    repo, _ = _hf_repo(spec)
    return (f"pretrained weights for open_clip {spec.arch!r} / {spec.pretrained!r} are not available: "
            f"{reason}. Supply them in one of three ways: (1) on a machine with internet run `hf download {repo} "
            f"open_clip_pytorch_model.bin` (fills the Hugging Face cache) or set DLHW_DOWNLOAD=1 and rerun; "
            f"(2) copy that file here and pass checkpoint='/path/open_clip_pytorch_model.bin' (or set "
            f"{spec.env_var}=/path/...); (3) for an offline pipeline check, run the quick profile, which "
            f"uses a tiny random-weight model.")


def resolve_weights(spec: ClipSpec, checkpoint: str | Path | None = None,
                    allow_download: bool | None = None) -> str:
    """A local weights file for ``spec`` or, when downloads are allowed, the tag for open_clip to fetch.

    Order: ``checkpoint`` argument, ``$DLHW_CLIP_CHECKPOINT_<ARCH>``, the Hugging Face cache, download.
    Never touches the network unless downloads are allowed (``allow_download`` or ``$DLHW_DOWNLOAD=1``).
    """
    repo, _ = _hf_repo(spec)
    checkpoint = checkpoint or os.environ.get(spec.env_var)
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise MissingWeightsError(missing_weights_message(spec, f"checkpoint file {path} does not exist"))
        return str(path)
    from huggingface_hub import try_to_load_from_cache

    for filename in HF_WEIGHT_FILES:
        cached = try_to_load_from_cache(repo, filename)
        if isinstance(cached, str) and Path(cached).is_file():
            return cached
    if allow_download is None:
        allow_download = download_allowed()
    if not allow_download:
        raise MissingWeightsError(missing_weights_message(
            spec, f"no checkpoint was given, the Hugging Face cache has no copy of {repo}, and downloads are "
                  f"off (offline machine; DLHW_DOWNLOAD is not 1)"))
    return spec.pretrained


def load_clip(spec: ClipSpec, *, checkpoint: str | Path | None = None,
              device: torch.device | str | None = None, seed: int = 0,
              allow_download: bool | None = None) -> ClipBundle:
    """Build ``spec`` with open_clip and return a :class:`ClipBundle` (model in eval mode on ``device``).

    Random-weight specs are initialised under ``seed`` without disturbing the global RNG.
    """
    import open_clip

    register_tiny_configs()
    device = torch.device(device) if device is not None else get_device()
    if spec.pretrained is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, _, preprocess = _quiet(open_clip.create_model_and_transforms, spec.arch, pretrained=None)
        weights = f"random init (seed {seed})"
    else:
        source = resolve_weights(spec, checkpoint, allow_download)
        _, cfg = _hf_repo(spec)
        try:  # a file path bypasses the tag's preprocessing config, so pass it explicitly
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.arch, pretrained=source, image_mean=cfg.get("mean"), image_std=cfg.get("std"),
                image_interpolation=cfg.get("interpolation"), image_resize_mode=cfg.get("resize_mode"))
        except (RuntimeError, OSError) as err:
            reason = f"loading {source!r} failed ({err})"
            raise MissingWeightsError(missing_weights_message(spec, reason)) from err
        weights = f"{spec.pretrained} ({Path(source).name if os.path.isfile(source) else 'hub'})"
    model = model.to(device).eval().requires_grad_(False)  # never fine-tuned here: heads train on features
    tokenizer = open_clip.get_tokenizer(spec.arch)
    return ClipBundle(model, preprocess, tokenizer, spec, weights, device)


def architecture_parameters(spec: ClipSpec) -> dict[str, int]:
    """Parameter counts of ``spec``'s architecture, built on the meta device (no memory, no weights)."""
    import open_clip

    register_tiny_configs()
    with torch.device("meta"):
        model = _quiet(open_clip.create_model, spec.arch, pretrained=None, device="meta")
    image = sum(p.numel() for p in model.visual.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"image": image, "text": total - image - model.logit_scale.numel(), "total": total}


def _quiet(fn, *args, **kwargs):
    """Call ``fn`` with open_clip's "No pretrained weights loaded" warning muted (random init is intended)."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return fn(*args, **kwargs)
    finally:
        logger.setLevel(level)
