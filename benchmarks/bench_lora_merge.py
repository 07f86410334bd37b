"""LoRA at ViT-Base size: do merged weights give the same logits; what latency does an unmerged adapter add?

    python benchmarks/bench_lora_merge.py [--rank 16] [--image-size 224] [--batch-sizes 1 8] [--repeats 5]
                                          [--clock wall|cpu] [--threads N] [--device cpu|cuda]

Builds ``ViTForImageClassification(ViTConfig(num_labels=101))`` (ViT-Base/16 shapes, random weights: latency
and rounding do not depend on the values), adds LoRA to query/value with *random* B
(``init_lora_weights=False``, so the adapter really changes the output) and merges a copy with
``merge_and_unload``. Prints

- the max |logit| gap merged vs unmerged in float32 (and unmerged vs base, to show the adapter matters);
- a latency table (median ms per batch over interleaved rounds): base, LoRA unmerged, LoRA merged.
  On a CPU shared with other jobs use ``--clock cpu --threads 1`` (this process's CPU seconds: the work done).

The measured side of theory question hw7.T2c. Runs on the GPU when there is one.
"""
from __future__ import annotations

import copy
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (Parser, check_positive, get_device, markdown_table, exit_process, run_cli,  # noqa: E402
                    torch_threads)
from hw5_clip_peft.vit_lora.lora import LoraSettings, add_lora  # noqa: E402
from hw5_clip_peft.vit_lora.lora_merge import latency_table, max_logit_gap, merge_check, merged_copy  # noqa: E402


PROG = "python benchmarks/bench_lora_merge.py"


def _main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)
    for flag in ("rank", "image_size", "repeats", "rounds", *(("threads",) if args.threads is not None else ())):
        check_positive(f"--{flag.replace('_', '-')}", getattr(args, flag))
    for b in args.batch_sizes:
        check_positive("--batch-sizes", b)
    device = get_device(args.device)
    with torch_threads(args.threads):
        return _bench(args, device)


def _bench(args, device) -> int:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    base = ViTForImageClassification(ViTConfig(num_labels=101, image_size=args.image_size)).to(device).eval()
    lora_model, _ = add_lora(copy.deepcopy(base), LoraSettings(r=args.rank), init_lora_weights=False)
    merged = merged_copy(lora_model)
    x = torch.randn(max(args.batch_sizes), 3, args.image_size, args.image_size,
                    generator=torch.Generator().manual_seed(1))
    check = merge_check(lora_model, merged, x)
    print(f"max |logit gap| merged vs unmerged (float32, batch {len(x)}): {check['max_abs_gap']:.2e}; "
          f"max |logit| {check['max_abs_logit']:.2f}; tolerance {check['tolerance']:.1e}")
    print(f"max |logit gap| unmerged vs base: {max_logit_gap(lora_model, base, x):.3f}")
    rows = []
    for b in args.batch_sizes:
        rows += latency_table({"base": base, "LoRA unmerged": lora_model, "LoRA merged": merged}, x[:b],
                              repeats=args.repeats, rounds=args.rounds, clock=args.clock)
    print(f"\n{device.type}, torch {torch.__version__}, {os.cpu_count()} CPUs ({torch.get_num_threads()} "
          f"torch threads), {platform.machine()}; ViT-Base/16 at {args.image_size}px, LoRA r={args.rank} on "
          f"query/value; "
          f"{args.clock} clock, median of {args.rounds} rounds x {args.repeats} repeats")
    print(markdown_table(rows, floatfmt=".3f"))
    if not check["passed"]:
        print(f"merge check FAILED: merged logits differ by {check['max_abs_gap']:.2e} > "
              f"{check['tolerance']:.1e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
