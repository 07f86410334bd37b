"""Pre- vs post-activation residual networks of equal size (hw2cnn.P3, theory hw2cnn.Q1.6, Q5).

Post-activation (He et al. 2016a, "Deep Residual Learning"):  x_{l+1} = relu(x_l + BN(W2 relu(BN(W1 x_l))))
Pre-activation  (He et al. 2016b, "Identity Mappings in Deep Residual Networks"):
                                                             x_{l+1} = x_l + W2 relu(BN(W1 relu(BN(x_l))))

In the pre-activation form the shortcut is a pure identity from block to block, so
dL/dx_l = dL/dx_L (I + sum of branch Jacobians) reaches every depth unattenuated; in the post-activation
form each block's ReLU sits on the shortcut path. Both nets here have exactly the same parameters: the
post-activation stem's BN moves to the end of the pre-activation net (the final BN + ReLU before pooling).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualBlock(nn.Module):
    """(N, C, H, W) -> (N, C, H, W): two 3x3 convs, identity shortcut, BN placed before or after."""

    def __init__(self, channels: int, pre_activation: bool):
        super().__init__()
        self.pre_activation = pre_activation
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(channels), nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_activation:
            out = self.conv1(F.relu(self.bn1(x)))
            return x + self.conv2(F.relu(self.bn2(out)))
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


@dataclass(frozen=True)
class ResidualNetConfig:
    num_blocks: int = 8
    width: int = 16
    in_channels: int = 1
    num_classes: int = 10
    stem_stride: int = 2      # 28x28 MNIST -> 14x14 before the blocks
    pre_activation: bool = True


class ResidualNet(nn.Module):
    """(N, C, H, W) -> (N, K): stem conv, residual blocks at one width (2x2 max-pool halfway), GAP, linear.

    Post: stem = conv-BN-ReLU, no final norm. Pre: stem = conv, final BN-ReLU. Same parameter count.
    """

    def __init__(self, config: ResidualNetConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.stem = nn.Conv2d(config.in_channels, w, 3, config.stem_stride, 1, bias=False)
        self.stem_bn = None if config.pre_activation else nn.BatchNorm2d(w)
        self.blocks = nn.ModuleList(ResidualBlock(w, config.pre_activation) for _ in range(config.num_blocks))
        self.final_bn = nn.BatchNorm2d(w) if config.pre_activation else None
        self.fc = nn.Linear(w, config.num_classes)
        self.block_inputs: list[torch.Tensor] = []   # filled when record_activations is on
        self.record_activations = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.stem_bn is not None:
            x = F.relu(self.stem_bn(x))
        self.block_inputs = []
        for index, block in enumerate(self.blocks):
            if index == self.config.num_blocks // 2:
                x = F.max_pool2d(x, 2)  # one parameter-free downsampling halfway (14x14 -> 7x7 on MNIST)
            if self.record_activations and x.requires_grad:
                x.retain_grad()
                self.block_inputs.append(x)
            x = block(x)
        if self.final_bn is not None:
            x = F.relu(self.final_bn(x))
        return self.fc(x.mean(dim=(2, 3)))


def gradient_profile(model: ResidualNet, xb: torch.Tensor, yb: torch.Tensor) -> dict[str, list[float]]:
    """Gradients by depth (input side first) from one forward/backward in the model's current mode.

    Keys: ``activation`` ||dL/dx_l|| of each block input; ``weight`` ||dL/dW1|| of each block's first conv;
    ``cosine`` cos(dL/dx_l, dL/dx_{l+1}) for consecutive blocks of equal shape (how much of the gradient
    passes a block unchanged: 1 for a pure identity). Gradients are cleared afterwards.
    """
    model.zero_grad()
    model.record_activations = True
    try:
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        grads = [x.grad for x in model.block_inputs]
        activation = [float(g.norm()) for g in grads]
        weight = [float(block.conv1.weight.grad.norm()) for block in model.blocks]
        cosine = [float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))
                  for a, b in zip(grads, grads[1:]) if a.shape == b.shape]
    finally:
        model.record_activations = False
        model.block_inputs = []
        model.zero_grad()
    return {"activation": activation, "weight": weight, "cosine": cosine}


class LossRecorder:
    """A loss function for ``common.fit`` that also keeps every training step's loss (evaluation runs under
    ``no_grad`` and is not recorded)."""

    def __init__(self):
        self.steps: list[float] = []

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, y)
        if torch.is_grad_enabled():
            self.steps.append(float(loss.detach()))
        return loss
