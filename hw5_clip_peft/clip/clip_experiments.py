"""hw5.P3 (a)-(f) on cached features: ``python -m hw5_clip_peft.clip.clip_experiments [--profile full]``.

Each study below is one homework part; the notebook ``clip_zero_shot.ipynb`` calls them one by one and
plots, the CLI runs them all and writes ``results.json`` + ``report.md``. Every choice (template, weight
decay, epoch) is made on the validation split carved from train; test is only ever evaluated.

Profiles: ``quick`` = tiny random-weight ConvNeXt CLIPs on the 120-photo sample (a pipeline check, numbers
near chance by construction); ``full`` = ConvNeXt-Base and ConvNeXt-XXLarge with LAION weights on the
official 12,000 / 8,580 split (needs the weights and the archive, see ``clip_models`` and ``dogs``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from common import confusion, get_profile, markdown_table, most_confused, per_class_report

from .class_embeddings import CLASS_EMBEDDING_DEFAULTS, train_class_embeddings
from .clip_models import CONVNEXT_BASE, CONVNEXT_XXLARGE, TINY, TINY_WIDE, ClipBundle, ClipSpec, load_clip
from .coop import COOP_DEFAULTS, train_coop
from .dogs import DogSplits, load_dogs
from .feature_training import FeatureTrainConfig, few_shot_indices, head_accuracy
from .features import FeatureCache, FeatureSet, image_features
from .linear_probe import LINEAR_PROBE_DEFAULTS, WEIGHT_DECAYS, train_linear_probe
from .templates import (CLASS_TEMPLATE_CANDIDATES, DEFAULT_TEMPLATE, ENSEMBLE_TEMPLATES, SWEEP_TEMPLATES,
                        imagenet_templates)
from .zero_shot import (build_classifier, search_class_template, select_templates_per_class, template_sweep,
                        text_embeddings, topk_accuracy, with_rows, zero_shot_logits)


COMPARISON_COLUMNS = ("method", "train data", "trainable params", "train_top1", "val_top1", "test_top1",
                      "test_top5")


@dataclass(frozen=True)
class ClipExperimentConfig:
    base: ClipSpec = CONVNEXT_BASE
    large: ClipSpec = CONVNEXT_XXLARGE
    base_checkpoint: str | None = None
    large_checkpoint: str | None = None
    data_source: str = "auto"
    data_root: str | None = None
    val_fraction: float = 0.1
    batch_size: int = 64
    num_workers: int = 4
    shots: tuple[int, ...] = (1, 2, 4, 8, 16)
    class_embedding: FeatureTrainConfig = CLASS_EMBEDDING_DEFAULTS
    linear_probe: FeatureTrainConfig = LINEAR_PROBE_DEFAULTS
    weight_decays: tuple[float, ...] = WEIGHT_DECAYS
    coop: FeatureTrainConfig = COOP_DEFAULTS
    coop_n_ctx: int = 4
    seed: int = 0

    @classmethod
    def for_profile(cls, name: str | None = None, **overrides) -> ClipExperimentConfig:
        if get_profile(name).full:
            return cls(**overrides)
        short = {"num_epochs": 40, "patience": 8}  # a pipeline check on 60 images needs few epochs
        quick = {"base": TINY, "large": TINY_WIDE, "batch_size": 32, "num_workers": 0, "shots": (1, 2, 4),
                 "class_embedding": replace(CLASS_EMBEDDING_DEFAULTS, **short),
                 "linear_probe": replace(LINEAR_PROBE_DEFAULTS, lr=1e-2, **short), "weight_decays": (1e-2, 1.0),
                 "coop": replace(COOP_DEFAULTS, num_epochs=30, patience=8)}
        return cls(**{**quick, **overrides})


@dataclass
class Encoded:
    """A model and its cached features per split (``pair(name)`` -> (X (N, D), y (N,)))."""

    bundle: ClipBundle
    features: dict[str, FeatureSet]
    classes: tuple[str, ...]
    cache: FeatureCache
    encode_seconds: float
    hits: dict[str, bool] = field(default_factory=dict)

    def pair(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[split].X, self.features[split].y


def encode(spec: ClipSpec, splits: DogSplits, cfg: ClipExperimentConfig, checkpoint: str | None = None,
           cache: FeatureCache | None = None, names: tuple[str, ...] = ("train", "val", "test")) -> Encoded:
    """Load ``spec`` and get features of ``names`` from the cache (encoding each split at most once)."""
    cache = cache or FeatureCache()
    bundle = load_clip(spec, checkpoint=checkpoint, seed=cfg.seed)
    tic = time.perf_counter()
    feats = {n: image_features(bundle, getattr(splits, n), cache, batch_size=cfg.batch_size,
                               num_workers=cfg.num_workers) for n in names}
    return Encoded(bundle, feats, splits.classes, cache, time.perf_counter() - tic,
                   {n: f.hit for n, f in feats.items()})


# ---------------------------------------------------------------------------------------- (a), (b), (f)
@dataclass
class ZeroShotStudy:
    single: dict  # (a): DEFAULT_TEMPLATE on val and test
    sweep: list[dict]  # (b): one row per single template, val and test
    best_on_val: dict  # the single template with the best validation top-1
    ensembles: list[dict]  # prompt ensembles
    best_ensemble: dict  # the ensemble with the best validation top-1 (its classifier is "ensemble")
    classifiers: dict[str, torch.Tensor]  # "single", "ensemble" (K, D), and one per ensemble name
    sweep_seconds: float  # all templates on cached features, text encoding excluded


def zero_shot_study(enc: Encoded) -> ZeroShotStudy:
    """Parts (a) and (b) for one model: the default template, the sweep, and the prompt ensembles."""
    scale = enc.bundle.logit_scale
    sweep_emb = text_embeddings(enc.bundle, enc.classes, SWEEP_TEMPLATES, enc.cache)  # (T, K, D)
    tic = time.perf_counter()
    by_split = {s: template_sweep(*enc.pair(s), sweep_emb, SWEEP_TEMPLATES, scale, ensemble=False)
                for s in ("val", "test")}
    seconds = time.perf_counter() - tic
    sweep = [{"template": v["template"], "val_top1": v["top1"], "test_top1": t["top1"],
              "test_top5": t["top5"]}
             for v, t in zip(by_split["val"], by_split["test"])]
    single_emb = text_embeddings(enc.bundle, enc.classes, [DEFAULT_TEMPLATE], enc.cache)
    classifiers = {"single": build_classifier(single_emb)}
    single = {"template": DEFAULT_TEMPLATE}
    for s in ("val", "test"):
        acc = topk_accuracy(zero_shot_logits(enc.pair(s)[0], classifiers["single"], scale), enc.pair(s)[1])
        single.update({f"{s}_top1": acc["top1"], f"{s}_top5": acc["top5"]})
    ensembles = []
    for name, templates in (("sweep templates", SWEEP_TEMPLATES), ("dog ensemble", ENSEMBLE_TEMPLATES),
                            ("CLIP ImageNet 80", imagenet_templates())):
        W = build_classifier(text_embeddings(enc.bundle, enc.classes, templates, enc.cache))
        row = {"ensemble": name, "templates": len(templates)}
        for s in ("val", "test"):
            acc = topk_accuracy(zero_shot_logits(enc.pair(s)[0], W, scale), enc.pair(s)[1])
            row.update({f"{s}_top1": acc["top1"], f"{s}_top5": acc["top5"]})
        ensembles.append(row)
        classifiers[name] = W
    best = max(ensembles, key=lambda r: r["val_top1"])  # the ensemble used downstream, chosen on val
    classifiers["ensemble"] = classifiers[best["ensemble"]]
    best_single = max(sweep, key=lambda r: r["val_top1"])
    return ZeroShotStudy(single, sweep, best_single, ensembles, best, classifiers, seconds)


# ---------------------------------------------------------------------------------------------- (c)
def per_class_study(enc: Encoded, classifier: torch.Tensor, num_confused: int = 3) -> dict:
    """Per-class metrics of ``classifier`` on test, the worst-F1 class, and the template searches."""
    scale = enc.bundle.logit_scale
    X, y = enc.pair("test")
    pred = zero_shot_logits(X, classifier, scale).argmax(1)
    report = per_class_report(y, pred, enc.classes)
    cm = confusion(y, pred, len(enc.classes))
    present = [r for r in report if r["support"] > 0]
    worst = min(present, key=lambda r: (r["f1"], r["recall"]))
    worst_idx = enc.classes.index(worst["class"])
    candidates = text_embeddings(enc.bundle, enc.classes, CLASS_TEMPLATE_CANDIDATES, enc.cache)  # (C, K, D)
    search = search_class_template(enc.pair("val"), enc.pair("test"), classifier, candidates,
                                   CLASS_TEMPLATE_CANDIDATES, worst_idx, scale)
    choice = select_templates_per_class(*enc.pair("val"), classifier, candidates, scale)
    chosen = with_rows(classifier, candidates, choice)
    per_class = {}
    for s in ("val", "test"):
        acc = topk_accuracy(zero_shot_logits(enc.pair(s)[0], chosen, scale), enc.pair(s)[1])
        per_class.update({f"{s}_top1": acc["top1"], f"{s}_top5": acc["top5"]})
    return {"report": report, "confusion": cm, "worst": worst, "worst_index": worst_idx,
            "confused_with": most_confused(cm, worst_idx, enc.classes, num_confused), "search": search,
            "per_class_choice": {enc.classes[k]: CLASS_TEMPLATE_CANDIDATES[c] for k, c in choice.items()},
            "per_class_selection": per_class}


def worst_confusion(pc: dict, classes: tuple[str, ...], n: int = 6) -> tuple:
    """Row-normalised confusion of the ``n`` worst-F1 classes and of the classes they are taken for."""
    cm = pc["confusion"].astype(float)
    rates = cm / cm.sum(1, keepdims=True).clip(min=1)
    present = [i for i, r in enumerate(pc["report"]) if r["support"] > 0]
    worst = sorted(present, key=lambda i: pc["report"][i]["f1"])[:n]
    taken_for = [int(j) for i in worst for j in (-rates[i]).argsort()[:2] if rates[i, j] > 0]
    keep = list(dict.fromkeys(worst + taken_for))
    return rates[keep][:, keep], [classes[i] for i in keep]


# ---------------------------------------------------------------------------------------- (d), (e), CoOp
def _row(method: str, data: str, params: int, head, enc: Encoded, extra: dict | None = None) -> dict:
    train, val, test = (head_accuracy(head, *enc.pair(s)) for s in ("train", "val", "test"))
    return {"method": method, "train data": data, "trainable params": params, "train_top1": train["top1"],
            "val_top1": val["top1"], "test_top1": test["top1"], "test_top5": test["top5"], **(extra or {})}


def trained_heads_study(enc: Encoded, init: torch.Tensor, cfg: ClipExperimentConfig) -> dict:
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


def few_shot_study(enc: Encoded, init: torch.Tensor, cfg: ClipExperimentConfig) -> list[dict]:
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
        head_e, _, _ = train_linear_probe(train, val, K, cfg.linear_probe, cfg.weight_decays,
                                          enc.bundle.device)
        X, y = enc.pair("test")
        rows.append({"shots": shots, "train images": len(tr),
                     "class embeddings test_top1": head_accuracy(head_d, X, y)["top1"],
                     "linear probe test_top1": head_accuracy(head_e, X, y)["top1"]})
    return rows


def comparison_rows(zs: ZeroShotStudy, pc: dict, heads: dict, zs_large: ZeroShotStudy | None,
                    base_label: str, large_label: str) -> list[dict]:
    """One table with every method: test top-1/top-5, what it trained on, trainable parameters."""
    rows = [{"method": f"(a) zero-shot, one template [{base_label}]", "train data": "none",
             "trainable params": 0, "val_top1": zs.single["val_top1"], "test_top1": zs.single["test_top1"],
             "test_top5": zs.single["test_top5"]},
            {"method": "(b) best single template (chosen on val)", "train data": "val (choice)",
             "trainable params": 0, "val_top1": zs.best_on_val["val_top1"],
             "test_top1": zs.best_on_val["test_top1"], "test_top5": zs.best_on_val["test_top5"]}]
    rows += [{"method": f"(b) ensemble: {e['ensemble']} ({e['templates']})", "train data": "none",
              "trainable params": 0, "val_top1": e["val_top1"], "test_top1": e["test_top1"],
              "test_top5": e["test_top5"]} for e in zs.ensembles]
    rows.append({"method": "(c) per-class templates (chosen on val)", "train data": "val (choice)",
                 "trainable params": 0, "val_top1": pc["per_class_selection"]["val_top1"],
                 "test_top1": pc["per_class_selection"]["test_top1"],
                 "test_top5": pc["per_class_selection"]["test_top5"]})
    rows += heads["rows"]
    if zs_large is not None:
        rows.append({"method": f"(f) zero-shot, one template [{large_label}]", "train data": "none",
                     "trainable params": 0, "val_top1": zs_large.single["val_top1"],
                     "test_top1": zs_large.single["test_top1"], "test_top5": zs_large.single["test_top5"]})
        best = zs_large.best_ensemble
        rows.append({"method": f"(f) ensemble: {best['ensemble']} [{large_label}]", "train data": "none",
                     "trainable params": 0, "val_top1": best["val_top1"], "test_top1": best["test_top1"],
                     "test_top5": best["test_top5"]})
    return rows


def run(cfg: ClipExperimentConfig, out: Path | None = None) -> dict:
    """Every part; with ``out``, write ``results.json`` and ``report.md`` there."""
    splits = load_dogs(cfg.data_source, cfg.data_root, val_fraction=cfg.val_fraction, seed=cfg.seed)
    base = encode(cfg.base, splits, cfg, cfg.base_checkpoint)
    zs = zero_shot_study(base)
    pc = per_class_study(base, zs.classifiers["single"])
    heads = trained_heads_study(base, zs.classifiers["ensemble"], cfg)
    shots = few_shot_study(base, zs.classifiers["ensemble"], cfg)
    large = encode(cfg.large, splits, cfg, cfg.large_checkpoint, base.cache, names=("val", "test"))
    zs_large = zero_shot_study(large)
    table = comparison_rows(zs, pc, heads, zs_large, cfg.base.label, cfg.large.label)
    results = {"profile": get_profile().name, "data": splits.summary(), "base": base.bundle.weights,
               "large": large.bundle.weights, "comparison": table, "sweep": zs.sweep, "few_shot": shots,
               "sweep_large": zs_large.sweep, "worst_class": pc["worst"],
               "confused_with": pc["confused_with"],
               "worst_class_search": asdict(pc["search"]), "config": repr(cfg)}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
        note = ("" if get_profile().full else
                "Random-weight pipeline check (tiny models): the numbers say the code runs, not how CLIP does.\n\n")
        (out / "report.md").write_text(f"# hw5.P3 ({results['profile']} profile)\n\n{note}{results['data']}\n\n"
                                       + markdown_table(table, COMPARISON_COLUMNS, floatfmt=".4f") + "\n\n"
                                       + markdown_table(shots, floatfmt=".4f") + "\n")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("quick", "full"), default=None)
    parser.add_argument("--base-checkpoint", help="open_clip_pytorch_model.bin of convnext_base")
    parser.add_argument("--large-checkpoint", help="open_clip_pytorch_model.bin of convnext_xxlarge")
    parser.add_argument("--data-source", default="auto",
                        choices=("auto", "official", "hf", "sample", "synthetic"))
    parser.add_argument("--data-root", help="folder with Images/ and lists/ (official archive)")
    parser.add_argument("--out", type=Path, default=Path("build/clip_results"))
    args = parser.parse_args(argv)
    if args.profile:  # the data loader and the config read the profile from the environment
        os.environ["DLHW_PROFILE"] = args.profile
    cfg = ClipExperimentConfig.for_profile(args.profile, base_checkpoint=args.base_checkpoint,
                                           large_checkpoint=args.large_checkpoint,
                                           data_source=args.data_source, data_root=args.data_root)
    results = run(cfg, args.out)
    print(results["data"])
    print(markdown_table(results["comparison"], COMPARISON_COLUMNS, floatfmt=".4f"))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
