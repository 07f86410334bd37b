"""The committed stand-in figure of hw7.T2d exists and is what ``theory.checks.hw7`` regenerates."""
from __future__ import annotations

import matplotlib.image as mpimg

from theory.checks import hw7


def test_adapter_histogram_figure_is_committed_and_regenerates(tmp_path):
    committed = hw7.FIGURES / "hw7_adapter_histograms.png"
    assert committed.is_file(), f"missing {committed}; write it with `python -m theory.checks.hw7`"
    fresh = hw7.save_adapter_histograms(tmp_path / "hw7_adapter_histograms.png")
    assert mpimg.imread(fresh).shape == mpimg.imread(committed).shape


def test_adapter_simulation_shows_the_scale_mismatch_and_its_fix():
    outs = hw7.adapter_outputs()
    conv, small = hw7.feature_stats(outs["conv"]), hw7.feature_stats(outs["adapter"])
    assert conv["negative"] == 0.0 and 0.45 < conv["zeros"] < 0.55  # BN-ReLU: non-negative, about half zeros
    assert conv["std"] / small["std"] > 20  # small-init adapter is an order of magnitude narrower
    # measured at the next frozen block's BN, on a fresh batch: nothing there is renormalised by construction
    variants = ("block", "small", "default", "fix_a", "fix_b", "fix_b_restat")
    shift = {v: hw7.next_block_shift(outs, v) for v in variants}
    noise = shift["block"]["mean_shift"]
    assert shift["default"]["mean_shift"] > 10 * noise           # the signed default-init adapter shifts it
    assert shift["small"]["change"] < 0.05                       # the small-init one is drowned out
    assert shift["fix_a"]["mean_shift"] < 2 * noise and 0.05 < shift["fix_a"]["change"] < 0.3
    assert shift["fix_b"]["mean_shift"] > 3 * noise              # a frozen BN does not renormalise the sum
    assert shift["fix_b_restat"]["mean_shift"] < 2 * noise       # re-estimated statistics do
