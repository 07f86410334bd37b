"""common.pretrained: one policy for hub models (local path, HF cache, download switch, one error)."""
import pytest

from common import ModelNotFoundError
from common.pretrained import downloads_allowed, resolve_pretrained


def test_a_local_path_always_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "config.json").write_text("{}")
    assert resolve_pretrained("org/model", tmp_path) == str(tmp_path)
    monkeypatch.setenv("MY_CKPT", str(tmp_path / "config.json"))
    assert resolve_pretrained("org/model", env="MY_CKPT", must_be_file=True) == str(tmp_path / "config.json")


def test_a_missing_local_path_names_the_flag(tmp_path):
    with pytest.raises(ModelNotFoundError, match="--model .*does not exist.*DLHW_DOWNLOAD=1"):
        resolve_pretrained("org/model", tmp_path / "nope", what="ViT", flag="--model")


def test_offline_without_a_copy_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setenv("DLHW_DOWNLOAD", "0")
    with pytest.raises(ModelNotFoundError, match="not on this machine and downloads are off"):
        resolve_pretrained("org/never-cached-model", what="model")


def test_download_switch_and_the_hf_offline_veto(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("DLHW_DOWNLOAD", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert downloads_allowed()
    assert resolve_pretrained("org/model") == "org/model"  # the hub id: the library downloads it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not downloads_allowed()
    with pytest.raises(ModelNotFoundError):
        resolve_pretrained("org/model")


def test_a_model_in_the_hub_cache_is_used_offline(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))  # read at call time
    monkeypatch.setenv("DLHW_DOWNLOAD", "0")
    snap = tmp_path / "models--org--cached" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "models--org--cached" / "refs").mkdir()
    (tmp_path / "models--org--cached" / "refs" / "main").write_text("abc")
    assert resolve_pretrained("org/cached") == "org/cached"
    assert resolve_pretrained("org/cached", cache_files=("config.json",), must_be_file=True) == str(
        snap / "config.json")
