"""The two causal language models of hw5.P4: where they come from, and loading them with one-line errors.

Defaults, chosen for a free Colab GPU or a laptop:

- soft prompting: ``HooshvareLab/gpt2-fa``, a GPT-2 (12 layers x 768, vocabulary 42,001) pretrained on
  Persian text only, so its vocabulary segments Persian well and a few virtual tokens are a meaningful
  fraction of its capacity;
- reasoning: ``Qwen/Qwen2.5-1.5B-Instruct``, a small multilingual instruction-tuned model with a chat
  template; large enough to follow "think step by step", small enough to sample k chains per problem.

A model is given as a hub id or a local folder (``--sentiment-model`` / ``--reasoning-model``) and found by
:func:`common.pretrained.resolve_pretrained`: a local folder, else the Hugging Face cache, else the hub only
with ``DLHW_DOWNLOAD=1``; otherwise :class:`~common.errors.ModelNotFoundError` names the fix. A local folder
is checked (config of a causal LM, weights, tokenizer) before any work starts. The offline twins used by the
quick profile and the tests live in :mod:`.twins`.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

from common.errors import CheckpointError, ModelNotFoundError
from common.pretrained import downloads_allowed, how_to_supply, resolve_pretrained

SENTIMENT_MODEL = "HooshvareLab/gpt2-fa"
REASONING_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def looks_like_hub_id(value: str) -> bool:
    """``org/name`` that is not an existing path (``./org/name`` or an absolute path is always a path)."""
    return bool(_HUB_ID.fullmatch(value)) and not Path(value).expanduser().exists()


def resolve_model(value: str | None, default_hub_id: str, *, flag: str, what: str) -> str:
    """A loadable source for a causal LM: an existing, complete local folder, or a hub id that is cached
    (or downloadable with ``DLHW_DOWNLOAD=1``). Raises :class:`ModelNotFoundError` naming ``flag``.
    Loads no weights."""
    value = value or default_hub_id
    if looks_like_hub_id(value):
        return resolve_pretrained(value, what=what, flag=flag)
    path = resolve_pretrained(default_hub_id, local=value, what=what, flag=flag)
    check_model_folder(Path(path), what=what, flag=flag, hub_id=default_hub_id)
    return path


def check_model_folder(path: Path, *, what: str, flag: str, hub_id: str) -> None:
    """The folder holds the config of a causal LM, its weights and a tokenizer; else one-line error."""
    fix = how_to_supply(what, hub_id, flag)
    if not path.is_dir():
        raise ModelNotFoundError(f"{what}: {flag} {path} is a file, not a model folder; {fix}.")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelNotFoundError(f"{what}: {flag} {path} has no config.json, so it is not a model folder "
                                 f"saved with save_pretrained; {fix}.")
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"{what}: {config_file} cannot be read ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:120]}); replace the folder.") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelNotFoundError(f"{what}: {flag} {path} holds a {config.model_type!r} model, not a causal "
                                 f"language model; pass a GPT-2/Qwen2-style folder (default {hub_id}).")
    if not any(any(path.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise ModelNotFoundError(f"{what}: {flag} {path} has a config but no weights (*.safetensors or "
                                 f"pytorch_model.bin); {fix}.")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelNotFoundError(f"{what}: {flag} {path} has no tokenizer ({', '.join(TOKENIZER_FILES)}); "
                                 f"save it there with tokenizer.save_pretrained, or {fix}.")


def load_causal_lm(source: str, *, dtype="auto", device=None, what: str = "model", progress: bool = False):
    """``(model, tokenizer)`` from a source returned by :func:`resolve_model`, in eval mode.

    ``dtype="auto"`` keeps the checkpoint's own precision (float32 for gpt2-fa, bfloat16 for Qwen2.5). The
    tokenizer gets a pad token (EOS when it has none, as gpt2-fa) and left padding, as batched generation
    needs. Cached hub copies are read with ``local_files_only`` unless downloads are on, so an offline
    machine never waits for the hub client's retries.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_only = not downloads_allowed()
    try:
        with progress_bars(progress):
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_only)
    except OSError as err:
        raise ModelNotFoundError(f"{what} {source} cannot be loaded ({' '.join(str(err).split())[:160]}); "
                                 f"pass a complete local folder, or set DLHW_DOWNLOAD=1 on a machine with "
                                 f"internet.") from None
    prepare_tokenizer(tokenizer)
    if getattr(model, "loss_type", None) is None:
        # GPT2LMHeadModel's class name does not say "ForCausalLM", so transformers warns on every loss
        model.loss_type = "ForCausalLM"
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


@contextlib.contextmanager
def progress_bars(enabled: bool):
    """Show or hide the transformers/hub progress bars ("Loading weights") for a block, then restore: in a
    notebook or a log they are frozen lines."""
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    hub_before = not hub_utils.are_progress_bars_disabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    (hub_utils.enable_progress_bars if enabled else hub_utils.disable_progress_bars)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()
        (hub_utils.enable_progress_bars if hub_before else hub_utils.disable_progress_bars)()


def prepare_tokenizer(tokenizer) -> None:
    """Pad with EOS when the tokenizer has no pad token; pad on the left (generation continues on the
    right)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"

