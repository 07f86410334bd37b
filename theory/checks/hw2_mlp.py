"""Executable checks for ``theory/hw2_mlp.md`` (perceptrons, regularisation, optimisers), questions Q1b-Q6.

Q1a's experiment lives in ``theory.checks.hw2_mlp_batch_size``. Each function compares a derived formula with
an independent computation (torch autograd, a built torch model or optimiser, or a Monte-Carlo estimate) in
float64.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn

from theory.checks.hw2_common import DTYPE, gen as _gen, one_thread


@lru_cache(maxsize=1)
def digits_tensor() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits (no download): X (1797, 64) in [0, 1], y (1797,)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=DTYPE), torch.tensor(y)


# ------------------------------------------------------------------------------------------------ Q1b-Q1e
@one_thread
def bn_activation_noise(batch: int, seed: int = 0, trials: int = 3000) -> float:
    """Std, over random mini-batches of digits, of the train-mode BN output of one fixed example's unit.

    The unit is a fixed random projection of the 64 pixels; only the batch-mates change between trials.
    """
    X, _ = digits_tensor()
    g = _gen(seed)
    h = X @ torch.randn(64, generator=g, dtype=DTYPE)             # (1797,) pre-activations of one unit
    mates = torch.randint(1, len(h), (trials, batch - 1), generator=g)
    values = torch.cat([h[:1].expand(trials, 1), h[mates]], 1)    # example 0 + (batch - 1) random others
    out = (values[:, 0] - values.mean(1)) / values.std(1, unbiased=False)
    return out.std().item()


@one_thread
def sigmoid_net_diagnostics(init: str, seed: int = 0) -> dict[str, float]:
    """64-32-32-10 all-sigmoid net on digits, biases 0, weights ``"large_positive"`` ~ U(1, 3) or ``"xavier"``
    (Glorot uniform, zero mean).

    Returns mean sigmoid'(z) in each hidden layer, the std of the outputs across the dataset, the accuracy of
    its argmax, and the norm of the first-layer gradient of the MSE to one-hot targets.
    """
    if init not in ("large_positive", "xavier"):
        raise ValueError(f"init must be 'large_positive' or 'xavier', got {init!r}")
    X, y = digits_tensor()
    torch.manual_seed(seed)
    layers = [nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 10)]
    for lin in layers:
        if init == "large_positive":
            nn.init.uniform_(lin.weight, 1.0, 3.0)
        else:
            nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
    net = nn.Sequential(layers[0], nn.Sigmoid(), layers[1], nn.Sigmoid(), layers[2], nn.Sigmoid()).double()
    a1 = net[1](net[0](X))
    a2 = net[3](net[2](a1))
    out = net(X)
    ((out - nn.functional.one_hot(y, 10).to(DTYPE)) ** 2).mean().backward()
    return {"dsig1": (a1 * (1 - a1)).mean().item(), "dsig2": (a2 * (1 - a2)).mean().item(),
            "output_std": out.std(0).mean().item(), "accuracy": (out.argmax(1) == y).to(DTYPE).mean().item(),
            "grad_norm": layers[0].weight.grad.norm().item()}


def mlp_param_count(d_in: int = 20, hidden: int = 10, depth: int = 5, d_out: int = 1) -> tuple[int, int]:
    """(parameters of a built nn.Sequential, formula (d_in+1)h + (depth-1)(h+1)h + (h+1)d_out)."""
    sizes = [d_in] + [hidden] * depth + [d_out]
    model = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
    built = sum(p.numel() for p in model.parameters())
    return built, (d_in + 1) * hidden + (depth - 1) * (hidden + 1) * hidden + (hidden + 1) * d_out


def softmax_as_logistic(seed: int = 0, d: int = 5, n: int = 1000) -> tuple[float, bool, float]:
    """Random (W_s, b_s) of a 2-class softmax; logistic with W_l = w_2 - w_1, b_l = b_2 - b_1.

    Returns (max |softmax prob of class 1 - sigmoid|, decisions identical, max prob change when the same
    vector is added to both softmax rows: the 'extra' parameters are a redundant shift).
    """
    g = _gen(seed)
    W_s, b_s = torch.randn(2, d, generator=g, dtype=DTYPE), torch.randn(2, generator=g, dtype=DTYPE)
    x = torch.randn(n, d, generator=g, dtype=DTYPE) * 3
    soft = torch.softmax(x @ W_s.T + b_s, 1)
    w_l, b_l = W_s[1] - W_s[0], b_s[1] - b_s[0]
    logi = torch.sigmoid(x @ w_l + b_l)
    same_class = torch.equal(soft[:, 0] >= soft[:, 1], logi <= 0.5)
    shift = torch.randn(d, generator=g, dtype=DTYPE)
    soft_shifted = torch.softmax(x @ (W_s + shift).T + b_s + 1.7, 1)
    return (soft[:, 1] - logi).abs().max().item(), same_class, (soft_shifted - soft).abs().max().item()


# ------------------------------------------------------------------------------------------------- Q2
@one_thread
def committee_variance(members: int, rho: float, seed: int = 0, n: int = 200000) -> tuple[float, float]:
    """Variance of the mean of M unit-variance errors with pairwise correlation rho: (MC, rho + (1-rho)/M)."""
    g = _gen(seed)
    shared = torch.randn(n, 1, generator=g, dtype=DTYPE)
    own = torch.randn(n, members, generator=g, dtype=DTYPE)
    errors = math.sqrt(rho) * shared + math.sqrt(1 - rho) * own   # corr(e_i, e_j) = rho
    return errors.mean(1).var().item(), rho + (1 - rho) / members


@one_thread
def majority_vote_accuracy(members: int, p: float, seed: int = 0, n: int = 200000) -> tuple[float, float]:
    """Accuracy of a majority vote of M independent members of accuracy p (M odd): (MC, binomial tail)."""
    correct = (torch.rand(n, members, generator=_gen(seed), dtype=DTYPE) < p).sum(1)
    mc = (correct > members // 2).to(DTYPE).mean().item()
    exact = sum(math.comb(members, k) * p**k * (1 - p) ** (members - k)
                for k in range(members // 2 + 1, members + 1))
    return mc, exact


# ------------------------------------------------------------------------------------------------- Q3
def q3_gradients(w: float, b: float, x: float, t: float, lam: float) -> dict[str, tuple[float, float]]:
    """Hand-derived derivatives of L_reg = 1/2 (sigmoid(wx+b) - t)^2 + lam/2 w^2 vs autograd:
    node name -> (hand, autograd)."""
    leaves = {k: torch.tensor(v, dtype=DTYPE, requires_grad=True)
              for k, v in dict(w=w, b=b, x=x, t=t).items()}
    z = leaves["w"] * leaves["x"] + leaves["b"]
    y = torch.sigmoid(z)
    L, R = 0.5 * (y - leaves["t"]) ** 2, 0.5 * leaves["w"] ** 2
    for node in (z, y, L, R):
        node.retain_grad()
    (L + lam * R).backward()
    yv = torch.sigmoid(torch.tensor(w * x + b, dtype=DTYPE)).item()
    dz = (yv - t) * yv * (1 - yv)
    hand = {"L": 1.0, "R": lam, "y": yv - t, "z": dz,
            "w": dz * x + lam * w, "b": dz, "x": dz * w, "t": -(yv - t)}
    auto = {"L": L.grad.item(), "R": R.grad.item(), "y": y.grad.item(), "z": z.grad.item(),
            **{k: v.grad.item() for k, v in leaves.items()}}
    return {k: (hand[k], auto[k]) for k in hand}


def q3_one_step(w: float, b: float, x: float, t: float, lam: float,
                lr: float = 0.1) -> tuple[float, float, float, float]:
    """One gradient-descent step on (w, b) with the hand formulas: (w_new, b_new, loss_before, loss_after)."""
    def loss(w_, b_):
        y = 1 / (1 + math.exp(-(w_ * x + b_)))
        return 0.5 * (y - t) ** 2 + 0.5 * lam * w_**2

    grads = q3_gradients(w, b, x, t, lam)
    w_new, b_new = w - lr * grads["w"][0], b - lr * grads["b"][0]
    return w_new, b_new, loss(w, b), loss(w_new, b_new)


@one_thread
def symmetric_init_stays_symmetric(steps: int = 20, seed: int = 0) -> float:
    """Two hidden units with identical initial weights get identical gradients forever: max |w_1 - w_2| after
    ``steps`` SGD steps on digits (it stays exactly 0, so the layer behaves like one unit)."""
    X, y = digits_tensor()
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 2), nn.Sigmoid(), nn.Linear(2, 10)).double()
    with torch.no_grad():
        net[0].weight[1] = net[0].weight[0]
        net[0].bias[1] = net[0].bias[0]
        net[2].weight[:, 1] = net[2].weight[:, 0]
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    return (net[0].weight[0] - net[0].weight[1]).abs().max().item()


@one_thread
def activation_scale(gain: float, depth: int = 20, width: int = 256, seed: int = 0) -> float:
    """RMS of the last of ``depth`` ReLU layers (weights N(0, gain^2 * 2 / fan_in); He et al. 2015 when
    gain = 1) divided by the input RMS. Each layer multiplies E[a^2] by gain^2 in expectation
    (Var z = 2 gain^2 E[a^2], E[relu(z)^2] = Var(z) / 2), so the expected ratio is gain**depth:
    too small an init vanishes, too large explodes."""
    g = _gen(seed)
    x = torch.randn(512, width, generator=g, dtype=DTYPE)
    a = x
    for _ in range(depth):
        W = torch.randn(width, width, generator=g, dtype=DTYPE) * gain * math.sqrt(2 / width)
        a = torch.relu(a @ W.T)                                  # (512, width)
    return (a.pow(2).mean().sqrt() / x.pow(2).mean().sqrt()).item()


# ------------------------------------------------------------------------------------------------- Q4
def adam_step(theta, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """The six lines of Adam, as in the homework (bias-corrected moments). Returns (theta, m, v)."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return theta - lr * m_hat / (v_hat.sqrt() + eps), m, v


