"""ViT + LoRA with PEFT, trained by ``transformers.Trainer``, and top-5 prediction of a new image (hw5.P5).

Steps of the homework, one function each::

    model, processor = build_vit(DEFAULT_MODEL_ID, data.labels)     # or build_vit(TinyViT(), ...) offline
    lora_model, counts = add_lora(model, LoraSettings(r=16))         # prints trainable vs all parameters
    result = train_classifier(lora_model, train_ds, val_ds, "build/lora", TrainConfig(num_epochs=5))
    predict_image(lora_model, processor, "photo.jpg")                # [(label, probability)] * 5

``build_vit`` takes a hub id, a local folder saved with ``save_pretrained``, a ``ViTConfig`` or a
:class:`TinyViT` (random weights, the quick profile's stand-in: its accuracies mean nothing). The classifier
is always a fresh ``len(labels)``-way head. A hub id that cannot be reached (``HF_HUB_OFFLINE=1`` or no route
to the hub) is only looked up in the local cache, and a miss is a :class:`ModelUnavailableError` that says how
to supply a local copy, instead of minutes of download retries.

Module names: the homework's (and the PEFT guide's) ``target_modules=["query", "value"]`` are the attention
projections' names before transformers 5; version 5 calls them ``q_proj``/``v_proj`` (checkpoints are renamed
on load). :func:`resolve_target_modules` maps one spelling onto whichever the model has.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common import DataNotFoundError, load_image

from .food_data import collate, hub_reachable, image_transforms

DEFAULT_MODEL_ID = "google/vit-base-patch16-224-in21k"
# pre-v5 ViT attention names -> v5 names (transformers/conversion_mapping.py renames checkpoints this way)
ATTENTION_ALIASES = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "q_proj": "query",
                     "k_proj": "key", "v_proj": "value"}


class ModelUnavailableError(OSError):
    """A pretrained model was asked for but cannot be loaded here (offline without a copy, wrong folder)."""


@dataclass(frozen=True)
class TinyViT:
    """A ViT small enough to train in seconds on CPU; random weights, so a pipeline check only."""

    image_size: int = 32
    patch_size: int = 8
    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 2
    mlp_size: int = 64

    def config(self, labels) -> object:
        from transformers import ViTConfig

        return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, hidden_size=self.hidden_size,
                         num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
                         intermediate_size=self.mlp_size, **_label_kwargs(labels))


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters; the defaults are the PEFT image-classification guide's."""

    r: int = 16
    alpha: int = 16
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("query", "value")
    modules_to_save: tuple[str, ...] = ("classifier",)


@dataclass(frozen=True)
class ParamCount:
    """``trainable`` and ``total`` as PEFT counts them (total includes LoRA weights and the frozen copy of the
    head that ``modules_to_save`` keeps); ``base``: parameters of the model before wrapping."""

    trainable: int
    total: int
    base: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total

    def __str__(self) -> str:
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} || "
                f"trainable%: {100 * self.fraction:.4f} (base model: {self.base:,})")


# ------------------------------------------------------------------------------------------ model
def _label_kwargs(labels) -> dict:
    labels = list(labels)
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)}}


def tiny_processor(image_size: int):
    """The ViT-in21k processor's settings (mean = std = 0.5) at the tiny model's input size."""
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": image_size, "width": image_size},
                             image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def build_vit(model: str | Path | object, labels, seed: int = 0):
    """``(model, image_processor)``: a ViT image classifier with a fresh ``len(labels)``-way head.

    ``model``: hub id or local folder (pretrained backbone), a ``ViTConfig`` or a :class:`TinyViT`
    (random weights, built with ``seed``).
    """
    from transformers import ViTConfig, ViTForImageClassification

    if isinstance(model, TinyViT):
        model = model.config(labels)
    if isinstance(model, ViTConfig):
        config = ViTConfig(**{**model.to_dict(), **_label_kwargs(labels)})
        torch.manual_seed(seed)
        return ViTForImageClassification(config), tiny_processor(config.image_size)
    return load_pretrained_vit(str(model), labels)


