"""Chapter 14's bake-off sweep: registered with its settings, and its rows measure every method alike."""
import math

import pytest

from course_utils import experiments
from course_utils.experiments import sweeps_bakeoff


def test_bakeoff_is_registered_as_chapter_14s_sweep():
    sw = experiments.discover()["bakeoff"]
    assert sw.chapter == "14" and sw.seeds == 5 and sw.settings == sweeps_bakeoff.SETTINGS
    assert set(sw.settings["methods"]) == set(sweeps_bakeoff.METHODS)
    assert not sw.smoke["timing"]                                  # the smoke rows must reproduce


def test_bakeoff_rows_share_one_evaluation():
    rows = sweeps_bakeoff.bakeoff(0, methods=["SFT", "best-of-4", "best-of-16", "DPO"], n_pairs=32, epochs=1,
                                  n_answers=64, rounds=2, n_eval=6, n_tax=2, timing=False)
    by = {r["method"]: r for r in rows}
    assert list(by) == ["SFT", "best-of-4", "best-of-16", "DPO"]
    assert by["SFT"]["gold_gain"] == 0 and by["SFT"]["kl"] == 0 and by["SFT"]["tax"] == 0
    assert by["best-of-4"]["kl_kind"] == "bound" and by["best-of-4"]["kl"] == pytest.approx(math.log(4) - 0.75)
    assert by["best-of-16"]["proxy"] >= by["best-of-4"]["proxy"] - 1e-6     # more draws, a better favourite
    assert by["best-of-4"]["answers_sampled"] == 4 * 12 and by["best-of-4"]["tax"] == 0
    assert by["DPO"]["family"] == "offline" and by["DPO"]["budget_unit"] == "labelled pairs"
    assert 0 < by["DPO"]["labelled_pairs"] <= 32 and by["DPO"]["kl_kind"] == "exact" and by["DPO"]["kl"] > 0
    assert all("seconds" not in r for r in rows)
    with pytest.raises(ValueError, match="unknown methods"):
        sweeps_bakeoff.bakeoff(0, methods=["DPO3"], n_pairs=8, epochs=1, n_answers=8, rounds=1, n_eval=2, n_tax=1)
