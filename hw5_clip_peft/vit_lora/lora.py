"""ViT + LoRA with PEFT, and top-5 prediction of a new image (hw5.P5); training is in :mod:`.training`.

Steps of the homework, one function each::

    model, processor = build_vit(DEFAULT_MODEL_ID, data.labels)     # or build_vit(TinyViT(), ...) offline
    lora_model, counts = add_lora(model, LoraSettings(r=16))         # trainable vs base-model parameters
    result = train_classifier(lora_model, train_ds, val_ds, "build/lora", TrainConfig(num_epochs=5))
    predict_image(lora_model, processor, "photo.jpg")                # [(label, probability)] * 5

``build_vit`` takes a hub id, a local folder saved with ``save_pretrained`` (model + image processor), a
``ViTConfig`` or a :class:`TinyViT` (random weights, the quick profile's stand-in: its accuracies mean nothing).
The classifier is always a fresh ``len(labels)``-way head. Where a pretrained model comes from follows
:func:`common.pretrained.resolve_pretrained`: a local folder, else the Hugging Face cache, else the hub only when
``DLHW_DOWNLOAD=1``; otherwise :class:`common.ModelNotFoundError` says how to supply it, with no network
traffic and no retries.

Module names: the homework's (and the PEFT guide's) ``target_modules=["query", "value"]`` are the attention
projections' names before transformers 5; version 5 calls them ``q_proj``/``v_proj`` (checkpoints are renamed
on load). :func:`resolve_target_modules` maps one spelling onto whichever the model has.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from common import DataNotFoundError, ModelNotFoundError, count_parameters, load_image
from common.pretrained import downloads_allowed, resolve_pretrained

from .food_data import image_transforms

DEFAULT_MODEL_ID = "google/vit-base-patch16-224-in21k"
# pre-v5 ViT attention names -> v5 names (transformers/conversion_mapping.py renames checkpoints this way)
ATTENTION_ALIASES = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "q_proj": "query",
                     "k_proj": "key", "v_proj": "value"}


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
    """Parameter counts of a LoRA model (:func:`common.count_parameters`).

    ``base``: the model before wrapping (backbone + new head) -- the one denominator this project uses for
    "trainable share"; ``trainable``: LoRA matrices + the trained head; ``peft_total``: everything the PEFT
    model holds (base + LoRA + the frozen original head that ``modules_to_save`` keeps beside its trained
    copy), which is PEFT's own ``all params`` and so gives a different, smaller percentage.
    """

    trainable: int
    base: int
    peft_total: int

    @property
    def fraction(self) -> float:
        """``trainable / base``."""
        return self.trainable / self.base

    def __str__(self) -> str:
        return (f"trainable parameters: {self.trainable:,} = {100 * self.fraction:.2f} % of the "
                f"{self.base:,} parameters of the base model (backbone + new head)")


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


def is_local_path(model: str | Path) -> bool:
    """Whether ``model`` names a folder rather than a hub id (``owner/name``): it exists, starts with
    ``.``, ``/`` or ``~``, or has more than one ``/``."""
    text = str(model)
    return Path(text).expanduser().exists() or text.startswith((".", "/", "~")) or text.count("/") > 1


def resolve_vit_source(model: str | Path, flag: str = "--model") -> tuple[str, bool]:
    """``(name_or_path, local_files_only)`` for a pretrained ViT and its image processor; raises
    :class:`ModelNotFoundError` naming the fix. Touches no network."""
    text = str(model)
    if is_local_path(text):
        path = Path(resolve_pretrained(DEFAULT_MODEL_ID, text, what="ViT model", flag=flag))
        missing = [f for f in ("config.json", "preprocessor_config.json") if not (path / f).is_file()]
        weights = list(path.glob("*.safetensors")) + list(path.glob("pytorch_model*.bin"))
        if not path.is_dir() or missing or not weights:
            lacks = ", ".join(missing + ([] if weights else ["the weights (*.safetensors)"])) or "its files"
            raise ModelNotFoundError(f"ViT model folder {path} lacks {lacks}; write it with model.save_pretrained"
                                     f"(folder) and image_processor.save_pretrained(folder), or pass a hub id.")
        return str(path), True
    resolve_pretrained(text, what="ViT model", flag=flag)
    resolve_pretrained(text, what="ViT image processor", flag=flag, cache_files=("preprocessor_config.json",))
    return text, not downloads_allowed()


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers for a block: its load report (with ``ignore_mismatched_sizes`` it lists the new
    head as "newly initialized ... you should TRAIN", which is the point here, not news) and its
    "Loading weights"/"Writing model shards" bars, which stay as frozen lines in notebooks and logs."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_pretrained_vit(name_or_path: str | Path, labels, flag: str = "--model"):
    """A pretrained image classifier from a folder or the hub (cache), head replaced by a ``len(labels)``-way
    one, and its image processor."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    source, local_only = resolve_vit_source(name_or_path, flag)
    try:
        with quiet_transformers():
            processor = AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
            model = AutoModelForImageClassification.from_pretrained(
                source, local_files_only=local_only, ignore_mismatched_sizes=True, **_label_kwargs(labels))
    except (OSError, ValueError) as err:  # an incomplete cache or folder, a download that failed
        raise ModelNotFoundError(f"cannot load the ViT {source!r} ({type(err).__name__}: "
                                 f"{' '.join(str(err).split())[:160]}); pass {flag} <folder> written by "
                                 f"save_pretrained, or set DLHW_DOWNLOAD=1 on a machine with internet.") from None
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


def add_lora(model: torch.nn.Module, settings: LoraSettings = LoraSettings(), *, verbose: bool = False,
             init_lora_weights: bool | str = True):
    """Freeze ``model``, add LoRA to ``settings.target_modules`` and train the head; return
    ``(peft_model, ParamCount)``; ``verbose`` prints the counts.

    ``init_lora_weights=False`` draws B at random instead of zero (so the adapter changes the output at once;
    used to test merging without training).
    """
    from peft import LoraConfig, get_peft_model

    base = count_parameters(model)
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, bias="none",
                        target_modules=resolve_target_modules(model, settings.target_modules),
                        modules_to_save=list(settings.modules_to_save), init_lora_weights=init_lora_weights)
    with warnings.catch_warnings():
        # PEFT probes `model.is_gradient_checkpointing`, which transformers 5 deprecates with a FutureWarning
        # that names neither this code nor anything a user could change
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        peft_model = get_peft_model(model, config)
    counts = ParamCount(trainable=count_parameters(peft_model, trainable_only=True), base=base,
                        peft_total=count_parameters(peft_model))
    if verbose:
        print(counts)
    return peft_model, counts


def lora_trainable_formula(config, r: int, num_targets: int = 2) -> int:
    """Trainable parameters of LoRA on ``num_targets`` square (d x d) projections per layer and a new head:
    ``L * num_targets * r * (d + d) + (d * K + K)``."""
    d, layers, k = config.hidden_size, config.num_hidden_layers, config.num_labels
    return layers * num_targets * r * 2 * d + d * k + k


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
