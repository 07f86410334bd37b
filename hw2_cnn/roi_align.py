"""ROI Align with a hand-written bilinear sampler (hw2cnn.P1, theory Q3), and nearest neighbour to compare.

Conventions are those of ``torchvision.ops.roi_align`` (Mask R-CNN, He et al. 2017):

- a box ``(x1, y1, x2, y2)`` in image coordinates maps to feature coordinates by ``* spatial_scale``; with
  ``aligned=True`` half a pixel is subtracted so that feature pixel ``i`` has its centre at coordinate ``i``
  (continuous coordinate ``c`` <-> pixel index ``c - 0.5``); with ``aligned=False`` it is not, and boxes
  narrower than one pixel are widened to one (the legacy Detectron behaviour);
- each of the ``ph x pw`` output bins averages ``grid_h x grid_w`` bilinear samples at the bin's regular
  sub-grid centres; ``sampling_ratio <= 0`` means ``ceil(box_size / bins)`` samples per axis (per box);
- a sample more than one pixel outside the map contributes 0; one within a pixel of the border is clamped.

Bilinear interpolation at (y, x) with y0 = floor(y), ly = y - y0 (same for x):

    f(y, x) = (1-ly)(1-lx) f[y0, x0] + (1-ly) lx f[y0, x0+1] + ly (1-lx) f[y0+1, x0] + ly lx f[y0+1, x0+1]

It is continuous and piecewise differentiable in the box coordinates; nearest-neighbour sampling is
piecewise *constant*, so its gradient with respect to the box is zero almost everywhere.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

MODES = ("bilinear", "nearest")


def _prepare(feature: torch.Tensor, y: torch.Tensor, x: torch.Tensor):
    """Shared border rule: validity mask and coordinates clamped the way torchvision clamps them."""
    H, W = feature.shape[-2:]
    valid = (y >= -1.0) & (y <= H) & (x >= -1.0) & (x <= W)
    y = torch.where(y <= 0, torch.zeros_like(y), y)
    x = torch.where(x <= 0, torch.zeros_like(x), x)
    return valid, y, x


def bilinear_sample(feature: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bilinear values of ``feature`` (C, H, W) at points (y, x) of any common shape S -> (C, *S).

    Coordinates are in pixel-index units (pixel (i, j) sits at y=i, x=j). Differentiable in ``feature``
    and in the coordinates.
    """
    if feature.dim() != 3:
        raise ValueError(f"feature must be (C, H, W), got shape {tuple(feature.shape)}")
    H, W = feature.shape[-2:]
    valid, y, x = _prepare(feature, y, x)
    y0 = y.detach().floor().long().clamp(max=H - 1)
    x0 = x.detach().floor().long().clamp(max=W - 1)
    # at the last row/column the sample snaps onto it (torchvision: y = y_low = y_high = H - 1)
    y = torch.where(y0 >= H - 1, y0.to(y.dtype), y)
    x = torch.where(x0 >= W - 1, x0.to(x.dtype), x)
    y1, x1 = (y0 + 1).clamp(max=H - 1), (x0 + 1).clamp(max=W - 1)
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    value = (hy * hx * feature[:, y0, x0] + hy * lx * feature[:, y0, x1]
             + ly * hx * feature[:, y1, x0] + ly * lx * feature[:, y1, x1])
    return value * valid