def adam_matches_torch(steps: int = 25, seed: int = 0) -> bool:
    """From-scratch Adam == torch.optim.Adam on a random quadratic for ``steps`` steps."""
    g = _gen(seed)
    A = torch.randn(6, 6, generator=g, dtype=DTYPE)
    theta0 = torch.randn(6, generator=g, dtype=DTYPE)
    p = theta0.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=0.05)
    mine, m, v = theta0.clone(), torch.zeros(6, dtype=DTYPE), torch.zeros(6, dtype=DTYPE)
    for t in range(1, steps + 1):
        opt.zero_grad()
        (A @ p).pow(2).sum().backward()
        opt.step()
        mine, m, v = adam_step(mine, 2 * A.T @ (A @ mine), m, v, t, lr=0.05)
    return torch.allclose(mine, p.detach())


@one_thread
def adam_bias(t: int, beta1: float = 0.9, mean: float = 1.0, seed: int = 0, n: int = 200000):
    """E[m_t] and E[m_hat_t] for i.i.d. gradients g ~ N(mean, 1), m_0 = 0: (MC E[m_t], (1-beta1^t) mean,
    MC E[m_hat_t])."""
    g = torch.randn(n, t, generator=_gen(seed), dtype=DTYPE) + mean
    m = torch.zeros(n, dtype=DTYPE)
    for k in range(t):
        m = beta1 * m + (1 - beta1) * g[:, k]
    return m.mean().item(), (1 - beta1**t) * mean, (m / (1 - beta1**t)).mean().item()


