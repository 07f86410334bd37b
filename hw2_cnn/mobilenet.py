"""MobileNet building blocks and two small networks for 32x32 images (hw2cnn.P2, theory hw2cnn.Q6).

- :class:`DepthwiseSeparableConv` (MobileNetV1, Howard et al. 2017): k x k depthwise conv (one filter per
  channel) then a 1x1 pointwise conv; cost ratio to a standard conv = 1/C_out + 1/k^2 (see ``flops.py``).
- :class:`InvertedResidual` (MobileNetV2, Sandler et al. 2018): 1x1 expansion C -> tC, k x k depthwise,
  optional SE, 1x1 *linear* projection tC -> C' (no activation: a ReLU in the narrow bottleneck would discard
  information), identity shortcut between the narrow ends when stride 1 and C == C'.
- :class:`SqueezeExcite` (Hu et al. 2018; placed after the depthwise conv as in MobileNetV3, Howard et al.
  2019): z = mean_{h,w} x, s = gate(W2 relu(W1 z + b1) + b2), y = s * x with W1: (C/r, C), W2: (C, C/r).
- :class:`HSwish` / :class:`HSigmoid` (MobileNetV3): x * relu6(x + 3) / 6 and relu6(x + 3) / 6.
- :class:`MobileNet`: stem -> inverted-residual stages from a table of :class:`BlockSpec` rows
  (``architectures.py``) -> 1x1 head -> global average pool -> linear; :class:`PlainCNN`: VGG-style stages of
  3x3 conv-BN-ReLU and max-pooling. Both accept any ``in_channels`` and any input size (global pooling).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = ("relu", "relu6", "hswish")


class HSwish(nn.Module):
    """h-swish(x) = x * relu6(x + 3) / 6: a piecewise-polynomial swish, cheap on integer hardware."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) / 6.0


class HSigmoid(nn.Module):
    """h-sigmoid(x) = relu6(x + 3) / 6, the gate of MobileNetV3's SE blocks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


def make_activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return HSwish()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def conv_bn(c_in: int, c_out: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
            activation: str | None = "relu6") -> nn.Sequential:
    """Conv (no bias: the BN shift replaces it) -> BN -> activation (None = linear). 'same' padding."""
    layers = [nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    if activation is not None:
        layers.append(make_activation(activation))
    return nn.Sequential(*layers)


class DepthwiseSeparableConv(nn.Module):
    """(N, C_in, H, W) -> (N, C_out, H/s, W/s): depthwise k x k (groups=C_in) then pointwise 1x1."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1,
                 activation: str = "relu6"):
        super().__init__()
        self.depthwise = conv_bn(c_in, c_in, kernel_size, stride, groups=c_in, activation=activation)
        self.pointwise = conv_bn(c_in, c_out, 1, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class SqueezeExcite(nn.Module):
    """Channel attention: (N, C, H, W) -> (N, C, H, W), each channel scaled by a gate in (0, 1).

    Parameters: 2 C^2 / r + C / r + C (two 1x1 convs with bias, hidden width C // r).
    """

    def __init__(self, channels: int, reduction: int = 4, gate: str = "sigmoid"):
        super().__init__()
        if reduction < 1 or channels // reduction < 1:
            raise ValueError(f"reduction r={reduction} must be in [1, channels={channels}]")
        hidden = channels // reduction
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)
        if gate not in ("sigmoid", "hsigmoid"):
            raise ValueError(f"gate must be 'sigmoid' or 'hsigmoid', got {gate!r}")
        self.gate = nn.Sigmoid() if gate == "sigmoid" else HSigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean(dim=(2, 3), keepdim=True)                    # (N, C, 1, 1) squeeze
        s = self.gate(self.expand(F.relu(self.reduce(z))))      # (N, C, 1, 1) excitation
        return x * s


