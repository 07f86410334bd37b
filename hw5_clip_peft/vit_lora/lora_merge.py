"""Deploying a LoRA model: merge the adapters into the weights, check the logits, time the three variants.

``merge_and_unload`` replaces every LoRA-wrapped linear ``y = W x + (alpha/r) B A x`` by a plain linear
with ``W' = W + (alpha/r) B A`` (and the ``modules_to_save`` head by its trained copy), so the merged network
has the base architecture exactly: no extra latency. Unmerged, each wrapped layer does two more small matmuls
and a Python-level dispatch per call. This is the measured side of theory question hw7.T2c::

    merged = merged_copy(lora_model)                        # lora_model itself is left unmerged
    check = merge_check(lora_model, merged, pixel_values)   # {"max_abs_gap", "tolerance", "passed", ...}
    rows = latency_table({"base": base, "LoRA unmerged": lora_model, "LoRA merged": merged}, pixel_values)

Latency is wall time by default (``clock="wall"``; CUDA is synchronised around each pass). On a CPU shared
with other jobs, ``clock="cpu"`` times this process's CPU seconds instead (on one thread, ``threads=1``, that
is the work done, nearly immune to time-slicing by other processes).
"""
from __future__ import annotations

import copy
import statistics
import time

import torch

from common import torch_threads

# Tolerance of the merge check, relative to the logits' scale: |gap| <= MERGE_RTOL * max(1, max |logit|).
# W x + s B (A x) and (W + s B A) x differ only by float32 re-association: measured 2.4e-6 on ViT-Base/16
# shapes (12 layers, 768 wide, random B, logits of size ~1; benchmarks/bench_lora_merge.py). A wrong merge
# gives gaps of the adapter's own size (~1 there), five orders above.
MERGE_RTOL = 1e-5


def merged_copy(peft_model) -> torch.nn.Module:
    """A deep copy of ``peft_model`` with its adapters merged and the PEFT wrappers removed.

    ``merge_and_unload`` rewrites the model it is called on, so it runs on a copy to keep both for comparison.
    """
    return copy.deepcopy(peft_model).merge_and_unload()


@torch.no_grad()
def logits_of(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Eval-mode logits (N, K) for ``pixel_values`` (N, 3, H, W), on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    return model(pixel_values=pixel_values.to(device)).logits.float().cpu()


def max_logit_gap(model_a: torch.nn.Module, model_b: torch.nn.Module, pixel_values: torch.Tensor) -> float:
    """``max |logits_a - logits_b|`` over a batch: 0 up to float rounding when ``b`` is ``a`` merged."""
    return float((logits_of(model_a, pixel_values) - logits_of(model_b, pixel_values)).abs().max())


def merge_check(unmerged: torch.nn.Module, merged: torch.nn.Module, pixel_values: torch.Tensor) -> dict:
    """Compare two models' logits on one batch; tolerance ``MERGE_RTOL * max(1, max |logit|)``."""
    a, b = logits_of(unmerged, pixel_values), logits_of(merged, pixel_values)
    gap, scale = float((a - b).abs().max()), float(a.abs().max())
    tolerance = MERGE_RTOL * max(1.0, scale)
    return {"max_abs_gap": gap, "max_abs_logit": scale, "tolerance": tolerance, "passed": gap <= tolerance}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def latency_ms(model: torch.nn.Module, pixel_values: torch.Tensor, *, repeats: int = 10, warmup: int = 2,
               clock: str = "wall") -> float:
    """Median milliseconds (``clock``: ``"wall"`` or this process's ``"cpu"`` time) of an eval forward."""
    timer = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    model.eval()
    device = next(model.parameters()).device
    x = pixel_values.to(device)
    for _ in range(warmup):
        model(pixel_values=x)
    times = []
    for _ in range(repeats):
        _sync(device)
        tic = timer()
        model(pixel_values=x)
        _sync(device)
        times.append(1000 * (timer() - tic))
    return statistics.median(times)


def latency_table(models: dict[str, torch.nn.Module], pixel_values: torch.Tensor, *, repeats: int = 10,
                  warmup: int = 2, rounds: int = 3, clock: str = "wall",
                  threads: int | None = None) -> list[dict]:
    """One row per model: median ms per batch and the ratio to the first model (the reference).

    The models are timed in interleaved ``rounds`` (a, b, c, a, b, c, ...) so that drift in a shared machine's
    load hits all of them alike; each row's figure is the median over rounds of per-round medians.
    ``threads`` sets ``torch.set_num_threads`` for the measurement only (1 with ``clock="cpu"``: CPU time then
    counts work, not idle spinning of intra-op threads).
    """
    per_model = {name: [] for name in models}
    with torch_threads(threads):
        for _ in range(rounds):
            for name, model in models.items():
                per_model[name].append(latency_ms(model, pixel_values, repeats=repeats, warmup=warmup,
                                                  clock=clock))
    reference = statistics.median(next(iter(per_model.values())))
    rows = []
    for name, values in per_model.items():
        ms = statistics.median(values)
        rows.append({"model": name, "batch": int(pixel_values.shape[0]), f"{clock}_ms": ms,
                     "spread_ms": max(values) - min(values), "vs_" + next(iter(models)): ms / reference})
    return rows
