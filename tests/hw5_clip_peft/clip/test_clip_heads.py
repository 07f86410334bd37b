"""Heads on features: class embeddings (d), linear probe (e), CoOp, early stopping and few-shot sampling."""
import pytest
import torch
import torch.nn.functional as F

from common import EarlyStopping, StopTraining
from hw5_clip_peft.clip.class_embeddings import ClassEmbeddingClassifier, train_class_embeddings
from hw5_clip_peft.clip.clip_models import TINY, load_clip
from hw5_clip_peft.clip.coop import CoOpClassifier, train_coop
from hw5_clip_peft.clip.feature_training import (FeatureTrainConfig, few_shot_indices, head_accuracy,
                                                 train_on_features)
from hw5_clip_peft.clip.linear_probe import LinearProbe, train_linear_probe
from hw5_clip_peft.clip.zero_shot import zero_shot_logits


def separable(n_per_class=30, K=5, D=32, seed=0):
    """Clusters around orthogonal directions plus a shared offset: linearly separable by a wide margin.

    The class means are fixed; ``seed`` only draws the samples (so train, val and test share the classes).
    """
    means_g = torch.Generator().manual_seed(1234)
    directions = torch.linalg.qr(torch.randn(D, D, generator=means_g))[0][:K]
    means = 4 * directions + torch.randn(D, generator=means_g)
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(K).repeat_interleave(n_per_class)
    X = means[y] + 0.3 * torch.randn(len(y), D, generator=g)
    perm = torch.randperm(len(y), generator=g)
    return X[perm], y[perm]


FAST = FeatureTrainConfig(lr=5e-2, num_epochs=40, batch_size=32, patience=5)


def test_class_embeddings_reach_100_percent_from_a_bad_init():
    train, val = separable(seed=0), separable(n_per_class=10, seed=1)
    test = separable(n_per_class=10, seed=2)
    bad_init = torch.randn(5, 32, generator=torch.Generator().manual_seed(9))
    before = head_accuracy(ClassEmbeddingClassifier(bad_init, 100.0), *train)["top1"]
    head, result = train_class_embeddings(train, val, bad_init, 100.0, FAST)
    assert before < 0.6
    assert head_accuracy(head, *train)["top1"] == 1.0
    assert head_accuracy(head, *test)["top1"] == 1.0
    assert result.best_val_acc == 1.0 and result.best_epoch >= 1
    assert torch.isfinite(head.weight).all()
    assert float(head.logit_scale) == 100.0


def test_class_embedding_head_starts_as_the_zero_shot_classifier():
    X, _ = separable()
    init = F.normalize(torch.randn(5, 32), dim=-1)
    head = ClassEmbeddingClassifier(init * 7, 100.0)  # any scale: rows are normalised
    assert torch.allclose(head(X), zero_shot_logits(X, init, 100.0), atol=1e-4)


def test_linear_probe_reaches_100_percent_and_picks_decay_on_val():
    train, val = separable(seed=3), separable(n_per_class=10, seed=4)
    probe, result, rows = train_linear_probe(train, val, 5, FAST, weight_decays=(0.0, 1e-2))
    assert head_accuracy(probe, *train)["top1"] == 1.0
    assert head_accuracy(probe, *separable(n_per_class=10, seed=5))["top1"] == 1.0
    assert [r["weight_decay"] for r in rows] == [0.0, 1e-2]
    assert result.best_val_acc == max(r["val_acc"] for r in rows)
    assert sum(p.numel() for p in probe.parameters()) == 32 * 5 + 5
    assert torch.allclose(probe.mean, train[0].mean(0))


def test_training_keeps_the_initial_weights_when_nothing_improves():
    train, val = separable(seed=6), separable(n_per_class=10, seed=7)
    torch.manual_seed(0)
    probe = LinearProbe(train[0], 5)
    before = {k: v.clone() for k, v in probe.state_dict().items()}
    result = train_on_features(probe, train, val, FeatureTrainConfig(lr=0.0, num_epochs=3, patience=1))
    assert result.best_epoch == 0 and result.best_val_acc == result.init_val_acc
    assert all(torch.equal(before[k], v) for k, v in probe.state_dict().items())
    assert result.epochs_run == 2  # patience 1: one epoch without a new best after the first


def test_early_stopping_callback():
    stop = EarlyStopping(patience=2)
    stop({"val_acc": 0.5})
    stop({"val_acc": 0.6})
    stop({"val_acc": 0.6})
    with pytest.raises(StopTraining):
        stop({"val_acc": 0.55})


def test_few_shot_indices():
    y = torch.tensor([0] * 10 + [1] * 3 + [2] * 7)
    idx = few_shot_indices(y, 4, seed=1)
    assert torch.bincount(y[idx]).tolist() == [4, 3, 4]  # class 1 has only 3
    assert idx.tolist() == sorted(set(idx.tolist()))
    assert torch.equal(idx, few_shot_indices(y, 4, seed=1))
    assert not torch.equal(idx, few_shot_indices(y, 4, seed=2))
    with pytest.raises(ValueError, match="shots"):
        few_shot_indices(y, 0)


@pytest.fixture(scope="module")
def tiny():
    return load_clip(TINY, device="cpu", seed=0)


def test_coop_starts_as_the_template_classifier_and_trains_only_context(tiny):
    names = ["Chihuahua", "Labrador retriever", "black-and-tan coonhound", "pug"]
    head = CoOpClassifier(tiny, names, n_ctx=4, init="a photo of a")
    with torch.no_grad():
        reference = F.normalize(tiny.model.encode_text(tiny.tokenizer([f"a photo of a {n}." for n in names])),
                                dim=-1)
        assert torch.allclose(head.text_features(), reference, atol=1e-5)
    assert [n for n, p in head.named_parameters()] == ["ctx"] and head.ctx.shape == (4, 64)
    with pytest.raises(ValueError, match="n_ctx"):
        CoOpClassifier(tiny, names, n_ctx=3, init="a photo of a")
    # image features made to match the text side, so the labels are learnable through the prompts
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(12)
    X = reference[y] + 0.05 * torch.randn(len(y), 64, generator=g)
    encoder_before = [p.clone() for p in tiny.model.parameters()]
    trained, result = train_coop(tiny, names, (X, y), (X, y), config=FeatureTrainConfig(lr=1e-2, num_epochs=5,
                                                                                         batch_size=16))
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, tiny.model.parameters()))
    assert result.best_val_acc >= result.init_val_acc
    assert not torch.equal(trained.ctx, head.ctx) or result.best_epoch == 0
    assert len(result.history) >= 1 and all(r["train_loss"] == r["train_loss"] for r in result.history)
