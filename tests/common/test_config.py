import pytest
import torch

from common import ConfigError, flush_denormals, get_device, get_profile, seed_everything, torch_threads
from common.config import data_root


def test_profile_default_and_explicit(monkeypatch):
    monkeypatch.delenv("DLHW_PROFILE", raising=False)
    assert get_profile().name == "quick"
    monkeypatch.setenv("DLHW_PROFILE", "FULL")
    profile = get_profile()
    assert profile.full and not profile.quick
    assert profile.pick(1, 60) == 60


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DLHW_PROFILE", "fast")
    with pytest.raises(ConfigError, match="DLHW_PROFILE='fast'.*quick, full"):
        get_profile()


def test_data_root_required_names_the_variable(monkeypatch):
    monkeypatch.delenv("DLHW_DATA", raising=False)
    assert data_root() is None
    with pytest.raises(ConfigError, match="DLHW_DATA is not set"):
        data_root(required=True)


def test_device_and_seed():
    assert get_device().type in ("cpu", "cuda")
    assert get_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            get_device("cuda")
    seed_everything(3)
    a = torch.rand(4)
    gen = seed_everything(3)
    assert torch.equal(a, torch.rand(4))
    assert torch.equal(torch.rand(2, generator=gen), torch.rand(2, generator=torch.Generator().manual_seed(3)))


def test_torch_threads_sets_and_restores_even_on_error():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with torch_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before

    @torch_threads(target)
    def boom():
        assert torch.get_num_threads() == target
        raise RuntimeError("inside")

    for _ in range(2):  # the decorator works on every call, not just the first
        with pytest.raises(RuntimeError):
            boom()
        assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


SUBNORMAL = 1e-39  # below float32's smallest normal number (about 1.18e-38)


def _subnormal_survives() -> bool:
    return (torch.tensor([SUBNORMAL]) * 1.0).item() != 0.0


def test_flush_denormals_zeroes_subnormals_and_can_be_undone():
    assert _subnormal_survives()  # the default: IEEE gradual underflow
    try:
        if not flush_denormals():
            pytest.skip("this CPU has no flush-to-zero mode")
        assert not _subnormal_survives()
        assert (torch.tensor([1e-30]) * 1.0).item() != 0.0  # normal numbers are untouched
    finally:
        flush_denormals(False)
    assert _subnormal_survives()


def test_run_cli_flushes_subnormals_while_the_job_runs():
    from common.cli import run_cli
    supported = flush_denormals()
    flush_denormals(False)
    seen = []
    assert run_cli(lambda argv: seen.append(_subnormal_survives()), [], prog="job") == 0
    assert seen == [not supported]
    assert _subnormal_survives()  # and gives the caller its IEEE arithmetic back


def test_machine_describes_where_a_number_was_measured():
    from common import machine, machine_text
    info = machine("cpu")
    assert info["device"] == "cpu" and info["cpu"] and info["cpu_count"] >= 1 and "gpu" not in info
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()
    with torch_threads(1):
        assert machine()["torch_threads"] == 1
    text = machine_text(dict(info, load_average_at_start=1.5))
    assert text == f"torch {torch.__version__}, {info['cpu_count']} CPU cores, {info['cpu']}, load 1.50"
