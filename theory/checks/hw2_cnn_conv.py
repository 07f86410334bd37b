"""Executable checks for ``theory/hw2_cnn.md`` questions Q2-Q5 (dilated receptive fields, ROI Align, 1-D
convolution gradients as matrices, skip connections).

What comes from the ``hw2_cnn`` package and what is computed here. The receptive field (closed form and its
autograd measurement), the output sizes, the convolution matrices, the FLOP counter and the bilinear sampler
are imported, so the answers check the code the practical part ships. Computed here *on purpose*, because
their independence is the check:

* the Minkowski-sum offsets of a receptive field (integer arithmetic), compared with the package's gradient
  measurement, and the hole-free criterion of Q2.2, compared with the same measurement;
* torchvision's ``roi_align`` and ``grid_sample`` as references for the package's bilinear sampler (Q3);
* ``torch.nn.functional`` convolutions and autograd as references for the package's matrices (Q4) and for the
  Jacobian formulas and singular-value bounds of Q5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from hw2_cnn.conv_mechanics import conv_output_size, conv_matrix, conv_transpose_matrix
from hw2_cnn.flops import measure_flops
from hw2_cnn.receptive_field import ConvLayerSpec, input_gradient_map, receptive_field
from hw2_cnn.roi_align import bilinear_sample, feature_coordinates
from theory.checks.hw2_common import DTYPE, gen as _gen, one_thread


# ---------------------------------------------------------------------------------------- Q2 receptive field
def stack(kernels: Sequence[int], dilations: Sequence[int], strides: Sequence[int]) -> list[ConvLayerSpec]:
    """The package's layer specs for per-layer (k_l, d_l, s_l)."""
    return [ConvLayerSpec(k, d, s) for k, d, s in zip(kernels, dilations, strides, strict=True)]


def tap_steps(layers: Sequence[ConvLayerSpec]) -> list[int]:
    """g_l = d_l * J_{l-1}: the distance, in input pixels, between neighbouring taps of layer l."""
    steps, jump = [], 1
    for layer in layers:
        steps.append(layer.dilation * jump)
        jump *= layer.stride
    return steps


def minkowski_offsets(layers: Sequence[ConvLayerSpec]) -> list[int]:
    """Input offsets (one axis) seen by one output unit, by integer arithmetic only:
    {0} + g_1 {0..k_1-1} + ... + g_L {0..k_L-1}, a Minkowski sum: the order of the layers does not enter."""
    offsets = {0}
    for layer, step in zip(layers, tap_steps(layers)):
        offsets = {o + step * t for o in offsets for t in range(layer.kernel_size)}
    return sorted(offsets)


@one_thread
def measured_offsets(layers: Sequence[ConvLayerSpec], input_size: int | None = None) -> list[int]:
    """Rows where the package's measured |d output[centre] / d input| is nonzero, shifted to start at 0.

    For square kernels the support is the product (rows) x (columns); that is asserted, so one axis suffices.
    """
    grad = input_gradient_map(layers, input_size) != 0
    rows, cols = torch.nonzero(grad.any(1)).flatten(), torch.nonzero(grad.any(0)).flatten()
    if int(grad.sum()) != len(rows) * len(cols) or not torch.equal(rows - rows.min(), cols - cols.min()):
        raise AssertionError("the measured support of a square-kernel stack is not a square product set")
    return (rows - rows.min()).tolist()


def has_holes(offsets: Sequence[int]) -> bool:
    return len(offsets) != offsets[-1] + 1


def hole_free(layers: Sequence[ConvLayerSpec]) -> bool:
    """Q2.2's criterion. Sort the layers with k > 1 by tap step g; the field has no holes iff every
    g_(i) <= 1 + sum_{j<i} (k_(j) - 1) g_(j) (the span already covered by the smaller steps)."""
    covered = 1
    for step, k in sorted((g, layer.kernel_size) for layer, g in zip(layers, tap_steps(layers))
                          if layer.kernel_size > 1):
        if step > covered:
            return False
        covered += (k - 1) * step
    return True


def hole_free_in_layer_order(layers: Sequence[ConvLayerSpec]) -> bool:
    """The condition an earlier version of the answer used: d_l J_{l-1} <= r_{l-1} in the layers' own order.
    Sufficient, but not necessary: it rejects hole-free stacks whose large dilations come first."""
    covered, jump = 1, 1
    for layer in layers:
        if layer.kernel_size > 1 and layer.dilation * jump > covered:
            return False
        covered += (layer.kernel_size - 1) * layer.dilation * jump
        jump *= layer.stride
    return True


