"""Receptive field: the Q2.1 closed form against the autograd measurement on random (k, d, s) stacks."""
import pytest
import torch

from hw2_cnn.receptive_field import (ConvLayerSpec, effective_fraction, input_gradient_map, jump,
                                     measured_receptive_field, random_stack, receptive_field,
                                     relative_receptive_field)


@pytest.mark.parametrize("seed", range(25))
def test_formula_equals_measurement_on_random_stacks(seed):
    g = torch.Generator().manual_seed(seed)
    layers = random_stack(int(torch.randint(1, 6, (1,), generator=g)), g)
    size = receptive_field(layers)
    assert measured_receptive_field(layers) == (size, size)


def test_known_values():
    three_by_three = [ConvLayerSpec(3)] * 3
    assert receptive_field(three_by_three) == 7                       # VGG: three 3x3 see a 7x7 patch
    dilated = [ConvLayerSpec(3, dilation=2 ** i) for i in range(4)]   # d = 1, 2, 4, 8 (Yu & Koltun 2016)
    assert receptive_field(dilated) == 31
    strided = [ConvLayerSpec(3, stride=2), ConvLayerSpec(3, stride=2), ConvLayerSpec(3)]
    assert receptive_field(strided) == 1 + 2 + 2 * 2 + 2 * 4 and jump(strided) == 4
    assert relative_receptive_field(three_by_three, (14, 28)) == pytest.approx(49 / (14 * 28))


def test_dilation_leaves_holes_but_the_span_is_the_formula():
    layers = [ConvLayerSpec(3, dilation=3)]
    grad = input_gradient_map(layers)
    row = grad.sum(1)
    support = torch.nonzero(row).flatten().tolist()
    assert support[-1] - support[0] + 1 == receptive_field(layers) == 7
    assert len(support) == 3  # gridding: only every third row is seen


def test_effective_field_shrinks_relative_to_theoretical():
    fractions = [effective_fraction(input_gradient_map([ConvLayerSpec(3)] * n), [ConvLayerSpec(3)] * n)
                 for n in (4, 16)]
    assert fractions[1] < fractions[0] < 1.0


def test_input_too_small_is_reported():
    with pytest.raises(ValueError, match="smaller than the receptive field"):
        input_gradient_map([ConvLayerSpec(5)] * 2, input_size=6)
    with pytest.raises(ValueError, match=">= 1"):
        ConvLayerSpec(3, dilation=0)
