"""Executable checks behind ``theory/hw5_clip_peft.md`` (IUST HW5, 1404: composing PEFT modules, MoCo).

Two toys, both seeded, CPU-only and float64:

* ``compose_lora`` — LoRA modules trained on two differently distributed subsets of one regression task, then
  merged by the paper's addition operator (average A's and B's separately), from a shared or from different
  initialisations.
* MoCo helpers — the momentum (EMA) key encoder's lag and noise suppression, the FIFO queue of keys, the
  InfoNCE logits, and the false-negative rate that pre-generated augmented copies create.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from common import torch_threads

# ------------------------------------------------------------------------ composing PEMs (hw5.T1)
BASE_QV = r".*attention\.self\.(query|value)"
IA3_TARGETS = r".*(attention\.self\.(key|value)|layer\.\d+\.output\.dense)"  # keys, values, FFN output input
IA3_FEEDFORWARD = r".*layer\.\d+\.output\.dense"  # (IA)^3 rescales this layer's *input* (d_ff wide)


def peft_counts(lora_rank: int = 8) -> dict[str, int]:
    """Trainable parameters of LoRA (query, value) and (IA)^3 on a BERT-base-sized model, read from PEFT.

    The model is built from a ``BertConfig`` (hidden 768, 12 layers, 12 heads, FFN 3072) on the meta device;
    ``total`` is the size of that model, i.e. what full fine-tuning trains.
    """
    from peft import IA3Config, get_peft_model

    from theory.checks.hw7 import BertSpec, bert_on_meta, peft_lora_trainable

    spec = BertSpec(d_model=768, n_layers=12, n_heads=12, vocab_size=30522, d_ff=3072)
    total = sum(p.numel() for p in bert_on_meta(spec).parameters())
    lora = peft_lora_trainable(bert_on_meta(spec), BASE_QV, lora_rank)
    ia3_model = get_peft_model(bert_on_meta(spec), IA3Config(target_modules=IA3_TARGETS,
                                                             feedforward_modules=IA3_FEEDFORWARD))
    return {"total": total, "lora": lora, "ia3": ia3_model.get_nb_trainable_parameters()[0]}



@dataclass(frozen=True)
class ComposeToy:
    """Rank-r LoRA on a frozen linear layer; the task's inputs live in a k-dim subspace of R^d.

    Subset 1 has large variance along the first two latent directions and ``low`` along the others;
    subset 2 the reverse (two "distributions" of one task). Labels carry N(0, noise^2) noise.
    """

    d: int = 32
    rank: int = 4
    k: int = 4
    n: int = 100
    low: float = 0.3
    noise: float = 0.5
    steps: int = 400
    lr: float = 0.05
    n_test: int = 4000


def _train_lora(X: torch.Tensor, Y: torch.Tensor, A_init: torch.Tensor, steps: int, lr: float):
    """Plain-SGD LoRA fits of P independent problems at once.

    X, Y: (P, n, d); A_init: (P, r, d). B starts at zero (as in LoRA). Returns A (P, r, d), B (P, d, r).
    """
    A = A_init.clone().requires_grad_()
    B = torch.zeros(A.shape[0], A.shape[2], A.shape[1], dtype=A.dtype, requires_grad=True)
    opt = torch.optim.SGD([A, B], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        residual = X @ (B @ A).transpose(1, 2) - Y  # (P, n, d)
        (residual.pow(2).sum(-1).mean(-1).sum()).backward()  # problems are independent: sum of their losses
        opt.step()
    return A.detach(), B.detach()


def compose_lora(seeds=(0,), toy: ComposeToy = ComposeToy(),
                 lambdas=(0.0, 0.25, 0.5, 0.75, 1.0)) -> list[dict]:
    """Test error (squared, summed over outputs) on the full input distribution for each seed.

    Keys: ``base`` (no module), ``pem1``/``pem2`` (one subset each, shared init A0), ``merged_same`` (addition
    operator, lambda = 0.5, shared init), ``merged_diff`` (PEM 2 trained from a different A init),
    ``delta_avg`` (average of the two updates B_i A_i, the product-space merge), ``fullset`` (one module on
    the union, the reference the paper also reports) and ``lambda_curve`` (merged error for each lambda).
    """
    results = []
    problems, tests = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        S = torch.linalg.qr(torch.randn(toy.d, toy.k, generator=g, dtype=torch.float64))[0]
        dW = torch.randn(toy.d, toy.d, generator=g, dtype=torch.float64) / math.sqrt(toy.d)

        def sample(scales: torch.Tensor, n: int, noisy: bool = True):
            x = (torch.randn(n, toy.k, generator=g, dtype=torch.float64) * scales) @ S.T
            y = x @ dW.T
            return x, y + toy.noise * torch.randn(n, toy.d, generator=g, dtype=torch.float64) if noisy else y

        s1 = torch.tensor([1.0, 1.0, toy.low, toy.low], dtype=torch.float64)
        X1, Y1 = sample(s1, toy.n)
        X2, Y2 = sample(s1.flip(0), toy.n)
        Xt, Yt = sample(torch.ones(toy.k, dtype=torch.float64), toy.n_test, noisy=False)
        A0 = 4 * torch.randn(toy.rank, toy.d, generator=g, dtype=torch.float64) / math.sqrt(toy.d)
        A0_other = 4 * torch.randn(toy.rank, toy.d, generator=g, dtype=torch.float64) / math.sqrt(toy.d)
        twice = lambda t: torch.cat([t, t])  # equal length for batching; the mean loss is unchanged
        problems.append((torch.stack([twice(X1), twice(X2), twice(X2), torch.cat([X1, X2])]),
                         torch.stack([twice(Y1), twice(Y2), twice(Y2), torch.cat([Y1, Y2])]),
                         torch.stack([A0, A0, A0_other, A0])))
        tests.append((Xt, Yt))
    X = torch.cat([p[0] for p in problems])
    Y = torch.cat([p[1] for p in problems])
    with torch_threads(1):  # hundreds of tiny steps: one thread avoids oversubscription on shared CPUs
        A, B = _train_lora(X, Y, torch.cat([p[2] for p in problems]), toy.steps, toy.lr)
    for i, (Xt, Yt) in enumerate(tests):
        a, b = A[4 * i: 4 * i + 4], B[4 * i: 4 * i + 4]
        err = lambda delta: float((Xt @ delta.T - Yt).pow(2).sum(1).mean())
        merge = lambda j, lam: (lam * b[0] + (1 - lam) * b[j]) @ (lam * a[0] + (1 - lam) * a[j])
        results.append({
            "base": err(torch.zeros(toy.d, toy.d, dtype=torch.float64)),
            "pem1": err(b[0] @ a[0]), "pem2": err(b[1] @ a[1]),
            "merged_same": err(merge(1, 0.5)), "merged_diff": err(merge(2, 0.5)),
            "pem2_other_init": err(b[2] @ a[2]),
            "delta_avg": err(0.5 * (b[0] @ a[0] + b[1] @ a[1])), "fullset": err(b[3] @ a[3]),
            "lambda_curve": [err(merge(1, lam)) for lam in lambdas],
            "A_drift": float((a[0] - problems[i][2][0]).norm() / problems[i][2][0].norm()),
        })
    return results


def cross_terms(B1: torch.Tensor, A1: torch.Tensor, B2: torch.Tensor, A2: torch.Tensor, lam: float = 0.5):
    """Addition operator on LoRA factors, expanded: the product of averages minus the average of products."""
    merged = (lam * B1 + (1 - lam) * B2) @ (lam * A1 + (1 - lam) * A2)
    return merged - (lam * B1 @ A1 + (1 - lam) * B2 @ A2)


# ------------------------------------------------------------------------------------ MoCo (hw5.T2)
def ema_lag(m: float) -> float:
    """Mean age, in iterations, of the query weights averaged into the key encoder: sum_j j (1-m) m^j."""
    return m / (1 - m) if m < 1 else math.inf


def ema_noise_factor(m: float) -> float:
    """Std of the key encoder's copy of i.i.d. per-step weight noise, relative to the query's.

    Steady state of theta_k = m theta_k + (1-m) theta_q: variance (1-m)^2 / (1-m^2) = (1-m)/(1+m).
    """
    return math.sqrt((1 - m) / (1 + m))


def simulate_ema(m: float, steps: int = 60_000, dims: int = 64, drift: float = 1e-3, noise: float = 1e-2,
                 seed: int = 0) -> dict[str, float]:
    """Query weights = linear drift + i.i.d. jitter; key weights = MoCo's momentum update of them.

    Measures (after burn-in) the lag of the key encoder behind the drift and the std of its jitter, to compare
    with ``ema_lag`` and ``ema_noise_factor``.
    """
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    theta_q = drift * t + noise * rng.standard_normal((steps, dims))
    # theta_k[t] = m theta_k[t-1] + (1-m) theta_q[t], started (as in MoCo) as a copy of the query encoder
    theta_k = lfilter([1 - m], [1, -m], theta_q, axis=0, zi=(m * theta_q[0])[None, :])[0]
    tail = slice(steps // 2, None)
    trend = drift * t[tail]
    lag = float(np.mean(trend - theta_k[tail]) / drift)
    jitter = float(np.std(theta_k[tail] - (trend - drift * ema_lag(m))) / noise)
    return {"lag": lag, "noise_factor": jitter}


class KeyQueue:
    """MoCo's dictionary: a (dim, K) FIFO of keys, overwritten batch by batch at a moving pointer."""

    def __init__(self, dim: int, size: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.keys = torch.nn.functional.normalize(torch.randn(dim, size, generator=g), dim=0)
        self.batch_id = torch.full((size,), -1)  # which enqueue step wrote each slot (-1: random init)
        self.ptr, self.step = 0, 0

    def enqueue(self, k: torch.Tensor) -> None:
        """k: (N, dim) keys of the current batch; K must be a multiple of N (as MoCo asserts)."""
        n, size = k.shape[0], self.keys.shape[1]
        if size % n:
            raise ValueError(f"queue size {size} must be a multiple of the batch size {n}")
        self.keys[:, self.ptr:self.ptr + n] = k.T
        self.batch_id[self.ptr:self.ptr + n] = self.step
        self.ptr, self.step = (self.ptr + n) % size, self.step + 1


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
             tau: float = 0.07) -> tuple[torch.Tensor, torch.Tensor]:
    """MoCo's loss. q, k: (N, C) normalised; queue: (C, K).

    Returns (loss written out by hand, loss from F.cross_entropy with the positive at index 0).
    """
    l_pos = (q * k).sum(1, keepdim=True)  # (N, 1)
    l_neg = q @ queue  # (N, K)
    logits = torch.cat([l_pos, l_neg], 1) / tau  # positive at index 0
    by_hand = (-l_pos.squeeze(1) / tau + torch.logsumexp(logits, 1)).mean()
    library = torch.nn.functional.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))
    return by_hand, library


