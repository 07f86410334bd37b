"""Executable checks behind ``theory/hw7_hpo.md`` (IUST HW7, 1404: AutoML, LoRA, adapters, Fast AutoAugment).

Every function returns numbers that the Markdown answers print inside doctests, so each figure in the prose
is recomputed by ``pytest`` (``--doctest-glob=*.md``). Regenerate the committed figure with::

    python -m theory.checks.hw7            # writes theory/figures/hw7_adapter_histograms.png

Nothing here downloads anything: BERT is built from a ``BertConfig`` on the ``meta`` device (shapes only,
no memory), everything else is seeded toy tensors on the CPU.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import torch_threads

FIGURES = Path(__file__).resolve().parents[1] / "figures"

# hw7.T2a: the matrix of the question, row by row.
W_MATRIX: tuple[tuple[int, ...], ...] = (
    (1, 3, 0, 2, 3),
    (0, 1, -2, 1, 2),
    (2, 5, 1, 3, 4),
    (1, 2, 1, 1, 1),
    (3, 7, 2, 4, 5),
)

# hw7.T2b: the BERT of the question; attention = Q, K, V and output projection (weights and biases).
ATTENTION_QV = r".*attention\.self\.(query|value)"
ATTENTION_QKVO = r".*attention\.(self\.(query|key|value)|output\.dense)"


# ----------------------------------------------------------------------------------------------- rank (T2a)
def rref(rows) -> tuple[list[list[Fraction]], list[int]]:
    """Reduced row-echelon form in exact rational arithmetic (Gauss–Jordan, by hand).

    rows: sequence of m rows of n numbers.
    Returns (R, pivots): R is m x n (Fractions), pivots the list of pivot columns.
    """
    R = [[Fraction(v) for v in row] for row in rows]
    n_rows, n_cols = len(R), len(R[0])
    pivots: list[int] = []
    r = 0
    for c in range(n_cols):
        p = next((i for i in range(r, n_rows) if R[i][c] != 0), None)
        if p is None:  # no pivot in this column: it is a combination of the pivot columns to its left
            continue
        R[r], R[p] = R[p], R[r]
        R[r] = [v / R[r][c] for v in R[r]]
        for i in range(n_rows):
            if i != r and R[i][c] != 0:
                factor = R[i][c]
                R[i] = [a - factor * b for a, b in zip(R[i], R[r])]
        pivots.append(c)
        r += 1
        if r == n_rows:
            break
    return R, pivots


def rank_factorization(rows) -> tuple[np.ndarray, np.ndarray]:
    """W = C @ F with C = the pivot columns of W (m x r) and F = the non-zero rows of rref(W) (r x n)."""
    R, pivots = rref(rows)
    W = np.array(rows, dtype=object)
    C = W[:, pivots]
    F = np.array(R[: len(pivots)], dtype=object)
    return C, F


def factor_params(m: int, n: int, r: int) -> int:
    """Numbers stored by an (m x r)(r x n) factorization."""
    return r * (m + n)


def break_even_rank(m: int, n: int) -> Fraction:
    """A rank-r factorization is smaller than the dense m x n matrix iff r < mn / (m + n)."""
    return Fraction(m * n, m + n)


# ------------------------------------------------------------------------------------- LoRA counts (T2b)
@dataclass(frozen=True)
class BertSpec:
    """The BERT of hw7.T2b. ``n_heads`` and ``vocab_size`` are given but do not enter attention counts."""

    d_model: int = 1024
    n_layers: int = 24
    n_heads: int = 16
    vocab_size: int = 30_000
    d_ff: int = 4096
    rank: int = 16
    n_tasks: int = 2


def attention_params(d_model: int, n_layers: int) -> int:
    """Q, K, V, O projections, each d x d weights + d bias, in every block."""
    return n_layers * 4 * (d_model * d_model + d_model)


def lora_params(d_model: int, n_layers: int, rank: int, n_matrices: int) -> int:
    """A (r x d_in) + B (d_out x r) per adapted square projection; LoRA trains no bias."""
    return n_layers * n_matrices * rank * (d_model + d_model)


def budget(spec: BertSpec = BertSpec()) -> dict[str, dict[str, int]]:
    """Trainable and inference-stored attention parameters for the two tasks.

    LoRA stores the frozen attention once plus one small (A, B) set per task; full fine-tuning stores one
    complete attention copy per task.
    """
    base = attention_params(spec.d_model, spec.n_layers)
    out = {"full": {"trainable": spec.n_tasks * base, "stored": spec.n_tasks * base}}
    for name, k in (("lora_qv", 2), ("lora_qkvo", 4)):
        per_task = lora_params(spec.d_model, spec.n_layers, spec.rank, k)
        out[name] = {"per_task": per_task, "trainable": spec.n_tasks * per_task,
                     "stored": base + spec.n_tasks * per_task}
    out["full"]["per_task"] = base
    return out


def bert_on_meta(spec: BertSpec = BertSpec(), n_layers: int | None = None, n_heads: int | None = None):
    """A randomly-initialised ``BertModel`` built on the meta device: exact shapes, no memory, no download."""
    from transformers import BertConfig, BertModel

    config = BertConfig(hidden_size=spec.d_model, num_hidden_layers=n_layers or spec.n_layers,
                        num_attention_heads=n_heads or spec.n_heads, vocab_size=spec.vocab_size,
                        intermediate_size=spec.d_ff)
    with torch.device("meta"):
        return BertModel(config)


def count_matching(model: nn.Module, module_regex: str) -> int:
    """Parameters (weights and biases) of the modules whose qualified name fully matches ``module_regex``."""
    pattern = re.compile(module_regex)
    return sum(p.numel() for name, mod in model.named_modules() if pattern.fullmatch(name)
               for p in mod.parameters(recurse=False))


def peft_lora_trainable(model: nn.Module, module_regex: str, rank: int) -> int:
    """Trainable parameters PEFT reports after wrapping ``model`` with LoRA on the matching modules."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=module_regex, bias="none")
    wrapped = get_peft_model(model, config)
    return wrapped.get_nb_trainable_parameters()[0]