def stack_macs(layers: Sequence[ConvLayerSpec], size: int, channels: int = 1) -> int:
    """Multiply-adds of the unpadded stack on a size x size input with C_in = C_out = channels:
    sum_l k_l^2 C^2 H_l^2, H_l from the package's ``conv_output_size`` (ValueError if a layer has no
    output)."""
    total, h = 0, size
    for layer in layers:
        h = conv_output_size(h, layer.kernel_size, layer.stride, 0, layer.dilation)
        total += layer.kernel_size ** 2 * channels ** 2 * h * h
    return total


@one_thread
def macs_match_counter(layers: Sequence[ConvLayerSpec], size: int, channels: int = 3) -> bool:
    """2 * stack_macs == the package's ``measure_flops`` (FlopCounterMode) on a real nn.Conv2d stack."""
    model = nn.Sequential(*[nn.Conv2d(channels, channels, layer.kernel_size, layer.stride,
                                      dilation=layer.dilation, bias=False) for layer in layers])
    return measure_flops(model, (channels, size, size)) == 2 * stack_macs(layers, size, channels)


def enumerate_designs(num_layers: int, size: int, kernel: int = 3, dilations: Sequence[int] = range(1, 10),
                      strides: Sequence[int] = (1, 2, 3, 4)) -> list[list[ConvLayerSpec]]:
    """Every L-layer stack of k x k convs with d_l in ``dilations`` and s_l in ``strides`` that still produces
    an output on a size x size input without padding (equivalently R_L <= size)."""
    dilations = sorted(dilations)
    designs: list[list[ConvLayerSpec]] = []

    def extend(prefix: list[ConvLayerSpec], field: int, jump: int) -> None:
        if len(prefix) == num_layers:
            designs.append(prefix)
            return
        for d in dilations:
            grown = field + (kernel - 1) * d * jump
            if grown > size:              # dilations ascend: every later d is too large as well
                break
            for s in strides:
                extend(prefix + [ConvLayerSpec(kernel, d, s)], grown, jump * s)

    extend([], 1, 1)
    return designs


@dataclass(frozen=True)
class SearchResult:
    """Cheapest design found by :func:`cheapest_design` (``macs`` is None when no design qualifies)."""

    macs: int | None
    dilations: tuple[int, ...] | None
    strides: tuple[int, ...] | None
    field: int | None           # measured R_L of the optimum
    designs: int                # designs enumerated (all that have an output)
    measured: int               # designs whose field was measured: every one at most as cheap as the optimum
    disagreements: int          # measured designs where hole_free() or the closed-form R_L was contradicted


def cheapest_design(num_layers: int, size: int, threshold: float, kernel: int = 3,
                    dilations: Sequence[int] = range(1, 10),
                    strides: Sequence[int] = (1, 2, 3, 4)) -> SearchResult:
    """Exhaustive search for Q2.2: the cheapest design whose *measured* field has no holes and R_relative > T.

    All designs are ranked by MACs (ties: smaller dilations, then smaller strides, first); the package's
    gradient measurement on the actual size x size input is then run on them in that order until the first
    design qualifies, so every design that is cheaper than the optimum has been measured and rejected. On
    every measured design the closed-form R_L and :func:`hole_free` are compared with the measurement.
    """
    designs = enumerate_designs(num_layers, size, kernel, dilations, strides)
    ranked = sorted(designs, key=lambda ls: (stack_macs(ls, size), [x.dilation for x in ls],
                                             [x.stride for x in ls]))
    disagreements = 0
    for measured, layers in enumerate(ranked, start=1):
        offsets = measured_offsets(layers, size)
        field, holes = offsets[-1] + 1, has_holes(offsets)
        disagreements += (field != receptive_field(layers)) + (holes == hole_free(layers))
        if not holes and (min(field, size) / size) ** 2 > threshold:
            return SearchResult(stack_macs(layers, size), tuple(x.dilation for x in layers),
                                tuple(x.stride for x in layers), field, len(designs), measured, disagreements)
    return SearchResult(None, None, None, None, len(designs), len(ranked), disagreements)


# ------------------------------------------------------------------------------------------ Q3 ROI Align
def bilinear_weights(u: float, v: float) -> tuple[int, int, list[float]]:
    """(row i, column j, weights of F[i,j], F[i,j+1], F[i+1,j], F[i+1,j+1]) at column u, row v (pixel
    centres at integers): the Q3.1 formula."""
    j, i = math.floor(u), math.floor(v)
    a, b = u - j, v - i
    return i, j, [(1 - a) * (1 - b), a * (1 - b), (1 - a) * b, a * b]


