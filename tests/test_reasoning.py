"""The multi-step sums task and its verifier (chapter 17)."""

import random
from collections import Counter

import pytest

from course_utils.reasoning.tasks import (LONGER_HOPS, MAX_TERM, TRAIN_HOPS, make_problem, make_reasoning_data,
                                          valid_terms, worked_steps)
from course_utils.reasoning.verifier import (CLASSES, FORMAT_FAILURES, combined_reward, correctness_reward,
                                             failure_table, format_reward, step_reward, verify)
from course_utils.world import MAX_ADD


@pytest.fixture(scope="module")
def data():
    return make_reasoning_data(seed=0, n_train=600, n_test=120, n_longer=40)


def test_splits_hold_out_chains_and_difficulty(data):
    train = {tuple(t) for t in data["train"]["terms"]}
    test = [tuple(t) for t in data["test"]["terms"]]
    assert not train & set(test), "a test problem's chain occurs in train"
    assert len(set(test)) == len(test), "test repeats a problem"
    assert set(data["train"]["hops"]) == set(TRAIN_HOPS) and set(data["test"]["hops"]) <= set(TRAIN_HOPS)
    assert set(data["test_longer"]["hops"]) == {LONGER_HOPS}
    for split in data.values():
        for row in split:
            terms = row["terms"]
            assert valid_terms(terms) and len(terms) == row["hops"] + 1 and int(row["answer"]) == sum(terms)
            # every addition is a fact of the corpus's kind: both numbers at most MAX_ADD
            assert all(a <= MAX_ADD and b <= MAX_TERM for a, b, _ in verify(row["response"], 0).steps)
            # two chains of hops + 1 statements each, then the question
            assert row["prompt"].count(" has ") == 2 * (row["hops"] + 1) and row["prompt"].endswith(" have?")


def test_the_worked_answer_follows_the_chain_in_the_prompt():
    import random
    row = make_problem(random.Random(0), (3, 4, 2))
    statements = row["prompt"].split(". ")
    asked = row["prompt"].rsplit(" does ", 1)[1].removesuffix(" have?")
    steps = row["response"].split(". ")
    assert steps[0].startswith(f"{asked} has 2 more than ")
    assert steps[2].split(" has ")[1] == "3" and steps[3:] == ["3 plus 4 is 7", "7 plus 2 is 9", "Answer: 9."]
    for look in steps[:2]:                   # each look-up restates a statement of the prompt
        name, rest = look.split(" has ")
        n, _, other = rest.partition(" more than ")
        assert any(s.startswith(f"{name} has {n} more ") and s.endswith(f"than {other}") for s in statements)
    assert worked_steps(["Tom", "Mia"], [3, 4]) == ["Mia has 4 more than Tom.", "Tom has 3.", "3 plus 4 is 7."]


def test_worked_and_direct_arms_differ_only_in_their_answers():
    worked = make_reasoning_data(seed=3, n_train=50, n_test=10, n_longer=5, worked=True)
    direct = make_reasoning_data(seed=3, n_train=50, n_test=10, n_longer=5, worked=False)
    for split in worked:
        assert worked[split]["prompt"] == direct[split]["prompt"]
        assert worked[split]["answer"] == direct[split]["answer"]
        assert all(r.startswith("Answer: ") for r in direct[split]["response"])
        assert all(r.count(" plus ") == h for r, h in zip(worked[split]["response"], worked[split]["hops"]))


def _statements(prompt):
    return prompt.rsplit(" How many ", 1)[0].removesuffix(".").split(". ")


@pytest.mark.parametrize("distractors, shuffle", [(False, True), (True, False), (False, False)])
def test_easier_variants_keep_the_seed_s_chains_and_answers(distractors, shuffle):
    sizes = dict(n_train=60, n_test=12, n_longer=6)
    full = make_reasoning_data(seed=5, **sizes)
    easy = make_reasoning_data(seed=5, distractors=distractors, shuffle=shuffle, **sizes)
    for split in full:
        for a, b in zip(full[split], easy[split]):
            # the same asked chain, question and worked answer: only the statements differ
            assert (a["terms"], a["answer"], a["response"]) == (b["terms"], b["answer"], b["response"])
            assert a["prompt"].rsplit(" How many ", 1)[1] == b["prompt"].rsplit(" How many ", 1)[1]
            full_st, easy_st = _statements(a["prompt"]), _statements(b["prompt"])
            assert set(easy_st) <= set(full_st)
            assert len(easy_st) == (2 if distractors else 1) * (b["hops"] + 1)
            if not shuffle:              # each chain in order: every "more than X" follows X's statement
                for i, st in enumerate(easy_st):
                    if " more " in st:
                        assert easy_st[i - 1].split(" has ")[0] == st.rsplit(" than ", 1)[1]
                    else:
                        assert i in (0, b["hops"] + 1)


def test_unshuffled_problems_put_the_asked_chain_first_or_second():
    firsts = []
    for seed in range(40):
        row = make_problem(random.Random(seed), (3, 4, 2), shuffle=False)
        asked = row["prompt"].rsplit(" does ", 1)[1].removesuffix(" have?")
        statements = _statements(row["prompt"])
        assert asked in (statements[2].split(" has ")[0], statements[5].split(" has ")[0])
        firsts.append(statements[2].startswith(asked))
    assert 10 < sum(firsts) < 30


