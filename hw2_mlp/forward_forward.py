"""The Forward-Forward network (Hinton 2022): layers trained only by their own local loss.

Each hidden layer ``l`` sees the *direction* of the previous layer's activity (length-normalized and
detached, so no gradient ever crosses a layer boundary), computes ReLU activities ``h_l`` (B, D_l), and
scores them by the goodness ``g = sum_j h_j^2`` (B,). Its loss pushes positive data above a threshold
``theta`` and negative data below it::

    loss_l = mean(softplus([theta - g_pos, g_neg - theta]))          # = mean(log(1 + exp(...)))
             + peer_norm * mean((mean_j m_j - m_j)^2)                  # optional peer normalisation

i.e. the logistic loss of ``p(positive) = sigmoid(g - theta)``; ``m_j`` is a running mean of unit ``j``'s
activity on positive data (the paper's section 3.3 / loeweX's re-implementation: it stops units from dying
or dominating). Every layer owns its optimizer and steps on its own loss; the layers of one batch are trained
in one sweep, bottom to top.

Prediction (supervised): embed each candidate label, add up goodness over every layer but the first, pick
the largest (:meth:`SupervisedFF.label_scores`). The cheap alternative is one pass with a neutral label and
a linear softmax on the normalized activities (:func:`hw2_mlp.ff_train.fit_linear_probe`).

Speed: the label occupies 10 of the 784 input pixels, so the first layer's pre-activation of an image under
*any* one-hot label is ``W x_0 / r + b + (v / r) W[:, k]`` with ``x_0`` the image with a blank label slot and
``r`` the input's root-mean-square (the same for every one-hot label of height ``v``). :class:`SupervisedFF`
computes the shared part once per image: half the first layer's work in a training step (positive and
negative share it) and a tenth of it when scoring all ten labels (``shared_first_layer=False`` is the plain
path, kept for the benchmark and the equivalence test).

Run the experiments with ``python -m hw2_mlp.ff_run`` (see that module).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ff_data import NUM_CLASSES, embed_label, every_label, flatten_images, neutral_labels

NORM_EPS = 1e-8
# Chosen in a 5-epoch sweep on 5k training images, scored on 2k validation images (not test): against
# (theta 1.0, label 1.0) these raised validation accuracy from 0.78 to 0.87 at lr 3e-3.
THETA_PER_UNIT = 0.5  # threshold on the mean squared activity; theta_l = THETA_PER_UNIT * D_l
LABEL_VALUE = 3.0     # height of the embedded one-hot label (pixels are in [0, 1])
PEER_MOMENTUM = 0.9   # running mean of the per-unit activity for peer normalisation (loeweX's value)


def length_normalize(h: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Keep only the direction of each row: (B, D) -> (B, D) with every row of length sqrt(D).

    Dividing by the root-mean-square (not the plain length) keeps unit-sized entries whatever the width,
    so the next layer's initialisation does not depend on D. The goodness of ``h`` — its squared length —
    is removed, so the next layer cannot simply read off the previous layer's verdict.
    """
    return h / (h.pow(2).mean(dim=1, keepdim=True).sqrt() + eps)


