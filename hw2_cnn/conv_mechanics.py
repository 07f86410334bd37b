"""Convolution as an explicit matrix (hw2cnn.P1, theory hw2cnn.Q4).

A convolution with weight ``w`` is linear in its input, so for one sample it is ``y = A x`` with
``x = input.reshape(-1)`` (channel-major, then rows, then columns) and ``y = output.reshape(-1)``. This
module builds ``A`` entry by entry from the definition

    y[o, t] = sum_i sum_j w[o, i, j] * x_pad[i, t * stride + j * dilation]      (1-D; 2-D per axis)

and derives the rest from it:

- transposed convolution = multiplication by ``A.T`` (what ``conv_transpose1d/2d`` compute);
- the input gradient ``dL/dx = A.T @ dL/dy`` (a transposed convolution of ``dL/dy``);
- the weight gradient ``dL/dw[o, i, j] = sum_n sum_t x_pad[n, i, t*stride + j*dilation] dL/dy[n, o, t]``,
  a correlation of the input with ``dL/dy`` (:func:`conv_weight_grad`).

Everything works for 1-D (weight ``(C_out, C_in/groups, k)``) and 2-D (``(C_out, C_in/groups, kh, kw)``)
with any stride, padding, dilation and groups. ``tests/hw2_cnn/test_conv_mechanics.py`` checks each
identity against ``torch.nn.functional`` and autograd in float64.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
import torch.nn.functional as F

IntOrTuple = int | Sequence[int]


def _tuple(value: IntOrTuple, nd: int, name: str, minimum: int) -> tuple[int, ...]:
    out = (int(value),) * nd if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != nd:
        raise ValueError(f"{name} must be an int or a sequence of {nd} ints for a {nd}-D convolution, "
                         f"got {value!r}")
    if any(v < minimum for v in out):
        raise ValueError(f"{name} must be >= {minimum} on every axis, got {value!r}")
    return out


def _check_weight(weight: torch.Tensor) -> int:
    if weight.dim() not in (3, 4):
        raise ValueError(f"weight must be (C_out, C_in, k) for 1-D or (C_out, C_in, kh, kw) for 2-D, "
                         f"got shape {tuple(weight.shape)}")
    return weight.dim() - 2


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output length along one axis: ``floor((size + 2p - d(k-1) - 1) / s) + 1``."""
    span = dilation * (kernel_size - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(f"input of size {size} with padding {padding} is smaller than the dilated kernel "
                         f"span {span} (k={kernel_size}, d={dilation}); enlarge the input or the padding")
    return (size + 2 * padding - span) // stride + 1


def conv_matrix(weight: torch.Tensor, input_shape: IntOrTuple, stride: IntOrTuple = 1,
                padding: IntOrTuple = 0, dilation: IntOrTuple = 1, groups: int = 1) -> torch.Tensor:
    """The matrix ``A`` with ``conv(x, weight).reshape(-1) == A @ x.reshape(-1)`` for one sample.

    Args:
        weight: (C_out, C_in/groups, k) or (C_out, C_in/groups, kh, kw).
        input_shape: spatial size of ``x``: ``L`` (1-D) or ``(H, W)`` (2-D).
    Returns:
        A: (C_out * prod(out_shape), C_in * prod(input_shape)), same dtype/device as ``weight``.
    """
    nd = _check_weight(weight)
    input_shape = _tuple(input_shape, nd, "input_shape", 1)
    stride, padding = _tuple(stride, nd, "stride", 1), _tuple(padding, nd, "padding", 0)
    dilation = _tuple(dilation, nd, "dilation", 1)
    c_out, c_in_group, *kernel = weight.shape
    if groups < 1 or c_out % groups:
        raise ValueError(f"groups={groups} must be >= 1 and divide C_out={c_out}")
    out_shape = tuple(conv_output_size(n, k, s, p, d)
                      for n, k, s, p, d in zip(input_shape, kernel, stride, padding, dilation))
    c_in = c_in_group * groups
    A = weight.new_zeros(*out_shape, *input_shape, c_out, c_in)  # spatial first: easy fancy indexing
    step = c_out // groups
    for tap in itertools.product(*(range(k) for k in kernel)):
        # per axis: output positions t whose tap lands on a real (not padded) input position i
        out_idx, in_idx = [], []
        for t_max, n, s, p, d, j in zip(out_shape, input_shape, stride, padding, dilation, tap):
            t = torch.arange(t_max, device=weight.device)
            i = t * s - p + j * d
            keep = (i >= 0) & (i < n)
            out_idx.append(t[keep])
            in_idx.append(i[keep])
        grids = torch.meshgrid(*out_idx, indexing="ij") + torch.meshgrid(*in_idx, indexing="ij")
        w_tap = weight[(slice(None), slice(None)) + tap]  # (C_out, C_in/groups)
        for g in range(groups):  # block-diagonal over groups
            rows, cols = slice(g * step, (g + 1) * step), slice(g * c_in_group, (g + 1) * c_in_group)
            A[grids + (rows, cols)] += w_tap[rows]
    # (*out, *in, C_out, C_in) -> (C_out, *out, C_in, *in) -> flatten both sides
    perm = (2 * nd,) + tuple(range(nd)) + (2 * nd + 1,) + tuple(range(nd, 2 * nd))
    return A.permute(perm).reshape(c_out * math.prod(out_shape), c_in * math.prod(input_shape))


def transposed_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                           dilation: int = 1, output_padding: int = 0) -> int:
    """Output length of a transposed convolution: ``(size-1)s - 2p + d(k-1) + output_padding + 1``."""
    if not 0 <= output_padding < max(stride, dilation):
        raise ValueError(f"output_padding must be in [0, max(stride, dilation)) = "
                         f"[0, {max(stride, dilation)}), got {output_padding}")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"transposed convolution output would have size {out}; reduce padding {padding}")
    return out


