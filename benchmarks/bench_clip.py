"""CLIP feature pipeline: batched vs per-image encoding, and a template sweep on cached features.

    python benchmarks/bench_clip.py [--arch dlhw-tiny-convnext] [--repeats 3] [--threads N]

(1) Encoding throughput (images/s) of the image encoder over the Stanford Dogs sample ($DLHW_DATA, 120 real
    photos; a generated folder without it): ``hw5_clip_peft.clip.features.encode_images`` (DataLoader, batches of
    ``--batch-size``, ``no_grad``) vs a naive loop that decodes, preprocesses and encodes one image at a time
    (also under ``no_grad``, so only batching differs). Random weights: throughput does not depend on them.
(2) Zero-shot sweep of 10 templates on 8,580 cached test features (the size of the official test split),
    120 classes, embedding width 512 (ConvNeXt-Base) and 1024 (XXLarge): the features and text embeddings are
    random unit vectors, since only the time is measured. Goal: < 2 s on CPU.
(3) Reading the 8,580 x 1,024 feature tensor back from the on-disk cache.
Medians of ``--repeats`` runs.
"""
from __future__ import annotations

import argparse
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
from hw5_clip_peft.clip.clip_models import ClipSpec, load_clip 
from hw5_clip_peft.clip.dogs import ImageSplit, load_dogs 
from hw5_clip_peft.clip.features import FeatureCache, encode_images 
from hw5_clip_peft.clip.zero_shot import template_sweep 


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="dlhw-tiny-convnext",
                        help="open_clip architecture (built with random weights)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs visible")

    # (1) encoding throughput
    splits = load_dogs("auto")
    parts = (splits.train, splits.val, splits.test)  # all of the sample; each image is decoded every time
    images = ImageSplit("all", sum((p.ids for p in parts), ()), torch.cat([p.y for p in parts]),
                        splits.classes, splits.source, splits.train.opener)
    bundle = load_clip(ClipSpec(args.arch, None, args.arch), seed=0)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
