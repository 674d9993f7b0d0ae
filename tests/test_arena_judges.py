"""Bradley-Terry ranking, bootstrap coverage and judge-bias probes on synthetic data with a known truth."""

import zlib

import numpy as np
import pytest

from course_utils.evaluation.arena import (bradley_terry, bradley_terry_ci, outcomes_from_scores,
                                rank_inversions)
from course_utils.evaluation.judges import agreement, length_bias, position_bias, swap_averaged
from course_utils.evaluation.uncertainty import bootstrap_ci


def _simulate(strengths, n, seed):
    rng = np.random.default_rng(seed)
    m = len(strengths)
    i = rng.integers(0, m, n)
    j = (i + rng.integers(1, m, n)) % m                     # j != i
    p = 1 / (1 + np.exp(-(strengths[i] - strengths[j])))
    i_won = rng.random(n) < p
    return np.where(i_won, i, j), np.where(i_won, j, i)


def test_bradley_terry_recovers_known_strengths():
    truth = np.array([-1.5, -0.5, 0.0, 0.4, 1.6])
    truth = truth - truth.mean()
    w, l = _simulate(truth, 20_000, seed=0)
    s = bradley_terry(w, l, len(truth))
    assert abs(s.mean()) < 1e-9
    assert np.max(np.abs(s - truth)) < 0.08
    assert list(np.argsort(s)) == list(np.argsort(truth))


def test_bradley_terry_two_models_matches_the_log_odds():
    # 30 wins and 10 losses: the maximum-likelihood gap is log(30/10), split around 0.
    w = [0] * 30 + [1] * 10
    l = [1] * 30 + [0] * 10
    s = bradley_terry(w, l, 2, ridge=0.0)
    assert s[0] - s[1] == pytest.approx(np.log(3), abs=1e-8)


def test_ties_count_half_and_a_clean_sweep_stays_finite():
    s = bradley_terry([0, 1], [1, 0], 2, ties=[True, True])
    assert np.allclose(s, 0)
    s = bradley_terry([0] * 5, [1] * 5, 2)
    assert np.all(np.isfinite(s)) and s[0] > s[1]


def test_bootstrap_intervals_cover_the_truth():
    truth = np.array([-1.0, 0.0, 1.0])
    w, l = _simulate(truth, 3000, seed=1)
    cis = bradley_terry_ci(w, l, 3, n_boot=200, seed=0)
    for ci, t in zip(cis, truth):
        assert ci.lo < ci.value < ci.hi
        assert ci.lo <= t <= ci.hi
        assert ci.hi - ci.lo < 0.3


def test_bootstrap_ci_coverage_on_a_known_distribution():
    # The mean of an exponential(1) sample of 60: the 95% bootstrap interval should cover the
    # true mean 1.0 in roughly 95% of 300 repetitions (the percentile bootstrap runs a little
    # under nominal on a skewed distribution at this size).
    rng = np.random.default_rng(0)
    hits = 0
    for rep in range(300):
        ci = bootstrap_ci(rng.exponential(1.0, 60), n_boot=1000, seed=rep)
        hits += ci.lo <= 1.0 <= ci.hi
    assert 0.88 <= hits / 300 <= 0.99


def test_outcomes_from_scores_and_grouped_bootstrap():
    scores = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 1.0]])
    w, l, t, g = outcomes_from_scores(scores)
    assert len(w) == 6 and list(g) == [0, 0, 0, 1, 1, 1]
    assert list(t) == [False, False, False, False, False, True]
    cis = bradley_terry_ci(w, l, 3, ties=t, groups=g, n_boot=50)
    assert cis[2].value > cis[1].value > cis[0].value
    with pytest.raises(ValueError, match="NaN"):
        outcomes_from_scores(np.array([[0.0, np.nan]]))


