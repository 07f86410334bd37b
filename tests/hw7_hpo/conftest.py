"""Shared fixtures for the hw7_hpo tests: a tiny real objective (300 digits images, 2-epoch trials)."""
from __future__ import annotations

import pytest
import torch

from hw7_hpo.objective import DataSpec, Objective

TINY_DATA = DataSpec("digits", seed=0, val_fraction=0.2, limit_train=300)


@pytest.fixture(scope="session")
def tiny_splits():
    return TINY_DATA.load()


@pytest.fixture
def objective(tiny_splits):
    torch.set_num_threads(1)  # tiny MLP: one thread is fastest and immune to CPU contention
    return Objective(tiny_splits, max_epochs=2, seed=0, device="cpu")
