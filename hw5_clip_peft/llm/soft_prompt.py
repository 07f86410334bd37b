"""Soft prompt (prompt tuning, Lester et al. 2021) of a Persian causal LM on review sentiment (hw5.P4).

Only ``num_virtual_tokens x hidden_size`` numbers are trained: virtual-token embeddings prepended to every
input, initialised from the embeddings of a Persian task description (PEFT ``PromptTuningInit.TEXT``); the
language model itself stays frozen. The task is verbalised: ``"<review>\\nاحساس:"`` -> `` مثبت`` (positive) or
`` منفی`` (negative), and a review is classified by comparing the model's log-likelihood of the two label
words, so the frozen base model (zero-shot, with a hand-written instruction) and the tuned soft prompt are
scored by exactly the same rule.
"""
from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from common import count_parameters

from .reviews import LABELS, Review

LABEL_WORDS = (" منفی", " مثبت")  # index = label: negative, positive
# "decide this review's sentiment: positive or negative"
INIT_TEXT = "احساس این نظر را مشخص کن: مثبت یا منفی."
ZERO_SHOT_INSTRUCTION = "نظر زیر مثبت است یا منفی؟\n"  # the hard prompt the frozen model gets
SUFFIX = "\nاحساس:"  # "sentiment:"
# raised inside transformers when PEFT or Trainer asks about gradient checkpointing; nothing to fix here
_LIBRARY_DEPRECATION = "`is_gradient_checkpointing` is deprecated"


@dataclass(frozen=True)
class SoftPromptConfig:
    num_virtual_tokens: int = 8
    init_text: str = INIT_TEXT
    lr: float = 3e-2
    num_epochs: int = 5
    batch_size: int = 8
    max_text_tokens: int = 256  # longer reviews are cut, so virtual + review tokens fit the context
    seed: int = 0


def make_soft_prompt_model(model, tokenizer_source: str | Path, config: SoftPromptConfig = SoftPromptConfig(),
                           local_files_only: bool = True):
    """Wrap a causal LM with PEFT prompt tuning; return ``(peft_model, trainable, total)`` parameter counts.

    ``tokenizer_source`` is where PEFT loads the tokenizer for the text initialisation (the model's folder
    or cached hub id)."""
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    if config.num_virtual_tokens < 1:
        raise ValueError(f"num_virtual_tokens must be >= 1, got {config.num_virtual_tokens}")
    peft_config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM,
                                     num_virtual_tokens=config.num_virtual_tokens,
                                     prompt_tuning_init=PromptTuningInit.TEXT,
                                     prompt_tuning_init_text=config.init_text,
                                     tokenizer_name_or_path=str(tokenizer_source),
                                     tokenizer_kwargs={"local_files_only": local_files_only})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_LIBRARY_DEPRECATION, category=FutureWarning)
        peft_model = get_peft_model(model, peft_config)
    return peft_model, count_parameters(peft_model, trainable_only=True), count_parameters(peft_model)


def prompt_ids(tokenizer, text: str, prefix: str = "", max_text_tokens: int = 256) -> list[int]:
    """Token ids of ``prefix + text + SUFFIX``, the review cut to ``max_text_tokens`` tokens. The three parts
    are tokenized apart, so training and scoring see exactly the same ids."""
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    return (encode(prefix) if prefix else []) + encode(text)[:max_text_tokens] + encode(SUFFIX)


def encode_examples(reviews: list[Review], tokenizer, prefix: str = "",
                    max_text_tokens: int = 256) -> list[dict]:
    """``input_ids`` = prompt + label word; ``labels`` = -100 on the prompt, so the loss is the label
    word's."""
    examples = []
    for r in reviews:
        prompt = prompt_ids(tokenizer, r.text, prefix, max_text_tokens)
        target = tokenizer(LABEL_WORDS[r.label], add_special_tokens=False)["input_ids"]
        examples.append({"input_ids": prompt + target, "labels": [-100] * len(prompt) + target})
    return examples


