"""hw5.P4 from the command line: soft prompt of a Persian GPT-2 on review sentiment, then direct / zero-shot
CoT / few-shot CoT / self-consistency on Persian word problems at three levels.

    python -m hw5_clip_peft.llm.run                          # quick: tiny random-weight twins, CPU, ~1 min
    DLHW_DOWNLOAD=1 python -m hw5_clip_peft.llm.run --profile full --out runs/llm-full   # the homework, GPU
    python -m hw5_clip_peft.llm.run --profile full --sentiment-model ~/models/gpt2-fa \\
        --reasoning-model ~/models/Qwen2.5-1.5B-Instruct --reviews reviews.tsv      # local copies, offline

Writes ``results.json``, ``report.md``, ``soft_prompt.png``, ``reasoning.png`` and the learned soft prompt
(``soft_prompt-<key>.pt``) to ``--out`` (default ``runs/llm-<profile>``). Every flag left out takes the
profile's value (:func:`.experiment.profile_config`). Bad input (a flag, a missing model or dataset offline,
an unwritable ``--out``) is one line on stderr, exit code 2, and nothing written; Ctrl-C is exit code 130,
and rerunning the same command resumes after the last finished stage.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from common import (Parser, UsageError, add_standard_args, check_choice, check_positive, check_writable,
                    exit_process, run_cli, standard_settings, torch_threads, write_json_atomic,
                    write_text_atomic)
from common.errors import DataNotFoundError
from common.plots import save_figure

from .experiment import PARTS, TWIN, profile_config, run_experiment
from .llm_models import REASONING_MODEL, SENTIMENT_MODEL, resolve_model
from .report import plot_reasoning, plot_soft_prompt, render_report
from .reviews import class_counts, read_reviews, resolve_reviews

PROG = "python -m hw5_clip_peft.llm.run"


def build_parser() -> Parser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_standard_args(p)
    p.add_argument("--out", default=None, help="output folder (default runs/llm-<profile>)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--sentiment-model", default=None,
                   help=f"hub id or local folder of the soft-prompt model (quick: a tiny twin; full: "
                        f"{SENTIMENT_MODEL})")
    p.add_argument("--reasoning-model", default=None,
                   help=f"hub id or local folder of the reasoning model (quick: a tiny twin; full: "
                        f"{REASONING_MODEL})")
    p.add_argument("--reviews", default=None,
                   help="TSV (text, label) or hub dataset id (quick: the committed sample; full: "
                        "universitytehran/ParsiNLU_SentenceSentiment)")
    p.add_argument("--per-class", type=int, default=None, help="reviews per class in the balanced subset")
    p.add_argument("--val-fraction", type=float, default=None, help="validation share of each class")
    p.add_argument("--virtual-tokens", type=int, default=None, help="soft prompt length")
    p.add_argument("--epochs", type=int, default=None, help="soft prompt training epochs")
    p.add_argument("--lr", type=float, default=None, help="soft prompt learning rate")
    p.add_argument("--batch-size", type=int, default=None, help="soft prompt batch size")
    p.add_argument("--num-problems", type=int, default=None, help="word problems, spread over the 3 levels")
    p.add_argument("--k", type=int, default=None, help="self-consistency chains per problem")
    p.add_argument("--max-new-tokens", type=int, default=None, help="tokens generated per chain")
    p.add_argument("--seed", type=int, default=0)
    return p


def _validate(args, settings):
    """Every check before any work; returns ``(config, reviews, out_dir)``. Writes nothing."""
    parts = tuple(x.strip() for x in args.parts.split(",") if x.strip())
    if not parts:
        raise UsageError(f"--parts is empty; use a comma list of {', '.join(PARTS)}.")
    for part in parts:
        check_choice("--parts", part, PARTS)
    counts = ("per_class", "virtual_tokens", "epochs", "batch_size", "num_problems", "k", "max_new_tokens")
    for flag in counts:
        value = getattr(args, flag)
        if value is not None:
            check_positive("--" + flag.replace("_", "-"), value)
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be positive, got {args.lr}.")
    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1, got {args.val_fraction}.")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}.")
    full = settings.profile.full
    base = profile_config(full, seed=args.seed, parts=parts)
    sp, rc = base.soft_prompt, base.reasoning
    sp = replace(sp, **{k: v for k, v in dict(num_virtual_tokens=args.virtual_tokens, num_epochs=args.epochs,
                                               lr=args.lr, batch_size=args.batch_size, seed=args.seed).items()
                        if v is not None})
    rc = replace(rc, **{k: v for k, v in dict(num_problems=args.num_problems, k=args.k,
                                               max_new_tokens=args.max_new_tokens, seed=args.seed).items()
                        if v is not None})
    models = {}
    for part, flag, value, hub_id, current in (
            ("sentiment", "--sentiment-model", args.sentiment_model, SENTIMENT_MODEL, base.sentiment_model),
            ("reasoning", "--reasoning-model", args.reasoning_model, REASONING_MODEL, base.reasoning_model)):
        if part in parts and (value is not None or current != TWIN):
            current = resolve_model(value, hub_id, flag=flag, what=f"{part} model")
        models[part] = current
    reviews, source = None, ""
    if "sentiment" in parts:
        source = resolve_reviews(args.reviews, full, settings.data_root)
        reviews = read_reviews(source)
        counts = class_counts(reviews)
        if min(counts.values()) < 2:
            raise DataNotFoundError(f"--reviews {source} has {counts}; the split needs at least 2 reviews of "
                                    f"each class.")
    config = replace(base, sentiment_model=models["sentiment"], reasoning_model=models["reasoning"],
                     reviews=source, soft_prompt=sp, reasoning=rc,
                     per_class=args.per_class if args.per_class is not None else base.per_class,
                     val_fraction=args.val_fraction if args.val_fraction is not None else base.val_fraction)
    out_dir = Path(args.out or f"runs/llm-{settings.profile.name}")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a folder.")
    check_writable(out_dir)
    return config, reviews, out_dir


def write_outputs(results: dict, out_dir: Path) -> None:
    """``results.json``, ``report.md`` and the two figures, each written atomically."""
    
    import matplotlib.pyplot as plt  # headless, matplotlib picks Agg by itself; a notebook keeps its backend

    write_json_atomic(out_dir / "results.json", results)
    write_text_atomic(out_dir / "report.md", render_report(results))
    for name, plot, part in (("soft_prompt.png", plot_soft_prompt, "sentiment"),
                             ("reasoning.png", plot_reasoning, "reasoning")):
        if part in results:
            fig = plot(results[part])
            save_figure(fig, out_dir / name, dpi=110)
            plt.close(fig)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    settings = standard_settings(args)
    config, reviews, out_dir = _validate(args, settings)
    print(f"{PROG}: profile {settings.profile.name}, device {settings.device}, writing to {out_dir}",
          flush=True)
    with torch_threads(settings.threads):
        results = run_experiment(config, reviews, out_dir, settings.device, settings.progress,
                                 log=lambda line: print(line, flush=True))
    results["config"].update(profile=settings.profile.name,
                             argv=list(argv if argv is not None else sys.argv[1:]))
    write_outputs(results, out_dir)
    print(f"wrote {out_dir / 'results.json'} and {out_dir / 'report.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())