def load_pretrained_vit(name_or_path: str, labels):
    """A pretrained image classifier from the hub or a folder, head replaced by a ``len(labels)``-way one."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    local = Path(name_or_path).expanduser()
    if local.exists():
        name_or_path, offline = str(local), True
    elif name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ModelUnavailableError(f"model folder {local} does not exist. Pass a folder written by "
                                    f"`save_pretrained` (config.json + weights) or a hub id like "
                                    f"{DEFAULT_MODEL_ID!r}.")
    else:
        offline = not hub_reachable()
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path, local_files_only=offline)
        model = AutoModelForImageClassification.from_pretrained(
            name_or_path, local_files_only=offline, ignore_mismatched_sizes=True, **_label_kwargs(labels))
    except (OSError, ValueError) as err:
        if local.exists():
            how = "check that the folder holds config.json, the weights and preprocessor_config.json"
        else:
            how = (f"this machine is offline (HF_HUB_OFFLINE=1 or no route to the hub) and the model is not "
                   f"in the Hugging Face cache. On a connected machine run `hf download {name_or_path} "
                   f"--local-dir <folder>` (or `huggingface-cli download ...`), copy the folder here and "
                   f"pass its path as the model; for an offline pipeline check use the quick profile's "
                   f"tiny ViT")
        raise ModelUnavailableError(f"cannot load the model {name_or_path!r}: {how}. "
                                    f"[{type(err).__name__}: {str(err).splitlines()[0][:160]}]") from err
    return model, processor


def resolve_target_modules(model: torch.nn.Module, names) -> list[str]:
    """``names`` spelled as this model's module names (``query`` <-> ``q_proj`` across transformers 5)."""
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    resolved = []
    for name in names:
        if name in leaf_names:
            resolved.append(name)
        elif ATTENTION_ALIASES.get(name) in leaf_names:
            resolved.append(ATTENTION_ALIASES[name])
        else:
            raise ValueError(f"the model has no module called {name!r} (nor {ATTENTION_ALIASES.get(name)!r});"
                             f" pick target_modules among its linear layers, e.g. q_proj, k_proj, v_proj.")
    return resolved


def add_lora(model: torch.nn.Module, settings: LoraSettings = LoraSettings(), *, verbose: bool = True,
             init_lora_weights: bool | str = True):
    """Freeze ``model``, add LoRA to ``settings.target_modules`` and train the head; return
    ``(peft_model, ParamCount)`` and print the counts.

    ``init_lora_weights=False`` draws B at random instead of zero (so the adapter changes the output at once;
    used to test merging without training).
    """
    from peft import LoraConfig, get_peft_model

    base = sum(p.numel() for p in model.parameters())
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, bias="none",
                        target_modules=resolve_target_modules(model, settings.target_modules),
                        modules_to_save=list(settings.modules_to_save), init_lora_weights=init_lora_weights)
    peft_model = get_peft_model(model, config)
    counts = ParamCount(*peft_model.get_nb_trainable_parameters(), base=base)
    if verbose:
        print(counts)
    return peft_model, counts


def lora_trainable_formula(config, r: int, num_targets: int = 2) -> int:
    """Trainable parameters of LoRA on ``num_targets`` square (d x d) projections per layer and a new head:
    ``L * num_targets * r * (d + d) + (d * K + K)``."""
    d, layers, k = config.hidden_size, config.num_hidden_layers, config.num_labels
    return layers * num_targets * r * 2 * d + d * k + k


# ------------------------------------------------------------------------------------------ training
@dataclass(frozen=True)
class TrainConfig:
    """``Trainer`` settings; the defaults follow the PEFT guide (lr 5e-3 for LoRA, 5 epochs)."""

    num_epochs: int = 5
    lr: float = 5e-3
    batch_size: int = 128
    eval_batch_size: int = 256
    grad_accum: int = 1
    weight_decay: float = 0.0
    num_workers: int = 0
    seed: int = 0
    progress: bool = True


@dataclass
class TrainResult:
    """The trainer (its model holds the best checkpoint's weights) and one record per epoch."""

    trainer: object
    epochs: list[dict] = field(default_factory=list)  # {epoch, train_loss, val_loss, val_accuracy, seconds}

    @property
    def best_accuracy(self) -> float:
        return max(e["val_accuracy"] for e in self.epochs)

    def curve(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs]


