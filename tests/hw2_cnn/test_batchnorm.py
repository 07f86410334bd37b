"""BN invariances (Q1.3), the BN tools of P3, the dropout variance-shift formula (Q1.5), residual nets."""
import copy

import pytest
import torch
import torch.nn as nn

from hw2_cnn.batchnorm import (BNConvNet, BNDropoutMLP, accuracy_by_bn_mode, batch_statistics,
                               bias_gradient_ratio, bn_layers, conv_bn_pairs, dropout_variance,
                               fold_conv_bias, predict_labels, recalibrate_bn, scaling_table)
from hw2_cnn.flops import count_parameters
from hw2_cnn.residual import LossRecorder, ResidualNet, ResidualNetConfig, gradient_profile

DT = torch.float64


def _data(n=64, seed=0, size=12):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, size, size, dtype=DT, generator=g), torch.randint(0, 10, (n,), generator=g)


def _trained_like(net: nn.Module, seed=0) -> nn.Module:
    """Non-trivial BN affine parameters and running statistics, as after training."""
    g = torch.Generator().manual_seed(seed)
    net = net.double()
    for bn in bn_layers(net):
        bn.weight.data.uniform_(0.5, 2.0, generator=g)
        bn.bias.data.uniform_(-1.0, 1.0, generator=g)
    net.train()
    with torch.no_grad():
        for i in range(5):
            net(_data(32, seed=100 + i)[0])
    return net.eval()


def test_batch_statistics_uses_batch_stats_and_keeps_running_stats():
    torch.manual_seed(0)
    net = _trained_like(BNConvNet())
    x, _ = _data()
    before = [bn.running_mean.clone() for bn in bn_layers(net)]
    with torch.no_grad(), batch_statistics(net):
        out = net(x)
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(before, bn_layers(net)))
    reference = copy.deepcopy(net).train()
    with torch.no_grad():
        assert torch.allclose(out, reference(x))
    assert not net.training and all(not bn.training for bn in bn_layers(net))


def test_recalibrate_gives_plain_average_of_batch_statistics():
    bn = nn.BatchNorm1d(3).double()
    model = nn.Sequential(bn)
    X = torch.randn(40, 3, dtype=DT) * 2 + 1
    recalibrate_bn(model, X, batch_size=10)
    assert torch.allclose(bn.running_mean, X.view(4, 10, 3).mean(1).mean(0))
    assert torch.allclose(bn.running_var, X.view(4, 10, 3).var(1, unbiased=True).mean(0))
    assert bn.momentum == 0.1 and not model.training


def test_conv_bias_is_redundant_in_train_mode_and_foldable_in_eval_mode():
    torch.manual_seed(0)
    with_bias = _trained_like(BNConvNet(bias=True))
    for conv, _ in conv_bn_pairs(with_bias):
        conv.bias.data.normal_(0, 3.0)                                   # large biases make the point
    without = BNConvNet(bias=False).double()
    result = without.load_state_dict(with_bias.state_dict(), strict=False)  # everything but the conv biases
    assert len(result.unexpected_keys) == 3 and not result.missing_keys
    x, y = _data()
    with torch.no_grad():
        assert (with_bias.train()(x) - without.train()(x)).abs().max() < 1e-12   # batch mean removes b
        folded = fold_conv_bias(with_bias.eval())
        assert (folded(x) - with_bias(x)).abs().max() < 1e-12                    # eval: mu -> mu - b
    assert all(conv.bias is None for conv, _ in conv_bn_pairs(folded))
    assert bias_gradient_ratio(with_bias, x, y) < 1e-10                           # never learned