# ------------------------------------------------------------------------------------------------- Q5
def random_spd(n: int, seed: int, eig_low: float = 0.5, eig_high: float = 4.0):
    """H = Q diag(lam) Q^T with known eigenvalues in [eig_low, eig_high]."""
    g = _gen(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DTYPE))
    lam = torch.linspace(eig_low, eig_high, n, dtype=DTYPE)
    return Q @ torch.diag(lam) @ Q.T, Q, lam


def gd_closed_form_error(eps: float, steps: int = 30, n: int = 5, seed: int = 0) -> float:
    """Max |GD iterate - Q (I - 2 eps Lam)^t Q^T w0| over ``steps`` steps of GD on f(w) = w^T H w, gradients
    from autograd."""
    H, Q, lam = random_spd(n, seed)
    w0 = torch.randn(n, generator=_gen(seed + 1), dtype=DTYPE)
    w, worst = w0.clone(), 0.0
    for t in range(1, steps + 1):
        w = w.detach().requires_grad_(True)
        (w @ H @ w).backward()
        w = w.detach() - eps * w.grad
        closed = Q @ ((1 - 2 * eps * lam) ** t * (Q.T @ w0))
        worst = max(worst, (w - closed).abs().max().item())
    return worst


def gd_final_norm(eps_times_lmax: float, steps: int = 200, n: int = 5, seed: int = 0) -> float:
    """||w_steps|| / ||w_0|| of GD on w^T H w with step eps = eps_times_lmax / lambda_max."""
    H, _, lam = random_spd(n, seed)
    w0 = torch.randn(n, generator=_gen(seed + 1), dtype=DTYPE)
    step = eps_times_lmax / lam.max().item()
    w = w0.clone()
    for _ in range(steps):
        w = w - step * 2 * H @ w
    return (w.norm() / w0.norm()).item()


