"""Soft prompt (prompt tuning, Lester et al. 2021) of a Persian causal LM on Persian review sentiment (hw5.P4).

Only ``num_virtual_tokens × hidden_size`` numbers are trained: virtual-token embeddings prepended to every
input, initialised from the embeddings of a Persian task description (PEFT ``PromptTuningInit.TEXT``); the
language model itself stays frozen. The task is verbalised: ``"<review>\\nاحساس:"`` → `` مثبت`` (positive) or
`` منفی`` (negative), and a review is classified by comparing the model's log-likelihood of the two label
words, so the frozen base model (zero-shot, with a hand-written instruction) and the tuned soft prompt are
scored by exactly the same rule.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from .llm_models import DATA_DIR

LABEL_WORDS = {"negative": " منفی", "positive": " مثبت"}
INIT_TEXT = "احساس این نظر را مشخص کن: مثبت یا منفی."  # "decide this review's sentiment: positive or negative"
ZERO_SHOT_INSTRUCTION = "نظر زیر مثبت است یا منفی؟\n"  # the hard prompt the frozen model gets
SUFFIX = "\nاحساس:"  # "sentiment:"
REVIEWS_FILE = DATA_DIR / "persian_reviews.tsv"
HUB_REVIEWS = "universitytehran/ParsiNLU_SentenceSentiment"  # ParsiNLU (Khashabi et al. 2021), parquet


@dataclass(frozen=True)
class SoftPromptConfig:
    num_virtual_tokens: int = 8
    init_text: str = INIT_TEXT
    lr: float = 3e-2
    num_epochs: int = 5
    batch_size: int = 8
    seed: int = 0


@dataclass(frozen=True)
class Review:
    text: str
    label: int  # 0 negative, 1 positive


def load_reviews(path: str | Path = REVIEWS_FILE) -> list[Review]:
    """Reviews from a TSV with ``text`` and ``label`` (positive/negative) columns.

    The committed file holds 40 short reviews written for this repository (20 per class): enough for a
    pipeline check, far too few for a benchmark. See :func:`load_hub_reviews` for a real corpus.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"review file {path} not found; give a TSV with 'text' and 'label' columns.")
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    names = list(LABEL_WORDS)
    bad = [r["label"] for r in rows if r.get("label") not in names]
    if bad or not rows:
        raise ValueError(f"{path}: labels must be one of {names}; found {sorted(set(bad))[:5] or 'no rows'}")
    return [Review(r["text"].strip(), names.index(r["label"])) for r in rows]


def _sentiment_sign(label) -> int | None:
    """+1 / -1 / None (neutral or unknown) for numeric (-2..2, 0/1) or text ("positive", "منفی") labels."""
    if isinstance(label, (int, float)):
        return 1 if label > 0 else (-1 if label < 0 else None)
    text = str(label).strip().lower()
    if "neg" in text or "منفی" in text:
        return -1
    if "pos" in text or "مثبت" in text:
        return 1
    try:
        return _sentiment_sign(float(text))
    except ValueError:
        return None


def load_hub_reviews(dataset_id: str, split: str = "train", text_column: str | None = None,
                     label_column: str | None = None, zero_is_negative: bool = False,
                     limit: int | None = None) -> list[Review]:
    """Persian reviews from a Hugging Face dataset (online or cached), keeping clearly positive/negative rows.

    Columns are auto-detected when not given: the label column is the first whose name contains "label" or
    "sentiment"; the text column is the string column with the longest average text. Numeric labels are
    read by sign (so -2..2 scales work; pass ``zero_is_negative=True`` for 0/1 labels), text labels by
    "pos"/"neg"/"مثبت"/"منفی". Neutral rows are dropped.
    """
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except Exception as err:
        raise OSError(f"cannot load dataset {dataset_id!r} ({type(err).__name__}: {str(err)[:150]}); it needs "
                      f"internet or a local copy. Offline, use load_reviews() on a TSV.") from err
    columns = ds.column_names
    if label_column is None:
        label_column = next((c for c in columns if "label" in c.lower() or "sentiment" in c.lower()), None)
    if text_column is None:
        sample = ds.select(range(min(len(ds), 200)))
        lengths = {c: sum(len(str(v)) for v in sample[c]) / max(len(sample), 1) for c in columns
                   if c != label_column and isinstance(sample[0][c], str)}
        text_column = max(lengths, key=lengths.get) if lengths else None
    if text_column not in columns or label_column not in columns:
        raise ValueError(f"{dataset_id} has columns {columns}; pass text_column= and label_column=.")
    out = []
    for row in ds:
        label = row[label_column]
        if zero_is_negative and label in (0, "0"):
            label = -1
        sign = _sentiment_sign(label)
        if sign is not None and row[text_column]:
            out.append(Review(str(row[text_column]).strip(), int(sign > 0)))
        if limit and len(out) >= limit:
            break
    if not out:
        raise ValueError(f"no positive/negative rows found in {dataset_id}[{split}] column {label_column!r}.")
    return out