def test_weight_and_input_scaling_table():
    torch.manual_seed(0)
    x, _ = _data(32, seed=1)
    calibration = _data(128, seed=2)[0]
    rows = {r["change"]: r for r in scaling_table(_trained_like(BNConvNet()), x, calibration, alpha=3.0)}
    for row in rows.values():
        assert row["batch"] < 1e-3 and row["recalibrated"] < 1e-3   # invariant up to BN's eps
        assert row["frozen"] > 1e-2               # frozen statistics do not follow the scale
    # no BN between the input and the first nonlinearity: ReLU(alpha W x + b) != alpha ReLU(W x + b)
    no_first_bn = _trained_like(BNConvNet(first_bn=False))
    rows = {r["change"]: r for r in scaling_table(no_first_bn, x, calibration, 3.0)}
    assert rows["inputs x alpha"]["batch"] > 1e-3 and rows["inputs x alpha"]["recalibrated"] > 1e-3
    assert rows["all conv weights x alpha"]["batch"] > 1e-3


def test_dropout_variance_shift_matches_formula():
    torch.manual_seed(0)
    model = BNDropoutMLP(20, hidden=32, p=0.5).double()
    X = torch.randn(4000, 1, 4, 5, dtype=DT)
    model.train()
    with torch.no_grad():
        for i in range(0, 4000, 200):
            model(X[i:i + 200])
    v = dropout_variance(model, X, num_masks=16)
    assert ((v["train"] - v["predicted"]).abs() / v["predicted"]).max() < 0.05
    assert (v["eval"] < v["train"]).all()
    assert (v["eval"] / v["running"]).median() < 0.9   # the BN after dropout divides by a too-large variance


def test_accuracy_by_bn_mode_and_predict_errors():
    torch.manual_seed(0)
    net = _trained_like(BNConvNet())
    X, y = _data(40)
    rows = accuracy_by_bn_mode(net, X, y, (4, 20))
    assert [r["batch_size"] for r in rows] == [4, 20]
    assert all(0.0 <= r["acc_batch_stats"] <= 1.0 for r in rows)
    with pytest.raises(ValueError, match="bn_mode"):
        predict_labels(net, X, bn_mode="train")
    with pytest.raises(ValueError, match="larger than"):
        predict_labels(net, X, batch_size=100, bn_mode="batch")
    with pytest.raises(ValueError, match="no conv with a bias"):
        fold_conv_bias(net)


def test_pre_and_post_activation_nets_have_equal_size():
    for blocks in (2, 5):
        post = ResidualNet(ResidualNetConfig(num_blocks=blocks, width=8, pre_activation=False))
        pre = ResidualNet(ResidualNetConfig(num_blocks=blocks, width=8, pre_activation=True))
        assert count_parameters(post) == count_parameters(pre)
        x = torch.randn(3, 1, 28, 28)
        assert post(x).shape == pre(x).shape == (3, 10)


def test_gradient_profile_per_block_and_identity_path():
    torch.manual_seed(0)
    net = ResidualNet(ResidualNetConfig(num_blocks=4, width=8, pre_activation=True)).double()
    x, y = torch.randn(16, 1, 16, 16, dtype=DT), torch.randint(0, 10, (16,))
    norms = gradient_profile(net, x, y)
    assert len(norms["activation"]) == len(norms["weight"]) == 4
    assert all(v > 0 for v in norms["activation"] + norms["weight"])
    assert all(p.grad is None for p in net.parameters())
    assert len(norms["cosine"]) == 2 and all(-1.0 <= c <= 1.0 for c in norms["cosine"])  # pairs 0-1 and 2-3
    # pre-activation: with the branches zeroed, every block is the identity, dL/dx_l identical at all depths
    for block in net.blocks:
        nn.init.zeros_(block.conv2.weight)
    flat = gradient_profile(net, x, y)
    assert max(flat["activation"][:2]) - min(flat["activation"][:2]) < 1e-12 * max(flat["activation"])
    assert min(flat["cosine"]) > 1 - 1e-12


def test_loss_recorder_ignores_no_grad_calls():
    rec = LossRecorder()
    logits, y = torch.randn(4, 3, requires_grad=True), torch.tensor([0, 1, 2, 0])
    rec(logits, y)
    with torch.no_grad():
        rec(logits, y)
    assert len(rec.steps) == 1
