"""MobileNet blocks: output shapes, parameter counts vs closed forms, FLOPs vs the Q6.1.3 formula."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hw2_cnn.architectures import mobilenet_config, plain_config
from hw2_cnn.flops import (count_parameters, measure_flops, ratio_sweep, separable_conv, separable_conv_flops,
                           separable_ratio, standard_conv, standard_conv_flops, throughput)
from hw2_cnn.mobilenet import (BlockSpec, DepthwiseSeparableConv, HSigmoid, HSwish, InvertedResidual,
                               MobileNet, MobileNetConfig, PlainCNN, SqueezeExcite, inverted_residual_params,
                               make_divisible, se_params, separable_params)


def test_hswish_and_hsigmoid_match_torch():
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    assert torch.allclose(HSwish()(x), F.hardswish(x))
    assert torch.allclose(HSigmoid()(x), F.hardsigmoid(x))


@pytest.mark.parametrize("channels,r", [(16, 4), (24, 8), (96, 16), (10, 3)])
def test_squeeze_excite_shape_params_and_formula(channels, r):
    se = SqueezeExcite(channels, r).double()
    x = torch.randn(3, channels, 5, 7, dtype=torch.float64)
    y = se(x)
    assert y.shape == x.shape
    assert count_parameters(se) == se_params(channels, r)
    # s = sigmoid(W2 relu(W1 z + b1) + b2), z = spatial mean, y = s * x  (Q6.3.1)
    z = x.mean(dim=(2, 3))
    W1, b1 = se.reduce.weight[:, :, 0, 0], se.reduce.bias
    W2, b2 = se.expand.weight[:, :, 0, 0], se.expand.bias
    s = torch.sigmoid(torch.relu(z @ W1.T + b1) @ W2.T + b2)
    assert torch.allclose(y, x * s[:, :, None, None])


@pytest.mark.parametrize("c_in,c_out,stride,t,k,r", [
    (16, 16, 1, 6, 3, None), (16, 24, 2, 6, 3, None), (8, 8, 1, 1, 3, None), (24, 24, 1, 4, 5, 4),
    (32, 64, 2, 3, 3, 8), (12, 12, 1, 2, 3, 2)])
def test_inverted_residual_shapes_params_and_shortcut(c_in, c_out, stride, t, k, r):
    block = InvertedResidual(c_in, c_out, stride, t, k, r)
    x = torch.randn(2, c_in, 12, 12)
    assert block(x).shape == (2, c_out, 12 // stride, 12 // stride)
    assert count_parameters(block) == inverted_residual_params(c_in, c_out, t, k, r)
    assert block.use_shortcut == (stride == 1 and c_in == c_out)
    depthwise = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 1 and depthwise[0].groups == c_in * t and depthwise[0].stride == (stride, stride)
    assert not isinstance(block.body[-1][-1], (nn.ReLU, nn.ReLU6, HSwish))  # linear bottleneck


def test_depthwise_separable_conv():
    block = DepthwiseSeparableConv(8, 20, 3, 2)
    assert block(torch.randn(1, 8, 9, 9)).shape == (1, 20, 5, 5)
    assert count_parameters(block) == separable_params(8, 20, 3)


@pytest.mark.parametrize("size,c_in,c_out,k", [(8, 16, 32, 3), (12, 8, 8, 5), (5, 3, 64, 3), (7, 32, 16, 1)])
def test_flops_measured_equal_closed_form(size, c_in, c_out, k):
    std, sep = standard_conv(c_in, c_out, k), separable_conv(c_in, c_out, k)
    f_std, f_sep = measure_flops(std, (c_in, size, size)), measure_flops(sep, (c_in, size, size))
    assert f_std == standard_conv_flops(size, size, c_in, c_out, k)
    assert f_sep == separable_conv_flops(size, size, c_in, c_out, k)
    assert f_sep / f_std == pytest.approx(separable_ratio(c_out, k), rel=1e-12)
    params_ratio = count_parameters(sep) / count_parameters(std)
    assert params_ratio == pytest.approx(separable_ratio(c_out, k), rel=1e-12)


def test_ratio_sweep_rows():
    rows = ratio_sweep([(8, 16, 32, 3), (4, 8, 128, 5)])
    for row in rows:
        assert row["flops_ratio"] == pytest.approx(row["formula"], rel=1e-12)
        assert row["flops_standard"] == row["formula_flops_standard"]


@pytest.mark.parametrize("variant", ["quick", "full"])
@pytest.mark.parametrize("in_channels,size", [(3, 32), (1, 28)])
def test_networks_accept_any_channels_and_size(variant, in_channels, size):
    nets = (MobileNet(mobilenet_config(variant, in_channels)), PlainCNN(plain_config(variant, in_channels)))
    for net in nets:
        assert net.eval()(torch.randn(2, in_channels, size, size)).shape == (2, 10)


def test_full_mobilenet_is_cheaper_than_plain_cnn():
    mobile = measure_flops(MobileNet(mobilenet_config("full")), (3, 32, 32))
    plain = measure_flops(PlainCNN(plain_config("full")), (3, 32, 32))
    assert mobile < 0.7 * plain


def test_expansion_and_reduction_overrides_change_cost_monotonically():
    flops_t = [measure_flops(MobileNet(mobilenet_config("quick", 1, expansion=t)), (1, 28, 28))
               for t in (1, 2, 4, 6)]
    assert flops_t == sorted(flops_t) and len(set(flops_t)) == 4
    params_r = [count_parameters(MobileNet(mobilenet_config("quick", 1, se_reduction=r)))
                for r in (2, 4, 8, None)]
    assert params_r == sorted(params_r, reverse=True)
    no_se = MobileNet(mobilenet_config("quick", 1, se_reduction=None))
    assert not any(isinstance(m, SqueezeExcite) for m in no_se.modules())


def test_width_multiplier_and_divisible():
    assert make_divisible(32 * 0.5) == 16 and make_divisible(10) == 16 and make_divisible(3) == 8
    blocks = (BlockSpec(1, 16, 1, 1), BlockSpec(6, 24, 2, 2))
    half = MobileNet(MobileNetConfig(blocks, width_mult=0.5, head_channels=64))
    full = MobileNet(MobileNetConfig(blocks, width_mult=1.0, head_channels=64))
    assert count_parameters(half) < count_parameters(full)


def test_throughput_is_positive():
    assert throughput(PlainCNN(plain_config("quick", 1)), (1, 28, 28), batch_size=8, min_seconds=0.05) > 0


def test_bad_block_arguments():
    with pytest.raises(ValueError, match="stride"):
        InvertedResidual(8, 8, stride=3)
    with pytest.raises(ValueError, match="reduction"):
        SqueezeExcite(4, 8)
    with pytest.raises(ValueError, match="variant"):
        mobilenet_config("huge")