def conv_transpose_matrix(weight: torch.Tensor, input_shape: IntOrTuple, stride: IntOrTuple = 1,
                          padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
                          output_padding: IntOrTuple = 0, groups: int = 1) -> torch.Tensor:
    """Matrix of ``conv_transpose{1,2}d(x, weight, ...)``: the transpose of the matching convolution's matrix.

    ``weight`` has the transposed-convolution layout (C_in, C_out/groups, k...), which is the layout of a
    convolution mapping C_out -> C_in; the transposed op is the adjoint of that convolution applied to an
    input of the transposed op's output size. Returns (C_out * prod(out), C_in * prod(input_shape)).
    """
    nd = _check_weight(weight)
    input_shape = _tuple(input_shape, nd, "input_shape", 1)
    stride, padding = _tuple(stride, nd, "stride", 1), _tuple(padding, nd, "padding", 0)
    dilation = _tuple(dilation, nd, "dilation", 1)
    output_padding = _tuple(output_padding, nd, "output_padding", 0)
    kernel = weight.shape[2:]
    out_shape = tuple(transposed_output_size(*args)
                      for args in zip(input_shape, kernel, stride, padding, dilation, output_padding))
    # the transposed op's weight, read as a conv weight, maps its *output* channels to its *input* channels
    if weight.shape[0] % groups:
        raise ValueError(f"groups={groups} must divide the transposed conv's C_in={weight.shape[0]}")
    return conv_matrix(weight, out_shape, stride, padding, dilation, groups).T


def apply_matrix(A: torch.Tensor, x: torch.Tensor, out_channels: int,
                 out_shape: Sequence[int]) -> torch.Tensor:
    """Batch ``A @ x``: x (N, C, *spatial) -> (N, out_channels, *out_shape)."""
    y = x.reshape(x.shape[0], -1) @ A.T
    return y.reshape(x.shape[0], out_channels, *out_shape)


def conv_input_grad(grad_output: torch.Tensor, weight: torch.Tensor, input_shape: IntOrTuple,
                    stride: IntOrTuple = 1, padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
                    groups: int = 1) -> torch.Tensor:
    """``dL/dx = A.T dL/dy`` for a batch: grad_output (N, C_out, *out) -> (N, C_in, *input_shape)."""
    nd = _check_weight(weight)
    input_shape = _tuple(input_shape, nd, "input_shape", 1)
    A = conv_matrix(weight, input_shape, stride, padding, dilation, groups)
    c_in = weight.shape[1] * groups
    return (grad_output.reshape(grad_output.shape[0], -1) @ A).reshape(-1, c_in, *input_shape)


def conv_weight_grad(x: torch.Tensor, grad_output: torch.Tensor, kernel_size: IntOrTuple,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     dilation: IntOrTuple = 1) -> torch.Tensor:
    """``dL/dw`` as the correlation of the (padded) input with ``dL/dy`` (groups=1).

    dw[o, i, j] = sum_n sum_t x_pad[n, i, j*dilation + t*stride] * dy[n, o, t]: a convolution whose
    "batch" is the input channel, whose "channels" are the samples, whose kernel is ``dy`` dilated by the
    forward *stride*, taken with a step equal to the forward *dilation*.

    Args:
        x: (N, C_in, *spatial); grad_output: (N, C_out, *out).
    Returns:
        (C_out, C_in, *kernel_size).
    """
    nd = x.dim() - 2
    if nd not in (1, 2) or grad_output.dim() != x.dim() or grad_output.shape[0] != x.shape[0]:
        raise ValueError(f"x must be (N, C_in, L) or (N, C_in, H, W) and grad_output (N, C_out, ...) with "
                         f"the same N and rank; got {tuple(x.shape)} and {tuple(grad_output.shape)}")
    kernel = _tuple(kernel_size, nd, "kernel_size", 1)
    stride, padding = _tuple(stride, nd, "stride", 1), _tuple(padding, nd, "padding", 0)
    dilation = _tuple(dilation, nd, "dilation", 1)
    pad = [p for p in reversed(padding) for _ in range(2)]  # F.pad wants the last axis first
    x_pad = F.pad(x, pad)
    conv = F.conv1d if nd == 1 else F.conv2d
    corr = conv(x_pad.transpose(0, 1), grad_output.transpose(0, 1), stride=dilation, dilation=stride)
    crop = (slice(None), slice(None)) + tuple(slice(0, k) for k in kernel)  # surplus taps fall off the end
    return corr[crop].transpose(0, 1).contiguous()


def torch_conv(x: torch.Tensor, weight: torch.Tensor, **kwargs) -> torch.Tensor:
    """``conv1d`` or ``conv2d`` by the weight's rank (the reference the matrices are checked against)."""
    return (F.conv1d if _check_weight(weight) == 1 else F.conv2d)(x, weight, **kwargs)


def torch_conv_transpose(x: torch.Tensor, weight: torch.Tensor, **kwargs) -> torch.Tensor:
    """``conv_transpose1d`` or ``conv_transpose2d`` by the weight's rank."""
    return (F.conv_transpose1d if _check_weight(weight) == 1 else F.conv_transpose2d)(x, weight, **kwargs)