class _ReLUFullGrad(torch.autograd.Function):
    """ReLU forward, identity backward: a unit below zero still receives its gradient."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        return z.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def relu_full_grad(z: torch.Tensor) -> torch.Tensor:
    """``relu(z)`` whose gradient passes through unchanged, also where ``z < 0`` (loeweX's ``ReLU_full_grad``).

    The goodness term cannot tell the difference: its gradient with respect to ``h`` is ``2 h``, zero for a
    silent unit either way. Only the peer-normalisation term changes: it can now raise a unit that is silent
    on the whole batch, so a dead unit comes back instead of staying dead.
    """
    return _ReLUFullGrad.apply(z)


def goodness(h: torch.Tensor) -> torch.Tensor:
    """Sum of squared activities: (B, D) -> (B,)."""
    return h.pow(2).sum(dim=1)


def ff_loss(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float) -> torch.Tensor:
    """``mean(log(1 + exp([theta - g_pos, g_neg - theta])))``, computed stably with softplus.

    Small when positives have goodness above ``theta`` and negatives below it; each term is the negative
    log-probability ``-log sigmoid(+-(g - theta))`` of classifying that example correctly.
    """
    return F.softplus(torch.cat([theta - g_pos, g_neg - theta])).mean()


class FFLayer(nn.Module):
    """A fully-connected ReLU layer with its own threshold: normalized (B, D_in) -> activities (B, D_out).

    Args:
        theta_per_unit: ``theta = theta_per_unit * out_features`` (a mean squared activity).
        peer_norm: weight of the peer-normalisation term in :meth:`loss` (0 = off).
        full_grad: train through :func:`relu_full_grad` instead of the plain ReLU (the forward pass is the same).
    """

    def __init__(self, in_features: int, out_features: int, theta_per_unit: float = THETA_PER_UNIT,
                 peer_norm: float = 0.0, peer_momentum: float = PEER_MOMENTUM, full_grad: bool = False):
        super().__init__()
        self.full_grad = bool(full_grad)
        self.linear = nn.Linear(in_features, out_features)
        # threshold on the sum of squares = theta_per_unit * width: a mean squared activity of theta_per_unit
        self.theta = float(theta_per_unit) * out_features
        self.peer_norm, self.peer_momentum = float(peer_norm), float(peer_momentum)
        # running mean activity per unit on positive data; starts at the activity the threshold asks for
        self.register_buffer("running_mean", torch.full((out_features,), math.sqrt(theta_per_unit)))
        nn.init.normal_(self.linear.weight, 0.0, 1.0 / math.sqrt(in_features))
        nn.init.zeros_(self.linear.bias)

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.linear(x))

    def loss(self, x_pos: torch.Tensor, x_neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Local loss on one batch of normalized inputs, and detached statistics for the logs."""
        z = self.linear(torch.cat([x_pos, x_neg]))  # one matmul for both halves
        return self.loss_from_preactivation(z[:len(x_pos)], z[len(x_pos):])

    def loss_from_preactivation(self, z_pos: torch.Tensor, z_neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """:meth:`loss` given the pre-activations ``W x + b`` of positives (B, D) and negatives (B', D)."""
        act = relu_full_grad if self.full_grad else F.relu
        h_pos, h_neg = act(z_pos), act(z_neg)
        g_pos, g_neg = goodness(h_pos), goodness(h_neg)
        loss = ff_loss(g_pos, g_neg, self.theta)
        peer = torch.zeros((), device=z_pos.device)
        if self.peer_norm > 0 and self.training:
            mean = self.running_mean * self.peer_momentum + h_pos.mean(0) * (1.0 - self.peer_momentum)
            peer = (mean.mean() - mean).pow(2).mean()
            loss = loss + self.peer_norm * peer
            with torch.no_grad():
                self.running_mean.copy_(mean)
        with torch.no_grad():
            correct = (g_pos > self.theta).sum() + (g_neg <= self.theta).sum()
            stats = {"loss": loss.detach(), "g_pos": g_pos.mean(), "g_neg": g_neg.mean(),
                     "ff_acc": correct / (len(g_pos) + len(g_neg)), "peer": peer.detach(),
                     "out_pos": h_pos.detach(), "out_neg": h_neg.detach()}
        return loss, stats


STAT_KEYS = ("loss", "g_pos", "g_neg", "ff_acc", "peer")


class FFNet(nn.Module):
    """A stack of :class:`FFLayer`. Input (B, D_in) raw pixels (label embedded or not).

    Args:
        sizes: ``(D_in, D_1, ..., D_L)``.
        theta_per_unit: threshold per unit of width (``theta_l = theta_per_unit * D_l``).
        peer_norm: weight of every layer's peer-normalisation term (0 = off).
        full_grad: every layer trains through :func:`relu_full_grad`.
    """

    def __init__(self, sizes: tuple[int, ...], theta_per_unit: float = THETA_PER_UNIT, peer_norm: float = 0.0,
                 full_grad: bool = False):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes must list the input width and at least one layer, got {sizes}")
        self.sizes = tuple(int(s) for s in sizes)
        self.layers = nn.ModuleList(FFLayer(a, b, theta_per_unit, peer_norm, full_grad=full_grad)
                                    for a, b in zip(sizes[:-1], sizes[1:]))

    def activities(self, X: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer ReLU activities [(B, D_1), ..., (B, D_L)]; each layer sees the normalized, detached
        output of the layer below."""
        return self._activities_from(F.relu(self.layers[0].linear(length_normalize(flatten_images(X)))))

    def _activities_from(self, h: torch.Tensor) -> list[torch.Tensor]:
        """Given layer 1's activities, run layers 2..L: the list of every layer's activities."""
        out = [h]
        for layer in self.layers[1:]:
            h = layer(length_normalize(h.detach()))
            out.append(h)
        return out

    def layer_losses(self, x_pos: torch.Tensor, x_neg: torch.Tensor) -> list[tuple[torch.Tensor, dict]]:
        """Every layer's local loss on one batch: ``[(loss_l, stats_l), ...]``.

        Layer ``l + 1`` receives the normalized activities of layer ``l`` *detached*, so the graph of
        ``loss_l`` contains layer ``l``'s parameters and nothing else.
        """
        x_pos, x_neg = length_normalize(flatten_images(x_pos)), length_normalize(flatten_images(x_neg))
        return self._losses_from(self.layers[0].loss(x_pos, x_neg))

    def _losses_from(self, first: tuple[torch.Tensor, dict]) -> list[tuple[torch.Tensor, dict]]:
        out = [first]
        for layer in self.layers[1:]:
            stats = out[-1][1]
            out.append(layer.loss(length_normalize(stats.pop("out_pos")), length_normalize(stats.pop("out_neg"))))
        for _, stats in out[-1:]:
            stats.pop("out_pos"), stats.pop("out_neg")
        return out

    @staticmethod
    def _step(losses: list[tuple[torch.Tensor, dict]], optimizers: list[torch.optim.Optimizer]) -> list[dict]:
        stats = []
        for (loss, record), optimizer in zip(losses, optimizers):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stats.append(record)
        return stats

    def train_step(self, x_pos: torch.Tensor, x_neg: torch.Tensor,
                   optimizers: list[torch.optim.Optimizer]) -> list[dict]:
        """One update of every layer on one batch, each from its own loss only. Returns per-layer stats."""
        return self._step(self.layer_losses(x_pos, x_neg), optimizers)

    def features(self, X: torch.Tensor, skip_first: bool = True) -> torch.Tensor:
        """Normalized activities of the hidden layers (all but the first when ``skip_first`` and L > 1),
        concatenated: (B, sum D_l). Input to a linear classifier; the net is used in inference mode only."""
        with torch.no_grad():
            acts = self.activities(X)
        if skip_first and len(acts) > 1:
            acts = acts[1:]
        return torch.cat([length_normalize(h) for h in acts], dim=1)


class SupervisedFF(FFNet):
    """FF net whose inputs carry a label in their first ``num_classes`` pixels.

    ``shared_first_layer`` (default on) computes the label-independent part of the first layer once per image
    (see the module docstring); results equal the plain path up to float rounding.
    """

    def __init__(self, sizes: tuple[int, ...], theta_per_unit: float = THETA_PER_UNIT,
                 num_classes: int = NUM_CLASSES, label_value: float = LABEL_VALUE, peer_norm: float = 0.0,
                 shared_first_layer: bool = True, full_grad: bool = False):
        super().__init__(sizes, theta_per_unit, peer_norm, full_grad)
        self.num_classes, self.label_value = num_classes, float(label_value)
        self.shared_first_layer = bool(shared_first_layer)

    def embed(self, X: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return embed_label(X, labels, self.num_classes, self.label_value)

    def _shared(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Label-free part of layer 1 for one-hot inputs: ``(W x_0 / r + b  (B, D_1), v / r  (B, 1))``."""
        flat = flatten_images(X)
        blank = flat.clone()
        blank[:, :self.num_classes] = 0.0
        # rms of the embedded input: the one-hot label adds v^2 to the squared length, whatever the label
        rms = ((blank.pow(2).sum(1, keepdim=True) + self.label_value ** 2) / flat.shape[1]).sqrt() + NORM_EPS
        return self.layers[0].linear(blank / rms), self.label_value / rms

    def _label_columns(self) -> torch.Tensor:
        """(num_classes, D_1): the first layer's weights on the label pixels, one row per label."""
        return self.layers[0].linear.weight[:, :self.num_classes].t()

    def labeled_losses(self, X: torch.Tensor, y_pos: torch.Tensor,
                       y_neg: torch.Tensor) -> list[tuple[torch.Tensor, dict]]:
        """:meth:`layer_losses` of ``embed(X, y_pos)`` vs ``embed(X, y_neg)`` (both (B,) labels)."""
        if not self.shared_first_layer:
            return self.layer_losses(self.embed(X, y_pos), self.embed(X, y_neg))
        base, scale = self._shared(X)
        columns = self._label_columns()
        first = self.layers[0].loss_from_preactivation(base + scale * columns[y_pos],
                                                       base + scale * columns[y_neg])
        return self._losses_from(first)

    def labeled_step(self, X: torch.Tensor, y_pos: torch.Tensor, y_neg: torch.Tensor,
                     optimizers: list[torch.optim.Optimizer]) -> list[dict]:
        """:meth:`train_step` on true labels ``y_pos`` vs wrong labels ``y_neg`` of the images ``X``."""
        return self._step(self.labeled_losses(X, y_pos, y_neg), optimizers)

    @torch.no_grad()
    def label_scores(self, X: torch.Tensor) -> torch.Tensor:
        """Goodness per unit accumulated over the layers (all but the first when L > 1), for every candidate
        label: (B, ...) -> (B, num_classes). One batched pass of B * num_classes rows, no loop over labels."""
        if self.shared_first_layer:
            base, scale = self._shared(X)  # (B, D_1), (B, 1)
            z = base.unsqueeze(1) + scale.unsqueeze(1) * self._label_columns().unsqueeze(0)  # (B, K, D_1)
            acts = self._activities_from(F.relu(z.reshape(-1, z.shape[-1])))
        else:
            acts = self.activities(every_label(X, self.num_classes, self.label_value))
        used = acts[1:] if len(acts) > 1 else acts
        total = sum(goodness(h) for h in used) / sum(h.shape[1] for h in used)
        return total.view(-1, self.num_classes)

    @torch.no_grad()
    def predict(self, X: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Label with the largest accumulated goodness: (N, ...) -> (N,) int64."""
        return torch.cat([self.label_scores(X[i:i + batch_size]).argmax(1)
                          for i in range(0, len(X), batch_size)])

    def neutral_features(self, X: torch.Tensor) -> torch.Tensor:
        """:meth:`features` of the images with a neutral label (every entry ``label_value / num_classes``,
        the same total as a one-hot label): the one-pass classifier's input."""
        neutral = neutral_labels(len(X), self.num_classes, X.device) * self.label_value
        return self.features(embed_label(X, neutral, self.num_classes))


def backprop_mlp(sizes: tuple[int, ...], num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """The same architecture trained end to end with backprop: Flatten, [Linear, ReLU] * L, Linear head."""
    modules: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes[:-1], sizes[1:]):
        modules += [nn.Linear(a, b), nn.ReLU()]
    modules.append(nn.Linear(sizes[-1], num_classes))
    return nn.Sequential(*modules)


OPTIMIZERS = ("adam", "sgd")


def make_optimizer(params, optimizer: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                   fused: bool = False) -> torch.optim.Optimizer:
    """``"adam"`` (``fused`` as given) or ``"sgd"`` with ``momentum``: the update rule of the FF layers and of
    the linear read-outs."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def layer_optimizers(net: FFNet, lr: float, weight_decay: float = 0.0, fused: bool | None = None, *,
                     optimizer: str = "adam", momentum: float = 0.9) -> list[torch.optim.Optimizer]:
    """One optimizer per layer: each layer's update depends on nothing but its own parameters and loss.

    ``optimizer="adam"`` (the default) or ``"sgd"`` with ``momentum`` (loeweX's recipe: SGD, momentum 0.9,
    weight decay 3e-4). ``fused`` (default: on for float parameters on CPU and CUDA) runs Adam's update as one
    kernel per layer instead of a dozen element-wise passes per tensor: on one CPU thread that update took
    half of a 3 x 1000 training step (benchmarks/bench_ff.py); the result is the same update.
    """
    if fused is None:
        params = list(net.parameters())
        fused = all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in params)
    return [make_optimizer(layer.parameters(), optimizer, lr, weight_decay, momentum, fused)
            for layer in net.layers]
