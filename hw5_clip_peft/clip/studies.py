"""hw5.P3 (a)-(f), one function per part, all on cached features (see :mod:`.features`).

Every choice (template, weight decay, epoch) is made on the validation split carved from train; test is only
ever evaluated. :mod:`.clip_experiments` runs them in order (the CLI) and the notebook calls them one by one.
Shapes: features ``X`` (N, D); a classifier (K, D) with unit rows; ``K`` = number of classes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Sequence

import numpy as np
import torch

from common import confusion, most_confused, per_class_report

from .class_embeddings import train_class_embeddings
from .clip_models import ClipBundle, ClipSpec, load_clip
from .coop import train_coop
from .dogs import DogSplits
from .feature_training import FeatureTrainConfig, few_shot_indices, head_accuracy
from .features import FeatureCache, FeatureSet, image_features
from .linear_probe import train_linear_probe
from .templates import DEFAULT_TEMPLATE
from .zero_shot import (build_classifier, search_class_template, select_templates_per_class, template_sweep,
                        text_embeddings, top1_top5, with_rows, zero_shot_logits)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TemplateSets:
    """The prompt templates of one run (``templates.py``; the CLI's ``--max-templates`` shortens each)."""

    sweep: tuple[str, ...]
    ensembles: dict[str, tuple[str, ...]]
    candidates: tuple[str, ...]
    single: str = DEFAULT_TEMPLATE


@dataclass
class HeadConfigs:
    class_embedding: FeatureTrainConfig
    linear_probe: FeatureTrainConfig
    weight_decays: tuple[float, ...]
    coop: FeatureTrainConfig
    coop_n_ctx: int
    shots: tuple[int, ...]
    seed: int = 0


@dataclass
class Encoded:
    """A model and its cached features per split (``pair(name)`` -> (X (N, D), y (N,)))."""

    bundle: ClipBundle
    features: dict[str, FeatureSet]
    classes: tuple[str, ...]  # the names the text encoder sees, in label order
    cache: FeatureCache
    encode_seconds: float
    hits: dict[str, bool] = field(default_factory=dict)

    def pair(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[split].X, self.features[split].y


def encode(spec: ClipSpec, splits: DogSplits, names: Sequence[str], cache: FeatureCache, *,
           checkpoint: str | None = None, device=None, seed: int = 0, batch_size: int = 64,
           num_workers: int = 0, progress: bool | None = None, which: tuple[str, ...] = SPLITS,
           bundle: ClipBundle | None = None, flag: str | None = None) -> Encoded:
    """Load ``spec`` (or reuse ``bundle``) and get the features of ``which`` splits from the cache, encoding
    each split at most once."""
    bundle = bundle or load_clip(spec, checkpoint=checkpoint, device=device, seed=seed, flag=flag)
    tic = time.perf_counter()
    feats = {n: image_features(bundle, getattr(splits, n), cache, batch_size=batch_size,
                               num_workers=num_workers, progress=progress) for n in which}
    return Encoded(bundle, feats, tuple(names), cache, time.perf_counter() - tic,
                   {n: f.hit for n, f in feats.items()})


def _scores(enc: Encoded, classifier: torch.Tensor, splits: Sequence[str] = ("val", "test")) -> dict:
    out = {}
    for s in splits:
        X, y = enc.pair(s)
        acc = top1_top5(zero_shot_logits(X, classifier, enc.bundle.logit_scale), y)
        out.update({f"{s}_top1": acc["top1"], f"{s}_top5": acc["top5"]})
    return out


# ---------------------------------------------------------------------------------------- (a), (b)
@dataclass
class ZeroShotStudy:
    single: dict  # (a): one template on val and test
    sweep: list[dict]  # (b): one row per single template, val and test
    best_on_val: dict  # the single template with the best validation top-1
    ensembles: list[dict]  # prompt ensembles
    best_ensemble: dict  # the ensemble with the best validation top-1 (its classifier is "ensemble")
    classifiers: dict[str, torch.Tensor]  # "single", "ensemble" (K, D), and one per ensemble name
    sweep_seconds: float  # all templates on cached features, text encoding excluded


def zero_shot_study(enc: Encoded, templates: TemplateSets, names: Sequence[str] | None = None) -> ZeroShotStudy:
    """Parts (a) and (b) for one model: the single template, the sweep, and the prompt ensembles."""
    names = tuple(names or enc.classes)
    scale = enc.bundle.logit_scale
    sweep_emb = text_embeddings(enc.bundle, names, templates.sweep, enc.cache)  # (T, K, D)
    tic = time.perf_counter()
    by_split = {s: template_sweep(*enc.pair(s), sweep_emb, templates.sweep, scale, ensemble=False)
                for s in ("val", "test")}
    seconds = time.perf_counter() - tic
    sweep = [{"template": v["template"], "val_top1": v["top1"], "test_top1": t["top1"], "test_top5": t["top5"]}
             for v, t in zip(by_split["val"], by_split["test"])]
    classifiers = {"single": build_classifier(text_embeddings(enc.bundle, names, [templates.single], enc.cache))}
    single = {"template": templates.single, **_scores(enc, classifiers["single"])}
    ensembles = []
    for name, members in templates.ensembles.items():
        W = build_classifier(text_embeddings(enc.bundle, names, members, enc.cache))
        ensembles.append({"ensemble": name, "templates": len(members), **_scores(enc, W)})
        classifiers[name] = W
    best = max(ensembles, key=lambda r: r["val_top1"])  # the ensemble used downstream, chosen on val
    classifiers["ensemble"] = classifiers[best["ensemble"]]
    best_single = max(sweep, key=lambda r: r["val_top1"])
    return ZeroShotStudy(single, sweep, best_single, ensembles, best, classifiers, seconds)


def name_style_study(enc: Encoded, names_by_style: dict[str, Sequence[str]], templates: TemplateSets,
                     folders: Sequence[str]) -> dict:
    """The single template and every ensemble with each class-name style; per-class test recall changes."""
    rows, recalls = [], {}
    X, y = enc.pair("test")
    for style, names in names_by_style.items():
        zs = zero_shot_study(enc, templates, names)
        rows.append({"names": style, "single val_top1": zs.single["val_top1"],
                     "single test_top1": zs.single["test_top1"], "single test_top5": zs.single["test_top5"],
                     "best ensemble": zs.best_ensemble["ensemble"],
                     "ensemble val_top1": zs.best_ensemble["val_top1"],
                     "ensemble test_top1": zs.best_ensemble["test_top1"]})
        pred = zero_shot_logits(X, zs.classifiers["single"], enc.bundle.logit_scale).argmax(1)
        recalls[style] = per_class_report(y, pred, list(names))
    styles = list(names_by_style)
    changes = []
    if len(styles) == 2:
        a, b = styles
        for i, (ra, rb) in enumerate(zip(recalls[a], recalls[b])):
            if ra["support"] and ra["recall"] != rb["recall"]:
                changes.append({"folder": folders[i], a: ra["class"], b: rb["class"],
                                f"recall {a}": ra["recall"], f"recall {b}": rb["recall"],
                                "support": ra["support"]})
        changes.sort(key=lambda r: r[f"recall {b}"] - r[f"recall {a}"])
    return {"rows": rows, "recall_changes": changes}


# ---------------------------------------------------------------------------------------------- (c)
def per_class_study(enc: Encoded, classifier: torch.Tensor, templates: TemplateSets,
                    folders: Sequence[str], num_confused: int = 3) -> dict:
    """Per-class metrics of ``classifier`` on test (every class), the worst-F1 class and the template
    searches for it (chosen on validation) and for every class."""
    scale = enc.bundle.logit_scale
    X, y = enc.pair("test")
    pred = zero_shot_logits(X, classifier, scale).argmax(1)
    report = per_class_report(y, pred, enc.classes)
    cm = confusion(y, pred, len(enc.classes))
    present = [r for r in report if r["support"] > 0]
    worst = min(present, key=lambda r: (r["f1"], r["recall"]))
    worst_idx = report.index(worst)
    for i, row in enumerate(report):
        row["folder"] = folders[i]
        row["worst"] = i == worst_idx
    candidates = text_embeddings(enc.bundle, enc.classes, templates.candidates, enc.cache)  # (C, K, D)
    search = search_class_template(enc.pair("val"), enc.pair("test"), classifier, candidates,
                                   templates.candidates, worst_idx, scale)
    choice = select_templates_per_class(*enc.pair("val"), classifier, candidates, scale)
    chosen = with_rows(classifier, candidates, choice)
    return {"report": report, "confusion": cm, "worst": worst, "worst_index": worst_idx,
            "confused_with": most_confused(cm, worst_idx, enc.classes, num_confused), "search": search,
            "per_class_choice": {enc.classes[k]: templates.candidates[c] for k, c in choice.items()},
            "per_class_selection": _scores(enc, chosen)}


def worst_confusion(pc: dict, classes: Sequence[str], n: int = 6) -> tuple[np.ndarray, list[str]]:
    """Row-normalised confusion (each row: where that class's test images go, summing to 1) of the ``n``
    worst-F1 classes and of the classes their images are most often taken for."""
    cm = pc["confusion"].astype(float)
    rates = cm / cm.sum(1, keepdims=True).clip(min=1)
    present = [i for i, r in enumerate(pc["report"]) if r["support"] > 0]
    worst = sorted(present, key=lambda i: pc["report"][i]["f1"])[:n]
    taken_for = [int(j) for i in worst for j in (-rates[i]).argsort()[:2] if rates[i, j] > 0]
    keep = list(dict.fromkeys(worst + taken_for))
    return rates[keep][:, keep], [classes[i] for i in keep]


# ---------------------------------------------------------------------------------------- (d), (e), CoOp
def _row(method: str, data: str, params: int, head, enc: Encoded, extra: dict | None = None) -> dict:
    train, val, test = (head_accuracy(head, *enc.pair(s)) for s in SPLITS)
    return {"method": method, "train data": data, "trainable params": params, "train_top1": train["top1"],
            "val_top1": val["top1"], "test_top1": test["top1"], "test_top5": test["top5"], **(extra or {})}


def trained_heads_study(enc: Encoded, init: torch.Tensor, cfg: HeadConfigs) -> dict:
    """(d) class embeddings, (e) linear probe and CoOp, each on the full train features."""
    train, val = enc.pair("train"), enc.pair("val")
    K, D = init.shape
    head_d, res_d = train_class_embeddings(train, val, init, enc.bundle.logit_scale, cfg.class_embedding,
                                           enc.bundle.device)
    head_e, res_e, wd_rows = train_linear_probe(train, val, K, cfg.linear_probe, cfg.weight_decays,
                                                enc.bundle.device)
    head_c, res_c = train_coop(enc.bundle, enc.classes, train, val, cfg.coop_n_ctx, config=cfg.coop)
    rows = [_row("(d) class embeddings", "all train", K * D, head_d, enc, {"best epoch": res_d.best_epoch}),
            _row("(e) linear probe", "all train", K * D + K, head_e, enc, {"best epoch": res_e.best_epoch}),
            _row(f"CoOp, {cfg.coop_n_ctx} context tokens", "all train", head_c.ctx.numel(), head_c, enc,
                 {"best epoch": res_c.best_epoch})]
    return {"rows": rows, "results": {"class_embeddings": res_d, "linear_probe": res_e, "coop": res_c},
            "weight_decay_sweep": wd_rows, "heads": {"class_embeddings": head_d, "linear_probe": head_e,
                                                     "coop": head_c}}


def few_shot_study(enc: Encoded, init: torch.Tensor, cfg: HeadConfigs) -> list[dict]:
    """(d) and (e) with ``shots`` training images per class (and at most ``shots`` per class in validation)."""
    rows = []
    K = init.shape[0]
    for shots in cfg.shots:
        tr = few_shot_indices(enc.pair("train")[1], shots, cfg.seed)
        va = few_shot_indices(enc.pair("val")[1], shots, cfg.seed)
        train = tuple(t[tr] for t in enc.pair("train"))
        val = tuple(t[va] for t in enc.pair("val"))
        head_d, _ = train_class_embeddings(train, val, init, enc.bundle.logit_scale, cfg.class_embedding,
                                           enc.bundle.device)
        head_e, _, _ = train_linear_probe(train, val, K, cfg.linear_probe, cfg.weight_decays, enc.bundle.device)
        X, y = enc.pair("test")
        rows.append({"shots": shots, "train images": len(tr),
                     "class embeddings test_top1": head_accuracy(head_d, X, y)["top1"],
                     "linear probe test_top1": head_accuracy(head_e, X, y)["top1"]})
    return rows


def comparison_rows(zs: ZeroShotStudy, pc: dict, heads: dict, zs_large: ZeroShotStudy | None,
                    base_label: str, large_label: str) -> list[dict]:
    """One table with every method: test top-1/top-5, what it trained on, trainable parameters."""
    def zero(method, data, scores):
        return {"method": method, "train data": data, "trainable params": 0, "val_top1": scores["val_top1"],
                "test_top1": scores["test_top1"], "test_top5": scores["test_top5"]}

    rows = [zero(f"(a) zero-shot, one template [{base_label}]", "none", zs.single),
            zero("(b) best single template (chosen on val)", "val (choice)", zs.best_on_val)]
    rows += [zero(f"(b) ensemble: {e['ensemble']} ({e['templates']})", "none", e) for e in zs.ensembles]
    rows.append(zero("(c) per-class templates (chosen on val)", "val (choice)", pc["per_class_selection"]))
    rows += heads["rows"]
    if zs_large is not None:
        rows.append(zero(f"(f) zero-shot, one template [{large_label}]", "none", zs_large.single))
        best = zs_large.best_ensemble
        rows.append(zero(f"(f) ensemble: {best['ensemble']} [{large_label}]", "none", best))
    return rows
