"""The P2 training recipe and its command line: a tiny real run, clear errors for missing CIFAR-10."""
import json

import pytest

from hw2_cnn import train_cifar
from hw2_cnn.training import TrainConfig, build_model, load_splits, quick_config, train


def test_quick_run_learns_on_digits(monkeypatch):
    monkeypatch.delenv("DLHW_DATA", raising=False)   # quick profile without data: scikit-learn digits
    config = quick_config("plain", num_epochs=4, limit_train=600, limit_test=300, progress=False)
    assert config.dataset == "digits"
    result = train(config)
    assert result.input_shape == (1, 28, 28)           # 8x8 digits upsampled for the strided nets
    assert result.test_acc > 0.5                        # chance is 0.1
    assert result.flops > 0 and result.params == sum(p.numel() for p in result.extra["model"].parameters())


def test_quick_dataset_is_mnist_when_data_root_is_set(mnist_root, monkeypatch):
    monkeypatch.setenv("DLHW_DATA", str(mnist_root))
    config = quick_config("mobilenet", limit_train=90, limit_test=50)
    splits = load_splits(config)
    assert config.dataset == "mnist" and splits.input_shape == (1, 28, 28) and len(splits.train) == 90
    model = build_model(config, 1, 10)
    assert model(splits.test.X[:4]).shape == (4, 10)


def test_cli_reports_missing_cifar_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLHW_DATA", str(tmp_path))
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    assert train_cifar.main(["--model", "mobilenet", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "CIFAR-10" in err and "DLHW_DATA" in err and "DLHW_DOWNLOAD=1" in err


def test_cli_runs_end_to_end_on_digits(tmp_path, monkeypatch):
    monkeypatch.delenv("DLHW_DATA", raising=False)
    out = tmp_path / "result.json"
    code = train_cifar.main(["--model", "plain", "--dataset", "digits", "--variant", "quick", "--epochs", "1",
                             "--limit-train", "200", "--limit-test", "100", "--out", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["model"] == "plain" and rows[0]["images_per_s_cpu"] > 0


def test_bad_config_and_arguments():
    with pytest.raises(ValueError, match="model must be"):
        TrainConfig(model="resnet")
    with pytest.raises(ValueError, match="positive"):
        TrainConfig(num_epochs=0)
    with pytest.raises(SystemExit):
        train_cifar.parse_args(["--se-reduction", "zero"])