# ------------------------------------------------------------------------------- LoRA merge latency (T2c)
def lora_merge_check(d_in: int = 64, d_out: int = 48, rank: int = 4, batch: int = 5, seed: int = 0) -> dict:
    """Wrap one random Linear with LoRA (non-zero B), merge it, and compare outputs and FLOPs.

    Returns max |y_unmerged - y_merged| (float64), the FLOPs of both forwards (``FlopCounterMode``), and
    whether the merged layer is a plain ``nn.Linear`` with the original parameter count.
    """
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(d_in, d_out)).double()
    n_plain = sum(p.numel() for p in model.parameters())
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["0"],
                                                  init_lora_weights=False))  # B != 0, else the test is void
    x = torch.randn(batch, d_in, dtype=torch.float64)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            y_lora = peft_model(x)
        flops_lora = counter.get_total_flops()
        merged = peft_model.merge_and_unload()
        with FlopCounterMode(display=False) as counter:
            y_merged = merged(x)
        flops_merged = counter.get_total_flops()
    return {"max_abs_diff": float((y_lora - y_merged).abs().max()), "flops_lora": flops_lora,
            "flops_merged": flops_merged, "plain_linear": type(merged[0]) is nn.Linear,
            "same_size": sum(p.numel() for p in merged.parameters()) == n_plain}


def lora_extra_flops(batch: int, d_in: int, d_out: int, rank: int) -> int:
    """Unmerged LoRA adds x @ A^T then @ B^T: 2*batch*r*(d_in + d_out) multiply-adds counted as FLOPs."""
    return 2 * batch * rank * (d_in + d_out)