def test_rank_inversions():
    assert rank_inversions([0, 1, 2], [0, 1, 2]) == []
    assert rank_inversions([0, 1, 2], [0, 2, 1]) == [(2, 1)]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="at least one comparison"):
        bradley_terry([], [], 3)
    with pytest.raises(ValueError, match="outside 0..2"):
        bradley_terry([0], [3], 3)
    with pytest.raises(ValueError, match="against itself"):
        bradley_terry([1], [1], 3)


# ---- judges -------------------------------------------------------------------------------

def _pairs(n, seed):
    """Answers are strings of 'x' words; gold = a hidden quality drawn per answer."""
    rng = np.random.default_rng(seed)
    prompts = [f"p{k}" for k in range(n)]
    len_a, len_b = rng.integers(1, 9, n), rng.integers(1, 9, n)
    a = [" ".join(["x"] * m) + f" #a{k}" for k, m in enumerate(len_a)]
    b = [" ".join(["x"] * m) + f" #b{k}" for k, m in enumerate(len_b)]
    gold_a = rng.integers(0, 3, n).astype(float)
    gold_b = rng.integers(0, 3, n).astype(float)
    return prompts, a, b, gold_a, gold_b


def _gold_lookup(a, b, gold_a, gold_b):
    table = dict(zip(a, gold_a)) | dict(zip(b, gold_b))
    return lambda s: table[s]


def _make_judge(gold, first_bonus=0.0, length_weight=0.0, noise_seed=None):
    def judge(prompts, first, second):
        z = np.array([gold(x) - gold(y) for x, y in zip(first, second)]) + first_bonus
        z = z + length_weight * np.array([len(x.split()) - len(y.split()) for x, y in zip(first, second)])
        if noise_seed is not None:   # noise tied to the unordered pair, blind to order and length
            z = z + np.array([np.random.default_rng(zlib.crc32("|".join(sorted((x, y))).encode()) + noise_seed).normal()
                              * (1 if x < y else -1) for x, y in zip(first, second)])
        return 1 / (1 + np.exp(-z))
    return judge


def test_position_bias_is_detected_and_swap_averaging_removes_it():
    prompts, a, b, ga, gb = _pairs(400, seed=0)
    gold = _gold_lookup(a, b, ga, gb)
    fair, biased = _make_judge(gold), _make_judge(gold, first_bonus=1.5)
    fair_probe = position_bias(fair, prompts, a, b)
    assert fair_probe["first_shown_rate"].value == pytest.approx(0.5)
    assert fair_probe["first_shown_rate"].lo < 0.5 < fair_probe["first_shown_rate"].hi
    biased_probe = position_bias(biased, prompts, a, b)
    assert biased_probe["first_shown_rate"].lo > 0.6
    assert biased_probe["consistency"].value < fair_probe["consistency"].value
    fixed = position_bias(swap_averaged(biased), prompts, a, b)
    assert fixed["first_shown_rate"].value == pytest.approx(0.5)
    assert agreement(biased, prompts, a, b, ga, gb).value < agreement(swap_averaged(biased), prompts, a, b, ga, gb).value


def test_length_bias_is_detected_only_in_a_length_biased_judge():
    prompts, a, b, ga, gb = _pairs(2000, seed=1)
    gold = _gold_lookup(a, b, ga, gb)
    blind = length_bias(_make_judge(gold, noise_seed=7), prompts, a, b, ga, gb)
    assert blind.lo < 0.5 < blind.hi
    biased = length_bias(_make_judge(gold, length_weight=0.3, noise_seed=7), prompts, a, b, ga, gb)
    assert biased.lo > 0.6


def test_judge_probes_name_bad_input():
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        position_bias(lambda p, x, y: np.full(len(p), 1.5), ["p"], ["a"], ["b"])
    with pytest.raises(ValueError, match="equal lengths"):
        position_bias(lambda p, x, y: np.full(len(p), 0.5), ["p"], ["a", "c"], ["b"])
    with pytest.raises(ValueError, match="differ"):
        agreement(lambda p, x, y: np.full(len(p), 0.7), ["p"], ["a"], ["b"], [1.0], [1.0])