def formula_value(fmap: torch.Tensor, u: float, v: float) -> float:
    """The Q3.1 formula evaluated on fmap (H, W)."""
    i, j, w = bilinear_weights(u, v)
    return float(w[0] * fmap[i, j] + w[1] * fmap[i, j + 1]
                 + w[2] * fmap[i + 1, j] + w[3] * fmap[i + 1, j + 1])


def package_value(fmap: torch.Tensor, x: float, y: float, image_size: int = 32,
                  aligned: bool = True) -> float:
    """The package's answer for image point (x, y): ``feature_coordinates`` then ``bilinear_sample``."""
    u, v = feature_coordinates((x, y), image_size, fmap.shape[-1], aligned)
    v_t, u_t = torch.tensor(v, dtype=fmap.dtype), torch.tensor(u, dtype=fmap.dtype)
    return float(bilinear_sample(fmap[None], v_t, u_t))


@one_thread
def roi_align_point(fmap: torch.Tensor, x: float, y: float, image_size: int = 32) -> float:
    """torchvision's ROI Align (aligned=True) value at the image point (x, y): an independent reference."""
    from torchvision.ops import roi_align

    scale = fmap.shape[-1] / image_size
    box = torch.tensor([[0, x, y, x, y]], dtype=fmap.dtype)   # zero-size box: one bilinear sample
    return roi_align(fmap[None, None], box, output_size=1, spatial_scale=scale,
                     sampling_ratio=1, aligned=True).item()


def align_corners_point(fmap: torch.Tensor, x: float, y: float, image_size: int = 32) -> float:
    """``grid_sample(align_corners=True)`` at image pixel (x, y): the corner pixels' centres of image and map
    coincide, u = x (W_map - 1) / (W_img - 1). Reference for the align-corners reading."""
    grid = torch.tensor([[[[2 * x / (image_size - 1) - 1, 2 * y / (image_size - 1) - 1]]]], dtype=fmap.dtype)
    return F.grid_sample(fmap[None, None], grid, mode="bilinear", align_corners=True).item()


# ------------------------------------------------------------------------------------ Q4 1-D conv gradient
def conv_matrix_1d(w: torch.Tensor, n_in: int, padding: int = 0) -> torch.Tensor:
    """The package's ``conv_matrix`` for one channel: M @ x == conv1d(x, w, padding)."""
    return conv_matrix(w.reshape(1, 1, -1), n_in, padding=padding)


def conv_transpose_matrix_1d(w: torch.Tensor, n_in: int, padding: int = 0) -> torch.Tensor:
    """The package's ``conv_transpose_matrix`` for one channel: T @ x == conv_transpose1d(x, w, padding)."""
    return conv_transpose_matrix(w.reshape(1, 1, -1), n_in, padding=padding)


def zero_pad_matrix(n_in: int, pad: int, dtype=DTYPE) -> torch.Tensor:
    """P with P @ x == F.pad(x, (pad, pad)): the identity with ``pad`` zero rows above and below."""
    return torch.eye(n_in + 2 * pad, dtype=dtype)[:, pad:pad + n_in]


# ------------------------------------------------------------------------------------- Q5 skip connections
def two_layer_jacobians(width: int = 6, seed: int = 0, act=torch.tanh, dact=None):
    """a1 = g(W1 a0 + b1), a2 = g(W2 a1 + b2) [no skip] or g(W2 a1 + b2 + a0) [skip].

    Returns (formula_no_skip, autograd_no_skip, formula_skip, autograd_skip) as (width, width) tensors.
    """
    dact = dact or (lambda z: 1 - torch.tanh(z) ** 2)
    g = _gen(seed)
    w1, w2 = (torch.randn(width, width, generator=g, dtype=DTYPE) / math.sqrt(width) for _ in range(2))
    b1, b2 = (torch.randn(width, generator=g, dtype=DTYPE) for _ in range(2))
    a0 = torch.randn(width, generator=g, dtype=DTYPE)
    z1 = w1 @ a0 + b1
    z2 = w2 @ act(z1) + b2
    no_skip = torch.diag(dact(z2)) @ w2 @ torch.diag(dact(z1)) @ w1
    skip = torch.diag(dact(z2 + a0)) @ (w2 @ torch.diag(dact(z1)) @ w1 + torch.eye(width, dtype=DTYPE))
    jac = torch.autograd.functional.jacobian
    auto_no = jac(lambda a: act(w2 @ act(w1 @ a + b1) + b2), a0)
    auto_sk = jac(lambda a: act(w2 @ act(w1 @ a + b1) + b2 + a), a0)
    return no_skip, auto_no, skip, auto_sk


