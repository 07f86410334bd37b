"""Executable checks behind ``theory/hw7_1402.md`` (IUST HW7, summer 2023: NAS, multi-task, GANs).

Small, seeded toys: REINFORCE's gradient against the exact one, a DARTS mixed operation, aging evolution on a
detector-configuration grid, successive halving, a function-preserving widening (Net2Net), class weights and
focal loss, F1 vs accuracy, AdaIN and style mixing, and the CycleGAN generator loss evaluated with trained
discriminators.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from common import torch_threads

# --------------------------------------------------------------------------------- NAS (Q1)


def reinforce_vs_exact(logits, rewards, n_samples: int = 200_000,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of E_{a~softmax(logits)}[R(a)] w.r.t. the logits: Monte Carlo REINFORCE and the exact value.

    REINFORCE: mean over samples of R(a) * d log pi(a) / d logits = R(a) * (onehot(a) - pi).
    Exact: d/dlogit_j sum_a pi_a R_a = pi_j (R_j - E[R]).
    """
    rng = np.random.default_rng(seed)
    logits, rewards = np.asarray(logits, float), np.asarray(rewards, float)
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    a = rng.choice(len(pi), size=n_samples, p=pi)
    onehot = np.eye(len(pi))[a]
    mc = (rewards[a][:, None] * (onehot - pi)).mean(0)
    exact = pi * (rewards - pi @ rewards)
    return mc, exact


def darts_mixed_op(x: torch.Tensor, alpha: torch.Tensor, ops) -> torch.Tensor:
    """DARTS continuous relaxation: o_bar(x) = sum_i softmax(alpha)_i * o_i(x)."""
    w = torch.softmax(alpha, 0)
    return sum(wi * op(x) for wi, op in zip(w, ops))


# MetaQNN toy: an architecture is a sequence of at most two layers from {"conv", "pool"}, then "stop"; the
# reward (a made-up validation accuracy) is paid when the network is finished.
TOY_ACCURACY = {("conv",): 0.60, ("pool",): 0.55, ("conv", "conv"): 0.70, ("conv", "pool"): 0.80,
                ("pool", "conv"): 0.65, ("pool", "pool"): 0.50}


def _actions(state: tuple[str, ...], max_layers: int = 2) -> list[str]:
    layers = ["conv", "pool"] if len(state) < max_layers else []
    return layers + (["stop"] if state else [])


def exact_q(accuracy: dict = TOY_ACCURACY) -> dict[tuple, float]:
    """Q*(s, a) by backward induction (gamma = 1): Q(s, stop) = accuracy(s),
    Q(s, layer) = max_a' Q(s + layer, a')."""
    q: dict[tuple, float] = {}

    def value(state):
        best = -math.inf
        for a in _actions(state):
            q[state, a] = accuracy[state] if a == "stop" else value(state + (a,))
            best = max(best, q[state, a])
        return best

    value(())
    return q


def metaqnn_q_learning(episodes: int = 2000, alpha: float = 0.1, seed: int = 0,
                       accuracy: dict = TOY_ACCURACY) -> dict[tuple, float]:
    """Tabular Q-learning with epsilon-greedy exploration annealed from 1 to 0.1, as in MetaQNN (no replay):
    Q(s, a) <- (1 - alpha) Q(s, a) + alpha [r + max_a' Q(s', a')], r = accuracy when the action is "stop"."""
    rng = np.random.default_rng(seed)
    q = {key: 0.5 for key in exact_q(accuracy)}               # optimistic-ish start, as MetaQNN's 0.5
    for episode in range(episodes):
        epsilon = max(0.1, 1.0 - episode / (0.7 * episodes))
        state = ()
        while True:
            actions = _actions(state)
            if rng.random() < epsilon:
                a = actions[rng.integers(len(actions))]
            else:
                a = max(actions, key=lambda b: q[state, b])
            if a == "stop":
                target = accuracy[state]
            else:
                nxt = state + (a,)
                target = max(q[nxt, b] for b in _actions(nxt))
            q[state, a] = (1 - alpha) * q[state, a] + alpha * target
            if a == "stop":
                break
            state = state + (a,)
    return q