def test_the_same_seed_gives_the_same_data_and_another_seed_does_not():
    a, b = make_reasoning_data(seed=1, n_train=40, n_test=8, n_longer=4), make_reasoning_data(seed=1, n_train=40, n_test=8, n_longer=4)
    c = make_reasoning_data(seed=2, n_train=40, n_test=8, n_longer=4)
    assert a["train"]["prompt"] == b["train"]["prompt"] and a["train"]["prompt"] != c["train"]["prompt"]


def test_impossible_requests_are_refused():
    with pytest.raises(ValueError, match="distinct test problems"):
        make_reasoning_data(n_train=10, n_test=100_000)
    with pytest.raises(ValueError, match="at least one"):
        make_reasoning_data(n_train=0)


def test_every_demonstration_is_correct(data):
    for split in data.values():
        for row in split:
            assert verify(row["response"], row["answer"]).label == "correct", row


@pytest.mark.parametrize("response, label, answer", [
    ("4 plus 7 is 11. 11 plus 9 is 20. Answer: 20.", "correct", 20),
    ("Sam has 9 more than Mia. Mia has 7 more than Tom. Tom has 4. 4 plus 7 is 11. 11 plus 9 is 20. Answer: 20.",
     "correct", 20),
    ("Sam has 9 more than Mia. so Answer: 20.", "bad_steps", 20),
    ("Answer: 20", "correct", 20),                                   # the full stop is optional
    ("4 plus 7 is 11. 11 plus 9 is 21. Answer: 21.", "wrong_answer", 21),
    ("4 plus 7 is 11. 11 plus 9 is", "no_answer", None),               # cut off at the length limit
    ("", "no_answer", None),
    ("Answer: twenty.", "bad_answer", None),
    ("Answer:", "bad_answer", None),
    ("Answer: 20.5", "bad_answer", None),
    ("Answer: 99999999999999999999999999.", "bad_answer", None),       # never converted to an int
    ("Answer: 20. Answer: 20.", "extra_text", 20),
    ("Answer: 20. The dog runs.", "extra_text", 20),
    ("The dog runs. Answer: 20.", "bad_steps", 20),
    ("4 plus 7 is 11. so Answer: 20.", "bad_steps", 20),
])
def test_each_failure_class(response, label, answer):
    v = verify(response, 20)
    assert v.label == label and v.answer == answer
    assert v.kind == ("correct" if label == "correct" else "format" if label in FORMAT_FAILURES else "answer")


def test_rewards():
    right, wrong_sum = "4 plus 7 is 11. 11 plus 9 is 20. Answer: 20.", "4 plus 7 is 12. 12 plus 9 is 21. Answer: 21."
    assert (correctness_reward(right, "20"), format_reward(right), step_reward(right)) == (1.0, 1.0, 1.0)
    assert (correctness_reward(wrong_sum, 20), format_reward(wrong_sum), step_reward(wrong_sum)) == (0.0, 1.0, 0.5)
    assert step_reward("Answer: 20.") == 0.0 and format_reward("Answer: 20.") == 1.0
    assert combined_reward(right, 20) == 1.0 and combined_reward("no answer", 20) == 0.0
    assert 0 < combined_reward(wrong_sum, 20) < 0.5


def test_no_string_crashes_the_checker():
    rng = random.Random(0)
    alphabet = "0123456789 .:Answerplusis\n\t-é\x00" + "".join(chr(c) for c in range(0x660, 0x66a))  # Arabic digits too
    labels = Counter()
    for _ in range(3000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.5:
            s += " Answer: " + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        v = verify(s, rng.randint(0, 40))
        assert v.label in CLASSES
        for f in (correctness_reward, format_reward, step_reward, combined_reward):
            assert 0.0 <= f(s, 20) <= 1.0
        labels[v.label] += 1
    assert len(labels) >= 4
    assert verify("Answer: ٢٠.", 20).label == "bad_answer"        # str.isdigit accepts these; the checker does not
    with pytest.raises(TypeError, match="string"):
        verify(None, 20)


def test_failure_table_sums_to_one_and_names_bad_input():
    table = failure_table(["Answer: 20.", "Answer: 3.", "oops"], [20, 20, 20])
    assert table["correct"] == table["wrong_answer"] == table["no_answer"] == pytest.approx(1 / 3)
    assert sum(table.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 responses but 1 answers"):
        failure_table(["a", "b"], [1])
    with pytest.raises(ValueError, match="no responses"):
        failure_table([], [])


def test_pass_at_k_is_unbiased_and_checked():
    from math import comb

    from course_utils.reasoning.scaling import pass_at_k, pass_at_k_curve
    for n, c, k in [(10, 3, 1), (10, 3, 5), (20, 0, 4), (20, 20, 7), (256, 5, 64)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)          # pass@1 is the share right
    # unbiased: the mean over every subset of size k of "any right" equals the estimate
    from itertools import combinations
    right = [1, 0, 0, 1, 0, 0]
    subsets = list(combinations(right, 3))
    assert sum(any(s) for s in subsets) / len(subsets) == pytest.approx(pass_at_k(6, 2, 3))
    curve = pass_at_k_curve([0, 3, 10], n=10, ks=[1, 2, 10])
    assert curve[1] == pytest.approx(13 / 30) and curve[10] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="no problems"):
        pass_at_k_curve([], 4, [1])


def test_majority_vote():
    from course_utils.reasoning.scaling import majority_vote
    assert majority_vote([3, None, 5, 5, None, None]) == 5
    assert majority_vote([7, 5, 5, 7]) == 7              # a tie goes to the answer seen first
    assert majority_vote([None, None]) is None