ACTIVATIONS = {"tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
               "relu": (torch.relu, lambda z: (z > 0).to(z.dtype))}


@one_thread
def skip_block_singular_values(form: str, activation: str, weight_norm: float = 0.9, width: int = 8,
                               draws: int = 100, seed: int = 0) -> dict[str, torch.Tensor]:
    """Smallest singular value of the block Jacobian d a^{l+2} / d a^l (autograd), over random draws.

    ``form="question"``: a^{l+2} = g(W2 g(W1 a + b1) + b2 + a) (Q5.2, the skip enters before the outer g);
    ``form="identity"``: a^{l+2} = a + W2 g(W1 a + b1) + b2 (the pre-activation / identity form).
    Weights are random with spectral norm exactly ``weight_norm`` (= 1 - eps); the inputs and biases are drawn
    at scales from 0.1 to 10 so that the outer activation is sometimes saturated (tanh) or off (ReLU).
    Returns ``smin`` (draws,), ``gamma`` = min_i |g'(z^{l+2}_i + a_i)| (draws,; ones for the identity form),
    and, for a random upstream gradient delta per draw, ``passed`` = ||J^T delta|| and ``active`` =
    ||D delta|| with D = diag g'(z^{l+2} + a) (= ||delta|| for the identity form).
    """
    act, dact = ACTIVATIONS[activation]
    g = _gen(seed)

    def rand_w():
        w = torch.randn(width, width, generator=g, dtype=DTYPE)
        return w * weight_norm / torch.linalg.matrix_norm(w, 2)

    smin, gamma, passed, active = [], [], [], []
    for n in range(draws):
        scale = 10 ** (2 * n / (draws - 1) - 1)                       # 0.1 ... 10
        w1, w2 = rand_w(), rand_w()
        b1, b2 = (scale * torch.randn(width, generator=g, dtype=DTYPE) for _ in range(2))
        a0 = scale * torch.randn(width, generator=g, dtype=DTYPE)
        if activation == "relu" and form == "question":
            a0 = a0.abs()                                             # a^l is itself a ReLU output
        delta = torch.randn(width, generator=g, dtype=DTYPE)
        if form == "question":
            block = lambda a: act(w2 @ act(w1 @ a + b1) + b2 + a)    # noqa: E731
            d_outer = dact(w2 @ act(w1 @ a0 + b1) + b2 + a0)
        elif form == "identity":
            block = lambda a: a + w2 @ act(w1 @ a + b1) + b2           # noqa: E731
            d_outer = torch.ones(width, dtype=DTYPE)
        else:
            raise ValueError(f"form must be 'question' or 'identity', got {form!r}")
        jac = torch.autograd.functional.jacobian(block, a0)
        smin.append(torch.linalg.svdvals(jac)[-1])
        gamma.append(d_outer.abs().min())
        passed.append((jac.T @ delta).norm())
        active.append((d_outer * delta).norm())
    return {k: torch.stack(v) for k, v in
            (("smin", smin), ("gamma", gamma), ("passed", passed), ("active", active))}


@one_thread
def deep_jacobian_norms(num_blocks: int, weight_norm: float = 0.9, width: int = 16, seed: int = 0):
    """Spectral norm of d a^{2n}/d a^0 through n two-layer ReLU blocks whose weights have spectral norm
    ``weight_norm`` < 1: (without skips, with identity skips a + W2 relu(W1 a), with the question's skips
    relu(W2 relu(W1 a) + a))."""
    g = _gen(seed)

    def rand_w():
        w = torch.randn(width, width, generator=g, dtype=DTYPE)
        return w * weight_norm / torch.linalg.matrix_norm(w, 2)

    ws = [(rand_w(), rand_w()) for _ in range(num_blocks)]
    a0 = torch.randn(width, generator=g, dtype=DTYPE).abs()

    def plain(a):
        for w1, w2 in ws:
            a = torch.relu(w2 @ torch.relu(w1 @ a))
        return a

    def identity(a):
        for w1, w2 in ws:
            a = a + w2 @ torch.relu(w1 @ a)
        return a

    def question(a):
        for w1, w2 in ws:
            a = torch.relu(w2 @ torch.relu(w1 @ a) + a)
        return a

    jac = torch.autograd.functional.jacobian
    return tuple(torch.linalg.matrix_norm(jac(f, a0), 2).item() for f in (plain, identity, question))

