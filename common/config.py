"""Profile, data root, device and seeding: the four things every entry point asks first.

Environment variables (the only global knobs of the project):

- ``DLHW_PROFILE``: ``quick`` (default; offline, minutes, small real data, tiny models; what CI runs)
  or ``full`` (the real homework: pretrained weights, full datasets, GPU if present).
- ``DLHW_DATA``: folder holding the datasets (torchvision layout: ``MNIST/raw``, ``cifar-10-batches-py``...).
- ``DLHW_DOWNLOAD``: ``1`` lets loaders download missing datasets and pretrained models (needs internet; see
  ``common.pretrained.downloads_allowed``, which ``HF_HUB_OFFLINE=1`` vetoes). Off by default.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch

from .errors import ConfigError

ProfileName = Literal["quick", "full"]
PROFILES: tuple[str, ...] = ("quick", "full")
PROFILE_ENV = "DLHW_PROFILE"
DATA_ENV = "DLHW_DATA"
DOWNLOAD_ENV = "DLHW_DOWNLOAD"


@dataclass(frozen=True)
class Profile:
    """What a notebook or script may spend. ``quick`` must finish in minutes on 2 CPU cores."""

    name: ProfileName

    @property
    def quick(self) -> bool:
        return self.name == "quick"

    @property
    def full(self) -> bool:
        return self.name == "full"

    def pick(self, quick, full):
        """Return ``quick`` or ``full`` depending on the profile: ``epochs = profile.pick(2, 60)``."""
        return quick if self.quick else full


def get_profile(name: str | None = None) -> Profile:
    """The active profile: ``name`` if given, else ``$DLHW_PROFILE``, else ``quick``."""
    value = (name or os.environ.get(PROFILE_ENV) or "quick").strip().lower()
    if value not in PROFILES:
        source = f"--profile {value!r}" if name else f"{PROFILE_ENV}={value!r}"
        raise ConfigError(f"{source} is not a profile; use one of {', '.join(PROFILES)}.")
    return Profile(value)  # type: ignore[arg-type]


def data_root(required: bool = False, value: str | Path | None = None) -> Path | None:
    """The data folder: ``value`` when given, else ``$DLHW_DATA`` (``None`` when unset, unless ``required``).
    Entry points resolve it once (``common.cli.standard_settings``) and pass it down."""
    value = value or os.environ.get(DATA_ENV)
    if not value:
        if required:
            raise ConfigError(
                f"{DATA_ENV} is not set. Point it at the folder that holds the datasets, e.g. "
                f"`export {DATA_ENV}=../shared/data` (torchvision layout: MNIST/raw, cifar-10-batches-py, ...)."
            )
        return None
    return Path(value).expanduser().resolve()


def cache_dir(*parts: str, create: bool = True) -> Path:
    """A per-user cache folder (``$DLHW_CACHE`` or ``~/.cache/dlhw``), created on demand unless ``create`` is
    False (an entry point that has not validated its input yet must not write anything)."""
    base = Path(os.environ.get("DLHW_CACHE", Path.home() / ".cache" / "dlhw")).expanduser()
    path = base.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def get_device(prefer: str | None = None) -> torch.device:
    """``cuda`` when present, else ``cpu``; ``prefer`` (e.g. ``"cpu"``) overrides."""
    if prefer:
        try:
            device = torch.device(prefer)
        except RuntimeError:
            raise ConfigError(f"device {prefer!r} is not a device; use 'cpu' or 'cuda'.") from None
        if device.type not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"device {prefer!r} is not supported here; use 'cpu' or 'cuda'.")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but no CUDA device is visible; use 'cpu'.")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a fresh ``torch.Generator`` seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def flush_denormals(enabled: bool = True) -> bool:
    """From now on, treat subnormal floats (below about 1.2e-38 in float32) as zero on the CPU, process-wide
    (``torch.set_flush_denormal``: x86 FTZ/DAZ). Returns False on a CPU without that mode.

    Why: weight decay drives the weights of inputs that never vary (MNIST's blank border pixels) and of dead
    units towards zero, and Adam's first moment of a gradient that stays zero decays towards zero; once such
    values are subnormal, every multiply that touches them takes a slow path. The backprop baseline of the
    Forward-Forward task (784-1000-1000-1000, Adam with weight decay) slowed several-fold after its second
    epoch for this reason; ``benchmarks/bench_denormals.py`` measures the effect. Flushing changes a value only
    where it is already below float32's normal range.

    When: before the first multithreaded op. The intra-op worker threads copy the mode of the thread that
    starts them, so a pool started earlier keeps computing with subnormals (the benchmark shows both).
    :func:`common.cli.run_cli` calls this before every entry point's job.
    """
    return bool(torch.set_flush_denormal(enabled))


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run a block (or, as a decorator, a function) with ``num_threads`` intra-op CPU threads, restoring the
    previous count afterwards; ``None`` or 0 leaves it unchanged.

    Tiny models and small float64 checks run fastest on one thread: their ops are too small to split, and on
    a shared 2-core machine a second thread mostly waits for the core another process holds (measured 10-30x
    slower under load in this project).
    """
    previous = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device | str | None = None) -> dict:
    """Where a number was measured, for run records and benchmark headers: device (and GPU name), CPU model
    and count, torch threads, torch and Python versions, and the 1-minute load average now (above the CPU
    count the machine was shared, and speeds are low)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    info = {"device": str(device), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = round(os.getloadavg()[0], 2)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_text(info: dict | None = None) -> str:
    """:func:`machine` as one line for a benchmark's setting: ``"torch 2.x, 2 CPU cores, <model>, load 0.52"``."""
    info = info or machine()
    text = f"torch {info['torch']}, {info['cpu_count']} CPU cores, {info['cpu']}"
    if "gpu" in info:
        text += f", {info['gpu']}"
    if "load_average_at_start" in info:
        text += f", load {info['load_average_at_start']:.2f}"
    return text
