"""The whole hw5.P5 run as steps that fill one results dict: what the CLI (``run.py``) and the notebook share.

    exp = LoraExperiment(profile_defaults(profile), data_root=root, workdir=out / "checkpoints", device=dev)
    exp.load_data(); exp.build_model(); exp.add_lora(); exp.train(); exp.merge(); exp.predict()
    exp.compare(); exp.vit_base_check()          # optional steps
    exp.results                                  # JSON-able; report.py writes the prose from it

``run_all`` runs the steps in that order. Each step stores its section of ``results`` and keeps the objects
(data, models, trainer) on the instance, so a notebook can show figures between steps.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from common import Profile, count_parameters, seed_everything, settings_key, write_json_atomic, write_text_atomic

from .food_data import collate, load_food, preprocess, resolve_food_source
from .lora import (DEFAULT_MODEL_ID, LoraSettings, TinyViT, add_lora, build_vit, is_local_path,
                   lora_trainable_formula, predict_image, quiet_transformers, resolve_vit_source)
from .lora_compare import CompareConfig, compare_methods
from .lora_merge import latency_table, max_logit_gap, merge_check, merged_copy
from .report import report_markdown
from .training import TrainConfig, train_classifier

RESULTS, REPORT, ADAPTER = "results.json", "report.md", "adapter"
TINY = "tiny"  # --model value of the built-in random-weight ViT (quick profile)


@dataclass(frozen=True)
class ExperimentConfig:
    """Every setting that changes a result (all enter the checkpoint key)."""

    model: str = TINY  # "tiny", a folder written by save_pretrained, or a hub id
    data: str = "sample"  # sample, archive, hub, or a <class>/<image> folder
    epochs: int = 5
    batch_size: int = 16
    lr: float = 5e-3
    rank: int = 16
    alpha: int = 16
    dropout: float = 0.1
    train_limit: int | None = None
    val_limit: int | None = None
    val_fraction: float = 0.2
    hold_out: int = 1  # photos removed from training for "predict a new image"
    seed: int = 0
    compare: bool = True
    compare_epochs: int = 3
    compare_ranks: tuple[int, ...] = (4, 8, 16)
    compare_train_limit: int | None = None
    compare_val_limit: int | None = None
    latency_repeats: int = 20
    vit_base_check: bool = True  # merge check + latency at ViT-Base/16 shapes (random weights)
    num_workers: int = 0

    @property
    def tiny(self) -> bool:
        return self.model == TINY

    def key(self) -> str:
        return settings_key(asdict(self))


def profile_defaults(profile: Profile) -> ExperimentConfig:
    """quick: the tiny random ViT on the 100-photo sample, minutes on CPU. full: ViT-Base/16-in21k on
    Food-101 from the hub, the PEFT guide's recipe, the comparison on a 5,000-photo subset like the guide."""
    if profile.quick:
        return ExperimentConfig()
    return ExperimentConfig(model=DEFAULT_MODEL_ID, data="hub", epochs=3, batch_size=128,
                            compare_train_limit=5000, compare_val_limit=2500, latency_repeats=50,
                            vit_base_check=False, num_workers=min(8, os.cpu_count() or 1))


def check_sources(cfg: ExperimentConfig, data_root: Path | None) -> tuple[str, str | None]:
    """``(data source, model source)`` resolved and checked without loading anything; raises the
    ``UserError`` that names the fix (missing data, missing weights offline)."""
    source = resolve_food_source(cfg.data, data_root)
    model = None if cfg.tiny else resolve_vit_source(cfg.model)[0]
    return source, model


