"""hw2_mlp.solver: overfitting a small set, histories, best weights, checkpoint/resume, errors."""
import math

import pytest
import torch

from common import CheckpointError, NonFiniteLossError, load_dataset
from hw2_mlp.fc_networks import FullyConnectedNet, TwoLayerNet
from hw2_mlp.solver import Solver


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def small_data(splits, n_train=200, n_val=100):
    train, val = splits.train.head(n_train), splits.val.head(n_val)
    return {"X_train": train.X, "y_train": train.y, "X_val": val.X, "y_val": val.y}


def make_net(dropout=0.0, seed=0, hidden=(64, 64)):
    return FullyConnectedNet(list(hidden), input_dim=64, num_classes=10, dropout=dropout, weight_scale="he",
                             device="cpu", generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rule, lr", [("sgd", 0.1), ("sgd_momentum", 0.05), ("adam", 3e-3)])
def test_overfits_fifty_examples(digits, rule, lr):
    data = small_data(digits, n_train=50)
    solver = Solver(make_net(), data, update_rule=rule, optim_config={"learning_rate": lr}, batch_size=25,
                    num_epochs=40, num_train_samples=None)
    solver.train()
    assert solver.train_acc_history[-1] == 1.0


def test_histories_and_best_params(digits):
    data = small_data(digits)
    model = make_net()
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=32,
                    num_epochs=4, lr_decay=0.8)
    solver.train()
    assert len(solver.loss_history) == 4 * math.ceil(200 / 32)
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 4
    assert solver.best_val_acc == max(solver.val_acc_history)
    assert all(torch.equal(model.params[k], solver.best_params[k]) for k in model.params)
    assert solver.check_accuracy(data["X_val"], data["y_val"]) == solver.best_val_acc
    assert solver.optim_configs["W1"]["learning_rate"] == pytest.approx(1e-2 * 0.8 ** 4)
    assert solver.loss_history[-1] < solver.loss_history[0]
    assert solver.val_acc_history[-1] > 0.5  # 10 classes: chance is 0.1


def test_accepts_common_splits(digits):
    solver = Solver(TwoLayerNet(input_dim=64, hidden_dim=32, device="cpu", weight_scale="he"), digits,
                    update_rule="sgd_momentum", num_epochs=1)
    solver.train()
    assert len(solver.val_acc_history) == 1


class Interrupted(Solver):
    """A solver whose run is cut (as by Ctrl-C) at its ``stop_at``-th step."""

    stop_at = 0

    def _step(self, X_batch, y_batch):
        if len(self.loss_history) == self.stop_at:
            raise KeyboardInterrupt
        super()._step(X_batch, y_batch)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_resume_from_checkpoint_matches_uninterrupted_run(digits, tmp_path, dropout):
    data = small_data(digits)
    kwargs = dict(update_rule="adam", optim_config={"learning_rate": 2e-3}, batch_size=40, lr_decay=0.9,
                  num_epochs=4)

    torch.manual_seed(1)  # dropout masks come from the global RNG, whose state the checkpoint carries
    straight = Solver(make_net(dropout), data, **kwargs).train()

    torch.manual_seed(1)
    cut = Interrupted(make_net(dropout), data, checkpoint_dir=str(tmp_path), **kwargs)
    cut.stop_at = 2 * len(cut.batches) + 1  # mid-way through epoch 3: epochs 1-2 are checkpointed
    with pytest.raises(KeyboardInterrupt):
        cut.train()
    torch.manual_seed(999)  # a different RNG state in the new process must not matter
    resumed_model = make_net(dropout)
    resumed = Solver(resumed_model, data, checkpoint_dir=str(tmp_path), **kwargs)
    resumed.train()

    assert resumed.loss_history == straight.loss_history
    assert resumed.val_acc_history == straight.val_acc_history
    assert all(torch.equal(resumed_model.params[k], straight.model.params[k]) for k in resumed_model.params)


