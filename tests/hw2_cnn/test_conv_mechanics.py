"""Convolution matrices, transposed convolutions and gradient identities vs torch (float64, random shapes)."""
import itertools

import pytest
import torch

from common import numeric_gradient, rel_error
from hw2_cnn.conv_mechanics import (apply_matrix, conv_input_grad, conv_matrix, conv_output_size,
                                    conv_transpose_matrix, conv_weight_grad, torch_conv, torch_conv_transpose,
                                    transposed_output_size)

DT = torch.float64


def _random_case(nd: int, seed: int, groups: int = 1):
    g = torch.Generator().manual_seed(seed)

    def draw(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    c_in, c_out = groups * draw(1, 3), groups * draw(1, 3)
    kernel = tuple(draw(1, 4) for _ in range(nd))
    stride = tuple(draw(1, 3) for _ in range(nd))
    padding = tuple(draw(0, 2) for _ in range(nd))
    dilation = tuple(draw(1, 3) for _ in range(nd))
    size = tuple(d * (k - 1) + 1 + draw(0, 7) for k, d in zip(kernel, dilation))
    w = torch.randn(c_out, c_in // groups, *kernel, dtype=DT, generator=g)
    x = torch.randn(draw(1, 3), c_in, *size, dtype=DT, generator=g)
    return x, w, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


CASES = [(nd, seed, groups) for nd in (1, 2) for seed in range(12) for groups in (1, 2)]


@pytest.mark.parametrize("nd,seed,groups", CASES)
def test_matrix_times_input_equals_conv(nd, seed, groups):
    x, w, kw = _random_case(nd, seed, groups)
    y = torch_conv(x, w, **kw)
    A = conv_matrix(w, x.shape[2:], **kw)
    assert A.shape == (y[0].numel(), x[0].numel())
    assert rel_error(apply_matrix(A, x, y.shape[1], y.shape[2:]), y) < 1e-10


@pytest.mark.parametrize("nd,seed,groups", CASES)
def test_transposed_conv_is_the_transpose(nd, seed, groups):
    x, w, kw = _random_case(nd, seed, groups)
    y = torch_conv(x, w, **kw)
    # output_padding recovers the input size when the stride does not divide it evenly
    out_pad = tuple((n + 2 * p - d * (k - 1) - 1) % s for n, k, s, p, d in
                    zip(x.shape[2:], w.shape[2:], kw["stride"], kw["padding"], kw["dilation"]))
    z = torch.randn_like(y)
    ref = torch_conv_transpose(z, w, output_padding=out_pad, **kw)
    assert ref.shape == x.shape
    At = conv_transpose_matrix(w, y.shape[2:], output_padding=out_pad, **kw)
    assert torch.equal(At, conv_matrix(w, x.shape[2:], **kw).T)
    assert rel_error(apply_matrix(At, z, x.shape[1], x.shape[2:]), ref) < 1e-10


@pytest.mark.parametrize("nd,seed,groups", CASES)
def test_input_gradient_is_transpose_times_output_gradient(nd, seed, groups):
    x, w, kw = _random_case(nd, seed, groups)
    x.requires_grad_(True)
    y = torch_conv(x, w, **kw)
    dy = torch.randn_like(y)
    y.backward(dy)
    assert rel_error(conv_input_grad(dy, w, x.shape[2:], **kw), x.grad) < 1e-10


@pytest.mark.parametrize("nd,seed", [(nd, seed) for nd in (1, 2) for seed in range(12)])
def test_weight_gradient_is_correlation_of_input_with_output_gradient(nd, seed):
    x, w, kw = _random_case(nd, seed)
    kw.pop("groups")
    w.requires_grad_(True)
    y = torch_conv(x, w, **kw)
    dy = torch.randn_like(y)
    y.backward(dy)
    assert rel_error(conv_weight_grad(x, dy, w.shape[2:], **kw), w.grad) < 1e-10


def test_matrix_gradients_against_finite_differences():
    """Independent of autograd: central differences of L = <conv(x, w), dy> in x and in w."""
    x, w, kw = _random_case(2, seed=3)
    kw.pop("groups")
    dy = torch.randn_like(torch_conv(x, w, **kw))
    num_dx = numeric_gradient(lambda v: torch_conv(v, w, **kw), x.clone(), dy)
    num_dw = numeric_gradient(lambda v: torch_conv(x, v, **kw), w.clone(), dy)
    assert rel_error(conv_input_grad(dy, w, x.shape[2:], **kw), num_dx) < 1e-7
    assert rel_error(conv_weight_grad(x, dy, w.shape[2:], **kw), num_dw) < 1e-7


def test_q4_worked_example_by_hand():
    """hw2cnn.Q4.1/Q4.4: x in R^4, w in R^3 -> a 2x4 banded matrix; the transposed conv R^4 -> R^6 has the
    6x4 matrix that is the transpose of the R^6 -> R^4 conv's (the same band, read down the columns)."""
    w = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=DT)
    A = conv_matrix(w, 4)
    assert torch.equal(A, torch.tensor([[1, 2, 3, 0], [0, 1, 2, 3]], dtype=DT))
    x = torch.tensor([1.0, -1.0, 2.0, 0.5], dtype=DT)
    assert torch.equal(A @ x, torch.tensor([5.0, 4.5], dtype=DT))
    up = conv_transpose_matrix(w, 4)
    assert up.shape == (6, 4)
    assert torch.equal(up, conv_matrix(w, 6).T)
    assert conv_transpose_matrix(w, 4, padding=1).shape == (4, 4)  # padding 1 crops one row each end


def test_output_size_formulas():
    for n, k, s, p, d in itertools.product((5, 8), (1, 3), (1, 2), (0, 1), (1, 2)):
        if n + 2 * p >= d * (k - 1) + 1:
            m = conv_output_size(n, k, s, p, d)
            assert torch.nn.functional.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, k), stride=s, padding=p,
                                              dilation=d).shape[-1] == m
    assert transposed_output_size(4, 3) == 6


def test_bad_arguments_raise_clear_errors():
    w = torch.zeros(2, 1, 3, dtype=DT)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        conv_matrix(w, 2)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        conv_matrix(w, 8, stride=0)
    with pytest.raises(ValueError, match="weight must be"):
        conv_matrix(torch.zeros(3, 3), 8)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose_matrix(w, 4, stride=1, output_padding=1)
    with pytest.raises(ValueError, match="groups"):
        conv_matrix(torch.zeros(3, 1, 3), 8, groups=2)
