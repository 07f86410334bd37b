"""Architecture tables (data, no logic): the MobileNet and plain-CNN variants of hw2cnn.P2.

Three sizes (``VARIANTS``):

- ``full``: the usual CIFAR adaptation of MobileNetV2 (about 100 MFLOPs per image), for a GPU;
- ``cpu``: the CIFAR-10 run of ``python -m hw2_cnn.train_cifar`` on 2 shared CPU cores (an epoch of 49,000
  images must take minutes, not an hour: see the stride plan below);
- ``quick``: a few percent of that, for CPU runs on a small MNIST subset inside the notebook and the tests.
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


# The CPU run: on CPU the cost of an inverted residual block is dominated by memory traffic of its t-times
# expanded activations (depthwise conv, BN, ReLU6), not by its FLOPs, so the first block already halves the
# resolution (32 -> 16) and most depth sits at 8x8; t = 4 instead of 6. Measured on the shared 2-core
# machine (1 thread, batch 256, channels_last, under load): about 2.5x the training images/s of a table with
# the first stages at 32x32 and t = 6, at a similar FLOP count. No SE/h-swish: each adds elementwise passes.
MOBILENET_CPU_BLOCKS = (
    BlockSpec(1, 16, 1, 2),     # 32x32 stem -> 16x16
    BlockSpec(4, 32, 2, 1),     # 16x16
    BlockSpec(4, 64, 2, 2),     # 8x8
    BlockSpec(4, 128, 2, 1),    # 8x8
    BlockSpec(4, 192, 1, 2),    # 4x4
)
VARIANTS = ("quick", "cpu", "full")
_MOBILENET = {"quick": (MOBILENET_QUICK_BLOCKS, 16, 2, 64), "cpu": (MOBILENET_CPU_BLOCKS, 32, 1, 512),
              "full": (MOBILENET_FULL_BLOCKS, 32, 1, 1280)}  # blocks, stem channels, stem stride, head


def mobilenet_config(variant: str, in_channels: int = 3, num_classes: int = 10, expansion: int | None = None,
                     se_reduction: int | None | str = "table") -> MobileNetConfig:
    """The ``quick`` or ``full`` MobileNet, with the knobs of the Q6.2.3 / Q6.3.2 sweeps.

    ``expansion`` overrides t in every block after the first; ``se_reduction`` overrides r in the blocks where
    the table places SE (``"table"`` keeps the table's r, ``None`` removes SE everywhere).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    blocks, stem, stem_stride, head = _MOBILENET[variant]
    rows = [blocks[0]]
    for spec in blocks[1:]:
        t = spec.expansion if expansion is None else expansion
        r = spec.se_reduction if se_reduction == "table" or spec.se_reduction is None else se_reduction
        rows.append(BlockSpec(t, spec.out_channels, spec.repeats, spec.stride, spec.kernel_size, r,
                              spec.activation))
    return MobileNetConfig(tuple(rows), in_channels=in_channels, num_classes=num_classes,
                           stem_channels=stem, stem_stride=stem_stride, head_channels=head)


# VGG-style baselines (2 convs per stage, max-pool after each): full ~306 MFLOPs; cpu (32, 64, 128) ~77 MFLOPs,
# more than the cpu MobileNet; quick matches the quick MobileNet's size class.
PLAIN_CHANNELS = {"quick": (8, 16, 32), "cpu": (32, 64, 128), "full": (64, 128, 256)}


def plain_config(variant: str, in_channels: int = 3, num_classes: int = 10) -> PlainCNNConfig:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    channels = PLAIN_CHANNELS[variant]
    return PlainCNNConfig(channels=channels, convs_per_stage=2, in_channels=in_channels,
                          num_classes=num_classes)
