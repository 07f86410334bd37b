"""Batch-normalisation experiments of hw2cnn.P3 (theory hw2cnn.Q1.2, Q1.3, Q1.5; residual nets: residual.py).

Tools, each a measurement the notebook turns into a claim with an assert:

- :func:`batch_statistics` / :func:`recalibrate_bn`: evaluate with the statistics of the batch at hand, or
  re-estimate the running statistics on new data (AdaBN, Li et al. 2016), to expose the train/eval mismatch
  for small batches and for shifted test inputs;
- :func:`fold_conv_bias` and :func:`bias_gradient_ratio`: a conv bias in front of BN is redundant;
- :func:`scaling_table`: what multiplying conv weights or inputs by alpha does under each BN mode;
- :func:`dropout_variance`: the variance shift of dropout placed after BN (Li et al. 2019, "Understanding
  the Disharmony between Dropout and Batch Normalization by Variance Shift") measured against its formula
  Var_train = Var_eval + p/(1-p) * sum_i w_i^2 E[x_i^2] for a linear layer after the dropout.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch
import torch.nn as nn

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


class BNConvNet(nn.Module):
    """(N, C, H, W) -> (N, K): 3 x [conv3x3 -> BN -> ReLU] (max-pool after the first two), GAP, linear.

    ``bias``: conv biases on or off. ``first_bn=False`` drops the BN after the first conv, so the input
    reaches a nonlinearity without any normalisation in between (the contrast case of Q1.3).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, bias: bool = False,
                 first_bn: bool = True):
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(in_channels, w, 3, padding=1, bias=bias or not first_bn)]
        layers += [nn.BatchNorm2d(w)] if first_bn else []
        layers += [nn.ReLU(), nn.MaxPool2d(2),
                   nn.Conv2d(w, 2 * w, 3, padding=1, bias=bias), nn.BatchNorm2d(2 * w), nn.ReLU(),
                   nn.MaxPool2d(2),
                   nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=bias), nn.BatchNorm2d(2 * w), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class BNDropoutMLP(nn.Module):
    """(N, C, H, W) -> (N, K): flatten, [linear -> BN -> ReLU -> dropout(p)], linear -> BN -> ReLU, linear.

    ``probe`` is the linear layer right after the dropout; its output feeds the second BN, whose running
    variance (collected with dropout on) is what the variance shift corrupts.
    """

    def __init__(self, in_features: int, num_classes: int = 10, hidden: int = 128, p: float = 0.5):
        super().__init__()
        self.block1 = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden),
                                    nn.ReLU())
        self.dropout = nn.Dropout(p)
        self.probe = nn.Linear(hidden, hidden)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn2(self.probe(self.dropout(self.block1(x)))))