@pytest.mark.parametrize("change", [
    {"hidden": (32,)}, {"seed": 7}, {"batch_size": 50}, {"optim_config": {"learning_rate": 0.5}},
    {"run_settings": {"mask_seed": 3}}, {"n_train": 150},
])
def test_checkpoint_of_other_settings_is_refused(digits, tmp_path, change):
    """An explicit checkpoint_path written with any other setting raises, and is never resumed."""
    path = tmp_path / "run.pt"
    Solver(make_net(), small_data(digits), num_epochs=1, checkpoint_path=str(path)).train()
    change = dict(change)
    net = make_net(hidden=change.pop("hidden", (64, 64)), seed=change.pop("seed", 0))
    data = small_data(digits, n_train=change.pop("n_train", 200))
    solver = Solver(net, data, checkpoint_path=str(path), **{"num_epochs": 1, **change})
    with pytest.raises(CheckpointError, match="other settings"):
        solver.train()


def test_more_epochs_continue_a_finished_run_and_fewer_are_refused(digits, tmp_path):
    """Epoch k does not depend on the total: 2 then 4 epochs equals 4 straight; 4 then 2 is refused."""
    data = small_data(digits)
    kwargs = dict(update_rule="adam", optim_config={"learning_rate": 2e-3}, batch_size=40, lr_decay=0.9)
    straight = Solver(make_net(), data, num_epochs=4, **kwargs).train()
    Solver(make_net(), data, num_epochs=2, checkpoint_dir=str(tmp_path), **kwargs).train()
    longer = Solver(make_net(), data, num_epochs=4, checkpoint_dir=str(tmp_path), **kwargs).train()
    assert longer.loss_history == straight.loss_history and longer.val_acc_history == straight.val_acc_history
    with pytest.raises(CheckpointError, match="more than the 3 asked"):
        Solver(make_net(), data, num_epochs=3, checkpoint_dir=str(tmp_path), **kwargs).train()


def test_checkpoint_dir_keys_files_by_settings(digits, tmp_path):
    """Under checkpoint_dir, other settings write another file; the same settings resume theirs."""
    data = small_data(digits)
    a = Solver(make_net(), data, num_epochs=1, checkpoint_dir=str(tmp_path)).train()
    b = Solver(make_net(), data, num_epochs=1, checkpoint_dir=str(tmp_path),
               optim_config={"learning_rate": 0.05}).train()
    assert a.key != b.key and len(list(tmp_path.glob("solver_*.pt"))) == 2
    again = Solver(make_net(), data, num_epochs=1, checkpoint_dir=str(tmp_path))
    again.train()
    assert again.loss_history == a.loss_history  # resumed at epoch 1: no new step was taken
    assert again.checkpoint_file == a.checkpoint_file


def test_checkpoint_with_code_is_refused(digits, tmp_path):
    """Checkpoints are read with weights_only=True: a pickle of arbitrary objects is refused in one line."""
    import pickle

    solver = Solver(make_net(), small_data(digits), num_epochs=1, checkpoint_dir=str(tmp_path))
    solver.checkpoint_file.write_bytes(pickle.dumps({"epoch": 1, "payload": object.__new__(Solver)}))
    with pytest.raises(CheckpointError):
        solver.train()


def test_non_finite_loss_is_reported(digits):
    data = small_data(digits)
    data["X_train"] = data["X_train"].clone()
    data["X_train"][:] = float("nan")
    with pytest.raises(NonFiniteLossError):
        Solver(make_net(), data, num_epochs=1).train()


@pytest.mark.parametrize("kwargs, match", [
    ({"update_rule": "adagrad"}, "unknown update rule"),
    ({"learning_rate": 0.1}, "unknown Solver options"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr_decay": 1.5}, "lr_decay"),
])
def test_bad_options(digits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Solver(make_net(), small_data(digits), **kwargs)


def test_bad_data():
    with pytest.raises(ValueError, match="X_val"):
        Solver(make_net(), {"X_train": torch.zeros(2, 64), "y_train": torch.zeros(2, dtype=torch.long)})
