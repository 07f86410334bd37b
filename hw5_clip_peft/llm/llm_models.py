"""Causal language models for the Persian LLM homework (hw5.P4): real checkpoints and tiny offline twins.

Real path (``full`` profile, online or with a local copy): any Hugging Face causal-LM id or folder.
Defaults, chosen for a free Colab GPU or a laptop:

- soft prompting: ``HooshvareLab/gpt2-fa`` — a GPT-2 (~118 M parameters) pretrained on Persian text only, so
  its vocabulary segments Persian well and a few virtual tokens are a meaningful fraction of its capacity;
- reasoning: ``Qwen/Qwen2.5-1.5B-Instruct`` — a small multilingual instruction-tuned model with a chat
  template; large enough to follow "think step by step", small enough to sample k chains per problem.

Offline path (``quick`` profile, tests): the same architectures (GPT-2 and Qwen2) built from a config with
random weights, and a real byte-level BPE tokenizer trained by the ``tokenizers`` library on
``data/persian_corpus.txt``. Its outputs are pipeline checks, never results.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

DATA_DIR = Path(__file__).resolve().parent / "data"
SOFT_PROMPT_MODEL = "HooshvareLab/gpt2-fa"
REASONING_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
# a minimal ChatML template (the format Qwen2 uses) for the tiny tokenizer
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


class ModelUnavailableError(OSError):
    """A model or tokenizer could not be loaded (offline without a local copy, wrong path...)."""


@dataclass(frozen=True)
class TinyLMConfig:
    """The offline twin's size: small enough to train a soft prompt for a few steps in seconds on CPU."""

    arch: str = "gpt2"  # "gpt2" (like gpt2-fa) or "qwen2" (like Qwen2.5-Instruct)
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    vocab_size: int = 1200
    max_positions: int = 512
    seed: int = 0


def load_causal_lm(name_or_path: str, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None):
    """``(model, tokenizer)`` from a hub id or local folder, with a clear error when it cannot be had.

    The tokenizer gets a pad token (EOS when it has none) and left padding, as batched generation needs.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(name_or_path).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    if local.exists():
        name_or_path = str(local)
    elif name_or_path.startswith((".", "/", "~")):
        raise ModelUnavailableError(f"model folder {local} does not exist; pass an existing folder or a hub id.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype or "auto")
    except (OSError, ValueError) as err:
        how = ("you are offline (HF_HUB_OFFLINE=1 or no network): download it once on a connected machine with "
               f"`huggingface-cli download {name_or_path} --local-dir <folder>` and pass that folder"
               if offline or not local.exists() else "check the folder holds config.json and the weights")
        raise ModelUnavailableError(f"cannot load causal LM {name_or_path!r}: {how}. "
                                    f"For an offline pipeline check use the quick profile (tiny model). "
                                    f"[{type(err).__name__}: {str(err).splitlines()[0][:200]}]") from err
    _prepare_tokenizer(tokenizer)
    if device is not None:
        model.to(device)
    return model, tokenizer


def _prepare_tokenizer(tokenizer) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"


def train_tiny_tokenizer(vocab_size: int = 1200, corpus: Path | None = None, save_dir: Path | None = None):
    """A byte-level BPE tokenizer trained on the committed Persian corpus (and the review texts).

    Saved to ``save_dir`` when given, so PEFT's text initialisation can load it by path.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    files = [str(corpus or DATA_DIR / "persian_corpus.txt"), str(DATA_DIR / "persian_reviews.tsv")]
    special = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train(files, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                        bos_token="<|endoftext|>", additional_special_tokens=special[2:])
    tokenizer.chat_template = CHAT_TEMPLATE
    _prepare_tokenizer(tokenizer)
    if save_dir is not None:
        tokenizer.save_pretrained(save_dir)
    return tokenizer


def build_tiny_lm(tokenizer, config: TinyLMConfig = TinyLMConfig()):
    """A randomly initialised causal LM of the real model's architecture, sized by ``config``."""
    from transformers import AutoModelForCausalLM, GPT2Config, Qwen2Config

    torch.manual_seed(config.seed)
    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if config.arch == "gpt2":
        cfg = GPT2Config(n_embd=config.hidden_size, n_layer=config.num_layers, n_head=config.num_heads,
                         n_positions=config.max_positions, **common)
    elif config.arch == "qwen2":
        cfg = Qwen2Config(hidden_size=config.hidden_size, intermediate_size=4 * config.hidden_size,
                          num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
                          num_key_value_heads=config.num_heads, max_position_embeddings=config.max_positions,
                          tie_word_embeddings=True, **common)
    else:
        raise ValueError(f"unknown tiny architecture {config.arch!r}; use 'gpt2' or 'qwen2'.")
    return AutoModelForCausalLM.from_config(cfg)


def tiny_lm(arch: str = "gpt2", save_dir: Path | None = None, **overrides):
    """``(model, tokenizer)``: the offline twin (real tokenizer trained here, random-weight model)."""
    config = TinyLMConfig(arch=arch, **overrides)
    tokenizer = train_tiny_tokenizer(config.vocab_size, save_dir=save_dir)
    return build_tiny_lm(tokenizer, config), tokenizer