def hardest_negative(n_negatives: int, dim: int = 128, n_queries: int = 16, seed: int = 0) -> float:
    """Mean (over queries) of the largest cosine similarity to ``n_negatives`` random unit keys."""
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(n_queries, dim, generator=g), dim=1)
    keys = torch.nn.functional.normalize(torch.randn(n_negatives, dim, generator=g), dim=1)
    return float((q @ keys.T).max(1).values.mean())


def false_negative_rate(n_sources: int, copies: int, queue: int, trials: int = 2000, seed: int = 0) -> dict:
    """Chance that the queue holds another copy of the query's source image, exactly and by simulation.

    The dataset has n_sources x copies images (original + augmented copies); the queue holds ``queue`` keys
    drawn without replacement from the other images. Exact: 1 - C(N-1-(copies-1), K) / C(N-1, K).
    """
    total = n_sources * copies
    others, same = total - 1, copies - 1
    log_none = (math.lgamma(others - same + 1) - math.lgamma(others - same - queue + 1)
                - math.lgamma(others + 1) + math.lgamma(others - queue + 1))
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):  # the first ``same`` of the other images are the query's siblings
        hits += bool((rng.choice(others, size=queue, replace=False) < same).any())
    return {"exact": 1 - math.exp(log_none), "simulated": hits / trials,
            "expected_siblings": queue * same / others}
