"""Architecture tables (data, no logic): the MobileNet and plain-CNN variants of hw2cnn.P2.

``full`` variants are for CIFAR-10 (``python -m hw2_cnn.train_cifar``); ``quick`` variants are a few percent
of their cost, for CPU runs on a small MNIST subset inside the notebook and the tests.
"""
from __future__ import annotations

from .mobilenet import BlockSpec, MobileNetConfig, PlainCNNConfig

# MobileNetV2's ImageNet table (Sandler et al. 2018, Table 2: t, c, n, s) with the first two strides set to 1
# so a 32x32 input ends at 4x4 (the usual CIFAR adaptation); the last two stages take MobileNetV3's
# additions (Howard et al. 2019): squeeze-and-excitation (r = 4) and h-swish in the deep, low-resolution half.
MOBILENET_FULL_BLOCKS = (
    BlockSpec(1, 16, 1, 1),
    BlockSpec(6, 24, 2, 1),
    BlockSpec(6, 32, 3, 2),
    BlockSpec(6, 64, 4, 2),
    BlockSpec(6, 96, 3, 1),
    BlockSpec(6, 160, 3, 2, se_reduction=4, activation="hswish"),
    BlockSpec(6, 320, 1, 1, se_reduction=4, activation="hswish"),
)

# One block per stage, narrow channels and a stride-2 stem (28x28 MNIST -> 14x14 at once): about 1 MFLOP
# per image, so a CPU epoch over a few thousand images takes seconds.
MOBILENET_QUICK_BLOCKS = (
    BlockSpec(1, 8, 1, 1),
    BlockSpec(4, 16, 1, 2),
    BlockSpec(4, 24, 1, 1, se_reduction=4, activation="hswish"),
    BlockSpec(4, 32, 1, 2, se_reduction=4, activation="hswish"),
)


def mobilenet_config(variant: str, in_channels: int = 3, num_classes: int = 10, expansion: int | None = None,
                     se_reduction: int | None | str = "table") -> MobileNetConfig:
    """The ``quick`` or ``full`` MobileNet, with the knobs of the Q6.2.3 / Q6.3.2 sweeps.

    ``expansion`` overrides t in every block after the first; ``se_reduction`` overrides r in the blocks where
    the table places SE (``"table"`` keeps the table's r, ``None`` removes SE everywhere).
    """
    if variant not in ("quick", "full"):
        raise ValueError(f"variant must be 'quick' or 'full', got {variant!r}")
    blocks = MOBILENET_QUICK_BLOCKS if variant == "quick" else MOBILENET_FULL_BLOCKS
    rows = [blocks[0]]
    for spec in blocks[1:]:
        t = spec.expansion if expansion is None else expansion
        r = spec.se_reduction if se_reduction == "table" or spec.se_reduction is None else se_reduction
        rows.append(BlockSpec(t, spec.out_channels, spec.repeats, spec.stride, spec.kernel_size, r,
                              spec.activation))
    full = variant == "full"
    return MobileNetConfig(tuple(rows), in_channels=in_channels, num_classes=num_classes,
                           stem_channels=32 if full else 16, stem_stride=1 if full else 2,
                           head_channels=1280 if full else 64)


# VGG-style baselines: (64, 128, 256) x 2 convs reaches roughly the accuracy class of the full MobileNet on
# CIFAR-10 while costing several times its FLOPs; the quick one matches the quick MobileNet's size class.
PLAIN_FULL_CHANNELS = (64, 128, 256)
PLAIN_QUICK_CHANNELS = (8, 16, 32)


def plain_config(variant: str, in_channels: int = 3, num_classes: int = 10) -> PlainCNNConfig:
    if variant not in ("quick", "full"):
        raise ValueError(f"variant must be 'quick' or 'full', got {variant!r}")
    channels = PLAIN_FULL_CHANNELS if variant == "full" else PLAIN_QUICK_CHANNELS
    return PlainCNNConfig(channels=channels, convs_per_stage=2, in_channels=in_channels,
                          num_classes=num_classes)