def nearest_sample(feature: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Value of the nearest pixel (round half up) at (y, x), same border rule: (C, H, W) -> (C, *S)."""
    if feature.dim() != 3:
        raise ValueError(f"feature must be (C, H, W), got shape {tuple(feature.shape)}")
    H, W = feature.shape[-2:]
    valid, y, x = _prepare(feature, y, x)
    iy = torch.floor(y.detach() + 0.5).long().clamp(0, H - 1)
    ix = torch.floor(x.detach() + 0.5).long().clamp(0, W - 1)
    return feature[:, iy, ix] * valid


def _boxes_tensor(boxes: torch.Tensor | Sequence[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Accept torchvision's two box formats: (K, 5) [batch_index, x1, y1, x2, y2] or a list of (K_i, 4)."""
    if isinstance(boxes, torch.Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"boxes must be (K, 5) rows [batch_index, x1, y1, x2, y2] or a list of (K_i, 4) "
                             f"tensors, got shape {tuple(boxes.shape)}")
        return boxes.to(like.dtype)
    rows = []
    for index, b in enumerate(boxes):
        if b.dim() != 2 or b.shape[1] != 4:
            raise ValueError(f"boxes[{index}] must be (K_i, 4) [x1, y1, x2, y2], got shape {tuple(b.shape)}")
        rows.append(torch.cat([torch.full_like(b[:, :1], index), b], 1))
    return torch.cat(rows).to(like.dtype) if rows else like.new_zeros(0, 5)


def sample_points(box: torch.Tensor, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int,
                  aligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample coordinates of one box [x1, y1, x2, y2]: y (ph, gh, 1, 1), x (1, 1, pw, gw), pixel units."""
    ph, pw = output_size
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (box * spatial_scale - offset).unbind()
    roi_h, roi_w = y2 - y1, x2 - x1
    if not aligned:  # legacy: force malformed boxes to 1x1
        roi_h, roi_w = roi_h.clamp(min=1.0), roi_w.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    grid_h = sampling_ratio if sampling_ratio > 0 else max(math.ceil(float(roi_h) / ph), 0)
    grid_w = sampling_ratio if sampling_ratio > 0 else max(math.ceil(float(roi_w) / pw), 0)
    iy = (torch.arange(grid_h, dtype=box.dtype, device=box.device) + 0.5) / max(grid_h, 1)
    ix = (torch.arange(grid_w, dtype=box.dtype, device=box.device) + 0.5) / max(grid_w, 1)
    rows = torch.arange(ph, dtype=box.dtype, device=box.device)
    cols = torch.arange(pw, dtype=box.dtype, device=box.device)
    y = y1 + (rows[:, None] + iy[None, :]) * bin_h  # (ph, gh)
    x = x1 + (cols[:, None] + ix[None, :]) * bin_w  # (pw, gw)
    return y[:, :, None, None], x[None, None, :, :]


def roi_align(input: torch.Tensor, boxes: torch.Tensor | Sequence[torch.Tensor],
              output_size: int | tuple[int, int], spatial_scale: float = 1.0, sampling_ratio: int = -1,
              aligned: bool = False, mode: str = "bilinear") -> torch.Tensor:
    """ROI Align with the same signature and semantics as ``torchvision.ops.roi_align``.

    Args:
        input: (N, C, H, W) feature maps.
        boxes: (K, 5) [batch_index, x1, y1, x2, y2] or a list of N tensors (K_i, 4), image coordinates.
        output_size: (ph, pw) bins per box.
        mode: ``bilinear`` (ROI Align) or ``nearest`` (each sample snapped to its nearest pixel).
    Returns:
        (K, C, ph, pw).
    """
    if input.dim() != 4:
        raise ValueError(f"input must be (N, C, H, W), got shape {tuple(input.shape)}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    rois = _boxes_tensor(boxes, input)
    sampler = bilinear_sample if mode == "bilinear" else nearest_sample
    out = []
    for roi in rois:
        batch = int(roi[0])
        if not 0 <= batch < input.shape[0]:
            raise ValueError(f"box batch index {batch} is outside the input batch of {input.shape[0]}")
        y, x = sample_points(roi[1:], (ph, pw), spatial_scale, sampling_ratio, aligned)
        y, x = torch.broadcast_tensors(y, x)  # (ph, gh, pw, gw)
        if y.numel() == 0:  # an empty box with adaptive sampling: torchvision returns zeros
            out.append(input.new_zeros(input.shape[1], ph, pw))
            continue
        values = sampler(input[batch], y, x)  # (C, ph, gh, pw, gw)
        out.append(values.mean(dim=(2, 4)))
    if not out:
        return input.new_zeros(0, input.shape[1], ph, pw)
    return torch.stack(out)


def feature_coordinates(point_xy: tuple[float, float], image_size: int, feature_size: int,
                        aligned: bool = True) -> tuple[float, float]:
    """Where image point (x, y) lands on a feature map (pixel-index units): x * F/I (- 0.5 when aligned).

    For hw2cnn.Q3.2 (32x32 image, 10x10 map): (x, y) -> (x * 10/32 - 0.5, y * 10/32 - 0.5).
    """
    scale = feature_size / image_size
    offset = 0.5 if aligned else 0.0
    return point_xy[0] * scale - offset, point_xy[1] * scale - offset
