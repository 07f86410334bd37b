"""hw5.P3 (a)-(f) end to end: ``python -m hw5_clip_peft.clip.clip_experiments [--profile full]``.

Writes ``results.json`` (every number, the complete per-class table, the analysis), ``per_class.csv`` and
``report.md`` to ``--out``. The notebook ``clip_zero_shot.ipynb`` calls the same studies (:mod:`.studies`)
one by one and plots them. Examples::

    python -m hw5_clip_peft.clip.clip_experiments                      # quick: tiny random CLIPs, the sample
    python -m hw5_clip_peft.clip.clip_experiments --profile full \\
        --base-checkpoint base/open_clip_pytorch_model.bin --large-checkpoint xxl/open_clip_model.safetensors

Profiles: ``quick`` = tiny random-weight ConvNeXt CLIPs on the 120-photo sample (a pipeline check);
``full`` = ConvNeXt-Base and ConvNeXt-XXLarge with LAION weights on the official 12,000 / 8,580 split.
``--data-root`` is the ``$DLHW_DATA`` folder; ``--dogs-dir`` picks the Stanford Dogs copy itself (default
``<data-root>/stanford_dogs`` in full, ``<data-root>/stanford_dogs_sample`` in quick). Bad input (flag, value,
profile, device, missing data or weights, unwritable ``--out``) is one line on stderr and exit code 2 before
anything is written; Ctrl-C is exit code 130, and rerunning resumes from the feature cache.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from common import Profile, cache_dir, get_profile, markdown_table, torch_threads
from common.cli import (Parser, add_standard_args, check_positive, check_writable, exit_process, run_cli, standard_settings)
from common.errors import UsageError
from common.io import write_json_atomic, write_text_atomic

from .analysis import findings
from .breed_names import NAME_STYLES
from .class_embeddings import CLASS_EMBEDDING_DEFAULTS
from .clip_models import CONVNEXT_BASE, CONVNEXT_XXLARGE, PRETRAINED, TINY, TINY_WIDE, ClipSpec, resolve_weights
from .coop import COOP_DEFAULTS
from .dogs import SOURCES, DogSplits, find_dogs, load_dogs
from .feature_training import FeatureTrainConfig
from .features import FeatureCache
from .linear_probe import LINEAR_PROBE_DEFAULTS, WEIGHT_DECAYS
from .studies import (Encoded, HeadConfigs, TemplateSets, ZeroShotStudy, comparison_rows, encode,
                      few_shot_study, name_style_study, per_class_study, trained_heads_study, zero_shot_study)
from .templates import CLASS_TEMPLATE_CANDIDATES, ENSEMBLE_TEMPLATES, SWEEP_TEMPLATES, imagenet_templates

PROG = "python -m hw5_clip_peft.clip.clip_experiments"
COMPARISON_COLUMNS = ("method", "train data", "trainable params", "train_top1", "val_top1", "test_top1",
                      "test_top5")
PER_CLASS_COLUMNS = ("class", "folder", "precision", "recall", "accuracy", "f1", "support", "worst")
LARGE_MODELS = (*PRETRAINED, "none")


@dataclass(frozen=True)
class ClipExperimentConfig:
    """Defaults of a run (the full profile); :meth:`for_profile` gives the quick one."""

    base: ClipSpec = CONVNEXT_BASE
    large: ClipSpec | None = CONVNEXT_XXLARGE  # None: skip part (f)
    base_checkpoint: str | None = None
    large_checkpoint: str | None = None
    names: str = "curated"  # class names every method uses; part (a)/(b) also compare the other style
    val_fraction: float = 0.1
    batch_size: int = 64
    num_workers: int = 4
    shots: tuple[int, ...] = (1, 2, 4, 8, 16)
    class_embedding: FeatureTrainConfig = CLASS_EMBEDDING_DEFAULTS
    linear_probe: FeatureTrainConfig = LINEAR_PROBE_DEFAULTS
    weight_decays: tuple[float, ...] = WEIGHT_DECAYS
    coop: FeatureTrainConfig = COOP_DEFAULTS
    coop_n_ctx: int = 4
    limit_per_class: int | None = None  # at most this many images per class and split (a smaller run)
    max_templates: int | None = None  # at most this many templates per list (a smaller run)
    seed: int = 0

    @classmethod
    def for_profile(cls, profile: Profile | str | None = None, max_epochs: int | None = None,
                    **overrides) -> ClipExperimentConfig:
        profile = profile if isinstance(profile, Profile) else get_profile(profile)
        if profile.full:
            cfg = cls(**overrides)
        else:
            short = {"num_epochs": 40, "patience": 8}  # a pipeline check on 60 images needs few epochs
            quick = {"base": TINY, "large": TINY_WIDE, "batch_size": 32, "num_workers": 0, "shots": (1, 2, 4),
                     "class_embedding": replace(CLASS_EMBEDDING_DEFAULTS, **short),
                     "linear_probe": replace(LINEAR_PROBE_DEFAULTS, lr=1e-2, **short),
                     "weight_decays": (1e-2, 1.0), "coop": replace(COOP_DEFAULTS, num_epochs=30, patience=8)}
            cfg = cls(**{**quick, **overrides})
        if max_epochs is not None:
            cfg = replace(cfg, **{name: replace(getattr(cfg, name),
                                                num_epochs=min(max_epochs, getattr(cfg, name).num_epochs))
                                  for name in ("class_embedding", "linear_probe", "coop")})
        return cfg

    def templates(self) -> TemplateSets:
        n = self.max_templates
        return TemplateSets(SWEEP_TEMPLATES[:n], {"sweep templates": SWEEP_TEMPLATES[:n],
                                                   "dog ensemble": ENSEMBLE_TEMPLATES[:n],
                                                   "CLIP ImageNet 80": imagenet_templates()[:n]},
                            CLASS_TEMPLATE_CANDIDATES[:n])

    def heads(self) -> HeadConfigs:
        return HeadConfigs(self.class_embedding, self.linear_probe, self.weight_decays, self.coop,
                           self.coop_n_ctx, self.shots, self.seed)


@dataclass
class Studies:
    """Everything one run computed (in memory; :func:`results_dict` is its JSON form)."""

    profile: Profile
    cfg: ClipExperimentConfig
    splits: DogSplits
    base: Encoded
    zs: ZeroShotStudy
    names: dict
    pc: dict
    heads: dict
    shots: list[dict]
    large: Encoded | None
    zs_large: ZeroShotStudy | None
    seconds: float = 0.0


def run_studies(cfg: ClipExperimentConfig, splits: DogSplits, profile: Profile, *, cache: FeatureCache,
                device=None, progress: bool | None = None) -> Studies:
    """Every part in order, on ``splits`` (already subset by ``cfg.limit_per_class``)."""
    tic = time.perf_counter()
    templates = cfg.templates()
    names = splits.names(cfg.names)
    shared = {"device": device, "seed": cfg.seed, "batch_size": cfg.batch_size, "num_workers": cfg.num_workers,
              "progress": progress}
    base = encode(cfg.base, splits, names, cache, checkpoint=cfg.base_checkpoint, flag="--base-checkpoint",
                  **shared)
    zs = zero_shot_study(base, templates)
    styles = {style: splits.names(style) for style in (cfg.names, *[s for s in NAME_STYLES if s != cfg.names])}
    name_study = name_style_study(base, styles, templates, splits.classes)
    pc = per_class_study(base, zs.classifiers["single"], templates, splits.classes)
    heads = trained_heads_study(base, zs.classifiers["ensemble"], cfg.heads())
    shots = few_shot_study(base, zs.classifiers["ensemble"], cfg.heads())
    large = zs_large = None
    if cfg.large is not None:
        same = cfg.large == cfg.base and cfg.large_checkpoint == cfg.base_checkpoint
        large = encode(cfg.large, splits, names, cache, checkpoint=cfg.large_checkpoint, which=("val", "test"),
                       bundle=base.bundle if same else None, flag="--large-checkpoint", **shared)
        zs_large = zero_shot_study(large, templates)
    return Studies(profile, cfg, splits, base, zs, name_study, pc, heads, shots, large, zs_large,
                   time.perf_counter() - tic)


def _model(enc: Encoded | None) -> dict | None:
    if enc is None:
        return None
    b = enc.bundle
    return {"label": b.spec.label, "arch": b.spec.arch, "weights": b.weights, "logit_scale": b.logit_scale,
            "embed_dim": b.embed_dim, "encode_seconds": enc.encode_seconds, "cache_hits": enc.hits}


def _zero_shot(zs: ZeroShotStudy) -> dict:
    return {"single": zs.single, "best_single": zs.best_on_val, "sweep": zs.sweep, "ensembles": zs.ensembles,
            "best_ensemble": zs.best_ensemble, "sweep_seconds": zs.sweep_seconds}


def results_dict(s: Studies) -> dict:
    """The JSON form of a run; :func:`.analysis.findings` reads it."""
    k = len(s.splits.classes)
    training = {}
    for name, res in s.heads["results"].items():
        training[name] = {"init_val_acc": res.init_val_acc, "best_val_acc": res.best_val_acc,
                          "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
                          "first_train_loss": res.history[0]["train_loss"] if res.history else float("nan"),
                          "last_train_loss": res.history[-1]["train_loss"] if res.history else float("nan")}
    search = asdict(s.pc["search"])
    results = {
        "profile": s.profile.name, "pipeline_check": s.profile.quick, "data": s.splits.summary(),
        "num_classes": k, "classes_with_images": s.splits.present(), "chance": 1 / k,
        "test_images": len(s.splits.test), "class_names": s.cfg.names,
        "base": _model(s.base), "large": _model(s.large),
        "zero_shot": _zero_shot(s.zs), "name_styles": s.names["rows"],
        "name_recall_changes": s.names["recall_changes"],
        "per_class": [{c: row[c] for c in PER_CLASS_COLUMNS} for row in s.pc["report"]],
        "worst_class": {c: s.pc["worst"][c] for c in PER_CLASS_COLUMNS},
        "confused_with": [list(x) for x in s.pc["confused_with"]], "worst_class_search": search,
        "per_class_choice": s.pc["per_class_choice"], "per_class_selection": s.pc["per_class_selection"],
        "heads": s.heads["rows"], "weight_decay_sweep": s.heads["weight_decay_sweep"],
        "head_training": training, "few_shot": s.shots,
        "large_zero_shot": _zero_shot(s.zs_large) if s.zs_large is not None else None,
        "comparison": comparison_rows(s.zs, s.pc, s.heads, s.zs_large, s.cfg.base.label,
                                      s.cfg.large.label if s.cfg.large else ""),
        "seconds": s.seconds, "config": _jsonable(asdict(s.cfg)),
    }
    results["analysis"] = findings(results)
    return results


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj if isinstance(obj, (int, float, str, bool, type(None))) else str(obj)


def per_class_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, PER_CLASS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_outputs(results: dict, out: Path) -> list[Path]:
    """``results.json``, ``per_class.csv`` and ``report.md`` in ``out`` (each written atomically)."""
    note = ("" if not results["pipeline_check"] else
            "Random-weight pipeline check (tiny models): the numbers say the code runs, not how CLIP does.\n\n")
    report = (f"# hw5.P3 ({results['profile']} profile)\n\n{note}{results['data']}\n\n"
              + markdown_table(results["comparison"], COMPARISON_COLUMNS) + "\n\n## Class names\n\n"
              + markdown_table(results["name_styles"]) + "\n\n## Few-shot\n\n"
              + markdown_table(results["few_shot"]) + "\n\n## Per class (part a, test)\n\n"
              + markdown_table(results["per_class"], PER_CLASS_COLUMNS) + "\n\n## Analysis\n\n"
              + results["analysis"] + "\n")
    return [write_json_atomic(out / "results.json", _jsonable(results)),
            write_text_atomic(out / "per_class.csv", per_class_csv(results["per_class"])),
            write_text_atomic(out / "report.md", report)]


# ---------------------------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None):
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    add_standard_args(parser)
    parser.add_argument("--dogs-dir", type=Path, default=None,
                        help="the Stanford Dogs copy: the archive folder (Images/, lists/) or an image folder "
                             "(default <data-root>/stanford_dogs in full, <data-root>/stanford_dogs_sample in quick)")
    parser.add_argument("--data-source", choices=SOURCES, default="auto",
                        help="auto: from --dogs-dir's layout or the profile's default; hf: the Hugging Face copy")
    parser.add_argument("--names", choices=NAME_STYLES, default="curated",
                        help="class names for the text side: curated ImageNet names or raw folder names")
    parser.add_argument("--base-checkpoint", help="convnext_base weights file (full profile)")
    parser.add_argument("--large-checkpoint", help="weights file of --large-model (full profile)")
    parser.add_argument("--large-model", choices=LARGE_MODELS, default="convnext_xxlarge",
                        help="part (f)'s model in the full profile (none: skip part f)")
    parser.add_argument("--limit-per-class", type=int, default=None,
                        help="at most this many images per class in each split (a smaller run)")
    parser.add_argument("--max-templates", type=int, default=None, help="at most this many templates per list")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap on every head's training epochs")
    parser.add_argument("--batch-size", type=int, default=None, help="images per encoder batch")
    parser.add_argument("--num-workers", type=int, default=None, help="image-decoding worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="feature cache (default $DLHW_CACHE/clip_features or ~/.cache/dlhw/clip_features)")
    parser.add_argument("--out", type=Path, default=Path("build/clip_results"), help="output folder")
    return parser.parse_args(argv)


def _main(argv: list[str] | None) -> int:
    args = parse_args(argv)
    settings = standard_settings(args)
    profile = settings.profile
    for flag in ("limit_per_class", "max_templates", "max_epochs", "batch_size"):
        if getattr(args, flag) is not None:
            check_positive("--" + flag.replace("_", "-"), getattr(args, flag))
    if args.num_workers is not None:
        check_positive("--num-workers", args.num_workers, minimum=0)
    if profile.quick and (args.base_checkpoint or args.large_checkpoint or args.large_model != "convnext_xxlarge"):
        raise UsageError("--base-checkpoint, --large-checkpoint and --large-model choose the pretrained models "
                         "of the full profile; add --profile full (quick runs tiny random-weight models).")
    check_writable(args.out)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder for results.json, per_class.csv, report.md.")
    overrides = {"names": args.names, "seed": args.seed, "limit_per_class": args.limit_per_class,
                 "max_templates": args.max_templates}
    overrides.update({k: getattr(args, k) for k in ("batch_size", "num_workers") if getattr(args, k) is not None})
    if profile.full:
        overrides.update(base_checkpoint=args.base_checkpoint, large_checkpoint=args.large_checkpoint,
                         large=None if args.large_model == "none" else PRETRAINED[args.large_model])
    cfg = ClipExperimentConfig.for_profile(profile, max_epochs=args.max_epochs, **overrides)
    source, folder = find_dogs(profile, settings.data_root, args.dogs_dir, args.data_source)
    if source != "hf":  # reads the file lists only; the Hugging Face copy is fetched when the work starts
        splits = load_dogs(source, folder, val_fraction=cfg.val_fraction, seed=cfg.seed)
    for spec, checkpoint, flag in ((cfg.base, cfg.base_checkpoint, "--base-checkpoint"),
                                   (cfg.large, cfg.large_checkpoint, "--large-checkpoint")):
        if spec is not None and spec.pretrained is not None:
            resolve_weights(spec, checkpoint, flag)  # ModelNotFoundError names the flag; reads nothing
    if args.cache_dir is not None:
        check_writable(args.cache_dir, "--cache-dir")
    # validation done: from here on files are written
    cache = FeatureCache(args.cache_dir or cache_dir("clip_features"))
    if source == "hf":
        splits = load_dogs(source, folder, val_fraction=cfg.val_fraction, seed=cfg.seed)
    splits = splits.per_class(cfg.limit_per_class, cfg.seed)
    with torch_threads(settings.threads):
        studies = run_studies(cfg, splits, profile, cache=cache, device=settings.device,
                              progress=settings.progress)
    results = results_dict(studies)
    written = write_outputs(results, args.out)
    print(results["data"])
    print(markdown_table(results["comparison"], COMPARISON_COLUMNS))
    print("\n" + results["analysis"])
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
