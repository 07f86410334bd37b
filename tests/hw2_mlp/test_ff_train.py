"""FF training loop (hw2_mlp.ff_train) and the experiment driver (hw2_mlp.ff_run)."""
import pytest
import torch

from common import TensorSplit, load_dataset
from common.errors import CheckpointError, UsageError
from common.io import load_checkpoint
from hw2_mlp.ff_run import FFRunConfig, config_from_args, parse_args, run_supervised, run_unsupervised
from hw2_mlp.ff_train import (FFTrainConfig, checkpoint_file, fit_linear_probe, lr_at, probe_features,
                              train_ff)
from hw2_mlp.forward_forward import FFNet, SupervisedFF


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits (ship with the package, always offline): a stand-in for fast loop tests."""
    splits = load_dataset("digits")
    return splits.train.head(400, seed=0), splits.test.head(200, seed=0)


def small_config(**kw):
    base = dict(num_epochs=2, batch_size=50, lr=3e-3, eval_train_size=100, probe_size=50)
    return FFTrainConfig(**{**base, **kw})


def test_lr_schedule_is_flat_then_decays_linearly():
    config = FFTrainConfig(num_epochs=10, lr=1.0)
    rates = [lr_at(config, e) for e in range(10)]
    assert rates[:5] == [1.0] * 5
    assert all(a > b > 0 for a, b in zip(rates[4:], rates[5:]))
    assert lr_at(FFTrainConfig(num_epochs=10, lr=1.0, cooldown=False), 9) == 1.0


def test_logs_have_per_layer_loss_goodness_and_accuracy(digits):
    train, test = digits
    torch.manual_seed(0)
    net = SupervisedFF((64, 32, 32))
    lines = []
    history = train_ff(net, train, small_config(), test=test, log=lines.append)
    assert len(history) == 2 and len(lines) == 2
    record = history.records[-1]
    assert set(record["layers"][0]) == {"loss", "g_pos", "g_neg", "ff_acc", "peer"} and len(record["layers"]) == 2
    assert 0.0 <= record["test_acc"] <= 1.0 and record["examples_per_s"] > 0
    assert len(record["probe_goodness"][1]["pos"]) == 50
    assert len(history.layer("g_pos")) == 2 and len(history.layer("g_pos")[0]) == 2
    assert "L2 loss" in lines[0] and "test_acc" in lines[0]


def test_a_finished_run_reloads_without_retraining(digits, tmp_path):
    train, _ = digits
    path = tmp_path / "ff.pt"
    torch.manual_seed(0)
    done = FFNet((64, 16, 16))
    train_ff(done, train, small_config(), mode="unsupervised", log=None, checkpoint_path=path)
    assert load_checkpoint(path)["epoch"] == 2  # tensors and plain values only: loads with weights_only
    again = FFNet((64, 16, 16))
    history = train_ff(again, train, small_config(), mode="unsupervised", log=None, checkpoint_path=path)
    assert len(history) == 2
    assert all(torch.equal(a, b) for a, b in zip(done.parameters(), again.parameters()))


def test_resume_mid_run_matches_an_uninterrupted_run(digits, tmp_path):
    train, _ = digits
    config = small_config(num_epochs=3)
    torch.manual_seed(0)
    straight = FFNet((64, 16, 16), peer_norm=0.03)
    train_ff(straight, train, config, mode="unsupervised", log=None)
    path = tmp_path / "ff.pt"

    def interrupt_after_two(net, record, history):
        if record["epoch"] == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third epoch's evaluation: epoch 2 is checkpointed

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train_ff(FFNet((64, 16, 16), peer_norm=0.03), train, config, mode="unsupervised", log=None,
                 checkpoint_path=path, on_epoch=interrupt_after_two)
    assert load_checkpoint(path)["epoch"] == 2
    resumed = FFNet((64, 16, 16), peer_norm=0.03)
    history = train_ff(resumed, train, config, mode="unsupervised", log=None, checkpoint_path=path)
    assert [r["epoch"] for r in history.records] == [1, 2, 3]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)  # weights and peer-normalisation running means


def test_a_checkpoint_of_other_settings_is_not_resumed(digits, tmp_path):
    """Another learning rate or epoch count is another run: refused at the same path, and ff_run's
    checkpoint names (a hash of the settings) keep such runs apart in one folder."""
    train, _ = digits
    path = tmp_path / "ff.pt"
    train_ff(FFNet((64, 8)), train, small_config(num_epochs=1), mode="unsupervised", log=None,
             checkpoint_path=path)
    for changed in (small_config(num_epochs=1, lr=1e-2), small_config(num_epochs=2)):
        with pytest.raises(CheckpointError, match="other settings .*config"):
            train_ff(FFNet((64, 8)), train, changed, mode="unsupervised", log=None, checkpoint_path=path)


def test_checkpoint_of_another_net_is_refused(digits, tmp_path):
    train, _ = digits
    path = tmp_path / "ff.pt"
    train_ff(FFNet((64, 8)), train, small_config(num_epochs=1), mode="unsupervised", log=None,
             checkpoint_path=path)
    with pytest.raises(CheckpointError, match="other settings .*sizes"):
        train_ff(FFNet((64, 12)), train, small_config(num_epochs=2), mode="unsupervised", log=None,
                 checkpoint_path=path)


def test_bad_arguments_say_what_to_do(digits):
    train, _ = digits
    with pytest.raises(TypeError, match="SupervisedFF"):
        train_ff(FFNet((64, 8)), train, small_config(), mode="supervised", log=None)
    with pytest.raises(ValueError, match="mode must be"):
        train_ff(FFNet((64, 8)), train, small_config(), mode="sideways", log=None)
    with pytest.raises(ValueError, match="negatives must be"):
        train_ff(SupervisedFF((64, 8)), train, small_config(negatives="easy"), log=None)


def test_hard_negatives_train(digits):
    train, test = digits
    torch.manual_seed(0)
    history = train_ff(SupervisedFF((64, 32, 32)), train, small_config(negatives="hard"), test=test, log=None)
    assert len(history) == 2 and all(lay["g_pos"] > 0 for lay in history.records[-1]["layers"])


def test_linear_probe_on_frozen_features(digits):
    train, test = digits
    net = FFNet((64, 32, 32))
    before = [p.clone() for p in net.parameters()]
    feats = probe_features(net, train, neutral=False)
    assert feats.shape == (len(train), 32) and not feats.requires_grad
    test_feats = probe_features(net, test, False)
    _, records, metrics = fit_linear_probe(feats, train.y, {"test": (test_feats, test.y)}, num_epochs=3,
                                           lr=1e-2)
    assert len(records) == 3 and set(metrics) == {"train", "test"}
    assert metrics["test"]["acc"] > 0.5  # random ReLU features of 8x8 digits are linearly separable enough
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # the FF net stays frozen


def test_cli_profiles_and_overrides():
    args = parse_args(["--profile", "full", "--hidden", "500,500", "--sup-epochs", "3", "--peer-norm", "0.03",
                       "--theta", "1", "--merge-val", "1"])
    profile, config = config_from_args(args)
    assert profile == "full" and config.hidden == (500, 500) and config.sup_epochs == 3
    assert config.limit_train is None and config.merge_val  # all 60k training images
    assert config.peer_norm == 0.03 and config.theta_per_unit == 1.0
    _, paper = config_from_args(parse_args(["--profile", "full"]))
    assert paper.hidden == (2000,) * 4 and paper.sup_epochs == 60 and paper.unsup_epochs == 100
    for bad, match in ((["--hidden", "wide"], "comma-separated"), (["--sup-epochs", "-1"], "--sup-epochs"),
                       (["--unsup-epochs", "0"], "--unsup-epochs"), (["--lr", "0"], "--lr"),
                       (["--lr", "nan"], "--lr"), (["--negatives", "easy"], "--negatives"),
                       (["--batch-size", "1"], "--batch-size"), (["--peer-norm", "-1"], "--peer-norm")):
        with pytest.raises(UsageError, match=match):
            config_from_args(parse_args(bad))


def test_a_checkpoint_with_code_in_it_is_refused_without_running_it(digits, tmp_path):
    train, _ = digits
    path = tmp_path / "ff.pt"

    class Exploit:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('ran')" % str(tmp_path / "pwned"),))

    torch.save({"epoch": 1, "payload": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        train_ff(FFNet((64, 8)), train, small_config(), mode="unsupervised", log=None, checkpoint_path=path)
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_names_change_with_every_setting(tmp_path):
    base = {"config": {"lr": 1e-3, "hidden": [8]}, "limit_train": 100}
    names = {checkpoint_file(tmp_path, "supervised", base),
             checkpoint_file(tmp_path, "supervised", {**base, "config": {"lr": 2e-3, "hidden": [8]}}),
             checkpoint_file(tmp_path, "supervised", {**base, "limit_train": 200}),
             checkpoint_file(tmp_path, "unsupervised", base)}
    assert len(names) == 4
    assert checkpoint_file(tmp_path, "supervised", base) == checkpoint_file(tmp_path, "supervised", dict(base))


# ------------------------------------------------------------------------------- real MNIST, short runs
@pytest.fixture(scope="module")
def mnist(mnist_root):
    splits = load_dataset("mnist", root=mnist_root, limit_train=3000, limit_test=500)
    return splits.train, splits.test


CHANCE = 0.1


@pytest.mark.slow
def test_supervised_ff_beats_chance_on_real_mnist(mnist):
    # 3k images, 2 x 256, 4 epochs: measured 0.83-0.86 (goodness) and 0.89-0.90 (one pass) over seeds
    # 0-2 on 500 test images; the bound, 6x chance, leaves a margin of > 0.2 for seeds and BLAS differences
    train, test = mnist
    config = FFRunConfig(hidden=(256, 256), sup_epochs=4, probe_epochs=5)
    net, records, results = run_supervised(train, test, config, torch.device("cpu"), None, log=None)
    assert 1.0 - results["test_error"] >= 6 * CHANCE
    assert 1.0 - results["test_error_one_pass"] >= 6 * CHANCE
    assert records[-1]["layers"][0]["g_pos"] > records[-1]["layers"][0]["g_neg"]


@pytest.mark.slow
def test_unsupervised_ff_with_linear_classifier_beats_chance_on_real_mnist(mnist):
    # 3k images, 2 x 256, 3 epochs, 5-epoch linear classifier: measured 0.84-0.85 over seeds 0-2
    train, test = mnist
    config = FFRunConfig(hidden=(256, 256), unsup_epochs=3, probe_epochs=5)
    net, records, results = run_unsupervised(train, test, config, torch.device("cpu"), None, log=None)
    assert 1.0 - results["test_error"] >= 6 * CHANCE
    assert isinstance(train, TensorSplit) and len(results["train_ff_loss"]) == 2


def test_the_loewex_recipe_flags_reach_the_config_and_bad_values_are_refused():
    from hw2_mlp.ff_run import LOEWEX_RECIPE, PROFILES, _train_config, loewex_recipe
    _, config = config_from_args(parse_args(LOEWEX_RECIPE.split()))
    assert config == loewex_recipe(PROFILES["quick"])  # the flags and the notebook's settings are one recipe
    assert loewex_recipe(PROFILES["full"]).limit_train is None  # the full profile's data, the recipe's net
    assert (config.hidden, config.sup_epochs, config.unsup_epochs) == ((1000,) * 3, 100, 100)
    assert (config.optimizer, config.lr, config.weight_decay, config.full_grad) == ("sgd", 1e-3, 3e-4, True)
    assert (config.theta_per_unit, config.label_value, config.peer_norm) == (1.0, 1.0, 0.03)
    assert (config.probe_optimizer, config.probe_lr, config.probe_weight_decay) == ("sgd", 1e-2, 3e-3)
    train_config = _train_config(config, 4)
    assert (train_config.optimizer, train_config.weight_decay) == ("sgd", 3e-4)
    for bad, match in ((["--optimizer", "rmsprop"], "--optimizer"), (["--weight-decay", "-1"], "--weight-decay"),
                       (["--probe-optimizer", "lbfgs"], "--probe-optimizer"), (["--probe-lr", "0"], "--probe-lr"),
                       (["--probe-weight-decay", "nan"], "--probe-weight-decay"),
                       (["--baseline-weight-decay", "-1e-4"], "--baseline-weight-decay"),
                       (["--baseline-schedule", "step"], "--baseline-schedule")):
        with pytest.raises(UsageError, match=match):
            config_from_args(parse_args(bad))


def test_settings_added_later_keep_old_checkpoint_names_only_at_their_defaults(tmp_path):
    from dataclasses import asdict

    from hw2_mlp.ff_run import ADDED_RUN_SETTINGS, _keyed_config
    from hw2_mlp.ff_train import ADDED_TRAIN_SETTINGS, train_settings
    old = {k: v for k, v in asdict(FFRunConfig()).items() if k not in ADDED_RUN_SETTINGS}  # as keyed before
    assert _keyed_config(FFRunConfig()) == old
    names = {checkpoint_file(tmp_path, "supervised", {"config": old})}
    for field, value in (("optimizer", "sgd"), ("weight_decay", 3e-4), ("full_grad", True),
                         ("probe_optimizer", "sgd"), ("probe_weight_decay", 1e-3), ("baseline_weight_decay", 3e-4),
                         ("baseline_schedule", "cosine"), ("standardize", True)):
        from dataclasses import replace
        names.add(checkpoint_file(tmp_path, "supervised", {"config": _keyed_config(replace(FFRunConfig(),
                                                                                            **{field: value}))}))
    assert len(names) == 9  # every added setting, off its default, gives another checkpoint
    net = FFNet((64, 8))
    assert set(ADDED_TRAIN_SETTINGS).isdisjoint(train_settings(net, "unsupervised", FFTrainConfig())["config"])
    assert train_settings(net, "unsupervised", FFTrainConfig(optimizer="sgd"))["config"]["optimizer"] == "sgd"
    assert "full_grad" not in train_settings(net, "unsupervised", FFTrainConfig())
    assert train_settings(FFNet((64, 8), full_grad=True), "unsupervised", FFTrainConfig())["full_grad"] is True


def test_sgd_training_and_an_sgd_probe_run(digits):
    train, test = digits
    torch.manual_seed(0)
    net = SupervisedFF((64, 32, 32), theta_per_unit=1.0, label_value=1.0, peer_norm=0.03, full_grad=True)
    history = train_ff(net, train, small_config(num_epochs=6, optimizer="sgd", lr=1e-2, weight_decay=3e-4),
                       log=None)
    assert len(history) == 6 and all(per_epoch[-1] < per_epoch[0] / 3  # every layer's loss falls
                                     for per_epoch in history.layer("loss"))
    feats = probe_features(net, train, neutral=True)
    model, _, metrics = fit_linear_probe(feats, train.y, {"test": (probe_features(net, test, True), test.y)},
                                         num_epochs=10, lr=1e-1, weight_decay=3e-3, optimizer="sgd")
    assert metrics["test"]["acc"] > 0.3  # 3x chance on 400 digits
    with pytest.raises(ValueError, match="optimizer"):
        fit_linear_probe(feats, train.y, {}, num_epochs=1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="optimizer"):
        train_ff(net, train, small_config(optimizer="lbfgs"), log=None)
