"""The denormals benchmark builds the state it claims to: a given share of subnormal weights and moments."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_denormals  # noqa: E402

from common import flush_denormals  # noqa: E402


def test_the_dirty_state_holds_the_asked_share_of_subnormals_and_the_clean_one_none():
    flush_denormals(False)
    sizes = (64, 32, 32)
    clean, dirty = (bench_denormals.make_state(sizes, f, 8) for f in (0.0, 0.4))
    share = {name: bench_denormals.subnormal_share({**s[0], **{f"m{k}": v["exp_avg"] for k, v in s[1]["state"].items()}})
             for name, s in (("clean", clean), ("dirty", dirty))}
    assert share["clean"] == 0.0
    # weights and first moments are made subnormal, biases' entries too; 0.4 of all entries of both
    assert 0.35 < share["dirty"] < 0.45
    assert bench_denormals.time_steps(sizes, dirty, 2) > 0
