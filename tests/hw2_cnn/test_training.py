"""The P2 training recipe and its command line: tiny real runs, the CLI contract, settings-keyed checkpoints."""
import json
import pickle

import pytest
import torch

from hw2_cnn import train_cifar
from hw2_cnn.training import TrainConfig, build_model, load_splits, quick_config, train

class Payload:
    """Any class instance: unpickling it would run its module's code, so weights_only loading refuses it."""


DIGITS = ["--model", "plain", "--dataset", "digits", "--epochs", "1", "--no-progress", "--threads", "1"]


def test_quick_run_learns_on_digits():
    config = quick_config("plain", data_root=None, num_epochs=4, limit_train=600, limit_test=300, progress=False)
    assert config.dataset == "digits"
    result = train(config)
    assert result.input_shape == (1, 28, 28)           # 8x8 digits upsampled for the strided nets
    assert result.test_acc > 0.5                        # chance is 0.1
    assert result.flops > 0 and result.params == sum(p.numel() for p in result.extra["model"].parameters())


def test_quick_dataset_is_mnist_when_a_data_root_is_given(mnist_root):
    config = quick_config("mobilenet", data_root=mnist_root, limit_train=90, limit_test=50)
    splits = load_splits(config, mnist_root)
    assert config.dataset == "mnist" and splits.input_shape == (1, 28, 28) and len(splits.train) == 90
    model = build_model(config, 1, 10)
    assert model(splits.test.X[:4].float() / 255).shape == (4, 10)


def test_channels_last_run_matches_the_default_layout():
    # NHWC is a memory layout, not a different model: same data order and init give (nearly) the same run
    base = quick_config("plain", data_root=None, num_epochs=1, limit_train=200, limit_test=100, progress=False)
    a = train(base)
    b = train(TrainConfig(**{**base.__dict__, "channels_last": True}))
    assert abs(a.history.last["train_loss"] - b.history.last["train_loss"]) < 1e-3


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "imagenet"], "--dataset 'imagenet' is not one of"),
    (["--epochs", "-1"], "--epochs must be at least 1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--device", "tpu"], "device 'tpu'"),
    (["--profile", "bogus"], "bogus"),
    (["--model", "resnet"], "--model 'resnet'"),
    (["--lr", "0"], "--lr must be positive"),
    (["--variant", "huge"], "--variant 'huge'"),
    (["--se-reduction", "zero"], "--se-reduction"),
    (["--batch-size", "0"], "--batch-size"),
    (["--epochs", "two"], "invalid int value"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert train_cifar.main(argv + ["--out", str(out), "--checkpoint-dir", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "ck").exists()          # nothing written


def test_missing_cifar_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    code = train_cifar.main(["--model", "mobilenet", "--epochs", "1", "--data-root", str(tmp_path),
                             "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "CIFAR-10" in err and "DLHW_DATA" in err and "DLHW_DOWNLOAD=1" in err
    assert not (tmp_path / "out").exists()


def test_unwritable_outputs_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for flag in ("--out", "--checkpoint-dir"):
        assert train_cifar.main(DIGITS + [flag, str(blocker / "sub")]) == 2
        assert f"{flag} {blocker / 'sub'} cannot be created" in capsys.readouterr().err


def test_ctrl_c_is_one_line_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cifar, "train", interrupted)
    assert train_cifar.main(DIGITS + ["--out", str(tmp_path), "--checkpoint-dir", str(tmp_path / "ck")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and len(err.strip().splitlines()) == 1


def _run(tmp_path, out, ck, *extra):
    assert train_cifar.main(DIGITS + ["--limit-train", "300", "--limit-test", "200", "--out", str(out),
                                      "--checkpoint-dir", str(ck), *extra]) == 0
    return json.loads((out / "digits_plain.json").read_text())


def test_results_json_and_resume(tmp_path):
    first = _run(tmp_path, tmp_path / "a", tmp_path / "ck")
    assert first["status"] == "complete" and first["epochs_done"] == 1 and len(first["curves"]) == 1
    assert first["params"] > 0 and first["flops_per_image"] > 0 and first["inference_images_per_s_cpu"] > 0
    assert set(first["curves"][0]) >= {"epoch", "train_loss", "train_acc", "val_acc", "seconds"}
    # the same command again resumes from the finished checkpoint: no new epoch, the same numbers
    again = _run(tmp_path, tmp_path / "b", tmp_path / "ck")
    assert again["curves"] == first["curves"] and again["test_acc"] == first["test_acc"]


def test_changed_settings_never_reuse_another_runs_checkpoint(tmp_path):
    # issue 16: a second run with other hyper-parameters into the same checkpoint folder must report what a
    # fresh run with those settings reports, not the first run's accuracy
    changed = ("--lr", "0.9", "--weight-decay", "0.01", "--batch-size", "32")
    _run(tmp_path, tmp_path / "first", tmp_path / "shared", "--lr", "0.1")
    second = _run(tmp_path, tmp_path / "second", tmp_path / "shared", *changed)
    fresh = _run(tmp_path, tmp_path / "fresh", tmp_path / "fresh_ck", *changed)
    assert second["epochs_done"] == 1 and second["settings"]["lr"] == 0.9
    assert second["test_acc"] == fresh["test_acc"] and second["curves"][0]["train_loss"] == \
        fresh["curves"][0]["train_loss"]
    assert len(list((tmp_path / "shared").glob("plain_digits_*.pt"))) == 2


def test_a_checkpoint_that_could_run_code_is_refused(tmp_path, capsys):
    _run(tmp_path, tmp_path / "a", tmp_path / "ck")
    (path,) = (tmp_path / "ck").glob("plain_digits_*.pt")
    torch.save({"epoch": 1, "model": Payload()}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    assert train_cifar.main(DIGITS + ["--limit-train", "300", "--limit-test", "200", "--out",
                                      str(tmp_path / "a"), "--checkpoint-dir", str(tmp_path / "ck")]) == 2
    assert "refused" in capsys.readouterr().err


def test_bad_config():
    with pytest.raises(ValueError, match="model must be"):
        TrainConfig(model="resnet")
    with pytest.raises(ValueError, match="positive"):
        TrainConfig(num_epochs=0)
    with pytest.raises(ValueError, match="variant must be"):
        TrainConfig(variant="huge")
