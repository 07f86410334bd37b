"""Compute cost: FLOPs measured with ``torch.utils.flop_counter.FlopCounterMode``, closed forms, throughput.

FLOP convention (FlopCounterMode's): one multiply-add = 2 FLOPs, and only convolutions and matrix products
are counted (BN, activations, pooling and additions are not). For a stride-1 'same' k x k convolution on
H x W with C_in -> C_out channels and no bias (hw2cnn.Q6.1.3):

    standard:              2 H W C_in C_out k^2
    depthwise separable:   2 H W C_in k^2  +  2 H W C_in C_out
    ratio:                 1 / C_out + 1 / k^2        (parameters: the same ratio)
"""
from __future__ import annotations

import time
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from common import count_parameters  # re-exported: the notebooks and tests import it from here


@torch.no_grad()
def measure_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass on one sample of ``input_shape`` (C, H, W), model in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, *input_shape, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())


def standard_conv(c_in: int, c_out: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False)


def separable_conv(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    """Bare depthwise + pointwise convolutions (no BN/activation), the pair Q6.1.3 compares."""
    depthwise = nn.Conv2d(c_in, c_in, kernel_size, padding=kernel_size // 2, groups=c_in, bias=False)
    return nn.Sequential(depthwise, nn.Conv2d(c_in, c_out, 1, bias=False))


def standard_conv_flops(h: int, w: int, c_in: int, c_out: int, kernel_size: int) -> int:
    return 2 * h * w * c_in * c_out * kernel_size ** 2


def separable_conv_flops(h: int, w: int, c_in: int, c_out: int, kernel_size: int) -> int:
    return 2 * h * w * c_in * kernel_size ** 2 + 2 * h * w * c_in * c_out


def separable_ratio(c_out: int, kernel_size: int) -> float:
    """Q6.1.3: separable / standard cost = 1/C_out + 1/k^2 (independent of H, W and C_in)."""
    return 1.0 / c_out + 1.0 / kernel_size ** 2


def ratio_sweep(shapes: Sequence[tuple[int, int, int, int]]) -> list[dict]:
    """Per (size, C_in, C_out, k): measured FLOPs/params of both convs, measured and closed-form ratios."""
    rows = []
    for size, c_in, c_out, k in shapes:
        std, sep = standard_conv(c_in, c_out, k), separable_conv(c_in, c_out, k)
        f_std, f_sep = measure_flops(std, (c_in, size, size)), measure_flops(sep, (c_in, size, size))
        p_std, p_sep = count_parameters(std), count_parameters(sep)
        rows.append({"H=W": size, "C_in": c_in, "C_out": c_out, "k": k, "flops_standard": f_std,
                     "flops_separable": f_sep, "flops_ratio": f_sep / f_std, "params_ratio": p_sep / p_std,
                     "formula": separable_ratio(c_out, k),
                     "formula_flops_standard": standard_conv_flops(size, size, c_in, c_out, k)})
    return rows


@torch.no_grad()
def throughput(model: nn.Module, input_shape: Sequence[int], batch_size: int = 64,
               device: torch.device | str | None = None, min_seconds: float = 1.0, warmup: int = 2) -> float:
    """Inference images per second (eval mode, random input) over at least ``min_seconds``."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval().to(device)
    x = torch.randn(batch_size, *input_shape, device=device)
    for _ in range(warmup):
        model(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    count, tic = 0, time.perf_counter()
    while True:
        model(x)
        count += batch_size
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - tic
        if elapsed >= min_seconds:
            break
    model.train(was_training)
    return count / elapsed


def cost_report(model: nn.Module, input_shape: Sequence[int], name: str = "", batch_size: int = 64,
                devices: Sequence[str] | None = None, min_seconds: float = 1.0) -> dict:
    """Parameters, FLOPs per image and images/s on each device (cpu, and cuda when present)."""
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    row = {"model": name or type(model).__name__, "params": count_parameters(model),
           "flops": measure_flops(model.cpu(), input_shape)}
    for device in devices:
        row[f"images_per_s_{device}"] = throughput(model, input_shape, batch_size, device, min_seconds)
    model.cpu()
    return row