def bn_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, BN_TYPES)]


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, BN layers normalise with each batch's own statistics (train-mode BN) while the rest
    of the model (dropout) stays in eval mode and the running statistics are left untouched (momentum 0)."""
    was_training = model.training
    saved = [(m, m.momentum) for m in bn_layers(model)]
    model.eval()
    for m, _ in saved:
        m.train()
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
    try:
        yield model
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)


@torch.no_grad()
def predict_labels(model: nn.Module, X: torch.Tensor, batch_size: int = 512,
                   bn_mode: str = "eval") -> torch.Tensor:
    """Argmax predictions over X in batches; ``bn_mode``: ``eval`` (running stats) or ``batch`` (batch stats).

    With ``batch`` the trailing partial batch is dropped (its statistics would come from fewer samples), so
    the result covers ``len(X) // batch_size * batch_size`` samples.
    """
    if bn_mode not in ("eval", "batch"):
        raise ValueError(f"bn_mode must be 'eval' or 'batch', got {bn_mode!r}")
    n = len(X) if bn_mode == "eval" else len(X) // batch_size * batch_size
    if n == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the {len(X)} samples given")
    context = batch_statistics(model) if bn_mode == "batch" else contextlib.nullcontext()
    was_training = model.training
    if bn_mode == "eval":
        model.eval()
    with context:
        preds = torch.cat([model(X[i:i + batch_size]).argmax(1) for i in range(0, n, batch_size)])
    model.train(was_training)
    return preds


def accuracy_by_bn_mode(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_sizes: tuple[int, ...],
                        seed: int = 0) -> list[dict]:
    """Test accuracy with running statistics vs with the statistics of test batches of each size."""
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed)).to(X.device)
    X, y = X[order], y[order]  # batch composition random, not sorted by class
    eval_acc = float((predict_labels(model, X) == y).float().mean())
    rows = []
    for b in batch_sizes:
        pred = predict_labels(model, X, b, "batch")
        rows.append({"batch_size": b, "acc_running_stats": eval_acc,
                     "acc_batch_stats": float((pred == y[:len(pred)]).float().mean())})
    return rows


@torch.no_grad()
def recalibrate_bn(model: nn.Module, X: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Re-estimate every BN layer's running statistics as the plain average over batches of ``X`` (in place).

    Only BN layers run in train mode meanwhile (dropout stays off); the model is returned in eval mode.
    """
    layers = bn_layers(model)
    saved = [m.momentum for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
        m.train()
    for i in range(0, len(X), batch_size):
        model(X[i:i + batch_size])
    for m, momentum in zip(layers, saved):
        m.momentum = momentum
    return model.eval()


def shift_intensity(X: torch.Tensor, scale: float, offset: float) -> torch.Tensor:
    """A covariate shift of the test inputs: x -> scale * x + offset (contrast and brightness)."""
    return X * scale + offset


# ------------------------------------------------------------------------------------------------ conv bias
def conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(conv, BN) pairs where the BN directly follows the conv inside an ``nn.Sequential``."""
    pairs = []
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            children = list(seq)
            pairs += [(a, b) for a, b in zip(children, children[1:])
                      if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d)]
    return pairs


@torch.no_grad()
def fold_conv_bias(model: nn.Module) -> nn.Module:
    """A copy with every conv bias in front of a BN removed and absorbed into that BN's running mean.

    Eval-mode BN computes gamma (z + b - mu) / sigma + beta, which equals gamma (z - (mu - b)) / sigma + beta:
    the same function with no bias. (In train mode the batch mean removes ``b`` by itself.)
    """
    folded = copy.deepcopy(model)
    pairs = conv_bn_pairs(folded)
    if not any(conv.bias is not None for conv, _ in pairs):
        raise ValueError("no conv with a bias directly followed by BatchNorm2d was found to fold")
    for conv, bn in pairs:
        if conv.bias is not None:
            bn.running_mean -= conv.bias
            conv.bias = None
    return folded


def bias_gradient_ratio(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> float:
    """max over conv->BN pairs of |dL/db| / |dL/dW| in train mode: 0 up to rounding (b is never learned)."""
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(model(xb), yb).backward()
    ratios = [float(conv.bias.grad.norm() / conv.weight.grad.norm()) for conv, _ in conv_bn_pairs(model)
              if conv.bias is not None]
    model.zero_grad()
    if not ratios:
        raise ValueError("the model has no conv bias in front of a BN")
    return max(ratios)


# ------------------------------------------------------------------------------------------- weight scaling
def _max_change(model: nn.Module, x: torch.Tensor, reference: torch.Tensor, mode: str,
                calibration: torch.Tensor) -> float:
    with torch.no_grad():
        if mode == "batch":
            with batch_statistics(model):
                out = model(x)
        else:
            if mode == "recalibrated":
                recalibrate_bn(model, calibration)
            out = model.eval()(x)
    return float((out - reference).abs().max() / reference.abs().max())


def scaling_table(model: nn.Module, x: torch.Tensor, calibration: torch.Tensor,
                  alpha: float = 3.0) -> list[dict]:
    """Relative max change of the logits when conv weights or inputs are multiplied by ``alpha`` (float64).

    Columns: ``batch`` (train-mode BN, statistics of ``x`` itself), ``frozen`` (eval mode with the running
    statistics learned in training), ``recalibrated`` (running statistics re-estimated on ``calibration``
    after the change, compared with the unchanged model recalibrated on the same data).
    Rows: first conv's weights * alpha, every conv's weights * alpha, inputs * alpha.
    """
    base = copy.deepcopy(model).double().eval()
    x, calibration = x.double(), calibration.double()
    with torch.no_grad():
        references = {"frozen": base(x)}
        with batch_statistics(base):
            references["batch"] = base(x)
        references["recalibrated"] = recalibrate_bn(copy.deepcopy(base), calibration).eval()(x)
    convs = [name for name, m in base.named_modules() if isinstance(m, nn.Conv2d)]
    cases = {"first conv weights x alpha": convs[:1], "all conv weights x alpha": convs, "inputs x alpha": []}
    rows = []
    for case, names in cases.items():
        row = {"change": case}
        for mode in ("batch", "frozen", "recalibrated"):
            net = copy.deepcopy(base)
            with torch.no_grad():
                for name in names:
                    net.get_submodule(name).weight.mul_(alpha)
            scale = alpha if case.startswith("inputs") else 1.0
            row[mode] = _max_change(net, scale * x, references[mode], mode, scale * calibration)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ dropout variance shift
@torch.no_grad()
def dropout_variance(model: BNDropoutMLP, X: torch.Tensor, num_masks: int = 32) -> dict[str, torch.Tensor]:
    """Per-unit variance of the probe layer's output (the second BN's input), four ways (all (hidden,)):

    ``eval``: dropout off (test time); ``train``: dropout on, averaged over ``num_masks`` draws;
    ``predicted``: eval variance + p/(1-p) * sum_i w_ji^2 E[x_i^2] (x = dropout input);
    ``running``: the second BN's running variance, i.e. what test-time normalisation divides by.
    """
    was_training = model.training
    model.eval()
    x = model.block1(X)                       # (N, hidden): dropout input
    W = model.probe.weight                     # (hidden_out, hidden_in)
    eval_var = model.probe(x).var(0)
    model.dropout.train()
    draws = torch.stack([model.probe(model.dropout(x)) for _ in range(num_masks)])  # (masks, N, hidden)
    train_var = draws.var(1).mean(0)
    p = model.dropout.p
    predicted = eval_var + p / (1 - p) * (W ** 2 @ (x ** 2).mean(0))
    model.train(was_training)
    return {"eval": eval_var, "train": train_var, "predicted": predicted,
            "running": model.bn2.running_var.clone()}
