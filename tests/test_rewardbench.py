"""The one-component reward-model benchmark: every pair differs in exactly its category's gold component."""

import random

import numpy as np
import pytest

from course_utils import world
from course_utils.evaluation.rewardbench import (CATEGORIES, accuracy_by_category, judge_accuracy_by_category,
                                      make_benchmark, one_component_pair)


def _answers(n=300, seed=0):
    rng = random.Random(seed)
    rows = []
    for r in world.open_prompts(seed, n):
        rows.append({"prompt": r["prompt"], "response": world.sentence_about(rng, r["subject"])})
    return rows


@pytest.fixture(scope="module")
def bench():
    return make_benchmark(_answers(), per_category=40, seed=0)


def test_every_category_is_filled_and_isolates_its_component(bench):
    cats = list(bench["category"])
    for c, field in CATEGORIES.items():
        assert cats.count(c) == 40
    for row in bench:
        s = world.subject_of(row["prompt"])
        before, after = world.gold_breakdown(s, row["chosen"]), world.gold_breakdown(s, row["rejected"])
        for name in CATEGORIES.values():
            if name == CATEGORIES[row["category"]]:
                assert getattr(after, name) < getattr(before, name)
            else:
                assert getattr(after, name) == getattr(before, name)
        assert row["gold_chosen"] > row["gold_rejected"]


def test_gold_is_perfect_and_a_component_blind_scorer_fails_only_its_category(bench):
    gold = lambda ps, rs: [world.gold_reward(world.subject_of(p), r) for p, r in zip(ps, rs)]  # noqa: E731
    acc = accuracy_by_category(gold, bench)
    assert all(acc[c].value == 1.0 for c in CATEGORIES) and acc["all"].n == 200

    def blind_to_length(ps, rs):
        out = []
        for p, r in zip(ps, rs):
            b = world.gold_breakdown(world.subject_of(p), r)
            out.append(b.total - b.length)
        return out
    acc = accuracy_by_category(blind_to_length, bench)
    assert acc["length"].value == 0.0 and acc["length"].hi < 0.1
    assert all(acc[c].value == 1.0 for c in CATEGORIES if c != "length")


def test_a_judge_with_position_bias_is_fixed_by_asking_both_orders(bench):
    def gold(p, r):
        return world.gold_reward(world.subject_of(p), r)

    def judge(ps, first, second):   # gold, plus a strong pull towards the first-shown answer
        z = np.array([gold(p, a) - gold(p, b) for p, a, b in zip(ps, first, second)]) + 0.3
        return 1 / (1 + np.exp(-4 * z))
    acc = judge_accuracy_by_category(judge, bench)
    assert acc["all"].value == 1.0


def test_unknown_category_and_bad_rows_are_named():
    with pytest.raises(ValueError, match="unknown category"):
        one_component_pair("Write a sentence about a dog.", "The dog runs.", "grammar", random.Random(0))
    with pytest.raises(ValueError, match="lacks field"):
        make_benchmark([{"prompt": "Write a sentence about a dog."}])
    with pytest.raises(ValueError, match="at least one"):
        make_benchmark([])
