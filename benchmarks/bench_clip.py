"""CLIP feature pipeline: batched vs per-image encoding, and a template sweep on cached features.

    DLHW_DATA=../shared/data python benchmarks/bench_clip.py [--arch dlhw-tiny-convnext] [--repeats 3] [--threads N]

(1) Encoding throughput (images/s) of the image encoder over the Stanford Dogs sample
    (``$DLHW_DATA/stanford_dogs_sample`` or ``--dogs-dir``, 120 real photos; without it the benchmark stops
    with one line, exit code 2): ``hw5_clip_peft.clip.features.encode_images`` (DataLoader, batches of
    ``--batch-size``, ``no_grad``) vs a naive loop that decodes, preprocesses and encodes one image at a time
    (also under ``no_grad``, so only batching differs). Random weights: throughput does not depend on them.
(2) Zero-shot sweep of 10 templates on 8,580 cached test features (the size of the official test split),
    120 classes, embedding width 512 (ConvNeXt-Base) and 1024 (XXLarge): the features and text embeddings are
    random unit vectors, since only the time is measured. Goal: < 2 s on CPU.
(3) Reading the 8,580 x 1,024 feature tensor back from the on-disk cache.
(4) Text encoding of 1,440 prompts (120 breeds x 12 templates): the cut-padding path of
    ``features.encode_tokens`` (sorted by length, each batch cut after its longest prompt) vs open_clip's
    ``encode_text`` over all 77 positions.
Medians of ``--repeats`` runs.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import get_profile, torch_threads  # noqa: E402
from common.cli import Parser, add_standard_args, check_positive, exit_process, run_cli, standard_settings  # noqa: E402
from hw5_clip_peft.clip.breed_names import breed_names  # noqa: E402
from hw5_clip_peft.clip.clip_models import ClipSpec, load_clip  # noqa: E402
from hw5_clip_peft.clip.dog_breeds import STANFORD_DOGS_FOLDERS  # noqa: E402
from hw5_clip_peft.clip.dogs import ImageSplit, find_dogs, load_dogs  # noqa: E402
from hw5_clip_peft.clip.features import FeatureCache, encode_images, encode_tokens  # noqa: E402
from hw5_clip_peft.clip.templates import SWEEP_TEMPLATES, fill  # noqa: E402
from hw5_clip_peft.clip.zero_shot import template_sweep  # noqa: E402

PROG = "python benchmarks/bench_clip.py"


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


@torch.no_grad()
def per_image_loop(bundle, split) -> torch.Tensor:
    return torch.cat([bundle.model.encode_image(bundle.preprocess(split.image(i))[None].to(bundle.device))
                      for i in range(len(split))])


def _main(argv=None) -> int:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    add_standard_args(parser, profile=False, progress=False)
    parser.add_argument("--arch", default="dlhw-tiny-convnext",
                        help="open_clip architecture (built with random weights)")
    parser.add_argument("--dogs-dir", default=None, help="image folder (default $DLHW_DATA/stanford_dogs_sample)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    settings = standard_settings(args)
    check_positive("--batch-size", args.batch_size)
    check_positive("--repeats", args.repeats)
    splits = load_dogs(*find_dogs(get_profile("quick"), settings.data_root, args.dogs_dir, "folder"))
    with torch_threads(settings.threads):
        return _bench(args, splits, settings.device)


def _bench(args, splits, device) -> int:
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs visible")

    # (1) encoding throughput
    parts = (splits.train, splits.val, splits.test)  # all of the sample; each image is decoded every time
    images = ImageSplit("all", sum((p.ids for p in parts), ()), torch.cat([p.y for p in parts]),
                        splits.classes, splits.source, splits.train.opener)
    bundle = load_clip(ClipSpec(args.arch, None, args.arch), seed=0, device=device)
    encode_images(bundle, images.take(range(4)), batch_size=4)  # warm-up (allocator, kernels)
    batched = median_time(lambda: encode_images(bundle, images, batch_size=args.batch_size), args.repeats)
    naive = median_time(lambda: per_image_loop(bundle, images), args.repeats)
    same = torch.allclose(encode_images(bundle, images, batch_size=args.batch_size),
                          per_image_loop(bundle, images), atol=1e-4)
    n = len(images)
    print(f"\n(1) image encoder {args.arch} on {bundle.device}, {n} images from {splits.source}")
    print("| pipeline | seconds | images/s |\n|---|---|---|")
    print(f"| batched (batch {args.batch_size}) | {batched:.3f} | {n / batched:.1f} |")
    print(f"| per-image loop | {naive:.3f} | {n / naive:.1f} |")
    print(f"speed-up {naive / batched:.2f}x; same features: {same}")

    # (2) template sweep on cached features
    print("\n(2) 10-template sweep, 8,580 cached features, 120 classes (random unit vectors, timing only)")
    print("| width | seconds (median) | per template |\n|---|---|---|")
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 120, (8580,), generator=g)
    templates = [f"template {i}: {{}}" for i in range(10)]
    for width in (512, 1024):
        X = F.normalize(torch.randn(8580, width, generator=g), dim=-1)
        text = F.normalize(torch.randn(10, 120, width, generator=g), dim=-1)
        template_sweep(X, y, text, templates)  # warm-up
        seconds = median_time(lambda X=X, text=text: template_sweep(X, y, text, templates), args.repeats)
        print(f"| {width} | {seconds:.3f} | {seconds / 10 * 1000:.1f} ms |")

    # (3) cache read
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        cache.save("k", {"X": torch.randn(8580, 1024), "y": y, "ids": [str(i) for i in range(8580)]})
        seconds = median_time(lambda: cache.load("k"), args.repeats)
        size = cache.path("k").stat().st_size / 2**20
    print(f"\n(3) cache hit: read 8,580 x 1,024 features ({size:.1f} MiB) in {seconds * 1000:.1f} ms")

    # (4) text encoding: cut padding vs all 77 positions
    prompts = [p for t in SWEEP_TEMPLATES for p in fill(t, breed_names(STANFORD_DOGS_FOLDERS))]
    tokens = bundle.tokenizer(prompts)
    order = torch.argsort(tokens.argmax(-1))

    @torch.no_grad()
    def cut():
        return torch.cat([encode_tokens(bundle.model, tokens[order[i:i + 256]].to(bundle.device)).cpu()
                          for i in range(0, len(prompts), 256)])

    @torch.no_grad()
    def full():
        return torch.cat([bundle.model.encode_text(tokens[order[i:i + 256]].to(bundle.device)).cpu()
                          for i in range(0, len(prompts), 256)])

    t_cut, t_full = median_time(cut, args.repeats), median_time(full, args.repeats)
    same = torch.allclose(cut(), full(), atol=1e-4)
    print(f"\n(4) {len(prompts)} prompts, text tower of {args.arch}: cut padding {t_cut:.3f} s, all 77 positions "
          f"{t_full:.3f} s ({t_full / t_cut:.2f}x); same embeddings: {same}")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