class InvertedResidual(nn.Module):
    """(N, C_in, H, W) -> (N, C_out, H/s, W/s): expand 1x1 (t C_in) -> depthwise k x k -> [SE] -> linear 1x1.

    The shortcut adds the input when ``stride == 1 and c_in == c_out``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, expansion: int = 6, kernel_size: int = 3,
                 se_reduction: int | None = None, activation: str = "relu6"):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if expansion < 1:
            raise ValueError(f"expansion t must be >= 1, got {expansion}")
        hidden = c_in * expansion
        layers = [] if expansion == 1 else [conv_bn(c_in, hidden, 1, activation=activation)]
        layers.append(conv_bn(hidden, hidden, kernel_size, stride, groups=hidden, activation=activation))
        if se_reduction is not None:
            gate = "hsigmoid" if activation == "hswish" else "sigmoid"
            layers.append(SqueezeExcite(hidden, se_reduction, gate))
        layers.append(conv_bn(hidden, c_out, 1, activation=None))  # linear bottleneck
        self.body = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.use_shortcut else out


@dataclass(frozen=True)
class BlockSpec:
    """One stage row of a MobileNetV2-style table: t, c, n, s (+ kernel, SE reduction, activation)."""

    expansion: int
    out_channels: int
    repeats: int
    stride: int
    kernel_size: int = 3
    se_reduction: int | None = None
    activation: str = "relu6"


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` without losing more than 10%."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


@dataclass(frozen=True)
class MobileNetConfig:
    blocks: tuple[BlockSpec, ...]
    in_channels: int = 3
    num_classes: int = 10
    stem_channels: int = 32
    stem_stride: int = 1        # 1 for 32x32 inputs (ImageNet nets use 2)
    head_channels: int = 1280
    width_mult: float = 1.0
    dropout: float = 0.2
    stem_activation: str = "relu6"


class MobileNet(nn.Module):
    """(N, in_channels, H, W) -> (N, num_classes) logits."""

    def __init__(self, config: MobileNetConfig):
        super().__init__()
        self.config = config
        w = config.width_mult
        scale = (lambda c: make_divisible(c * w)) if w != 1.0 else (lambda c: c)
        c = scale(config.stem_channels)
        self.stem = conv_bn(config.in_channels, c, 3, config.stem_stride, activation=config.stem_activation)
        blocks = []
        for spec in config.blocks:
            c_out = scale(spec.out_channels)
            for i in range(spec.repeats):
                blocks.append(InvertedResidual(c, c_out, spec.stride if i == 0 else 1, spec.expansion,
                                               spec.kernel_size, spec.se_reduction, spec.activation))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        head = scale(config.head_channels) if w > 1.0 else config.head_channels
        self.head = conv_bn(c, head, 1, activation=config.blocks[-1].activation if config.blocks else "relu6")
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout),
                                        nn.Linear(head, config.num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1))


@dataclass(frozen=True)
class PlainCNNConfig:
    channels: tuple[int, ...] = (64, 128, 256)   # one stage per entry, max-pool 2x2 after each
    convs_per_stage: int = 2
    in_channels: int = 3
    num_classes: int = 10
    dropout: float = 0.2


class PlainCNN(nn.Module):
    """VGG-style baseline: stages of [3x3 conv-BN-ReLU] x n + max-pool, global average pool, linear."""

    def __init__(self, config: PlainCNNConfig | None = None):
        super().__init__()
        config = config or PlainCNNConfig()
        self.config = config
        layers, c = [], config.in_channels
        for width in config.channels:
            for _ in range(config.convs_per_stage):
                layers.append(conv_bn(c, width, 3, activation="relu"))
                c = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout),
                                        nn.Linear(c, config.num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1))


def _init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs (fan_out, as torchvision's MobileNets), unit BN, small linear layers."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------ closed-form parameter counts
def separable_params(c_in: int, c_out: int, kernel_size: int = 3) -> int:
    """Parameters of :class:`DepthwiseSeparableConv` (conv weights + BN gamma/beta)."""
    return c_in * kernel_size ** 2 + 2 * c_in + c_in * c_out + 2 * c_out


def se_params(channels: int, reduction: int) -> int:
    """Parameters of :class:`SqueezeExcite`: W1, b1, W2, b2 with hidden width C // r."""
    hidden = channels // reduction
    return 2 * channels * hidden + hidden + channels


def inverted_residual_params(c_in: int, c_out: int, expansion: int, kernel_size: int = 3,
                             se_reduction: int | None = None) -> int:
    """Parameters of :class:`InvertedResidual` (each conv + its BN's gamma and beta)."""
    hidden = c_in * expansion
    expand = 0 if expansion == 1 else c_in * hidden + 2 * hidden
    depthwise = hidden * kernel_size ** 2 + 2 * hidden
    se = se_params(hidden, se_reduction) if se_reduction is not None else 0
    return expand + depthwise + se + hidden * c_out + 2 * c_out