def accuracy_metric(eval_pred) -> dict[str, float]:
    """``compute_metrics`` for the Trainer: top-1 accuracy of (N, K) logits against (N,) labels."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def _epoch_timer():
    from transformers import TrainerCallback

    class EpochTimer(TrainerCallback):
        """Wall seconds of each training epoch (``on_epoch_end`` fires before the evaluation)."""

        def __init__(self):
            self.seconds: list[float] = []

        def on_epoch_begin(self, args, state, control, **kwargs):
            self._tic = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self._tic)

    return EpochTimer()


def training_arguments(output_dir: str | Path, cfg: TrainConfig):
    """Evaluate and save every epoch, keep the best checkpoint by accuracy, GPU (bf16) when present."""
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(output_dir), remove_unused_columns=False,  # keep the transformed column for collate
        eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch",
        load_best_model_at_end=True, metric_for_best_model="accuracy", greater_is_better=True,
        save_total_limit=1, save_only_model=True, label_names=["labels"],
        learning_rate=cfg.lr, weight_decay=cfg.weight_decay, num_train_epochs=cfg.num_epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.grad_accum, dataloader_num_workers=cfg.num_workers,
        dataloader_pin_memory=cuda, use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
        seed=cfg.seed, report_to=[], disable_tqdm=not cfg.progress)


def _best_checkpoint_trainer():
    from transformers import Trainer

    class BestCheckpointTrainer(Trainer):
        """``Trainer`` whose end-of-training reload of the best checkpoint also works for plain ViTs.

        transformers 5 saves checkpoints with the legacy key names (``...attention.attention.query``) but
        ``Trainer._load_best_model`` loads them by a raw ``load_state_dict(strict=False)``: for a plain ViT
        nothing matches and the last epoch's weights silently stay (transformers issue #43701). Loading with
        ``from_pretrained`` applies the renaming; PEFT adapters (current names) use the stock path.
        """

        def _load_best_model(self):
            if hasattr(self.model, "peft_config") or not hasattr(self.model, "from_pretrained"):
                return super()._load_best_model()
            best = type(self.model).from_pretrained(self.state.best_model_checkpoint)
            self.model.load_state_dict(best.state_dict())  # strict: every key must match

    return BestCheckpointTrainer


def train_classifier(model, train_ds, val_ds, output_dir: str | Path,
                     cfg: TrainConfig = TrainConfig()) -> TrainResult:
    """Train ``model`` with ``transformers.Trainer`` on preprocessed datasets (``food_data.preprocess``)."""
    timer = _epoch_timer()
    trainer_class = _best_checkpoint_trainer()
    trainer = trainer_class(model=model, args=training_arguments(output_dir, cfg), train_dataset=train_ds,
                            eval_dataset=val_ds, data_collator=collate, compute_metrics=accuracy_metric,
                            callbacks=[timer])
    if not cfg.progress:  # without progress bars the Trainer prints every log dict; keep the output short
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    trainer.train()
    train_logs = [h for h in trainer.state.log_history if "loss" in h and "eval_loss" not in h]
    eval_logs = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    epochs = [{"epoch": int(round(e["epoch"])), "train_loss": t["loss"], "val_loss": e["eval_loss"],
               "val_accuracy": e["eval_accuracy"], "seconds": s}
              for t, e, s in zip(train_logs, eval_logs, timer.seconds)]
    return TrainResult(trainer, epochs)


# ------------------------------------------------------------------------------------------ prediction
@torch.no_grad()
def predict_image(model, processor, image, k: int = 5) -> list[tuple[str, float]]:
    """Top-``k`` ``(label, probability)`` for one image (a path or a PIL image), best first.

    Preprocessing is the evaluation pipeline (resize, centre crop, normalise) built from ``processor``.
    """
    if isinstance(image, (str, Path)):
        if not Path(image).is_file():
            raise DataNotFoundError(f"image file {image} does not exist; pass the path of a photo or a PIL "
                                    f"image.")
        image = load_image(image)  # clear error for unreadable files
    model.eval()
    device = next(model.parameters()).device
    pixel_values = image_transforms(processor, train=False)(image.convert("RGB"))[None].to(device)
    probs = model(pixel_values=pixel_values).logits.float().softmax(-1)[0]  # (K,)
    top = probs.topk(min(k, probs.numel()))
    id2label = _config(model).id2label
    return [(id2label[int(i)], float(p)) for p, i in zip(top.values, top.indices)]


def _config(model):
    """The transformers config of a plain or PEFT-wrapped model."""
    return model.get_base_model().config if hasattr(model, "get_base_model") else model.config