def split_reviews(reviews: list[Review], val_fraction: float = 0.3, seed: int = 0):
    """Stratified train/validation split."""
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for label in (0, 1):
        group = [r for r in reviews if r.label == label]
        order = torch.randperm(len(group), generator=g).tolist()
        n_val = max(1, round(val_fraction * len(group)))
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val


def make_soft_prompt_model(model, tokenizer_path: str | Path, config: SoftPromptConfig = SoftPromptConfig()):
    """Wrap a causal LM with PEFT prompt tuning; print and return ``(peft_model, trainable, total)``."""
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    if config.num_virtual_tokens < 1:
        raise ValueError(f"num_virtual_tokens must be >= 1, got {config.num_virtual_tokens}")
    peft_config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.num_virtual_tokens,
                                     prompt_tuning_init=PromptTuningInit.TEXT,
                                     prompt_tuning_init_text=config.init_text,
                                     tokenizer_name_or_path=str(tokenizer_path))
    peft_model = get_peft_model(model, peft_config)
    trainable, total = peft_model.get_nb_trainable_parameters()
    print(f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}")
    return peft_model, trainable, total


def encode_examples(reviews: list[Review], tokenizer, prefix: str = "") -> list[dict]:
    """Token ids for ``prefix + review + SUFFIX + label word``; the loss is taken on the label word only."""
    examples = []
    for r in reviews:
        prompt = tokenizer(prefix + r.text + SUFFIX, add_special_tokens=False)["input_ids"]
        target = tokenizer(LABEL_WORDS[list(LABEL_WORDS)[r.label]], add_special_tokens=False)["input_ids"]
        examples.append({"input_ids": prompt + target, "labels": [-100] * len(prompt) + target})
    return examples


def collate(examples: list[dict], pad_id: int) -> dict:
    """Right-pad a batch (training); padded label positions are ignored (-100)."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), -100)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def label_log_likelihoods(model, tokenizer, texts: list[str], prefix: str = "") -> torch.Tensor:
    """(N, 2) summed log-probabilities of the two label words after each text (works with PEFT models)."""
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for text in texts:
        scores = []
        for word in LABEL_WORDS.values():
            prompt = tokenizer(prefix + text + SUFFIX, add_special_tokens=False)["input_ids"]
            target = tokenizer(word, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + target], device=device)
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -ids.shape[1]:]
            logp = torch.log_softmax(logits[0, len(prompt) - 1:-1].float(), dim=-1)  # predicts the target
            scores.append(logp.gather(1, torch.tensor(target, device=device)[:, None]).sum())
        rows.append(torch.stack(scores))
    return torch.stack(rows).cpu()


def evaluate_sentiment(model, tokenizer, reviews: list[Review], prefix: str = "") -> dict:
    """Accuracy and mean margin of the label-likelihood classifier."""
    ll = label_log_likelihoods(model, tokenizer, [r.text for r in reviews], prefix)
    y = torch.tensor([r.label for r in reviews])
    return {"accuracy": float((ll.argmax(1) == y).float().mean()),
            "mean_margin": float((ll[:, 1] - ll[:, 0]).mul(2 * y - 1).mean())}


def train_soft_prompt(peft_model, tokenizer, train: list[Review], val: list[Review], output_dir: str | Path,
                      config: SoftPromptConfig = SoftPromptConfig()):
    """Train the virtual tokens with ``transformers.Trainer``; return ``(trainer, log_history)``."""
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(output_dir), num_train_epochs=config.num_epochs,
                             per_device_train_batch_size=config.batch_size,
                             per_device_eval_batch_size=config.batch_size, learning_rate=config.lr,
                             eval_strategy="epoch", save_strategy="no", logging_strategy="epoch",
                             report_to=[], seed=config.seed, use_cpu=not torch.cuda.is_available(),
                             remove_unused_columns=False, disable_tqdm=True, lr_scheduler_type="constant")
    pad = tokenizer.pad_token_id
    trainer = Trainer(model=peft_model, args=args, train_dataset=encode_examples(train, tokenizer),
                      eval_dataset=encode_examples(val, tokenizer), data_collator=lambda b: collate(b, pad))
    trainer.train()
    return trainer, trainer.state.log_history


def nearest_tokens(peft_model, tokenizer, k: int = 3) -> list[list[tuple[str, float]]]:
    """For every learned virtual token, its ``k`` nearest vocabulary tokens by cosine similarity."""
    prompt = peft_model.get_prompt_embedding_to_save(adapter_name="default").float()  # (n_virtual, d)
    vocab = peft_model.get_input_embeddings().weight.detach().float()  # (V, d)
    sims = torch.nn.functional.normalize(prompt, dim=1) @ torch.nn.functional.normalize(vocab, dim=1).T
    top = sims.topk(k, dim=1)
    return [[(tokenizer.decode([int(i)]), float(s)) for s, i in zip(vals, idx)]
            for vals, idx in zip(top.values, top.indices)]