# ------------------------------------------------------------------------- adapter vs ConvBlock (T2d)
@dataclass(frozen=True)
class AdapterSim:
    """A frozen, pre-trained ConvBlock (3x3 conv, BN, ReLU) followed by the next frozen block, and a
    bottleneck adapter (1x1 down, ReLU, 1x1 up) in parallel with the first block.

    Both BNs are in eval mode with running statistics estimated beforehand on ``calibration_batches`` batches
    ("pre-training"); every measurement uses a fresh batch, so nothing is renormalised by construction.
    """

    channels: int = 32
    reduction: int = 4
    size: int = 16
    batch: int = 16
    up_init_std: float = 1e-2  # the usual small init of the adapter's last layer (starts near identity)
    scale_init: float = 0.1    # fix A's learnable per-channel scale s, at its initial value
    calibration_batches: int = 4
    seed: int = 0


def _calibrate(modules: list[nn.Module], forward, batches: list[torch.Tensor]) -> None:
    """Estimate the running statistics of the BNs in ``modules`` by ``forward`` over ``batches`` (cumulative
    average, as after pre-training), then freeze them (eval mode)."""
    bns = [m for mod in modules for m in mod.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        for xb in batches:
            forward(xb)
    for bn in bns:
        bn.eval()


@torch_threads(1)
def adapter_outputs(sim: AdapterSim = AdapterSim()) -> dict[str, torch.Tensor]:
    """Feature maps (B, C, H, W) on a fresh batch: the frozen ConvBlock, two adapters (small / default init),
    two fixes, and for each variant what the next frozen block receives.

    Fix A ("adapter_fixed"): the default-init adapter's output normalised per channel by statistics frozen on
    the calibration batches (a BN without affine, in eval mode), times a learnable per-channel scale s.
    Fix B ("block_with_inner_adapter"): the default-init adapter added to the conv output *before* the block's
    frozen BN and ReLU; "block_with_inner_adapter_restat" re-estimates that BN's statistics with the adapter
    in place (on the calibration batches) before measuring on the fresh batch.
    Keys ``next_in/<variant>`` hold the input of the next block's frozen BN (the next conv's output) for the
    variants ``block`` (no adapter), ``small``, ``default``, ``fix_a``, ``fix_b``, ``fix_b_restat``.
    """
    torch.manual_seed(sim.seed)
    c, hidden = sim.channels, sim.channels // sim.reduction
    conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    bn = nn.BatchNorm2d(c)
    next_conv, next_bn = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def bottleneck(up_std: float | None) -> nn.Sequential:
        down, up = nn.Conv2d(c, hidden, 1), nn.Conv2d(hidden, c, 1)
        if up_std is not None:
            nn.init.normal_(up.weight, std=up_std)
            nn.init.zeros_(up.bias)
        return nn.Sequential(down, nn.ReLU(), up)

    small, default = bottleneck(sim.up_init_std), bottleneck(None)
    calibration = [torch.randn(sim.batch, c, sim.size, sim.size) for _ in range(sim.calibration_batches)]
    x = torch.randn(sim.batch, c, sim.size, sim.size)            # fresh: not seen by any running statistic
    block = lambda t: torch.relu(bn(conv(t)))                     # noqa: E731
    _calibrate([bn, next_bn], lambda t: next_bn(next_conv(block(t))), calibration)
    norm_a = nn.BatchNorm2d(c, affine=False)                      # fix A's normaliser
    _calibrate([norm_a], lambda t: norm_a(default(t)), calibration)
    scale = torch.full((1, c, 1, 1), sim.scale_init)
    bn_restat = nn.BatchNorm2d(c)                                 # fix B with the block's BN re-estimated
    bn_restat.load_state_dict(bn.state_dict())
    _calibrate([bn_restat], lambda t: bn_restat(conv(t) + default(t)), calibration)
    with torch.no_grad():
        out = {"conv": block(x), "adapter": small(x), "adapter_default": default(x)}
        out["adapter_fixed"] = scale * norm_a(out["adapter_default"])
        out["block_with_inner_adapter"] = torch.relu(bn(conv(x) + out["adapter_default"]))
        out["block_with_inner_adapter_restat"] = torch.relu(bn_restat(conv(x) + out["adapter_default"]))
        feeds = {"block": out["conv"], "small": out["conv"] + out["adapter"],
                 "default": out["conv"] + out["adapter_default"], "fix_a": out["conv"] + out["adapter_fixed"],
                 "fix_b": out["block_with_inner_adapter"],
                 "fix_b_restat": out["block_with_inner_adapter_restat"]}
        for name, feed in feeds.items():
            out[f"next_in/{name}"] = next_conv(feed)
    out["next_running_mean"] = next_bn.running_mean.clone()
    out["next_running_var"] = next_bn.running_var.clone()
    return out


def next_block_shift(outs: dict[str, torch.Tensor], variant: str) -> dict[str, float]:
    """What the next frozen block sees, compared with the running statistics it was pre-trained with.

    ``mean_shift``: mean over channels of |batch mean - running mean| / running std; ``var_ratio``: mean over
    channels of batch variance / running variance (1 = no shift); ``change``: ||next_in(variant) -
    next_in(no adapter)|| / ||next_in(no adapter)|| (how much the adapter changes the next block's input).
    """
    t, ref = outs[f"next_in/{variant}"], outs["next_in/block"]
    mu, var = t.mean((0, 2, 3)), t.var((0, 2, 3), unbiased=False)
    rm, rv = outs["next_running_mean"], outs["next_running_var"]
    return {"mean_shift": float(((mu - rm).abs() / rv.sqrt()).mean()), "var_ratio": float((var / rv).mean()),
            "change": float((t - ref).norm() / ref.norm())}


def feature_stats(t: torch.Tensor) -> dict[str, float]:
    """Mean, std, fraction of exact zeros and of negatives of a feature map."""
    return {"mean": float(t.mean()), "std": float(t.std()), "zeros": float((t == 0).float().mean()),
            "negative": float((t < 0).float().mean())}


def save_adapter_histograms(path: Path | None = None, sim: AdapterSim = AdapterSim()) -> Path:
    """Write the simulated histograms that stand in for the missing figure of hw7.T2d."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path) if path else FIGURES / "hw7_adapter_histograms.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    outs = adapter_outputs(sim)
    panels = (("conv", "ConvBlock (conv-BN-ReLU, frozen)"), ("adapter", "adapter, small-init up-projection"),
              ("adapter_default", "adapter, default init"),
              ("adapter_fixed", "fix A: frozen-stat norm + scale 0.1"),
              ("block_with_inner_adapter", "fix B: add before the frozen BN-ReLU"))
    fig, axes = plt.subplots(1, 5, figsize=(18, 3.3))
    for ax, (key, title) in zip(axes, panels):
        values = outs[key].flatten().numpy()
        block_like = key in ("conv", "block_with_inner_adapter")
        ax.hist(values, bins=80, color="tab:blue" if block_like else "tab:orange")
        s = feature_stats(outs[key])
        ax.set_title(f"{title}\nmean {s['mean']:.3f}, std {s['std']:.3f}", fontsize=9)
        ax.set_yscale("log")
    fig.suptitle("Simulated output feature maps (seeded toy; the homework's own figure is missing)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------ AutoML (T1, T4)
def autoaugment_space(n_ops: int = 16, n_magnitudes: int = 10, n_probs: int = 11, n_sub_policies: int = 5,
                      ops_per_sub: int = 2) -> int:
    """Number of discrete AutoAugment policies.

    Each of the 5 sub-policies x 2 operations picks (operation, magnitude bin, probability bin).
    """
    return (n_ops * n_magnitudes * n_probs) ** (n_sub_policies * ops_per_sub)


def reinforce_controller(rewards, steps: int = 400, lr: float = 0.5, seed: int = 0) -> np.ndarray:
    """A softmax controller over candidate architectures trained by REINFORCE with a moving-average baseline.

    rewards: expected validation accuracy of each candidate (the environment adds N(0, 0.02) noise, as a
    child network's accuracy would vary). Returns the final sampling probabilities.
    """
    rng = np.random.default_rng(seed)
    rewards = np.asarray(rewards, dtype=float)
    logits, baseline = np.zeros_like(rewards), 0.0
    for _ in range(steps):
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        a = rng.choice(len(rewards), p=probs)
        r = rewards[a] + rng.normal(0.0, 0.02)
        grad_log_prob = -probs
        grad_log_prob[a] += 1.0  # d log softmax(a) / d logits
        logits += lr * (r - baseline) * grad_log_prob
        baseline = 0.9 * baseline + 0.1 * r
    probs = np.exp(logits - logits.max())
    return probs / probs.sum()


def density_matching_scores(seed: int = 0) -> dict[str, float]:
    """Fast AutoAugment's score on a toy: train once on D_M, then rank policies by the loss on T(D_A).

    Two Gaussian classes separated along x0. A policy that keeps augmented D_A inside the training density
    (small jitter, small shift along the irrelevant axis) gets a loss close to the clean one; one that moves
    points off the density (flip of x0, i.e. label-destroying; large scaling) gets a high loss. No retraining.
    """
    rng = np.random.default_rng(seed)
    n = 2000
    y = rng.integers(0, 2, n)
    X = np.c_[np.where(y == 1, 1.5, -1.5) + rng.normal(0, 1, n), rng.normal(0, 1, n)]
    m = n // 2  # D_M = first half trains the model, D_A = second half scores policies
    Xm, ym, Xa, ya = X[:m], y[:m], X[m:], y[m:]
    w, b = np.zeros(2), 0.0
    for _ in range(500):  # plain logistic regression by gradient descent
        p = 1 / (1 + np.exp(-(Xm @ w + b)))
        w -= 0.5 * Xm.T @ (p - ym) / m
        b -= 0.5 * float(np.mean(p - ym))

    def loss(Z: np.ndarray) -> float:
        p = np.clip(1 / (1 + np.exp(-(Z @ w + b))), 1e-12, 1 - 1e-12)
        return float(-np.mean(ya * np.log(p) + (1 - ya) * np.log(1 - p)))

    policies = {
        "identity": Xa,
        "jitter_0.2": Xa + rng.normal(0, 0.2, Xa.shape),
        "shift_x1_+0.5": Xa + np.array([0.0, 0.5]),
        "scale_x3": 3 * Xa,
        "flip_x0": Xa * np.array([-1.0, 1.0]),
    }
    return {name: loss(Z) for name, Z in policies.items()}


def fast_aa_cost(k_folds: int, train_cost: float, n_policies: int, eval_cost: float,
                 bo_rounds: int = 1) -> float:
    """Fast AA search cost: K trainings (one per fold) + K*T*B policy evaluations (inference only)."""
    return k_folds * train_cost + k_folds * bo_rounds * n_policies * eval_cost


# ------------------------------------------------------------------------------ few labels (T3)
def winners_curse(n_candidates: int, true_acc: float, n_val: int, n_trials: int = 4000,
                  seed: int = 0) -> dict:
    """Best observed validation accuracy among equally good candidates, by simulation and by order statistics.

    Every candidate has the same true accuracy; each is scored on ``n_val`` validation images
    (binomial noise).
    The expected maximum is computed twice: Monte Carlo, and exactly from the binomial CDF
    E[max] = sum_k P(max >= k) / n_val.
    """
    from scipy.stats import binom

    rng = np.random.default_rng(seed)
    observed = rng.binomial(n_val, true_acc, size=(n_trials, n_candidates)).max(axis=1) / n_val
    ks = np.arange(1, n_val + 1)
    p_max_ge_k = 1 - binom.cdf(ks - 1, n_val, true_acc) ** n_candidates
    return {"simulated": float(observed.mean()), "exact": float(p_max_ge_k.sum() / n_val),
            "std_error_one": math.sqrt(true_acc * (1 - true_acc) / n_val)}


if __name__ == "__main__":
    print(save_adapter_histograms())
