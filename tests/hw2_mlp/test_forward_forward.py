"""The FF net (hw2_mlp.forward_forward): normalization, goodness, the local loss and its locality."""
import math

import pytest
import torch
import torch.nn.functional as F

from hw2_mlp.ff_data import embed_label, random_wrong_labels
from hw2_mlp.forward_forward import (FFNet, SupervisedFF, backprop_mlp, ff_loss, goodness, layer_optimizers,
                                     length_normalize, relu_full_grad)


def batch(n=8, d=784, seed=0):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed))


def test_length_normalize_keeps_direction_and_sets_length():
    h = torch.randn(5, 40, dtype=torch.float64)
    z = length_normalize(h)
    assert torch.allclose(z.norm(dim=1), torch.full((5,), math.sqrt(40), dtype=torch.float64))
    assert torch.allclose(F.cosine_similarity(z, h, dim=1), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(length_normalize(7.5 * h), z)  # the scale (hence the goodness) is gone
    assert torch.equal(length_normalize(torch.zeros(2, 3)), torch.zeros(2, 3))  # no division by zero


def test_goodness_and_loss_match_the_formula_in_float64():
    h = torch.randn(6, 10, dtype=torch.float64)
    assert torch.allclose(goodness(h), (h * h).sum(1))
    g_pos, g_neg = torch.randn(4, dtype=torch.float64) * 5, torch.randn(4, dtype=torch.float64) * 5
    theta = 2.0
    by_hand = torch.log(1 + torch.exp(torch.cat([theta - g_pos, g_neg - theta]))).mean()
    assert torch.allclose(ff_loss(g_pos, g_neg, theta), by_hand)
    assert torch.isfinite(ff_loss(torch.tensor([1e4]), torch.tensor([-1e4]), 0.0))  # stable far out


def test_loss_sign_behaviour():
    theta = 10.0
    good = ff_loss(torch.tensor([15.0]), torch.tensor([5.0]), theta)  # positives above, negatives below
    bad = ff_loss(torch.tensor([5.0]), torch.tensor([15.0]), theta)   # the other way round
    assert good < math.log(2) < bad  # log 2 is the loss at g = theta
    at_threshold = ff_loss(torch.tensor([theta]), torch.tensor([theta]), theta)
    assert torch.isclose(at_threshold, torch.tensor(math.log(2)))
    g_pos = torch.tensor([12.0], requires_grad=True)
    g_neg = torch.tensor([8.0], requires_grad=True)
    ff_loss(g_pos, g_neg, theta).backward()
    assert g_pos.grad < 0 < g_neg.grad  # descent raises positive goodness and lowers negative goodness


def test_each_layer_gets_gradient_only_from_its_own_loss():
    torch.manual_seed(0)
    net = FFNet((784, 32, 24, 16))
    x_pos, x_neg = batch(seed=1), batch(seed=2)
    losses = net.layer_losses(x_pos, x_neg)
    for k, (loss, _) in enumerate(losses):
        net.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        for j, layer in enumerate(net.layers):
            grads = [p.grad for p in layer.parameters()]
            if j == k:
                assert all(g is not None and g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None for g in grads), f"layer {j + 1} got gradient from layer {k + 1}'s loss"


def test_train_step_equals_isolated_per_layer_updates():
    """A train step changes layer k exactly as one SGD step on layer k's own loss would, given its input."""
    torch.manual_seed(0)
    net = FFNet((784, 20, 20))
    x_pos, x_neg = batch(seed=3), batch(seed=4)
    inputs = [(length_normalize(x_pos), length_normalize(x_neg))]
    with torch.no_grad():
        inputs.append(tuple(length_normalize(net.layers[0](x)) for x in inputs[0]))
    expected = []
    for layer, (xp, xn) in zip(net.layers, inputs):
        loss, _ = layer.loss(xp, xn)
        grads = torch.autograd.grad(loss, list(layer.parameters()))
        expected.append([p.detach() - 0.1 * g for p, g in zip(layer.parameters(), grads)])
    net.train_step(x_pos, x_neg, [torch.optim.SGD(layer.parameters(), lr=0.1) for layer in net.layers])
    for layer, want in zip(net.layers, expected):
        for p, w in zip(layer.parameters(), want):
            assert torch.allclose(p, w, atol=1e-6)


def test_activities_detach_and_normalize_between_layers():
    net = FFNet((784, 16, 16))
    acts = net.activities(batch())
    assert [a.shape for a in acts] == [(8, 16), (8, 16)]
    assert acts[0].requires_grad and acts[1].requires_grad
    loss = goodness(acts[1]).sum()
    loss.backward()
    assert net.layers[0].linear.weight.grad is None  # nothing flows from layer 2 into layer 1


def test_thresholds_scale_with_width():
    net = FFNet((10, 30, 50), theta_per_unit=0.5)
    assert [layer.theta for layer in net.layers] == [15.0, 25.0]


def test_label_scores_are_one_batched_pass_over_every_label():
    torch.manual_seed(0)
    net = SupervisedFF((784, 24, 24, 24))
    X = torch.rand(5, 1, 28, 28)
    scores = net.label_scores(X)
    assert scores.shape == (5, 10)
    for label in (0, 6):  # the same as scoring one label at a time, layers 2 and 3 only
        acts = net.activities(embed_label(X, torch.full((5,), label), value=net.label_value))
        per_unit = (goodness(acts[1]) + goodness(acts[2])) / 48
        assert torch.allclose(scores[:, label], per_unit, atol=1e-5)
    assert torch.equal(net.predict(X, batch_size=2), scores.argmax(1))


def test_a_few_steps_on_separable_toy_data_separate_positives_from_negatives():
    torch.manual_seed(0)
    net = SupervisedFF((64, 32, 32))
    X = torch.rand(200, 64)
    y = (X[:, 32:].sum(1) > 16).long()  # a label that depends on the pixels outside the label slot
    optimizers = layer_optimizers(net, lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    first = None
    for step in range(60):
        stats = net.train_step(net.embed(X, y), net.embed(X, random_wrong_labels(y, generator)), optimizers)
        first = first or stats
    for before, after in zip(first, stats):
        assert after["loss"] < before["loss"]
        assert after["g_pos"] > after["g_neg"]


def test_backprop_mlp_has_the_same_hidden_layers():
    model = backprop_mlp((784, 30, 20))
    shapes = [tuple(m.weight.shape) for m in model if isinstance(m, torch.nn.Linear)]
    assert shapes == [(30, 784), (20, 30), (10, 20)]
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="at least one layer"):
        FFNet((784,))


def test_shared_first_layer_equals_the_plain_path():
    """Sharing layer 1's label-free work between labels changes nothing but the speed: same scores, same
    losses and the same gradients as embedding every label and running each copy through the whole net."""
    torch.manual_seed(0)
    shared = SupervisedFF((784, 40, 30, 20), label_value=3.0)
    plain = SupervisedFF((784, 40, 30, 20), label_value=3.0, shared_first_layer=False)
    plain.load_state_dict(shared.state_dict())
    X = torch.rand(12, 1, 28, 28, dtype=torch.float32)
    y = torch.randint(0, 10, (12,), generator=torch.Generator().manual_seed(1))
    wrong = random_wrong_labels(y, torch.Generator().manual_seed(2))
    assert torch.allclose(shared.label_scores(X), plain.label_scores(X), atol=1e-5)
    for net in (shared, plain):
        net.zero_grad()
        sum(loss for loss, _ in net.labeled_losses(X, y, wrong)).backward()
    for a, b in zip(shared.parameters(), plain.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4)


def test_peer_normalisation_pulls_unit_activities_together_and_stays_local():
    torch.manual_seed(0)
    net = FFNet((784, 16, 12), peer_norm=0.5)
    before = net.layers[0].running_mean.clone()
    losses = net.layer_losses(batch(seed=5), batch(seed=6))
    assert not torch.equal(net.layers[0].running_mean, before)  # the running mean moved
    assert all(stats["peer"] >= 0 for _, stats in losses)
    net.zero_grad(set_to_none=True)
    losses[1][0].backward()
    assert net.layers[0].linear.weight.grad is None  # layer 2's peer term does not reach layer 1
    # with all units at the same mean activity the term is zero; it grows with their spread
    layer = net.layers[1]
    layer.running_mean.fill_(1.0)
    layer.peer_momentum = 1.0  # freeze the running mean: only its spread counts
    _, stats = layer.loss(torch.randn(8, 16), torch.randn(8, 16))
    assert float(stats["peer"]) == 0.0
    layer.running_mean[0] = 5.0
    _, stats = layer.loss(torch.randn(8, 16), torch.randn(8, 16))
    assert float(stats["peer"]) > 0.5
    net.eval()  # inference: no update of the running mean
    frozen = layer.running_mean.clone()
    layer.peer_momentum = 0.9
    layer.loss(torch.randn(8, 16), torch.randn(8, 16))
    assert torch.equal(layer.running_mean, frozen)


def test_fused_adam_gives_the_same_update():
    torch.manual_seed(0)
    a, b = FFNet((784, 20, 20)), FFNet((784, 20, 20))
    b.load_state_dict(a.state_dict())
    x_pos, x_neg = batch(seed=7), batch(seed=8)
    for net, fused in ((a, True), (b, False)):
        optimizers = layer_optimizers(net, 1e-2, fused=fused)
        for _ in range(3):
            net.train_step(x_pos, x_neg, optimizers)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_full_grad_relu_changes_only_the_peer_term():
    torch.manual_seed(0)
    z = torch.randn(6, 5)
    assert torch.equal(relu_full_grad(z), F.relu(z))
    z.requires_grad_(True)
    relu_full_grad(z).sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # the gradient passes below zero too

    def grads(full_grad, peer_norm):
        torch.manual_seed(1)
        net = FFNet((784, 16), peer_norm=peer_norm, full_grad=full_grad)
        net.layers[0].linear.bias.data[:4] = -50.0  # four units silent on every input: dead for a plain ReLU
        loss, _ = net.layer_losses(batch(seed=2), batch(seed=3))[0]
        loss.backward()
        return net.layers[0].linear.bias.grad

    # goodness only: d(sum h^2)/dz = 2h is zero for a silent unit under either gradient rule
    assert torch.allclose(grads(False, 0.0), grads(True, 0.0))
    plain, full = grads(False, 0.5), grads(True, 0.5)
    assert torch.all(plain[:4] == 0)  # plain ReLU: the dead units get nothing, peer term or not
    assert torch.all(full[:4] < 0)  # full gradient: the peer term raises them (gradient descent on -grad)


def test_sgd_layer_optimizers_follow_the_recipe():
    net = FFNet((784, 10, 10))
    optimizers = layer_optimizers(net, 1e-3, 3e-4, optimizer="sgd", momentum=0.9)
    assert [type(o) for o in optimizers] == [torch.optim.SGD] * 2
    group = optimizers[0].param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-3, 0.9, 3e-4)
    # one layer's optimizer holds that layer's parameters and nothing else
    assert {id(p) for p in optimizers[1].param_groups[0]["params"]} == {id(p) for p in net.layers[1].parameters()}
    with pytest.raises(ValueError, match="optimizer"):
        layer_optimizers(net, 1e-3, optimizer="rmsprop")
