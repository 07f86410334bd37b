"""open_clip ConvNeXt models: the pretrained ones of the homework, and tiny random-weight stand-ins.

- ``CONVNEXT_BASE`` (``convnext_base`` / ``laion400m_s13b_b51k``), ``CONVNEXT_BASE_W`` (a second Base,
  ``convnext_base_w`` / ``laion2b_s13b_b82k_augreg``) and ``CONVNEXT_XXLARGE`` (``convnext_xxlarge`` /
  ``laion2b_s34b_b82k_augreg_soup``) load LAION weights under the project's one policy
  (:func:`common.pretrained.resolve_pretrained`): a local file (``checkpoint=``, the CLI's
  ``--base-checkpoint`` / ``--large-checkpoint``, or ``$DLHW_CLIP_CHECKPOINT_<ARCH>``), else the Hugging Face
  cache, else a download when ``DLHW_DOWNLOAD=1``; otherwise :class:`common.ModelNotFoundError` with the fix.
  Every source ends as a file (``open_clip_pytorch_model.bin`` or ``open_clip_model.safetensors``, the two
  formats the hub delivers) read with ``weights_only`` and loaded strictly into the architecture built by
  open_clip, so a file of the wrong architecture is a one-line :class:`common.CheckpointError`.
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
from dataclasses import dataclass
from pathlib import Path

import torch

from common import CheckpointError, count_parameters, get_device, load_checkpoint, settings_key
from common.pretrained import resolve_pretrained

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
PRETRAINED = {spec.arch: spec for spec in (CONVNEXT_BASE, CONVNEXT_BASE_W, CONVNEXT_XXLARGE)}
TINY = ClipSpec("dlhw-tiny-convnext", None, "tiny ConvNeXt-atto CLIP, random weights")
TINY_WIDE = ClipSpec("dlhw-tiny-convnext-wide", None, "tiny ConvNeXt-femto CLIP, random weights")


@dataclass
class ClipBundle:
    """A loaded model with what every experiment needs next to it."""

    model: torch.nn.Module  # open_clip.CLIP in eval mode
    preprocess: object  # PIL image -> (3, H, W) tensor (open_clip's eval transform)
    tokenizer: object  # list[str] -> (B, 77) token ids
    spec: ClipSpec
    weights: str  # where the weights came from, in words
    device: torch.device
    weights_id: str = ""  # a fingerprint of the weights (file path, size, mtime; or the seed): the cache key

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


def resolve_weights(spec: ClipSpec, checkpoint: str | Path | None = None, flag: str | None = None) -> str:
    """The weights of ``spec``: a local file, or the hub id when only a download can supply them.

    Order (``common.pretrained``): ``checkpoint``, ``$DLHW_CLIP_CHECKPOINT_<ARCH>``, the Hugging Face cache,
    the hub id with ``DLHW_DOWNLOAD=1``; else :class:`common.ModelNotFoundError` naming ``flag`` and the fix.
    Touches no network and reads no weights: entry points call it while validating.
    """
    repo, _ = _hf_repo(spec)
    return resolve_pretrained(repo, checkpoint, what=f"open_clip {spec.arch} / {spec.pretrained} weights",
                              flag=flag, env=spec.env_var, cache_files=HF_WEIGHT_FILES, must_be_file=True)


def _download(repo: str) -> str:
    from huggingface_hub import hf_hub_download

    errors = []
    for filename in HF_WEIGHT_FILES:  # safetensors first: no pickle at all
        try:
            return hf_hub_download(repo, filename)
        except Exception as err:  # noqa: BLE001 -- the hub raises several types; report them together
            errors.append(f"{filename}: {type(err).__name__}")
    raise CheckpointError(f"could not download the weights of {repo} ({'; '.join(errors)}); check the "
                          f"connection, or download open_clip_pytorch_model.bin elsewhere and pass its path.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from an open_clip weights file (``.safetensors`` or a torch pickle read with
    ``weights_only``); unwraps ``{"state_dict": ...}`` and a DataParallel ``module.`` prefix like open_clip."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as err:  # noqa: BLE001 -- SafetensorError, OSError, ...
            raise CheckpointError(f"{path} is not a readable safetensors file ({type(err).__name__}: "
                                  f"{' '.join(str(err).split())[:120]}); download it again.") from None
    else:
        state = load_checkpoint(path)
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors; give an open_clip weights file "
                              f"(open_clip_pytorch_model.bin or open_clip_model.safetensors).")
    return state


def apply_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], arch: str, source: str) -> None:
    """Load ``state`` into ``model`` strictly, after open_clip's own format fixes (``open_clip.load_checkpoint``):
    a wrong architecture is a :class:`CheckpointError` naming the first mismatches. Works on the meta device."""
    from open_clip.model import resize_pos_embed, resize_text_pos_embed

    state = dict(state)
    if "logit_scale" in state and model.logit_scale.ndim != state["logit_scale"].ndim:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    try:
        resize_pos_embed(state, model)  # a position table of another length is interpolated, as open_clip does
        resize_text_pos_embed(state, model)
        result = model.load_state_dict(state, strict=False)
    except (RuntimeError, AssertionError) as err:  # shape mismatches are raised even with strict=False
        first = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line),
                     str(err) or "size mismatch in the text position table")
        raise CheckpointError(f"{source} does not fit open_clip {arch!r}: {first[:200]}; give the weights of "
                              f"{arch}.") from None
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{source} does not fit open_clip {arch!r}: {len(result.missing_keys)} missing keys "
            f"(e.g. {result.missing_keys[:2]}), {len(result.unexpected_keys)} unexpected "
            f"(e.g. {result.unexpected_keys[:2]}); give the weights of {arch}.")


def pretrained_model(spec: ClipSpec, state: dict[str, torch.Tensor], source: str, *, meta: bool = False
                     ) -> tuple[torch.nn.Module, object]:
    """``(model, preprocess)``: ``spec``'s architecture with ``state`` loaded strictly and the pretrained tag's
    preprocessing (mean, std, interpolation, resize mode; a file path alone would not carry them). With
    ``meta`` the model is built on the meta device (shapes only: how the tests check ConvNeXt-XXLarge)."""
    import open_clip

    register_tiny_configs()
    _, cfg = _hf_repo(spec)
    kwargs = {"image_mean": cfg.get("mean"), "image_std": cfg.get("std"),
              "image_interpolation": cfg.get("interpolation"), "image_resize_mode": cfg.get("resize_mode")}
    if meta:
        with torch.device("meta"):
            model, _, preprocess = _quiet(open_clip.create_model_and_transforms, spec.arch, pretrained=None,
                                          device="meta", **kwargs)
    else:
        model, _, preprocess = _quiet(open_clip.create_model_and_transforms, spec.arch, pretrained=None, **kwargs)
    apply_state_dict(model, state, spec.arch, source)
    return model, preprocess


def _fingerprint(path: Path) -> dict:
    stat = path.stat()
    return {"file": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def load_clip(spec: ClipSpec, *, checkpoint: str | Path | None = None,
              device: torch.device | str | None = None, seed: int = 0, flag: str | None = None) -> ClipBundle:
    """Build ``spec`` with open_clip and return a :class:`ClipBundle` (model in eval mode on ``device``).

    Random-weight specs are initialised under ``seed`` without disturbing the global RNG. Pretrained specs
    take their weights from :func:`resolve_weights` (``flag`` names the CLI flag in error messages) and the
    preprocessing (mean, std, interpolation, resize mode) from the pretrained tag.
    """
    import open_clip

    register_tiny_configs()
    device = torch.device(device) if device is not None else get_device()
    if spec.pretrained is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, _, preprocess = _quiet(open_clip.create_model_and_transforms, spec.arch, pretrained=None)
        weights = f"random init (seed {seed})"
        weights_id = settings_key({"arch": spec.arch, "random_init_seed": seed})
    else:
        repo, _ = _hf_repo(spec)
        source = resolve_weights(spec, checkpoint, flag)
        path = Path(_download(repo) if source == repo else source)
        model, preprocess = pretrained_model(spec, read_state_dict(path), str(path))
        weights = f"{spec.pretrained} ({path.name})"
        weights_id = settings_key({"arch": spec.arch, "tag": spec.pretrained, **_fingerprint(path)})
    model = model.to(device).eval().requires_grad_(False)  # never fine-tuned here: heads train on features
    tokenizer = open_clip.get_tokenizer(spec.arch)
    return ClipBundle(model, preprocess, tokenizer, spec, weights, device, weights_id)


def build_on_meta(spec: ClipSpec) -> torch.nn.Module:
    """``spec``'s architecture on the meta device: real shapes, no memory, no weights."""
    import open_clip

    register_tiny_configs()
    with torch.device("meta"):
        return _quiet(open_clip.create_model, spec.arch, pretrained=None, device="meta")


def architecture_parameters(spec: ClipSpec) -> dict[str, int]:
    """Parameter counts of ``spec``'s architecture, built on the meta device (no memory, no weights)."""
    model = build_on_meta(spec)
    image = count_parameters(model.visual, trainable_only=False)
    total = count_parameters(model, trainable_only=False)
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
