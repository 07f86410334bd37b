"""The backprop baseline of the Forward-Forward comparison, with its weight decay chosen on validation.

Each candidate decay trains the baseline (same architecture as the FF net, softmax head, Adam) on the training
images less a stratified validation tenth and is scored on that tenth; the decay with the lowest validation
error (ties: the smaller decay) then trains on all 60k training images and is scored once on the official test
set. Every training is checkpointed per epoch (``--checkpoint-dir``, one file per setting), and the JSON is
rewritten after every epoch with ``"partial": true``, so the same command resumes an interrupted sweep::

    DLHW_DATA=../shared/data nice -n 19 python -m hw2_mlp.ff_baseline --profile full --hidden 1000,1000,1000 \\
        --baseline-epochs 20 --lr 1e-3 --baseline-schedule cosine --decays 0,1e-4,3e-4,1e-3 --threads 2 \\
        --no-progress --checkpoint-dir /work/runs/ff --out hw2_mlp/results/ff_backprop_3x1000_tuned.json

The JSON keeps the ``"backprop"`` section of ``python -m hw2_mlp.ff_run --only backprop`` (the chosen decay's
final run), so the notebook and the README table read it like the other baselines, plus ``"selection"``: every
candidate's validation curve and error, the rule, and the choice. The flags are ``hw2_mlp.ff_run``'s (those
the baseline uses) plus ``--decays``; bad input is one line on stderr and exit code 2 before anything is
written; Ctrl-C is one line and exit code 130.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

from common import cache_dir, machine, torch_threads
from common.cli import check_out_file, check_writable, command_line, exit_process, run_cli, standard_settings
from common.errors import UsageError
from common.io import write_json_atomic

from .ff_run import PAPER, build_parser, config_from_args, follow_epochs, load_mnist, run_backprop

PROG = "python -m hw2_mlp.ff_baseline"
RULE = "lowest validation error (ties: the smaller decay), then trained on all training images and tested once"


def parse_decays(text: str) -> tuple[float, ...]:
    """``"0,1e-4,3e-4"`` -> distinct non-negative decays in the order given (raises :class:`UsageError`)."""
    try:
        decays = tuple(float(d) for d in text.split(","))
    except ValueError:
        raise UsageError(f"--decays must be comma-separated numbers like 0,1e-4,3e-4, got {text!r}.") from None
    if any(not d >= 0 for d in decays):  # NaN fails too
        raise UsageError(f"--decays must all be >= 0, got {text!r}.")
    if len(set(decays)) != len(decays):
        raise UsageError(f"--decays lists a value twice: {text!r}.")
    return decays


def choose(candidates: list[dict]) -> float:
    """The decay of the candidate with the lowest validation error; ties go to the smaller decay."""
    best = min(candidates, key=lambda c: (c["val_error"], c["baseline_weight_decay"]))
    return best["baseline_weight_decay"]


def run(config, decays: tuple[float, ...], profile: str, *, checkpoint_dir: Path | None, device,
        data_root: Path | None = None, out: Path | None = None, command: str = "") -> dict:
    """The sweep on ``config`` (its ``merge_val`` ignored: candidates hold validation out, the final run
    does not) and the chosen decay's final run; returns the JSON-ready results (also written to ``out``)."""
    tic = time.perf_counter()
    sweep = replace(config, merge_val=False)
    train, val, test = load_mnist(sweep, data_root)
    if not len(val):
        raise UsageError("the validation split is empty; use more training images (--limit-train).")
    result = {"command": command, "profile": profile, "experiments": ["backprop"], "config": asdict(config),
              "data": {"dataset": "MNIST (official files, $DLHW_DATA/MNIST/raw)", "sweep_train_images": len(train),
                       "val_images": len(val), "train_images": len(train) + len(val),
                       "test_images": len(test),
                       "val": "stratified 10 % of the official training set, seed 0: scores the candidates, "
                              "then merged into train for the final run"},
              "hardware": machine(device), "paper": PAPER, "partial": True,
              "selection": {"parameter": "baseline_weight_decay", "grid": list(decays), "rule": RULE,
                            "candidates": [], "chosen": None}}
    candidates = result["selection"]["candidates"]

    def save():
        result["wall_seconds"] = time.perf_counter() - tic
        if out is not None:
            write_json_atomic(out, result)

    for decay in decays:
        row = {"baseline_weight_decay": decay}
        candidates.append(row)
        history, scores = run_backprop(train, val, replace(sweep, baseline_weight_decay=decay), device, val=val,
                                       checkpoint_dir=checkpoint_dir,
                                       on_epoch=follow_epochs(row, config.baseline_epochs, save))
        # the candidate's test score is never computed: run_backprop's "test" here is the validation split
        row.update({"partial": False, "epochs_done": len(history), "history": history,
                    "val_error": scores["val_error"], "val_loss": scores["val_loss"],
                    "train_error": scores["train_error"], "wall_seconds": scores["wall_seconds"]})
        save()
    chosen = choose(candidates)
    result["selection"]["chosen"] = chosen
    final = replace(config, merge_val=True, baseline_weight_decay=chosen)
    result["config"] = asdict(final)
    full_train, _, test = load_mnist(final, data_root)
    result["data"]["train_images"] = len(full_train)
    result["backprop"] = {}
    history, scores = run_backprop(full_train, test, final, device, checkpoint_dir=checkpoint_dir,
                                   on_epoch=follow_epochs(result["backprop"], final.baseline_epochs, save))
    result["backprop"] = {**scores, "partial": False, "history": history}
    result["partial"] = False
    save()
    return result


def build_sweep_parser():
    parser = build_parser()
    parser.prog, parser.description = PROG, __doc__.splitlines()[0]
    parser.add_argument("--decays", default="0,1e-4,3e-4,1e-3",
                        help="comma-separated weight decays to choose from on validation (default 0,1e-4,3e-4,1e-3)")
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_sweep_parser().parse_args(argv)
    settings = standard_settings(args)
    if args.only != "all" or args.merge_val is not None or args.baseline_weight_decay is not None:
        raise UsageError("--only, --merge-val and --baseline-weight-decay are set by the sweep; drop them "
                         "(--decays gives the decays to try).")
    profile, config = config_from_args(args)
    if not config.baseline_epochs:
        raise UsageError("--baseline-epochs must be at least 1 for a baseline sweep.")
    decays = parse_decays(args.decays)
    checkpoint_dir = args.checkpoint_dir or cache_dir("ff_checkpoints", create=False)
    check_writable(checkpoint_dir, "--checkpoint-dir")
    if args.out is not None:
        check_out_file(args.out, "baseline.json")
    command = command_line(PROG, argv)
    with torch_threads(settings.threads):
        results = run(config, decays, profile, checkpoint_dir=checkpoint_dir, device=settings.device,
                      data_root=settings.data_root, out=args.out, command=command)
    if args.out:
        print(f"wrote {args.out}")
    rows = {c["baseline_weight_decay"]: round(c["val_error"], 4) for c in results["selection"]["candidates"]}
    print({"val_error": rows, "chosen": results["selection"]["chosen"],
           "test_error": results["backprop"]["test_error"], "wall_seconds": round(results["wall_seconds"], 1)})
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
