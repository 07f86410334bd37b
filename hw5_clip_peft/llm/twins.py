"""Offline twins of the two hw5.P4 models: the real architectures and configs, random weights, and a real
byte-level BPE tokenizer trained here (``tokenizers``) on the Persian text committed in ``data/``.

- :func:`real_config` reads the published ``config.json`` of ``HooshvareLab/gpt2-fa`` or
  ``Qwen/Qwen2.5-1.5B-Instruct`` (committed under ``data/model_configs``); :func:`meta_model` builds the
  real-size model on the meta device (shapes and parameter count, no memory).
- :func:`train_tokenizer` imitates each model's tokenizer where the code depends on it: gpt2-fa has
  ``<|endoftext|>`` (id 5) as BOS/EOS/UNK and no pad token; Qwen has ``<|im_end|>`` as EOS,
  ``<|endoftext|>`` as pad and a ChatML chat template.
- :func:`save_twin` writes a folder a user could have downloaded (``save_pretrained`` of the model,
  tokenizer and generation config), at the real size (``size="real"``) or tiny (``size="tiny"``, the quick
  profile). It is loaded by the same :func:`~.llm_models.load_causal_lm` as the real checkpoint.

Everything a twin produces is a pipeline check, never a result.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .llm_models import REASONING_MODEL, SENTIMENT_MODEL, progress_bars

DATA_DIR = Path(__file__).resolve().parent / "data"
CONFIG_DIR = DATA_DIR / "model_configs"
CONFIG_FILES = {SENTIMENT_MODEL: "gpt2-fa.json", REASONING_MODEL: "qwen2.5-1.5b-instruct.json"}
GENERATION_FILES = {REASONING_MODEL: "qwen2.5-1.5b-instruct.generation_config.json"}
# ChatML, the format of Qwen2's template, without its tool-calling branches
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# special tokens in id order; gpt2-fa's <|endoftext|> is id 5 in the real vocabulary as in its config
SPECIALS = {SENTIMENT_MODEL: ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<|endoftext|>"],
            REASONING_MODEL: ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]}
# the quick profile's size: small enough to train a soft prompt / sample chains in seconds on one CPU core
TINY = {"gpt2": dict(n_embd=64, n_layer=2, n_head=4),
        "qwen2": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_window_layers=2)}


def real_config(hub_id: str, **overrides):
    """The published transformers config of ``hub_id`` (one of :data:`CONFIG_FILES`), with ``overrides``."""
    from transformers import AutoConfig

    if hub_id not in CONFIG_FILES:
        raise ValueError(f"no committed config for {hub_id!r}; known: {', '.join(CONFIG_FILES)}")
    fields = json.loads((CONFIG_DIR / CONFIG_FILES[hub_id]).read_text(encoding="utf-8"))
    fields = {k: v for k, v in fields.items() if not k.startswith("_")}
    fields.pop("torch_dtype", None)  # a config field for loading, not for building
    return AutoConfig.for_model(**{**fields, **overrides})


def meta_model(hub_id: str):
    """The real-size model of ``hub_id`` on the meta device: every shape, no storage."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(real_config(hub_id))


def train_tokenizer(hub_id: str, vocab_size: int = 1200, save_dir: str | Path | None = None):
    """A byte-level BPE tokenizer trained on the committed Persian corpus and reviews, with ``hub_id``'s
    special tokens and conventions (see the module docstring)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = SPECIALS[hub_id]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(DATA_DIR / "persian_corpus.txt"), str(DATA_DIR / "persian_reviews.tsv")], trainer)
    if hub_id == SENTIMENT_MODEL:
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                            eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                            model_max_length=1024)
    else:
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                            pad_token="<|endoftext|>",
                                            additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                            model_max_length=32768)
        tokenizer.chat_template = CHAT_TEMPLATE
    if save_dir is not None:
        tokenizer.save_pretrained(save_dir)
    return tokenizer


def twin_config(hub_id: str, tokenizer, size: str = "tiny"):
    """``hub_id``'s config at ``size`` ("real" or "tiny"), special-token ids those of ``tokenizer``.

    The real size keeps the published vocabulary (larger than the twin's tokenizer, as Qwen2.5's matrix is
    larger than its tokenizer); the tiny one has exactly the tokenizer's tokens.
    """
    base = real_config(hub_id)
    overrides = dict(TINY[base.model_type]) if size == "tiny" else {}
    if size not in ("tiny", "real"):
        raise ValueError(f"size must be 'tiny' or 'real', got {size!r}")
    if size == "tiny":
        overrides["vocab_size"] = len(tokenizer)
    eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    bos = tokenizer.convert_tokens_to_ids(tokenizer.bos_token) if tokenizer.bos_token else None
    overrides.update(eos_token_id=eos, bos_token_id=bos if bos is not None else base.bos_token_id)
    if hub_id == REASONING_MODEL:
        overrides["bos_token_id"] = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return real_config(hub_id, **overrides)


def twin_generation_config(hub_id: str, tokenizer) -> dict | None:
    """The published generation config of ``hub_id`` (if it has one), token ids mapped to the twin's."""
    if hub_id not in GENERATION_FILES:
        return None
    fields = json.loads((CONFIG_DIR / GENERATION_FILES[hub_id]).read_text(encoding="utf-8"))
    fields = {k: v for k, v in fields.items() if not k.startswith("_")}
    end, im_end = (tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>"))
    fields.update(bos_token_id=end, pad_token_id=end, eos_token_id=[im_end, end])
    return fields


def build_twin(hub_id: str, tokenizer, size: str = "tiny", seed: int = 0):
    """A randomly initialised model of ``hub_id``'s architecture (seeded)."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(twin_config(hub_id, tokenizer, size))
    generation = twin_generation_config(hub_id, tokenizer)
    if generation is not None:
        model.generation_config = GenerationConfig(**generation)
    return model


def save_twin(folder: str | Path, hub_id: str, size: str = "tiny", seed: int = 0,
              vocab_size: int = 1200) -> Path:
    """Write a twin of ``hub_id`` to ``folder`` as ``save_pretrained`` would leave a download: config,
    weights (safetensors, in the published dtype), tokenizer and, for Qwen, its generation config.
    Returns the folder."""
    folder = Path(folder)
    tokenizer = train_tokenizer(hub_id, vocab_size, save_dir=folder)
    model = build_twin(hub_id, tokenizer, size, seed)
    if real_config(hub_id).model_type == "qwen2":
        model.to(torch.bfloat16)  # as Qwen2.5 is published: dtype="auto" then loads bfloat16, as it will
    with progress_bars(False):  # "Writing model shards" would be a frozen line in a notebook
        model.save_pretrained(folder)
    return folder
