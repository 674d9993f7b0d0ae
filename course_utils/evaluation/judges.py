"""Auditing a pairwise judge against a known truth: agreement, position bias, length bias.

A *pairwise judge* reads a prompt and two answers, shown in an order, and returns the
probability that the first-shown answer is the better one. Here a judge is any function::

    judge(prompts: list[str], first: list[str], second: list[str]) -> array of shape (n,)

with values in [0, 1]; its *decision* on one item is "first" when the value is above 1/2,
"second" below, a tie at exactly 1/2. The probes ask questions whose right answer the tiny
world knows, because its gold reward is a perfect human:

* **agreement**: on pairs whose gold rewards differ, how often the judge picks the higher-gold
  answer (a Wilson interval, :func:`course_utils.evaluation.uncertainty.wilson`);
* **position bias**: each pair is judged in both orders; an unbiased judge picks the
  first-shown answer in half of all decisions. ``first_shown_rate`` is that share;
  ``consistency`` is the share of pairs where both orders pick the *same answer*;
* **length bias**: on pairs whose gold rewards are equal but whose lengths differ, how often
  the judge prefers the longer answer (1/2 for a judge blind to length). Decided on the
  swap-averaged probability, so position bias does not leak into it.

One mitigation is measured the same way: :func:`swap_averaged` judges both orders and
averages, ``p'(a, b) = (p(a, b) + 1 - p(b, a)) / 2``, which makes ``p'(a, b) + p'(b, a) = 1``
exactly: the swapped judge has no position bias by construction, at twice the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from course_utils.evaluation.uncertainty import Interval, wilson

Judge = Callable[[list[str], list[str], list[str]], np.ndarray]


def _judge(judge: Judge, prompts: Sequence[str], first: Sequence[str], second: Sequence[str]) -> np.ndarray:
    n = len(prompts)
    if n == 0:
        raise ValueError("a judge probe needs at least one pair")
    if len(first) != n or len(second) != n:
        raise ValueError(f"prompts, first and second must have equal lengths, got {n}, {len(first)}, {len(second)}")
    p = np.asarray(judge(list(prompts), list(first), list(second)), dtype=float)
    if p.shape != (n,):
        raise ValueError(f"the judge returned shape {p.shape}, expected ({n},)")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("the judge returned a value outside [0, 1] (or NaN)")
    return p


def swap_averaged(judge: Judge) -> Judge:
    """The judge asked in both orders: ``p'(a, b) = (p(a, b) + 1 - p(b, a)) / 2``."""
    def averaged(prompts: list[str], first: list[str], second: list[str]) -> np.ndarray:
        return (_judge(judge, prompts, first, second) + 1 - _judge(judge, prompts, second, first)) / 2
    return averaged


def agreement(judge: Judge, prompts: Sequence[str], a: Sequence[str], b: Sequence[str],
              gold_a: Sequence[float], gold_b: Sequence[float]) -> Interval:
    """Share of pairs with different gold where the judge's decision picks the higher-gold answer.

    Pairs are shown in the given order (``a`` first); pairs with equal gold are left out and a
    tie decision counts as wrong. ``Interval.n`` is the number of pairs counted.
    """
    p = _judge(judge, prompts, a, b)
    ga, gb = np.asarray(gold_a, dtype=float), np.asarray(gold_b, dtype=float)
    keep = ga != gb
    if not keep.any():
        raise ValueError("agreement needs pairs whose gold rewards differ")
    right = np.where(ga > gb, p > 0.5, p < 0.5)[keep]
    return wilson(int(right.sum()), int(keep.sum()))


def position_bias(judge: Judge, prompts: Sequence[str], a: Sequence[str],
                  b: Sequence[str]) -> dict[str, Interval]:
    """Judge every pair as (a, b) and as (b, a).

    Returns ``first_shown_rate``: share of the 2n decisions that pick the first-shown answer
    (ties left out; 1/2 for an unbiased judge), and ``consistency``: share of the n pairs
    where both orders pick the same answer (a tie in either order counts as inconsistent).
    """
    p_ab = _judge(judge, prompts, a, b)
    p_ba = _judge(judge, prompts, b, a)
    decisions = np.concatenate([p_ab, p_ba])
    decided = decisions != 0.5
    if not decided.any():
        raise ValueError("the judge tied on every decision; position bias is undefined")
    first = int((decisions[decided] > 0.5).sum())
    same = int((((p_ab > 0.5) & (p_ba < 0.5)) | ((p_ab < 0.5) & (p_ba > 0.5))).sum())
    return {"first_shown_rate": wilson(first, int(decided.sum())),
            "consistency": wilson(same, len(p_ab))}


def length_bias(judge: Judge, prompts: Sequence[str], a: Sequence[str], b: Sequence[str],
                gold_a: Sequence[float], gold_b: Sequence[float],
                length: Callable[[str], int] = lambda s: len(s.split())) -> Interval:
    """Share of equal-gold, unequal-length pairs where the judge prefers the longer answer.

    Decided on the swap-averaged probability (position bias removed); exact ties are left
    out. ``length`` measures an answer (words by default). 1/2 for a judge blind to length.
    """
    ga, gb = np.asarray(gold_a, dtype=float), np.asarray(gold_b, dtype=float)
    la = np.array([length(s) for s in a])
    lb = np.array([length(s) for s in b])
    keep = (ga == gb) & (la != lb)
    if not keep.any():
        raise ValueError("length_bias needs pairs with equal gold reward and different lengths")
    idx = np.flatnonzero(keep)
    pick = lambda xs: [xs[k] for k in idx]  # noqa: E731
    p = swap_averaged(judge)(pick(prompts), pick(a), pick(b))
    decided = p != 0.5
    if not decided.any():
        raise ValueError("the judge tied on every equal-gold pair; length bias is undefined")
    longer_is_a = la[idx] > lb[idx]
    prefers_longer = np.where(longer_is_a, p > 0.5, p < 0.5)[decided]
    return wilson(int(prefers_longer.sum()), int(decided.sum()))