def collate(examples: list[dict], pad_id: int) -> dict:
    """Right-pad a batch; padded label positions are ignored (-100). Right padding leaves every real
    token's position id unchanged (positions count from the left)."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), -100)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def label_log_likelihoods(model, tokenizer, texts: list[str], prefix: str = "", batch_size: int = 16,
                          max_text_tokens: int = 256) -> torch.Tensor:
    """(N, 2) summed log-probabilities of the two label words after each text (works with PEFT models,
    whose logits carry the virtual tokens first)."""
    model.eval()
    device = next(model.parameters()).device
    pairs = [Review(t, label) for t in texts for label in range(len(LABELS))]
    scores = []
    for start in range(0, len(pairs), batch_size):
        batch = collate(encode_examples(pairs[start:start + batch_size], tokenizer, prefix, max_text_tokens),
                        tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        width = batch["input_ids"].shape[1]
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits = logits[:, -width:]  # (B, width, V): PEFT puts the virtual tokens' positions first
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # position t predicts token t + 1
        target = batch["labels"][:, 1:]
        picked = logp.gather(2, target.clamp(min=0)[..., None])[..., 0] * (target != -100)
        scores.append(picked.sum(1).cpu())
    return torch.cat(scores).view(len(texts), len(LABELS))


def evaluate_sentiment(model, tokenizer, reviews: list[Review], prefix: str = "", batch_size: int = 16,
                       max_text_tokens: int = 256) -> dict:
    """Accuracy, the fraction predicted positive (0 or 1 means a constant answer) and the mean margin
    (log-likelihood of the right label minus the wrong one)."""
    ll = label_log_likelihoods(model, tokenizer, [r.text for r in reviews], prefix, batch_size,
                               max_text_tokens)
    y = torch.tensor([r.label for r in reviews])
    pred = ll.argmax(1)
    return {"accuracy": float((pred == y).float().mean()), "positive_rate": float(pred.float().mean()),
            "mean_margin": float((ll[:, 1] - ll[:, 0]).mul(2 * y - 1).mean())}


def train_soft_prompt(peft_model, tokenizer, train: list[Review], val: list[Review],
                      config: SoftPromptConfig = SoftPromptConfig(),
                      device: torch.device | str = "cpu") -> list[dict]:
    """Train the virtual tokens with ``transformers.Trainer`` on ``device``; return one record per epoch,
    ``{"epoch", "train_loss", "val_loss"}`` (no raw trainer dicts are printed)."""
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    pad = tokenizer.pad_token_id
    with tempfile.TemporaryDirectory(prefix="soft_prompt_") as scratch, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_LIBRARY_DEPRECATION, category=FutureWarning)
        args = TrainingArguments(output_dir=scratch, num_train_epochs=config.num_epochs,
                                 per_device_train_batch_size=config.batch_size,
                                 per_device_eval_batch_size=config.batch_size, learning_rate=config.lr,
                                 eval_strategy="epoch", save_strategy="no", logging_strategy="epoch",
                                 report_to=[], seed=config.seed, use_cpu=torch.device(device).type == "cpu",
                                 remove_unused_columns=False, disable_tqdm=True, lr_scheduler_type="constant",
                                 label_names=["labels"])
        cut = config.max_text_tokens
        trainer = Trainer(model=peft_model, args=args, data_collator=lambda b: collate(b, pad),
                          train_dataset=encode_examples(train, tokenizer, max_text_tokens=cut),
                          eval_dataset=encode_examples(val, tokenizer, max_text_tokens=cut))
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    history = trainer.state.log_history
    train_loss = [e["loss"] for e in history if "loss" in e]
    val_loss = [e["eval_loss"] for e in history if "eval_loss" in e]
    return [{"epoch": i + 1, "train_loss": float(t), "val_loss": float(v)}
            for i, (t, v) in enumerate(zip(train_loss, val_loss))]


def nearest_tokens(peft_model, tokenizer, k: int = 3) -> list[list[tuple[str, float]]]:
    """For every learned virtual token, its ``k`` nearest vocabulary tokens by cosine similarity (only rows
    that are real tokens: an embedding matrix may be padded past the tokenizer)."""
    prompt = peft_model.get_prompt_embedding_to_save(adapter_name="default").float()  # (n_virtual, d)
    vocab = peft_model.get_input_embeddings().weight.detach().float()  # (V, d)
    vocab = vocab[:min(vocab.shape[0], len(tokenizer))]
    sims = torch.nn.functional.normalize(prompt, dim=1) @ torch.nn.functional.normalize(vocab, dim=1).T
    top = sims.topk(k, dim=1)
    return [[(tokenizer.decode([int(i)]), float(s)) for s, i in zip(vals, idx)]
            for vals, idx in zip(top.values.cpu(), top.indices.cpu())]