def newton_one_step(n: int = 5, seed: int = 0) -> tuple[float, float]:
    """Newton on w^T H w with autograd gradient and Hessian: (||w_1|| after one step, ||w_0||)."""
    H, _, _ = random_spd(n, seed)
    f = lambda w: w @ H @ w  # noqa: E731
    w0 = torch.randn(n, generator=_gen(seed + 1), dtype=DTYPE)
    grad = torch.autograd.functional.jacobian(f, w0)
    hess = torch.autograd.functional.hessian(f, w0)
    w1 = w0 - torch.linalg.solve(hess, grad)
    return w1.norm().item(), w0.norm().item()


def newton_on_saddle(steps: int = 10, lr: float = 0.1) -> tuple[list[float], list[float], float]:
    """f(x, y) = x^2 - y^2 from (1, 0.1), gradients and Hessian from autograd (no hand-typed H): one Newton
    step, ``steps`` GD steps, and the gradient norm at Newton's landing point (0: it is the saddle)."""
    f = lambda w: w[0] ** 2 - w[1] ** 2  # noqa: E731
    grad = lambda w: torch.autograd.functional.jacobian(f, w)  # noqa: E731
    w0 = torch.tensor([1.0, 0.1], dtype=DTYPE)
    newton = w0 - torch.linalg.solve(torch.autograd.functional.hessian(f, w0), grad(w0))
    gd = w0.clone()
    for _ in range(steps):
        gd = gd - lr * grad(gd)
    return newton.tolist(), gd.tolist(), grad(newton).norm().item()


def hessian_memory_bytes(num_params: int, bytes_per_float: int = 4) -> int:
    """Memory of a dense Hessian: n^2 floats."""
    return num_params**2 * bytes_per_float


# ------------------------------------------------------------------------------------------------- Q6
@one_thread
def gaussian_dropout_grad(alpha: float, seed: int = 0, d: int = 4, n: int = 400000):
    """E[dJ1/dw], J1 = 1/2 (y - sum_k (w_k + delta_k) x_k)^2, delta_k = sqrt(alpha) w_k eps_k, eps ~ N(0,1).

    Returns (MC mean of autograd gradients, formula -(y - w.x) x + alpha w x^2, MC gradient when delta is
    treated as independent of w (no alpha term expected), MC E[J1],
    formula 1/2 (y - w.x)^2 + alpha/2 sum w^2 x^2).
    """
    g = _gen(seed)
    w = torch.randn(d, generator=g, dtype=DTYPE).requires_grad_(True)
    x = torch.randn(d, generator=g, dtype=DTYPE)
    y = torch.randn((), generator=g, dtype=DTYPE)
    noise = torch.randn(n, d, generator=g, dtype=DTYPE)
    delta = math.sqrt(alpha) * w * noise                                  # (n, d), depends on w
    J = 0.5 * (y - ((w + delta) * x).sum(1)) ** 2
    J.mean().backward()
    mc = w.grad.clone()
    w.grad = None
    J_detached = 0.5 * (y - ((w + delta.detach()) * x).sum(1)) ** 2
    J_detached.mean().backward()
    wd = w.detach()
    formula = -(y - wd @ x) * x + alpha * wd * x**2
    expected_J = 0.5 * (y - wd @ x) ** 2 + 0.5 * alpha * (wd**2 * x**2).sum()
    return mc, formula, w.grad.clone(), J.mean().item(), expected_J.item()


@one_thread
def dropout_ridge_solution(alpha: float, seed: int = 0, n: int = 200,
                           d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Minimiser of the dataset-averaged expected loss: closed form (X^T X + alpha diag(X^T X))^-1 X^T y vs
    the zero of the Monte-Carlo expected gradient, found by L-BFGS on a fixed bank of dropout noise."""
    g = _gen(seed)
    X = torch.randn(n, d, generator=g, dtype=DTYPE) * torch.tensor([1.0, 2.0, 0.5], dtype=DTYPE)
    y = X @ torch.tensor([1.0, -1.0, 2.0], dtype=DTYPE) + 0.3 * torch.randn(n, generator=g, dtype=DTYPE)
    G = X.T @ X
    closed = torch.linalg.solve(G + alpha * torch.diag(torch.diag(G)), X.T @ y)
    noise = torch.randn(400, n, d, generator=g, dtype=DTYPE)              # fixed noise bank
    w = torch.zeros(d, dtype=DTYPE, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    def loss_fn():
        opt.zero_grad()
        pred = (X * (w * (1 + math.sqrt(alpha) * noise))).sum(-1)        # (400, n)
        loss = 0.5 * ((y - pred) ** 2).mean()
        loss.backward()
        return loss

    opt.step(loss_fn)
    return closed.numpy(), w.detach().numpy()
