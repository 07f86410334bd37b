"""Hand-written ROI Align against torchvision.ops.roi_align, and the bilinear sampler's own properties."""
import pytest
import torch
import torchvision

from common import numeric_gradient, rel_error
from hw2_cnn.roi_align import bilinear_sample, feature_coordinates, nearest_sample, roi_align

DT = torch.float64


def _random_inputs(seed: int, num_boxes: int = 12):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 11, 9, dtype=DT, generator=g)
    corner = torch.rand(num_boxes, 2, dtype=DT, generator=g) * 28 - 4   # some boxes poke outside the map
    size = torch.rand(num_boxes, 2, dtype=DT, generator=g) * 16
    size[0] = 0.0                                                        # a degenerate box
    batch = torch.randint(0, 2, (num_boxes, 1), generator=g).to(DT)
    return x, torch.cat([batch, corner, corner + size], 1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
@pytest.mark.parametrize("seed", range(3))
def test_matches_torchvision(aligned, sampling_ratio, seed):
    x, boxes = _random_inputs(seed)
    for scale, out in ((1.0, (2, 2)), (0.4, (3, 4))):
        ref = torchvision.ops.roi_align(x, boxes, out, scale, sampling_ratio, aligned)
        mine = roi_align(x, boxes, out, scale, sampling_ratio, aligned)
        assert (mine - ref).abs().max() < 1e-12


def test_list_of_boxes_format():
    x, boxes = _random_inputs(0)
    per_image = [boxes[boxes[:, 0] == i, 1:] for i in range(2)]
    ref = torchvision.ops.roi_align(x, per_image, 3, 0.5, 2, True)
    assert (roi_align(x, per_image, 3, 0.5, 2, True) - ref).abs().max() < 1e-12


def test_bilinear_is_exact_on_linear_maps_and_hits_pixels():
    H, W = 6, 7
    yy, xx = torch.meshgrid(torch.arange(H, dtype=DT), torch.arange(W, dtype=DT), indexing="ij")
    feature = (2.0 * yy - 0.5 * xx + 1.0)[None]                # f(y, x) linear
    ys, xs = torch.rand(50, dtype=DT) * (H - 1), torch.rand(50, dtype=DT) * (W - 1)
    assert rel_error(bilinear_sample(feature, ys, xs)[0], 2.0 * ys - 0.5 * xs + 1.0) < 1e-12
    assert torch.equal(bilinear_sample(feature, yy, xx), feature)  # at pixel centres: the pixel itself
    assert torch.equal(nearest_sample(feature, yy, xx), feature)
    near = nearest_sample(feature, ys, xs)[0]
    assert (near - (2.0 * ys - 0.5 * xs + 1.0)).abs().max() > 0.1   # nearest is off by up to half a pixel


def test_box_gradient_bilinear_vs_nearest():
    """ROI Align is differentiable in the box (autograd = finite differences); nearest is flat in it."""
    feature = torch.randn(1, 2, 8, 8, dtype=DT, generator=torch.Generator().manual_seed(1))
    box = torch.tensor([[1.3, 0.7, 5.9, 6.2]], dtype=DT)

    def pooled(b, mode):
        rois = torch.cat([torch.zeros(1, 1, dtype=DT), b], 1)
        return roi_align(feature, rois, 2, 1.0, 2, True, mode=mode)

    b = box.clone().requires_grad_(True)
    pooled(b, "bilinear").sum().backward()
    assert rel_error(b.grad, numeric_gradient(lambda v: pooled(v, "bilinear").sum(), box.clone())) < 1e-6
    assert b.grad.abs().min() > 0
    assert numeric_gradient(lambda v: pooled(v, "nearest").sum(), box.clone(), h=1e-4).abs().max() == 0


def test_point_on_feature_map_q32():
    """Q3.2: image point (x, y) of a 32x32 image on the 10x10 map = bilinear sample at (10/32 * p - 0.5)."""
    feature = torch.randn(1, 1, 10, 10, dtype=DT, generator=torch.Generator().manual_seed(2))
    px, py = 13.0, 20.0
    fx, fy = feature_coordinates((px, py), 32, 10)
    assert (fx, fy) == pytest.approx((3.5625, 5.75))
    value = bilinear_sample(feature[0], torch.tensor(fy, dtype=DT), torch.tensor(fx, dtype=DT))
    eps = 1e-3  # a tiny box centred on the point, one sample: ROI Align reads exactly that point
    box = torch.tensor([[0, px - eps, py - eps, px + eps, py + eps]], dtype=DT)
    ref = torchvision.ops.roi_align(feature, box, 1, 10 / 32, 1, True)
    assert abs(float(ref) - float(value)) < 1e-12


def test_bad_input_raises():
    with pytest.raises(ValueError, match="boxes must be"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match="batch index"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.tensor([[3.0, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match="mode"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.tensor([[0.0, 0, 0, 1, 1]]), 2, mode="bicubic")
