"""Executable checks for ``theory/hw2_cnn.md`` question Q6 (MobileNets, SE, NAS, progressive shrinking).

The blocks and cost formulas of the practical package are imported (``hw2_cnn.flops``: the separable conv,
its cost ratio, FLOP measurement with ``FlopCounterMode`` (2 FLOPs per multiply-add) and parameter counting;
``hw2_cnn.mobilenet``: ``InvertedResidual``, ``SqueezeExcite``, ``se_params``), so the answers check the
shipped code. Independent references, kept because their independence is the check: torchvision's
``SqueezeExcitation``, ``resnet50`` and ResNet ``Bottleneck``, hand-written formulas, autograd and Monte-Carlo
estimates in float64.
"""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from hw2_cnn.flops import count_parameters, measure_flops, separable_conv, separable_ratio, standard_conv
from hw2_cnn.mobilenet import InvertedResidual, SqueezeExcite, se_params
from theory.checks.hw2_common import DTYPE, gen as _gen, one_thread


# ---------------------------------------------------------------------------- Q6.1 depthwise separable conv
def separable_equals_factored_standard(seed: int = 0) -> bool:
    """The package's DW(K_hat) -> PW(P) is the standard conv with kernel K[n, m] = P[n, m] * K_hat[m]."""
    torch.manual_seed(seed)
    c_in, c_out, k = 4, 6, 3
    ds = separable_conv(c_in, c_out, k).double()
    dw, pw = ds[0].weight, ds[1].weight                        # (c_in, 1, k, k), (c_out, c_in, 1, 1)
    kernel = pw[:, :, 0, 0, None, None] * dw[None, :, 0]       # (c_out, c_in, k, k)
    x = torch.randn(2, c_in, 9, 9, generator=_gen(seed), dtype=DTYPE)
    return torch.allclose(ds(x), F.conv2d(x, kernel, padding=k // 2))


def svd_separable_sum(seed: int = 0, c_in: int = 3, c_out: int = 5, k: int = 3):
    """Write a standard conv as a sum of depthwise-separable convs via one SVD per input channel.

    For each input channel m, A_m = K[:, m].reshape(c_out, k*k) = sum_r s_r u_r v_r^T; term r is a depthwise
    kernel v_r (k x k) followed by a pointwise column s_r u_r. Returns (sum of all terms == standard conv,
    rank, Frobenius error of the rank-1 truncation, sqrt of the discarded squared singular values).
    """
    g = _gen(seed)
    kernel = torch.randn(c_out, c_in, k, k, generator=g, dtype=DTYPE)
    x = torch.randn(1, c_in, 8, 8, generator=g, dtype=DTYPE)
    u, s, vh = torch.linalg.svd(kernel.permute(1, 0, 2, 3).reshape(c_in, c_out, k * k), full_matrices=False)
    rank = s.shape[1]                                           # min(c_out, k^2)
    total = torch.zeros_like(F.conv2d(x, kernel, padding=k // 2))
    for r in range(rank):
        dw = vh[:, r, :].reshape(c_in, 1, k, k)
        pw = (u[:, :, r] * s[:, r, None]).T[:, :, None, None]   # (c_out, c_in, 1, 1)
        total += F.conv2d(F.conv2d(x, dw, padding=k // 2, groups=c_in), pw)
    rank1 = (u[:, :, 0] * s[:, 0, None]).T[:, :, None, None] * vh[None, :, 0, :].reshape(1, c_in, k, k)
    err = (kernel - rank1).norm().item()
    discarded = s[:, 1:].pow(2).sum().sqrt().item()
    return torch.allclose(total, F.conv2d(x, kernel, padding=k // 2)), rank, err, discarded


@one_thread
def fitted_separable_error(seed: int = 0, c_in: int = 3, c_out: int = 5, k: int = 3,
                           steps: int = 200) -> float:
    """Frobenius error of a depthwise-separable kernel fitted to the same random kernel by L-BFGS.

    Eckart-Young says no separable kernel can beat the SVD truncation, so this must not fall below it.
    """
    g = _gen(seed)
    kernel = torch.randn(c_out, c_in, k, k, generator=g, dtype=DTYPE)
    dw = torch.randn(c_in, k, k, generator=_gen(seed + 1), dtype=DTYPE, requires_grad=True)
    pw = torch.randn(c_out, c_in, generator=_gen(seed + 2), dtype=DTYPE, requires_grad=True)
    opt = torch.optim.LBFGS([dw, pw], max_iter=steps, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def loss_fn():
        opt.zero_grad()
        loss = (kernel - pw[:, :, None, None] * dw[None]).pow(2).sum()
        loss.backward()
        return loss

    opt.step(loss_fn)
    return loss_fn().sqrt().item()


@one_thread
def separable_flop_ratio(c_in: int, c_out: int, k: int, size: int) -> tuple[float, float]:
    """(measured FLOP ratio separable / standard of the package's modules, the package's closed form)."""
    measured = (measure_flops(separable_conv(c_in, c_out, k), (c_in, size, size))
                / measure_flops(standard_conv(c_in, c_out, k), (c_in, size, size)))
    return measured, separable_ratio(c_out, k)


def separable_param_counts(c_in: int, c_out: int, k: int) -> tuple[int, int]:
    """(standard conv params, separable params), counted on the package's built modules (no bias)."""
    return count_parameters(standard_conv(c_in, c_out, k)), count_parameters(separable_conv(c_in, c_out, k))


# ------------------------------------------------------------------------------- Q6.2 inverted residuals
@one_thread
def inverted_residual_macs(size: int, channels: int, expansion: int, k: int = 3) -> tuple[int, int]:
    """(measured MACs of the package's stride-1 ``InvertedResidual``, formula h*w*t*c*(c + k^2 + c)).
    Its BatchNorms and activations cost no multiply-adds in this convention, so only the three convs count."""
    block = InvertedResidual(channels, channels, 1, expansion, k)
    return (measure_flops(block, (channels, size, size)) // 2,
            size * size * expansion * channels * (2 * channels + k * k))


@one_thread
def bottleneck_macs(size: int, channels: int) -> tuple[int, int]:
    """(measured MACs of torchvision's ResNet ``Bottleneck`` with width channels/4, formula
    h*w*(C*C/4 + 9*(C/4)^2 + C/4*C))."""
    from torchvision.models.resnet import Bottleneck

    narrow = channels // 4
    block = Bottleneck(channels, narrow)                        # expansion 4: narrow * 4 == channels out
    return (measure_flops(block, (channels, size, size)) // 2,
            size * size * (channels * narrow + 9 * narrow * narrow + narrow * channels))


@one_thread
def relu_recovery(dims, seed: int = 0, points: int = 300) -> list[float]:
    """MobileNetV2 Fig. 1 experiment: embed a 2-D spiral by a random n x 2 matrix T, apply ReLU, recover.

    A point is recoverable iff at least two active ReLU rows of T are linearly independent (then least
    squares on the active rows gives it back exactly). Returns, for each n, the fraction NOT recoverable.
    """
    g = _gen(seed)
    t = torch.linspace(0.5, 4 * math.pi, points, dtype=DTYPE)
    spiral = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1)   # (points, 2)
    lost = []
    for n in dims:
        T = torch.randn(n, 2, generator=g, dtype=DTYPE)
        y = torch.relu(spiral @ T.T)                               # (points, n)
        bad = 0
        for i in range(points):
            active = y[i] > 0
            if int(active.sum()) < 2 or torch.linalg.matrix_rank(T[active]) < 2:
                bad += 1
                continue
            rec = torch.linalg.lstsq(T[active], y[i, active, None]).solution[:, 0]
            assert torch.allclose(rec, spiral[i]), "active-set least squares must be exact"
        lost.append(bad / points)
    return lost


@one_thread
def expansion_rank_deficiency(channels: int, expansion: int, seed: int = 0, trials: int = 4000):
    """Branch Jacobian J = P diag(relu'(E x)) E of an inverted residual (1x1 spatial view), fan-in init.

    Returns (MC probability that J is rank-deficient, P[Binomial(t*C, 1/2) < C], mean smallest singular value,
    mean ||J||_F^2 / C). rank(J) = min(C, number of active hidden units) almost surely.
    """
    g = _gen(seed)
    m = channels * expansion
    E = torch.randn(trials, m, channels, generator=g, dtype=DTYPE) / math.sqrt(channels)
    P = torch.randn(trials, channels, m, generator=g, dtype=DTYPE) / math.sqrt(m)
    x = torch.randn(trials, channels, 1, generator=g, dtype=DTYPE)
    J = P @ (((E @ x) > 0).to(DTYPE) * E)                             # (trials, C, C)
    sv = torch.linalg.svdvals(J)
    deficient = (sv[:, -1] < 1e-9).to(DTYPE).mean().item()
    binom = sum(math.comb(m, j) for j in range(channels)) / 2**m
    return deficient, binom, sv[:, -1].mean().item(), (J.pow(2).sum((1, 2)) / channels).mean().item()


# ---------------------------------------------------------------------------------------- Q6.3 SE blocks
def se_formula(u: torch.Tensor, w1, b1, w2, b2) -> torch.Tensor:
    """z_c = mean_{i,j} u_c(i,j); s = sigmoid(W2 relu(W1 z + b1) + b2); out_c = s_c * u_c. u: (N, C, H, W)"""
    z = u.mean((2, 3))                                  # (N, C)       squeeze
    s = torch.sigmoid(F.relu(z @ w1.T + b1) @ w2.T + b2)  # (N, C)       excitation
    return u * s[:, :, None, None]                      # (N, C, H, W) scale


def se_matches_references(channels: int = 16, r: int = 4, seed: int = 0) -> tuple[bool, bool]:
    """The hand-written SE formula == torchvision's ``SqueezeExcitation`` and == the package's
    ``SqueezeExcite``, each with its own random weights plugged into the formula."""
    from torchvision.ops.misc import SqueezeExcitation

    torch.manual_seed(seed)
    u = torch.randn(2, channels, 5, 7, generator=_gen(seed), dtype=DTYPE)
    tv = SqueezeExcitation(channels, channels // r).double()
    ours = SqueezeExcite(channels, r).double()
    fc = lambda conv: conv.weight[:, :, 0, 0]                  # noqa: E731  (a 1x1 conv is an FC layer)
    tv_ok = torch.allclose(se_formula(u, fc(tv.fc1), tv.fc1.bias, fc(tv.fc2), tv.fc2.bias), tv(u))
    ours_formula = se_formula(u, fc(ours.reduce), ours.reduce.bias, fc(ours.expand), ours.expand.bias)
    ours_ok = torch.allclose(ours_formula, ours(u))
    return tv_ok, ours_ok


def se_costs(channels: int, r: int, size: int) -> dict[str, int]:
    """The package's ``SqueezeExcite``: parameters counted on the built module and by the package's
    ``se_params``; multiply-adds measured (the two FC layers; the pooling and the scaling are not counted,
    they are not multiply-adds of a conv or a matmul)."""
    se = SqueezeExcite(channels, r)
    return {"params": count_parameters(se), "params_formula": se_params(channels, r),
            "macs": measure_flops(se, (channels, size, size)) // 2}


def resnet50_stages() -> list[tuple[int, int]]:
    """(number of bottleneck blocks, output channels) per stage, read from torchvision's ResNet-50."""
    from torchvision.models import resnet50

    with torch.device("meta"):                                  # shapes only: no memory, no initialisation
        net = resnet50(weights=None)
    stages = (net.layer1, net.layer2, net.layer3, net.layer4)
    return [(len(stage), stage[-1].conv3.out_channels) for stage in stages]


class _BiasFreeSE(nn.Module):
    """SE without FC biases: Hu et al. report that removing them helps on ResNets; (N, C, H, W) -> same."""

    def __init__(self, channels: int, r: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // r, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // r, channels, 1, bias=False)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


@one_thread
def se_resnet50(r: int = 16, biases: bool = False) -> dict[str, int]:
    """Build SE-ResNet-50: torchvision's ResNet-50 with an SE block after the last BN of every bottleneck
    (before the shortcut addition, as in Hu et al.), then count. ``biases`` selects the package's
    ``SqueezeExcite`` (FC biases) instead of the bias-free SE. Returns the parameters of both networks, their
    difference, and how many SE blocks a forward pass (one 3x224x224 image) actually ran (the count is only
    meaningful if all 16 are used).
    Built on the meta device: exact shapes and a real forward graph, no memory, no initialisation cost."""
    from torchvision.models import resnet50

    with torch.device("meta"):
        plain, net = resnet50(weights=None), resnet50(weights=None)
        calls = []
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            for block in stage:
                c = block.bn3.num_features
                se = SqueezeExcite(c, r) if biases else _BiasFreeSE(c, r)
                se.register_forward_hook(lambda *_: calls.append(1))
                block.bn3 = nn.Sequential(block.bn3, se)
        logits = net.eval()(torch.zeros(1, 3, 224, 224))
    if logits.shape != (1, 1000):
        raise AssertionError(f"SE-ResNet-50 forward gave shape {tuple(logits.shape)}")
    return {"resnet50": count_parameters(plain), "se_resnet50": count_parameters(net),
            "extra": count_parameters(net) - count_parameters(plain), "se_blocks_run": len(calls)}


@one_thread
def gaussian_gating_information(channels: int = 8, noise: float = 0.1, sensor: float = 0.05,
                                seed: int = 0, n: int = 200000) -> dict[str, float]:
    """Toy model for Q6.3.2: one channel k (different per input, visible in the squeezed statistics) carries
    the signal S ~ N(0,1) (plus sensor noise), the others carry unit nuisance noise. The block output passes a
    channel Y = s * X + N(0, noise) under the same output power as the identity. Mutual information I(S; Y) in
    nats, for fixed gains (no SE; by symmetry s = 1) and input-adaptive gains (SE puts the power on channel
    k). MC estimates use the Gaussian identity I = -1/2 log(1 - rho^2), rho = corr(S, best linear
    estimate)."""
    g = _gen(seed)
    signal = torch.randn(n, generator=g, dtype=DTYPE)
    x = torch.randn(n, channels, generator=g, dtype=DTYPE)
    x[:, 0] = signal + sensor**0.5 * torch.randn(n, generator=g, dtype=DTYPE)   # channel k = 0 w.l.o.g.
    power = channels * 1.0                                       # identity output power, sum_c E[X_c^2]
    gain_k = math.sqrt(power / (1 + sensor))                     # SE: all power on the informative channel
    out = {}
    adaptive = torch.zeros(channels, dtype=DTYPE)
    adaptive[0] = gain_k
    for name, gains in (("fixed", torch.ones(channels, dtype=DTYPE)), ("adaptive", adaptive)):
        y = x * gains + noise**0.5 * torch.randn(n, channels, generator=g, dtype=DTYPE)
        rho = torch.corrcoef(torch.stack([signal, y[:, 0]]))[0, 1]   # other coords independent of S
        out[name + "_mc"] = -0.5 * math.log(1 - rho.item() ** 2)
    out["fixed_formula"] = 0.5 * math.log(1 + 1 / (sensor + noise))
    out["adaptive_formula"] = 0.5 * math.log(1 + gain_k**2 / (gain_k**2 * sensor + noise))
    return out


# -------------------------------------------------------------------------- Q6.4 NAS as a DAG, OFA counting
def count_dag_paths(edges: dict[str, list[str]], source: str, sink: str) -> int:
    """Number of source->sink paths of a DAG by dynamic programming in topological order (cycle: error)."""
    order, state = [], {}

    def visit(v):
        if state.get(v) == 1:
            raise ValueError(f"cycle through {v!r}: a search space graph must be acyclic")
        if state.get(v) == 2:
            return
        state[v] = 1
        for w in edges.get(v, []):
            visit(w)
        state[v] = 2
        order.append(v)

    visit(source)
    paths = {v: 0 for v in order}
    paths[sink] = 1
    for v in order:                      # reverse topological: successors first
        if v != sink:
            paths[v] = sum(paths[w] for w in edges.get(v, []))
    return paths[source]


def mnas_search_dag(num_blocks: int, choices: dict[str, int]) -> dict[str, list[str]]:
    """Chain of blocks; inside a block one layer of nodes per decision (conv op, kernel, SE, skip, filters,
    layers); an edge = one option. A path source->sink = one architecture."""
    edges, prev = {}, ["in"]
    for b in range(num_blocks):
        for name, n_opt in choices.items():
            nxt = f"b{b}.{name}.done"
            for p in prev:
                edges[p] = [f"b{b}.{name}={i}" for i in range(n_opt)]
            for i in range(n_opt):
                edges[f"b{b}.{name}={i}"] = [nxt]
            prev = [nxt]
    edges[prev[0]] = ["out"]
    return edges


def ofa_unit_count(depths=(2, 3, 4), kernels=(3, 5, 7), expansions=(3, 4, 6)) -> dict[str, int]:
    """Once-for-All, one unit: enumerate every setting of its elastic knobs (a depth D and a (kernel,
    expansion) pair for *each* of the max(depths) layers) and count the distinct sub-networks they select,
    OFA's elastic depth keeping the first D layers (so the knobs of skipped layers select nothing). Returned
    with the closed form sum_D (|K| |E|)^D for comparison."""
    per_layer = list(itertools.product(kernels, expansions))
    settings, subnets = 0, set()
    for depth in depths:
        for layers in itertools.product(per_layer, repeat=max(depths)):
            settings += 1
            subnets.add(layers[:depth])
    return {"settings": settings, "subnets": len(subnets),
            "closed_form": sum(len(per_layer) ** d for d in depths)}


class ElasticUnit:
    """A toy OFA unit with shared weights: ``max_depth`` inverted-residual layers built at the largest kernel
    and expansion. A sub-network runs the first D layers, the centre k x k of each depthwise kernel and the
    first e*C hidden channels (OFA's elastic depth, kernel and width; its kernel transformation matrices are
    left out)."""

    def __init__(self, channels: int = 2, max_depth: int = 4, max_kernel: int = 7, max_expansion: int = 6,
                 seed: int = 0):
        g = _gen(seed)
        hidden = channels * max_expansion
        self.channels, self.max_kernel = channels, max_kernel
        self.expand = [torch.randn(hidden, channels, 1, 1, generator=g, dtype=DTYPE)
                       for _ in range(max_depth)]
        self.depthwise = [torch.randn(hidden, 1, max_kernel, max_kernel, generator=g, dtype=DTYPE)
                          / max_kernel for _ in range(max_depth)]
        self.project = [torch.randn(channels, hidden, 1, 1, generator=g, dtype=DTYPE) / hidden
                        for _ in range(max_depth)]

    def __call__(self, x: torch.Tensor, depth: int, layers) -> torch.Tensor:
        """x: (N, C, H, W); layers: one (kernel, expansion) per layer of the unit; the first ``depth`` run."""
        for i in range(depth):
            k, e = layers[i]
            h, lo = e * self.channels, (self.max_kernel - k) // 2
            y = F.relu6(F.conv2d(x, self.expand[i][:h]))
            y = F.relu6(F.conv2d(y, self.depthwise[i][:h, :, lo:lo + k, lo:lo + k], padding=k // 2, groups=h))
            x = x + F.conv2d(y, self.project[i][:, :h])
        return x


@one_thread
def ofa_settings_vs_functions(samples: int = 300, seed: int = 0, depths=(2, 3, 4), kernels=(3, 5, 7),
                              expansions=(3, 4, 6)) -> dict[str, int]:
    """Run the toy elastic unit for random knob settings and group the outputs: settings that select the same
    sub-network (same first-D layers) must give identical outputs, different sub-networks different ones.
    Returns the settings tried, the distinct sub-networks among them, and the distinct functions observed."""
    g = _gen(seed)
    unit = ElasticUnit(max_depth=max(depths), max_kernel=max(kernels), max_expansion=max(expansions),
                       seed=seed)
    x = torch.randn(1, unit.channels, 6, 6, generator=g, dtype=DTYPE)
    per_layer = list(itertools.product(kernels, expansions))
    outputs: dict[tuple, torch.Tensor] = {}
    consistent = True
    for _ in range(samples):
        depth = depths[int(torch.randint(len(depths), (1,), generator=g))]
        layers = [per_layer[int(i)] for i in torch.randint(len(per_layer), (max(depths),), generator=g)]
        out, key = unit(x, depth, layers), tuple(layers[:depth])
        if key in outputs:
            consistent &= torch.equal(outputs[key], out)
        outputs[key] = out
    functions = len({tuple(torch.round(o.flatten(), decimals=9).tolist()) for o in outputs.values()})
    return {"settings": samples, "subnets": len(outputs), "functions": functions,
            "consistent": int(consistent)}


def channel_sorting_preserves_function(seed: int = 0) -> bool:
    """OFA elastic width: reorder hidden channels by L1 norm (and the next layer's inputs the same way);
    the network function is unchanged, so the first w channels can be kept as the 'most important' ones."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(4, 12, 1), nn.ReLU(), nn.Conv2d(12, 4, 1)).double()
    x = torch.randn(2, 4, 5, 5, generator=_gen(seed), dtype=DTYPE)
    before = net(x)
    order = net[2].weight.abs().sum((0, 2, 3)).argsort(descending=True)
    with torch.no_grad():
        net[0].weight.copy_(net[0].weight[order])
        net[0].bias.copy_(net[0].bias[order])
        net[2].weight.copy_(net[2].weight[:, order])
    return torch.allclose(before, net(x))