def greedy_architecture(q: dict[tuple, float]) -> tuple[str, ...]:
    """Follow argmax_a Q(s, a) from the empty network until "stop"."""
    state: tuple[str, ...] = ()
    while (a := max(_actions(state), key=lambda b: q[state, b])) != "stop":
        state += (a,)
    return state


DETECTOR_SIZES = tuple(range(320, 641, 32))   # input resolution choices (11)
DETECTOR_LAYERS = tuple(range(2, 13))          # number of extra conv layers (11)


def detector_score(size: int, layers: int) -> float:
    """A synthetic 'mAP minus cost' landscape with one optimum, for the search toys (not a real detector)."""
    acc = 0.5 - 0.35 * ((size - 512) / 320) ** 2 - 0.004 * (layers - 8) ** 2
    cost = 0.02 * (size / 640) ** 2 * layers / 12
    return acc - cost


def aging_evolution(budget: int = 40, population: int = 10, sample: int = 3, seed: int = 0) -> dict:
    """Regularized (aging) evolution of Real et al. on the detector grid.

    Each cycle: sample S members, mutate the best (move one coordinate by one step), evaluate the child,
    append it, and remove the *oldest* member (not the worst). Returns the best found and whether the
    oldest-removal invariant held (the population is always the most recent ``population`` children).
    """
    rng = np.random.default_rng(seed)
    n_s, n_l = len(DETECTOR_SIZES), len(DETECTOR_LAYERS)
    score = lambda g: detector_score(DETECTOR_SIZES[g[0]], DETECTOR_LAYERS[g[1]])
    history = [(int(rng.integers(n_s)), int(rng.integers(n_l))) for _ in range(population)]
    pop = list(history)
    while len(history) < budget:
        parent = max((pop[i] for i in rng.choice(len(pop), size=sample, replace=False)), key=score)
        axis, step = int(rng.integers(2)), int(rng.choice([-1, 1]))
        child = list(parent)
        child[axis] = int(np.clip(child[axis] + step, 0, (n_s, n_l)[axis] - 1))
        history.append(tuple(child))
        pop.append(tuple(child))
        pop.pop(0)  # aging: the oldest goes, whatever its score
    best = max(history, key=score)
    return {"best": (DETECTOR_SIZES[best[0]], DETECTOR_LAYERS[best[1]]), "best_score": score(best),
            "aging_ok": pop == history[-population:], "evaluations": len(history)}


def random_search(budget: int = 40, seed: int = 0) -> float:
    """Best score of ``budget`` uniformly random configurations of the same grid."""
    rng = np.random.default_rng(seed)
    return max(detector_score(DETECTOR_SIZES[rng.integers(11)], DETECTOR_LAYERS[rng.integers(11)])
               for _ in range(budget))


