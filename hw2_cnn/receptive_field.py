"""Receptive field of a conv stack: the closed form of hw2cnn.Q2.1 and a measurement by autograd (hw2cnn.P1).

Closed form for layers (k_l, d_l, s_l), l = 1..L, no padding (each layer widens the field by its dilated
kernel span minus one, counted in input pixels, i.e. times the product of the strides below it):

    R_L = 1 + sum_l (k_l - 1) * d_l * prod_{i<l} s_i          (jump J_L = prod_l s_l)

Measurement: build the stack as single-channel convolutions with strictly positive weights (so no sum can
cancel), take one output pixel in the middle of the map, back-propagate it to the input and count the rows
and columns where the gradient is nonzero. The same gradient map, read as a distribution of influence, is
the *effective* receptive field of Luo et al. (2016, "Understanding the Effective Receptive Field in Deep
Convolutional Neural Networks"): its mass concentrates near the centre and its width grows like sqrt(L)
while R_L grows like L (:func:`effective_fraction`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn


@dataclass(frozen=True)
class ConvLayerSpec:
    """One square convolution layer of the Q2 setting (no padding)."""

    kernel_size: int
    dilation: int = 1
    stride: int = 1

    def __post_init__(self):
        if self.kernel_size < 1 or self.dilation < 1 or self.stride < 1:
            raise ValueError(f"kernel_size, dilation and stride must be >= 1, got {self}")


def receptive_field(layers: Sequence[ConvLayerSpec]) -> int:
    """R_L = 1 + sum_l (k_l - 1) d_l prod_{i<l} s_i (side length in input pixels; 1 for an empty stack)."""
    size, jump = 1, 1
    for layer in layers:
        size += (layer.kernel_size - 1) * layer.dilation * jump
        jump *= layer.stride
    return size


def jump(layers: Sequence[ConvLayerSpec]) -> int:
    """Distance in input pixels between neighbouring outputs of the last layer: prod_l s_l."""
    return math.prod(layer.stride for layer in layers)


def relative_receptive_field(layers: Sequence[ConvLayerSpec], input_size: tuple[int, int]) -> float:
    """Q2's R_relative: the field's area over the input's area, R_L^2 / (M N), capped at 1 per axis."""
    size = receptive_field(layers)
    M, N = input_size
    return min(size, M) * min(size, N) / (M * N)


def min_input_size(layers: Sequence[ConvLayerSpec]) -> int:
    """Smallest input side for which an unpadded stack still produces an output (= R_L)."""
    return receptive_field(layers)


def build_stack(layers: Sequence[ConvLayerSpec], seed: int = 0,
                dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """Single-channel, bias-free, unpadded Conv2d layers with weights drawn from U[0.5, 1.5]."""
    generator = torch.Generator().manual_seed(seed)
    convs = []
    for layer in layers:
        conv = nn.Conv2d(1, 1, layer.kernel_size, stride=layer.stride, dilation=layer.dilation, bias=False)
        shape = conv.weight.shape
        conv.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)  # > 0: no cancellation
        convs.append(conv)
    return nn.Sequential(*convs).to(dtype)


def input_gradient_map(layers: Sequence[ConvLayerSpec], input_size: int | None = None,
                       seed: int = 0) -> torch.Tensor:
    """|d output[centre] / d input| as an (input_size, input_size) map.

    ``input_size`` defaults to R_L + 4 J_L, enough for a few outputs per axis so "centre" is interior.
    """
    if not layers:
        raise ValueError("the stack needs at least one layer")
    size = input_size or receptive_field(layers) + 4 * jump(layers)
    if size < receptive_field(layers):
        raise ValueError(f"input_size {size} is smaller than the receptive field {receptive_field(layers)}; "
                         f"the unpadded stack would produce no output")
    net = build_stack(layers, seed)
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = net(x)  # (1, 1, H_out, W_out)
    centre = (out.shape[2] // 2, out.shape[3] // 2)
    out[0, 0, centre[0], centre[1]].backward()
    return x.grad[0, 0].abs()


def measured_receptive_field(layers: Sequence[ConvLayerSpec],
                             input_size: int | None = None) -> tuple[int, int]:
    """(rows, cols) spanned by the nonzero support of d output[centre] / d input.

    The span, not the count: a dilated layer leaves holes in the support (the "gridding" pattern), but the
    outermost nonzero pixels are R_L - 1 apart.
    """
    grad = input_gradient_map(layers, input_size)
    rows = torch.nonzero(grad.sum(1)).flatten()
    cols = torch.nonzero(grad.sum(0)).flatten()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def random_stack(num_layers: int, generator: torch.Generator, max_kernel: int = 5, max_dilation: int = 3,
                 max_stride: int = 2) -> list[ConvLayerSpec]:
    """A random stack of ``num_layers`` (k, d, s) triples, k in [1, max_kernel], d in [1, max_dilation]."""

    def draw(high: int) -> int:
        return int(torch.randint(1, high + 1, (1,), generator=generator))

    return [ConvLayerSpec(draw(max_kernel), draw(max_dilation), draw(max_stride)) for _ in range(num_layers)]


def effective_fraction(grad_map: torch.Tensor, layers: Sequence[ConvLayerSpec], mass: float = 0.9) -> float:
    """Side of the smallest centred square holding ``mass`` of |gradient|, over the theoretical R_L."""
    total = float(grad_map.sum())
    if total == 0:
        raise ValueError("the gradient map is all zeros; nothing to measure")
    size = grad_map.shape[0]
    rows, cols = torch.nonzero(grad_map, as_tuple=True)
    cy, cx = float((rows.min() + rows.max()) / 2), float((cols.min() + cols.max()) / 2)
    for half in range(0, size):
        y0, y1 = max(0, math.floor(cy - half)), min(size, math.ceil(cy + half) + 1)
        x0, x1 = max(0, math.floor(cx - half)), min(size, math.ceil(cx + half) + 1)
        if float(grad_map[y0:y1, x0:x1].sum()) >= mass * total:
            return (y1 - y0) / receptive_field(layers)
    return 1.0
