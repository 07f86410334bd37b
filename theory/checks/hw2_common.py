"""Small helpers shared by the hw2 theory checks (``hw2_cnn*.py``, ``hw2_mlp.py``): dtype, seeded generators
and a single-thread guard."""
from __future__ import annotations

import torch

from common import torch_threads

DTYPE = torch.float64


def gen(seed: int) -> torch.Generator:
    """A seeded CPU generator, so every check is reproducible without touching the global RNG."""
    return torch.Generator().manual_seed(seed)


def one_thread(fn):
    """Run ``fn`` with one intra-op thread (restored afterwards). The checks use small float64 tensors, for
    which a second thread only adds contention on a shared 2-core machine (measured 10x slower under load)."""
    return torch_threads(1)(fn)
