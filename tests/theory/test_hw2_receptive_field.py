"""hw2cnn.Q2.2: the hole-free criterion and the Minkowski-sum field against the package's gradient
measurement, exhaustively on small designs, and the pruned optimum search against a brute force that measures
every design."""
from __future__ import annotations

import itertools

import pytest

from hw2_cnn.receptive_field import ConvLayerSpec, receptive_field
from theory.checks import hw2_cnn_conv as cv


def _small_designs():
    """All 2-layer stacks with k in {1, 2, 3}, d in 1..4, s in {1, 2}, and all 3-layer 3x3 stacks with
    d in 1..4, s in {1, 2, 3} that fit a 32 x 32 input."""
    two = [[ConvLayerSpec(k1, d1, s1), ConvLayerSpec(k2, d2, s2)]
           for k1, k2 in itertools.product((1, 2, 3), repeat=2)
           for d1, d2 in itertools.product(range(1, 5), repeat=2)
           for s1, s2 in itertools.product((1, 2), repeat=2)]
    return two + cv.enumerate_designs(3, 32, dilations=range(1, 5), strides=(1, 2, 3))


def test_criterion_and_minkowski_sum_match_the_measurement_exhaustively():
    designs = _small_designs()
    assert len(designs) == 576 + 882
    for layers in designs:
        offsets = cv.measured_offsets(layers)
        assert offsets == cv.minkowski_offsets(layers), layers
        assert offsets[-1] + 1 == receptive_field(layers), layers
        assert cv.hole_free(layers) == (not cv.has_holes(offsets)), layers


def test_layer_order_condition_is_sufficient_but_not_necessary():
    designs = _small_designs()
    assert all(not cv.has_holes(cv.measured_offsets(ls)) for ls in designs if cv.hole_free_in_layer_order(ls))
    reordered = cv.stack([3] * 3, [9, 3, 1], [1] * 3)
    assert not cv.hole_free_in_layer_order(reordered)
    assert cv.measured_offsets(reordered) == list(range(27)) and cv.hole_free(reordered)


def test_layer_order_does_not_change_the_measured_field():
    layers = [ConvLayerSpec(3, 1), ConvLayerSpec(2, 2), ConvLayerSpec(3, 6)]   # stride 1: any layer order
    fields = {tuple(cv.measured_offsets(list(order))) for order in itertools.permutations(layers)}
    assert len(fields) == 1 and cv.has_holes(next(iter(fields)))               # the same holes in every order


@pytest.mark.parametrize("num_layers, threshold", [(2, 0.1), (3, 0.25)])
def test_pruned_search_equals_measuring_every_design(num_layers, threshold):
    size, dilations, strides = 16, range(1, 5), (1, 2, 3)
    found = cv.cheapest_design(num_layers, size, threshold, dilations=dilations, strides=strides)
    valid = []
    for layers in cv.enumerate_designs(num_layers, size, dilations=dilations, strides=strides):
        offsets = cv.measured_offsets(layers, size)
        if not cv.has_holes(offsets) and ((offsets[-1] + 1) / size) ** 2 > threshold:
            valid.append(cv.stack_macs(layers, size))
    assert found.disagreements == 0
    assert found.macs == min(valid)


def test_search_reports_infeasible_problems():
    result = cv.cheapest_design(2, 16, 0.5, dilations=range(1, 5), strides=(1, 2, 3))   # R > 11.3, but R <= 9
    assert result.macs is None and result.measured == result.designs      # every design measured and rejected