class LoraExperiment:
    """The steps of hw5.P5 on one configuration; see the module docstring."""

    def __init__(self, cfg: ExperimentConfig, *, profile: Profile, data_root: Path | None, workdir: Path,
                 device: torch.device, log: Callable[[str], None] | None = None, progress: bool = False):
        self.cfg, self.profile, self.data_root, self.device, self.log = cfg, profile, data_root, device, log
        self.progress = progress  # the datasets bars (a hub download); the Trainer reports by `log` lines
        self.workdir = Path(workdir) / f"lora-{cfg.key()}"
        self.trainer_dir = self.checkpoint_dir(workdir, cfg)
        self.results: dict = {"task": "hw5.P5", "profile": profile.name, "settings": asdict(cfg),
                              "settings_key": cfg.key(), "hardware": hardware(device)}

    @staticmethod
    def checkpoint_dir(workdir: Path, cfg: ExperimentConfig) -> Path:
        """Where the main LoRA run's Trainer checkpoints go (one folder per settings key)."""
        return Path(workdir) / f"lora-{cfg.key()}" / "trainer"

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    # ---------------------------------------------------------------------------------------- steps 1-3
    def load_data(self):
        cfg = self.cfg
        self.source = resolve_food_source(cfg.data, self.data_root)
        self.data = load_food(self.source, val_fraction=cfg.val_fraction, train_limit=cfg.train_limit,
                              val_limit=cfg.val_limit, hold_out=cfg.hold_out, seed=cfg.seed,
                              progress=self.progress)
        self.results["data"] = {"source": self.source, "train": len(self.data.train), "val": len(self.data.val),
                                "held_out": [h.name for h in self.data.held_out],
                                "classes": self.data.num_classes,
                                "classes_with_images": self.data.classes_with_images()}
        self._say(self.data.summary())
        return self.data

    def make_model(self):
        """A fresh classifier with the starting weights (same seed / same pretrained checkpoint each call)."""
        seed_everything(self.cfg.seed)
        return build_vit(TinyViT() if self.cfg.tiny else self.cfg.model, self.data.labels, seed=self.cfg.seed)

    def build_model(self):
        self.model, self.processor = self.make_model()
        config = self.model.config
        kind = ("tiny random-weight ViT" if self.cfg.tiny else
                "local folder" if is_local_path(self.cfg.model) else "Hugging Face hub id")
        self.results["model"] = {"name": self.cfg.model, "kind": kind, "parameters": count_parameters(self.model),
                                 "hidden_size": config.hidden_size, "layers": config.num_hidden_layers,
                                 "image_size": config.image_size, "num_labels": config.num_labels}
        self.train_ds, self.val_ds = preprocess(self.data, self.processor)
        return self.model, self.processor

    def add_lora(self):
        cfg = self.cfg
        self.lora_settings = LoraSettings(r=cfg.rank, alpha=cfg.alpha, dropout=cfg.dropout)
        self.lora_model, counts = add_lora(self.model, self.lora_settings)
        formula = lora_trainable_formula(self.model.config, cfg.rank)
        self.results["lora"] = {"r": cfg.rank, "alpha": cfg.alpha, "dropout": cfg.dropout,
                                "target_modules": list(self.lora_settings.target_modules),
                                "trainable": counts.trainable, "base": counts.base,
                                "peft_total": counts.peft_total, "trainable_pct_of_base": 100 * counts.fraction,
                                "formula": formula}
        self.results["vit_base_counts"] = vit_base_counts(self.data.num_classes, cfg.compare_ranks, cfg.rank)
        return self.lora_model, counts

    # ---------------------------------------------------------------------------------------- steps 4-5
    def train_config(self) -> TrainConfig:
        cfg = self.cfg
        return TrainConfig(num_epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                           eval_batch_size=2 * cfg.batch_size, num_workers=cfg.num_workers, seed=cfg.seed,
                           resume=True, use_cpu=self.device.type == "cpu")

    def train(self):
        self.results["hardware"] = hardware(self.device)  # here: the thread count training runs with
        tic = time.perf_counter()
        self.result = train_classifier(self.lora_model, self.train_ds, self.val_ds, self.trainer_dir,
                                       self.train_config(), log=self.log)
        self.results["training"] = {"epochs": self.result.epochs, "best_val_accuracy": self.result.best_accuracy,
                                    "best_epoch": self.result.best_epoch,
                                    "seconds": time.perf_counter() - tic}
        return self.result

    def predict(self, k: int = 5):
        rows = []
        for held in self.data.held_out:
            top = predict_image(self.lora_model, self.processor, held.image, k=k)
            rows.append({"image": held.name, "true_label": self.data.labels[held.label],
                         "top": [{"label": label, "probability": p} for label, p in top],
                         "true_rank": next((i + 1 for i, (label, _) in enumerate(top)
                                            if label == self.data.labels[held.label]), None)})
        self.results["prediction"] = rows
        return rows

    # ---------------------------------------------------------------------------------------- step 6
    def merge(self):
        cfg = self.cfg
        self.merged = merged_copy(self.lora_model)  # a copy: lora_model stays unmerged for the comparison
        x = collate([self.val_ds[i] for i in range(min(8, len(self.val_ds)))])["pixel_values"]
        check = merge_check(self.lora_model, self.merged, x)
        self.base_model = self.make_model()[0]  # the starting weights again, without adapters
        models = {"base": self.base_model, "LoRA unmerged": self.lora_model, "LoRA merged": self.merged}
        models = {name: m.to(self.device) for name, m in models.items()}
        clock, threads = latency_clock(self.device)
        rows = []
        for size in sorted({1, len(x)}):
            rows += latency_table(models, x[:size], repeats=cfg.latency_repeats, warmup=1,
                                  rounds=3 if cfg.latency_repeats > 1 else 1, clock=clock, threads=threads)
        self.results["merge"] = {**check, "batch": len(x), "lora_tensors_left": sum(
            "lora_" in n for n, _ in self.merged.named_parameters()),
            "unmerged_vs_base_gap": max_logit_gap(self.lora_model, self.base_model, x),
            "clock": clock, "threads": threads, "latency": rows}
        return self.results["merge"]

    def vit_base_check(self, repeats: int = 3):
        """Merge check and latency at ViT-Base/16 shapes (random weights, random LoRA B): what the tiny model
        cannot say. Skipped (None) when the trained model already is ViT-Base sized."""
        from transformers import ViTConfig, ViTForImageClassification

        torch.manual_seed(0)
        vit_b = ViTForImageClassification(ViTConfig(num_labels=self.data.num_classes)).to(self.device)
        vit_b_lora, _ = add_lora(copy.deepcopy(vit_b), LoraSettings(r=self.cfg.rank), init_lora_weights=False)
        vit_b_merged = merged_copy(vit_b_lora)
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        check = merge_check(vit_b_lora, vit_b_merged, x)
        clock, threads = latency_clock(self.device)
        rows = latency_table({"base": vit_b, "LoRA unmerged": vit_b_lora, "LoRA merged": vit_b_merged}, x[:1],
                             repeats=repeats, warmup=1, rounds=2, clock=clock, threads=threads)
        self.results["vit_base_shapes"] = {**check, "r": self.cfg.rank, "clock": clock, "threads": threads,
                                           "unmerged_vs_base_gap": max_logit_gap(vit_b_lora, vit_b, x),
                                           "latency": rows}
        return self.results["vit_base_shapes"]

    # ---------------------------------------------------------------------------------------- step 7
    def compare(self):
        cfg = self.cfg
        if cfg.compare_train_limit or cfg.compare_val_limit:
            data = load_food(self.source, val_fraction=cfg.val_fraction, train_limit=cfg.compare_train_limit,
                             val_limit=cfg.compare_val_limit, hold_out=cfg.hold_out, seed=cfg.seed)
            train_ds, val_ds = preprocess(data, self.processor)
        else:
            data, train_ds, val_ds = self.data, self.train_ds, self.val_ds
        compare_cfg = CompareConfig(ranks=cfg.compare_ranks, lora=self.lora_settings, lora_lr=cfg.lr,
                                    head_lr=cfg.lr, full_lr=1e-3 if cfg.tiny else 5e-5,
                                    train=replace(self.train_config(), num_epochs=cfg.compare_epochs))
        rows, self.compare_results = compare_methods(lambda: self.make_model()[0], train_ds, val_ds,
                                                     self.workdir / "compare", compare_cfg, self.device, self.log)
        self.results["compare"] = {"rows": rows, "epochs": cfg.compare_epochs, "train": len(data.train),
                                   "val": len(data.val),
                                   "curves": {m: r.curve("val_accuracy") for m, r in self.compare_results.items()}}
        return rows

    def run_all(self) -> dict:
        tic = time.perf_counter()
        for step in (self.load_data, self.build_model, self.add_lora, self.train, self.predict, self.merge):
            self._say(f"step: {step.__name__.replace('_', ' ')}")
            step()
        if self.cfg.vit_base_check:
            self._say("step: ViT-Base shapes check")
            self.vit_base_check()
        if self.cfg.compare:
            self._say("step: compare")
            self.compare()
        self.results["seconds"] = time.perf_counter() - tic
        return self.results

    def write(self, out: Path) -> None:
        """``results.json``, ``report.md`` and the LoRA adapter folder (with the trained head) in ``out``."""
        out = Path(out)
        with quiet_transformers():
            self.lora_model.save_pretrained(str(out / ADAPTER))
        write_json_atomic(out / RESULTS, self.results)
        write_text_atomic(out / REPORT, report_markdown(self.results))


def vit_base_counts(num_labels: int, ranks: tuple[int, ...], rank: int) -> dict:
    """Exact parameter counts of ViT-Base/16 with a ``num_labels`` head: base, head, LoRA per rank; built on
    the meta device (shapes only, no memory, no weights)."""
    from transformers import ViTConfig, ViTForImageClassification

    with torch.device("meta"):
        model = ViTForImageClassification(ViTConfig(num_labels=num_labels))
        base = count_parameters(model)
        head = count_parameters(model.classifier)
        lora = {}
        for r in sorted({*ranks, rank}):
            peft_model, counts = add_lora(copy.deepcopy(model), LoraSettings(r=r))
            lora[str(r)] = counts.trainable
            del peft_model
    return {"base": base, "head": head, "lora_trainable": lora,
            "hidden_size": model.config.hidden_size, "layers": model.config.num_hidden_layers}


def latency_clock(device: torch.device) -> tuple[str, int | None]:
    """GPU: wall clock. CPU: this process's CPU time on one thread -- the work done, robust to other jobs on
    the cores (with several threads a small model's timings are dominated by idle threads spinning)."""
    return ("wall", None) if device.type == "cuda" else ("cpu", 1)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} torch thread(s)"