# ------------------------------------------------------------------------------ cheaper evaluation (Q2)
def successive_halving(n_configs: int = 81, max_epochs: int = 81, eta: int = 3) -> list[tuple[int, int]]:
    """Rounds of (configurations alive, epochs each): keep the top 1/eta and give them eta times more epochs.

    n_configs must be a power of eta; the first round trains each config max_epochs / n_configs epochs.
    """
    n_rounds = round(math.log(n_configs, eta))
    if eta ** n_rounds != n_configs:
        raise ValueError(f"n_configs={n_configs} is not a power of eta={eta}")
    return [(n_configs // eta ** i, max_epochs * eta ** i // n_configs) for i in range(n_rounds + 1)]


def net2wider(lin1: nn.Linear, lin2: nn.Linear, unit: int) -> tuple[nn.Linear, nn.Linear]:
    """Function-preserving widening (Net2Net): copy hidden ``unit``, halve both copies' outgoing weights."""
    w1, b1, w2 = lin1.weight.data, lin1.bias.data, lin2.weight.data
    new1 = nn.Linear(lin1.in_features, lin1.out_features + 1).to(w1.dtype)
    new2 = nn.Linear(lin2.in_features + 1, lin2.out_features).to(w1.dtype)
    new1.weight.data = torch.cat([w1, w1[unit:unit + 1]])
    new1.bias.data = torch.cat([b1, b1[unit:unit + 1]])
    w2 = torch.cat([w2, w2[:, unit:unit + 1]], 1).clone()
    w2[:, unit] /= 2
    w2[:, -1] /= 2
    new2.weight.data, new2.bias.data = w2, lin2.bias.data.clone()
    return new1, new2


# ------------------------------------------------------------------------ imbalance, multi-task (Q3)
def oversample_conflict(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Joint counts (topics x sentiments). Oversample every sentiment column to the largest column's total.

    Returns the sentiment and topic marginals before and after: balancing one task re-weights the other.
    """
    counts = np.asarray(counts, float)
    col = counts.sum(0)
    after = counts * (col.max() / col)
    return {"sentiment_before": col / col.sum(), "sentiment_after": after.sum(0) / after.sum(),
            "topic_before": counts.sum(1) / counts.sum(), "topic_after": after.sum(1) / after.sum()}


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Inverse-frequency class weights n / (k * n_c), the 'balanced' heuristic."""
    classes, n_c = np.unique(y, return_counts=True)
    return len(y) / (len(classes) * n_c)


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
               alpha: float = 0.25) -> torch.Tensor:
    """Binary focal loss of Lin et al. (per element): -alpha_t (1 - p_t)^gamma log p_t, by hand."""
    p = torch.sigmoid(logits)
    p_t = torch.where(targets == 1, p, 1 - p)
    alpha_t = torch.where(targets == 1, torch.full_like(p, alpha), torch.full_like(p, 1 - alpha))
    return -alpha_t * (1 - p_t) ** gamma * torch.log(p_t)


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Per-element class-weighted binary cross-entropy: the positive term multiplied by ``pos_weight``."""
    p = torch.sigmoid(logits)
    return -(pos_weight * targets * torch.log(p) + (1 - targets) * torch.log(1 - p))


# ------------------------------------------------------------------------------------ StyleGAN (Q4)
def mapping_network(dim: int = 512, depth: int = 8) -> nn.Sequential:
    """StyleGAN's f: Z -> W, ``depth`` fully connected layers of width ``dim`` with leaky ReLU."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(dim, dim), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


def adain(x: torch.Tensor, y_s: torch.Tensor, y_b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """AdaIN(x, y) = y_s * (x - mu(x)) / sigma(x) + y_b, per sample and channel.

    x: (B, C, H, W) feature maps; y_s, y_b: (B, C) style scale and bias.
    """
    mu = x.mean((2, 3), keepdim=True)
    sigma = x.std((2, 3), keepdim=True, unbiased=False)
    return y_s[:, :, None, None] * (x - mu) / (sigma + eps) + y_b[:, :, None, None]


@dataclass
class ToySynthesis:
    """A few conv + AdaIN layers driven by per-layer styles from learned affine maps A_i: w -> (y_s, y_b)."""

    channels: int = 8
    w_dim: int = 16
    n_layers: int = 4
    seed: int = 0

    def __post_init__(self):
        torch.manual_seed(self.seed)
        self.const = torch.randn(1, self.channels, 4, 4)
        self.convs = [nn.Conv2d(self.channels, self.channels, 3, padding=1) for _ in range(self.n_layers)]
        self.affines = [nn.Linear(self.w_dim, 2 * self.channels) for _ in range(self.n_layers)]

    def styles(self, i: int, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.affines[i](w)
        return 1 + s[:, : self.channels], s[:, self.channels:]  # scale around 1, as StyleGAN's bias init does

    @torch.no_grad()
    def forward(self, ws: list[torch.Tensor]) -> list[torch.Tensor]:
        """ws: one w (B, w_dim) per layer (style mixing = different w's). Returns every layer's output."""
        x, outs = self.const.expand(ws[0].shape[0], -1, -1, -1), []
        for i in range(self.n_layers):
            x = adain(self.convs[i](x), *self.styles(i, ws[i]))
            outs.append(x)
        return outs


# ------------------------------------------------------------------------------------ CycleGAN (Q5)
def cyclegan_generator_loss(real_x, real_y, G, F, D_X, D_Y, lam: float = 10.0, gan: str = "lsgan") -> dict:
    """Generator objective of CycleGAN: L_GAN(G, D_Y) + L_GAN(F, D_X) + lam * L_cyc(G, F).

    gan="lsgan": (D(fake) - 1)^2 (the paper's choice in practice); gan="bce": non-saturating -log D(fake).
    L_cyc = E|F(G(x)) - x|_1 + E|G(F(y)) - y|_1.
    """
    fake_y, fake_x = G(real_x), F(real_y)
    if gan == "lsgan":
        adv = ((D_Y(fake_y) - 1) ** 2).mean() + ((D_X(fake_x) - 1) ** 2).mean()
    else:
        adv = -torch.log(D_Y(fake_y)).mean() - torch.log(D_X(fake_x)).mean()
    cyc = (F(fake_y) - real_x).abs().mean() + (G(fake_x) - real_y).abs().mean()
    return {"adv": adv, "cyc": cyc, "total": adv + lam * cyc}


class QuadraticDiscriminator:
    """D(t) = sigmoid(w . [t1^2, t2^2, t1 t2, t1, t2, 1]) on 2-D points: for two Gaussians the Bayes-optimal
    discriminator has exactly this form, so a fitted one separates the distributions as well as any can."""

    def __init__(self):
        self.w = torch.zeros(6, dtype=torch.float64, requires_grad=True)

    @staticmethod
    def features(t: torch.Tensor) -> torch.Tensor:  # (n, 2) -> (n, 6)
        return torch.stack([t[:, 0] ** 2, t[:, 1] ** 2, t[:, 0] * t[:, 1], t[:, 0], t[:, 1],
                            torch.ones(len(t), dtype=t.dtype)], 1)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.features(t) @ self.w)

    def fit(self, real: torch.Tensor, fake: torch.Tensor, max_iter: int = 30) -> "QuadraticDiscriminator":
        """Train as the discriminator step does: binary cross-entropy, real -> 1, fake -> 0 (L-BFGS)."""
        opt = torch.optim.LBFGS([self.w], max_iter=max_iter, line_search_fn="strong_wolfe")
        logits_of = lambda: torch.cat([self.features(real), self.features(fake)]) @ self.w  # noqa: E731
        labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).to(torch.float64)

        def closure():
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(logits_of(), labels)
            loss.backward()
            return loss

        opt.step(closure)
        return self


@torch_threads(1)
def cyclegan_with_trained_discriminators(G_matrix: torch.Tensor, F_matrix: torch.Tensor, n: int = 1000,
                                         seed: int = 0) -> dict[str, float]:
    """Linear generators G(x) = G_matrix x, F(y) = F_matrix y between X ~ N(0, I) and Y = M X',
    M = [[2, 0], [1, 1]] (unpaired samples). D_Y is trained on real y vs G(x), D_X on real x vs F(y); the
    generator loss (BCE, non-saturating) is then evaluated on fresh samples with those trained
    discriminators."""
    g = torch.Generator().manual_seed(seed)
    M = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    draw_x = lambda: torch.randn(n, 2, generator=g, dtype=torch.float64)           # noqa: E731
    draw_y = lambda: torch.randn(n, 2, generator=g, dtype=torch.float64) @ M.T     # noqa: E731
    G, F = (lambda x: x @ G_matrix.T), (lambda y: y @ F_matrix.T)
    x, y = draw_x(), draw_y()
    D_Y, D_X = QuadraticDiscriminator().fit(y, G(x)), QuadraticDiscriminator().fit(x, F(y))
    with torch.no_grad():
        loss = cyclegan_generator_loss(draw_x(), draw_y(), G, F, D_X, D_Y, lam=10.0, gan="bce")
    return {k: float(v) for k, v in loss.items()}
