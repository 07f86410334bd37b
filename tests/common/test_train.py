import pytest

from common import CheckpointError, load_checkpoint
import torch
from torch import nn

from common import History, NonFiniteLossError, StopTraining, TensorBatches, evaluate, fit, seed_everything


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(256, 10, generator=g)
    y = (X[:, 0] + X[:, 1] > 0).long()
    return X, y


def _setup(seed=0):
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    X, y = _problem()
    return model, optimizer, scheduler, TensorBatches(X, y, 32, seed=seed), TensorBatches(X, y, 128, shuffle=False)


def test_fit_learns_and_records_history():
    model, opt, sched, train, val = _setup()
    history = fit(model, opt, train, num_epochs=5, val_batches=val, scheduler=sched)
    assert isinstance(history, History) and len(history) == 5
    assert history["epoch"] == [1, 2, 3, 4, 5]
    assert history["val_acc"][-1] > 0.9
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])  # lr used in each epoch
    assert history.best_state is not None and history.best_epoch == max(range(5), key=lambda i: history["val_acc"][i])
    assert evaluate(model, val)["acc"] == pytest.approx(history["val_acc"][-1])


def test_resume_matches_uninterrupted_run(tmp_path):
    model_a, opt_a, sched_a, train_a, val_a = _setup()
    full = fit(model_a, opt_a, train_a, num_epochs=4, val_batches=val_a, scheduler=sched_a)

    ckpt = tmp_path / "run.pt"
    model_b, opt_b, sched_b, train_b, val_b = _setup()
    fit(model_b, opt_b, train_b, num_epochs=2, val_batches=val_b, scheduler=sched_b, checkpoint_path=ckpt)
    # a new process would rebuild everything from scratch (different RNG state) and resume from the file
    seed_everything(1234)
    model_c, opt_c, sched_c, train_c, val_c = _setup(seed=7)
    resumed = fit(model_c, opt_c, train_c, num_epochs=4, val_batches=val_c, scheduler=sched_c,
                  checkpoint_path=ckpt)
    assert resumed["epoch"] == [1, 2, 3, 4]
    for p, q in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(p, q)
    assert resumed["train_loss"] == full["train_loss"]


def test_nan_guard_fires():
    model, opt, _, train, _ = _setup()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="diverged") as err:
        fit(model, opt, train, num_epochs=1)
    assert err.value.epoch == 0 and err.value.step == 0


def test_callbacks_stop_and_propagate(tmp_path):
    model, opt, _, train, val = _setup()
    seen = []

    def stop_after_two(record):
        seen.append(record["epoch"])
        if record["epoch"] == 2:
            raise StopTraining

    history = fit(model, opt, train, num_epochs=10, val_batches=val, callbacks=[stop_after_two])
    assert seen == [1, 2] and len(history) == 2

    class Pruned(Exception):
        pass

    def prune(record):
        raise Pruned

    ckpt = tmp_path / "c.pt"
    with pytest.raises(Pruned):
        fit(model, opt, train, num_epochs=3, callbacks=[prune], checkpoint_path=ckpt)
    assert load_checkpoint(ckpt)["epoch"] == 1  # the epoch's checkpoint was written first


def test_bad_arguments_and_corrupt_checkpoint(tmp_path):
    model, opt, _, train, _ = _setup()
    with pytest.raises(ValueError, match="num_epochs"):
        fit(model, opt, train, num_epochs=-1)
    with pytest.raises(ValueError, match="scheduler_step"):
        fit(model, opt, train, num_epochs=1, scheduler_step="step")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="delete it"):
        fit(model, opt, train, num_epochs=1, checkpoint_path=bad)
