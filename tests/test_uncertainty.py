"""The interval helpers: known values, edge cases, clear errors."""
import math

import numpy as np
import pytest

from course_utils.evaluation.uncertainty import (binomial_se, bootstrap_ci, mean_ci, paired_bootstrap, t_critical,
                                      wilson, win_rate)


def test_mean_ci_uses_students_t():
    iv = mean_ci([1.0, 2.0, 3.0])
    assert iv.value == 2.0 and iv.n == 3
    assert iv.half_width == pytest.approx(4.303 * 1.0 / math.sqrt(3), abs=1e-9)
    assert t_critical(1) == 12.706 and t_critical(100) == 1.96


def test_one_seed_has_an_unbounded_interval():
    iv = mean_ci([0.7])
    assert iv.value == 0.7 and math.isinf(iv.lo) and math.isinf(iv.hi)


def test_wilson_matches_the_textbook_values():
    iv = wilson(8, 10)
    assert iv.value == 0.8
    assert (round(iv.lo, 3), round(iv.hi, 3)) == (0.490, 0.943)
    zero = wilson(0, 40)  # stays inside [0, 1] where the normal approximation collapses to 0 +- 0
    assert zero.lo == 0.0 and 0.08 < zero.hi < 0.09
    assert binomial_se(0.5, 100) == pytest.approx(0.05)


def test_paired_bootstrap_removes_shared_item_difficulty():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 5, 200)  # large, shared by both models
    a = difficulty + 0.3 + rng.normal(0, 0.1, 200)
    b = difficulty + rng.normal(0, 0.1, 200)
    paired = paired_bootstrap(a, b)
    assert paired.lo > 0.2 and paired.hi < 0.4  # the small, real difference is resolved
    unpaired_half = 1.96 * math.sqrt(a.var(ddof=1) / 200 + b.var(ddof=1) / 200)
    assert paired.half_width < unpaired_half / 10


def test_win_rate_counts_ties_as_half_and_is_reproducible():
    iv = win_rate([1, 2, 3, 4], [0, 2, 5, 1])
    assert iv.value == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert win_rate([1, 2, 3, 4], [0, 2, 5, 1]) == iv
    assert bootstrap_ci([2.0] * 5).half_width == 0


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_bad_input_is_named(bad):
    with pytest.raises(ValueError, match="mean_ci"):
        mean_ci(bad)


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson(11, 10)
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap([1, 2], [1])


def test_mcnemar_counts_only_disagreements_and_matches_the_binomial_tail():
    from course_utils.evaluation.uncertainty import mcnemar

    # 18 items only A right, 4 only B right (chapter 09's comparison), plus agreements that must not matter
    a = [1] * 18 + [0] * 4 + [1] * 50 + [0] * 7 + [0.5] * 3
    b = [0] * 18 + [1] * 4 + [1] * 50 + [0] * 7 + [1] * 3
    r = mcnemar(a, b)
    assert (r.only_a, r.only_b) == (18, 4)
    # two-sided exact p from the Binomial(22, 1/2) tail, summed independently
    tail = sum(math.comb(22, i) for i in range(0, 5)) / 2**22
    assert abs(r.p_value - 2 * tail) < 1e-15
    assert abs(r.p_value - 4.3e-3) < 5e-5          # chapter 09 prints 4.3e-03 for these counts
    assert mcnemar([1, 0], [1, 0]).p_value == 1.0  # no disagreement: no evidence either way
    assert mcnemar([1, 0, 1], [0, 1, 0]).p_value == 1.0
    with pytest.raises(ValueError, match="equal length"):
        mcnemar([1, 0], [1])
