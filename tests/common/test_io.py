"""common.io: atomic writes, checkpoints that cannot run code, settings keys."""
import os
import pickle

import pytest
import torch

from common import CheckpointError, load_checkpoint, read_json, save_atomic, settings_key, write_json_atomic


class _Payload:
    """A pickle that runs a shell command when loaded (what a crafted checkpoint would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_payload_in_a_checkpoint_runs_nothing_and_is_one_line(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "ckpt.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Payload(marker)}, f)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not marker.exists()
    assert "could run code" in str(info.value) and "\n" not in str(info.value)
    torch.save({"epoch": 1, "extra": _Payload(marker)}, path)  # the same through torch.save's zip format
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_plain_checkpoints_round_trip_and_garbage_is_reported(tmp_path):
    state = {"epoch": 3, "model": {"w": torch.arange(4.0)}, "rng": torch.get_rng_state(), "log": [{"a": 1.5}]}
    path = save_atomic(state, tmp_path / "sub" / "c.pt")
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temporary file left behind
    for i, garbage in enumerate((b"PK\x03\x04 truncated", b"\x80\x02garbage", b"", bytes(range(256)) * 4)):
        (tmp_path / f"t{i}.pt").write_bytes(garbage)
        with pytest.raises(CheckpointError, match="delete it"):
            load_checkpoint(tmp_path / f"t{i}.pt")
    half = path.read_bytes()[: len(path.read_bytes()) // 2]  # a checkpoint cut short by a crash elsewhere
    (tmp_path / "half.pt").write_bytes(half)
    with pytest.raises(CheckpointError, match="delete it"):
        load_checkpoint(tmp_path / "half.pt")


def test_json_records_and_settings_keys(tmp_path):
    write_json_atomic(tmp_path / "r.json", {"x": [1, 2]})
    assert read_json(tmp_path / "r.json") == {"x": [1, 2]}
    (tmp_path / "bad.json").write_text('{"x": [1, ', encoding="utf-8")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_json(tmp_path / "bad.json")
    assert settings_key({"a": 1, "b": [1, 2]}) == settings_key({"b": [1, 2], "a": 1})
    assert settings_key({"a": 1}) != settings_key({"a": 2}) and len(settings_key({})) == 12
