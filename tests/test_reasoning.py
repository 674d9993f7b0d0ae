"""The *who has the ball?* task and its verifier (chapter 17)."""

import random
from collections import Counter

import pytest
import torch

from course_utils.reasoning.tasks import (CHILDREN, LONGER_SWAPS, N_CHILDREN, TRAIN_SWAPS, holder_after, holders,
                                          make_problem, make_reasoning_data, pattern, worked_steps)
from course_utils.reasoning.verifier import (CLASSES, FORMAT_FAILURES, combined_reward, correctness_reward,
                                             failure_table, format_reward, step_reward, verify)


@pytest.fixture(scope="module")
def data():
    return make_reasoning_data(seed=0, n_train=600, n_test=120, n_longer=40)


def test_splits_hold_out_patterns_and_difficulty(data):
    train = {pattern(r["start"], r["swaps"]) for r in data["train"]}
    test = [pattern(r["start"], r["swaps"]) for r in data["test"]]
    assert not train & set(test), "a test problem's pattern occurs in train"
    assert len(set(test)) == len(test), "test repeats a pattern"
    assert set(data["train"]["n_swaps"]) == set(TRAIN_SWAPS) and set(data["test"]["n_swaps"]) <= set(TRAIN_SWAPS)
    assert set(data["test_longer"]["n_swaps"]) == {LONGER_SWAPS}
    for split in data.values():
        for row in split:
            names = {n for pair in row["swaps"] for n in pair} | {row["start"]}
            assert len(names) <= N_CHILDREN and names <= set(CHILDREN)
            assert all(a != b for a, b in row["swaps"]) and len(row["swaps"]) == row["n_swaps"]
            assert row["answer"] == holders(row["start"], row["swaps"])[-1]
            assert row["prompt"].startswith(f"{row['start']} has the ") and row["prompt"].count(" swap.") == row["n_swaps"]


def test_the_holder_moves_only_when_the_holder_swaps():
    assert holder_after("Mia", "Mia", "Tom") == "Tom" and holder_after("Mia", "Tom", "Mia") == "Tom"
    assert holder_after("Mia", "Ben", "Tom") == "Mia"
    assert holders("Mia", [("Mia", "Tom"), ("Ben", "Sam"), ("Tom", "Ben")]) == ["Tom", "Tom", "Ben"]
    assert worked_steps("Mia", [("Mia", "Tom"), ("Ben", "Sam")]) == ["Mia and Tom swap: Tom has it.",
                                                                     "Ben and Sam swap: Tom has it."]
    assert pattern("Mia", [("Tom", "Mia"), ("Ben", "Tom")]) == pattern("Sam", [("Leo", "Sam"), ("Zoe", "Leo")]) \
        == pattern("Mia", [("Mia", "Tom"), ("Tom", "Ben")]) == ((0, 1), (1, 2))     # names and order in a pair
    assert pattern("Mia", [("Ben", "Sam"), ("Ben", "Tom")]) == pattern("Mia", [("Ben", "Sam"), ("Sam", "Tom")])
    assert pattern("Mia", [("Mia", "Tom")]) != pattern("Mia", [("Ben", "Tom")])


def test_the_worked_answer_follows_the_swaps_in_the_prompt():
    row = make_problem(random.Random(0), 4)
    swaps = [s.removesuffix(" swap").split(" and ") for s in row["prompt"].split(". ")[1:5]]
    assert swaps == row["swaps"]
    steps = row["response"].split(". ")
    assert [s.split(" swap: ")[0].split(" and ") for s in steps[:4]] == swaps
    assert steps[-1] == f"Answer: {row['answer']}."


def test_worked_and_direct_arms_differ_only_in_their_answers():
    worked = make_reasoning_data(seed=3, n_train=50, n_test=10, n_longer=5, worked=True)
    direct = make_reasoning_data(seed=3, n_train=50, n_test=10, n_longer=5, worked=False)
    for split in worked:
        assert worked[split]["prompt"] == direct[split]["prompt"]
        assert worked[split]["answer"] == direct[split]["answer"]
        assert all(r == f"Answer: {a}." for r, a in zip(direct[split]["response"], direct[split]["answer"]))
        assert all(r.count(" swap: ") == n for r, n in zip(worked[split]["response"], worked[split]["n_swaps"]))


def test_a_worked_share_mixes_the_styles_in_train_only(data):
    """Each train row keeps its worked answer with probability worked_share (a stream of its own:
    the problems do not change); 600 rows at 0.3 give 180 worked ones expected, s.d. 11.2, so
    the bound of 4 s.d. fails by chance about once in 16,000 seeds."""
    mixed = make_reasoning_data(seed=0, n_train=600, n_test=120, n_longer=40, worked_share=0.3)
    for name in data:
        assert mixed[name]["prompt"] == data[name]["prompt"]
    worked = [r != f"Answer: {a}." for r, a in zip(mixed["train"]["response"], mixed["train"]["answer"])]
    assert abs(sum(worked) - 180) < 4 * (600 * 0.3 * 0.7) ** 0.5
    assert all(r == w for r, w, keep in zip(mixed["train"]["response"], data["train"]["response"], worked) if keep)
    assert mixed["test"]["response"] == data["test"]["response"]
    every = make_reasoning_data(seed=0, n_train=600, n_test=120, n_longer=40, worked_share=1.0)
    assert every["train"]["response"] == data["train"]["response"]
    for bad in (dict(worked_share=1.5), dict(worked_share=0.5, worked=False)):
        with pytest.raises(ValueError, match="worked_share"):
            make_reasoning_data(seed=0, n_train=40, n_test=8, n_longer=4, **bad)


def test_the_rl_split_holds_new_patterns_and_leaves_the_other_splits_alone(data):
    with_rl = make_reasoning_data(seed=0, n_train=600, n_test=120, n_longer=40, n_rl=80)
    for name in ("train", "test", "test_longer"):
        assert with_rl[name]["prompt"] == data[name]["prompt"], f"{name} changed when rl was asked for"
    old = {pattern(r["start"], r["swaps"]) for name in ("train", "test") for r in data[name]}
    rl = [pattern(r["start"], r["swaps"]) for r in with_rl["rl"]]
    assert len(rl) == 80 and len(set(rl)) == 80 and not old & set(rl)
    assert set(with_rl["rl"]["n_swaps"]) <= set(TRAIN_SWAPS) and "rl" not in data
    assert all(r["answer"] == holders(r["start"], r["swaps"])[-1] for r in with_rl["rl"])
    with pytest.raises(ValueError, match="rl problems of new patterns"):
        make_reasoning_data(seed=0, n_train=40, n_test=8, n_longer=4, n_rl=12_000)   # more than the 9,392 patterns of 2 to 6 swaps


def test_the_same_seed_gives_the_same_data_and_another_seed_does_not():
    a = make_reasoning_data(seed=1, n_train=40, n_test=8, n_longer=4)
    b = make_reasoning_data(seed=1, n_train=40, n_test=8, n_longer=4)
    c = make_reasoning_data(seed=2, n_train=40, n_test=8, n_longer=4)
    assert a["train"]["prompt"] == b["train"]["prompt"] and a["train"]["prompt"] != c["train"]["prompt"]


def test_impossible_requests_are_refused():
    with pytest.raises(ValueError, match="test problems of distinct patterns"):
        make_reasoning_data(n_train=10, n_test=1000, test_fraction=0.01)
    with pytest.raises(ValueError, match="at least one"):
        make_reasoning_data(n_train=0)
    with pytest.raises(ValueError, match="train problems"):
        make_reasoning_data(n_train=50, n_test=1, test_fraction=1.0)


def test_every_demonstration_is_correct_and_scores_full_step_credit(data):
    for split in data.values():
        for row in split:
            assert verify(row["response"], row["answer"]).label == "correct", row
            assert step_reward(row["response"], row) == 1.0


PROBLEM = {"answer": "Ben", "start": "Mia", "swaps": [["Mia", "Tom"], ["Ben", "Sam"], ["Tom", "Ben"]]}
RIGHT = "Mia and Tom swap: Tom has it. Ben and Sam swap: Tom has it. Tom and Ben swap: Ben has it. Answer: Ben."


@pytest.mark.parametrize("response, label, answer", [
    (RIGHT, "correct", "Ben"),
    ("Answer: Ben", "correct", "Ben"),                                # the full stop is optional
    ("Answer:  Ben.", "correct", "Ben"),
    ("Answer: Ben..", "extra_text", "Ben"),
    ("Answer: Ben2.", "bad_answer", None),
    ("Answer: 20. Answer: Ben.", "extra_text", None),
    ("Mia and Tom swap: Mia has it. Ben and Sam swap: Mia has it. Tom and Ben swap: Mia has it. Answer: Mia.",
     "wrong_answer", "Mia"),
    ("Mia and Tom swap: Tom has it. Ben and Sam swap:", "no_answer", None),   # cut off at the length limit
    ("", "no_answer", None),
    ("Answer: ben.", "bad_answer", None),
    ("Answer:", "bad_answer", None),
    ("Answer: Ben and Tom.", "extra_text", "Ben"),
    ("Answer: 20.", "bad_answer", None),
    ("Answer: Ben. Answer: Ben.", "extra_text", "Ben"),
    ("Answer: Ben. The dog runs.", "extra_text", "Ben"),
    ("The dog runs. Answer: Ben.", "bad_steps", "Ben"),
    ("Mia and Tom swap: Tom has it. so Answer: Ben.", "bad_steps", "Ben"),
])
def test_each_failure_class(response, label, answer):
    v = verify(response, "Ben")
    assert v.label == label and v.answer == answer
    assert v.kind == ("correct" if label == "correct" else "format" if label in FORMAT_FAILURES else "answer")


def test_rewards():
    wrong_step = RIGHT.replace("Ben and Sam swap: Tom has it.", "Ben and Sam swap: Sam has it.")
    assert (correctness_reward(RIGHT, PROBLEM), format_reward(RIGHT), step_reward(RIGHT, PROBLEM)) == (1.0, 1.0, 1.0)
    assert (correctness_reward(wrong_step, PROBLEM), step_reward(wrong_step, PROBLEM)) == (1.0, pytest.approx(2 / 3))
    assert step_reward("Answer: Ben.", PROBLEM) == 0.0 and format_reward("Answer: Ben.") == 1.0
    assert step_reward(RIGHT.replace(" Answer", " Tom and Ben swap: Tom has it. Answer"), PROBLEM) == 0.75
    assert combined_reward(RIGHT, PROBLEM) == 1.0 and combined_reward("no answer", PROBLEM) == 0.0
    assert 0 < combined_reward("Answer: Tom.", PROBLEM) < 0.5


def test_no_string_crashes_the_checker():
    rng = random.Random(0)
    alphabet = "BenMiaTom andswp:hit .Answer\n\t-é\x00" + "".join(chr(c) for c in range(0x660, 0x66a))
    labels = Counter()
    for _ in range(3000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.3:
            s = RIGHT[:rng.randint(0, len(RIGHT))] + s
        if rng.random() < 0.5:
            s += " Answer: " + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        v = verify(s, "Ben")
        assert v.label in CLASSES
        for f in (correctness_reward, format_reward, step_reward, combined_reward):
            assert 0.0 <= f(s, PROBLEM) <= 1.0
        labels[v.label] += 1
    assert len(labels) >= 4
    with pytest.raises(TypeError, match="string"):
        verify(None, "Ben")


def test_failure_table_sums_to_one_and_names_bad_input():
    table = failure_table(["Answer: Ben.", "Answer: Tom.", "oops"], ["Ben", "Ben", "Ben"])
    assert table["correct"] == table["wrong_answer"] == table["no_answer"] == pytest.approx(1 / 3)
    assert sum(table.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 responses but 1 answers"):
        failure_table(["a", "b"], ["Ben"])
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
    assert majority_vote(["Ben", "Tom", "Ben", None]) == "Ben"


def test_rlvr_hooks_reward_and_log_from_the_verifier():
    from course_utils.models import load_tokenizer
    from course_utils.reasoning.rlvr import verifier_log, verifier_reward
    problem = {**PROBLEM, "prompt": "Mia has the ball. Mia and Tom swap. Ben and Sam swap. Tom and Ben swap. "
                                    "Who has the ball?", "n_swaps": 3}
    responses = [RIGHT, "Answer: Tom.", "oops"]
    prompts = [problem["prompt"]] * 3
    assert verifier_reward([problem])(prompts, responses).tolist() == [1.0, 0.0, 0.0]
    assert verifier_reward([problem], step_reward)(prompts, responses).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(KeyError, match="not among the problems"):
        verifier_reward([problem])(["Who?"], ["Answer: Ben."])
    tok = load_tokenizer("base")
    log = verifier_log([problem], tok)(prompts, responses, torch.tensor([1.0, 0.0, 0.0]))
    assert log["format_rate"] == pytest.approx(2 / 3) and log["step_accuracy"] == pytest.approx(1 / 3)
    assert log["length_right"] == len(tok(RIGHT, add_special_tokens=False)["input_ids"])
    n_tokens = [len(tok(r, add_special_tokens=False)["input_ids"]) for r in responses[1:]]
    assert log["length_wrong"] == pytest.approx(sum(n_tokens) / 2)
    assert "length_right" not in verifier_log([problem], tok)(prompts[1:], responses[1:], torch.zeros(2))


def test_rlvr_is_grpo_with_the_verifier_and_its_logs_change_nothing():
    from course_utils.alignment.grpo import GRPOConfig, train_grpo
    from course_utils.models import load_model
    from course_utils.reasoning.evaluation import answer_budget
    from course_utils.reasoning.rlvr import heldout_pass1, verifier_log, verifier_reward
    data = make_reasoning_data(seed=0, n_train=20, n_test=4, n_longer=1)
    train, test = list(data["train"]), list(data["test"])
    config = GRPOConfig(steps=2, prompts_per_step=2, group_size=4, max_new_tokens=answer_budget(6), seed=0)
    histories = []
    for hooks in (True, False):
        policy, tok = load_model("sft")
        ref, _ = load_model("sft")
        extra = {"log_fn": verifier_log(train, tok), "eval_fn": heldout_pass1(test, tok, n_samples=2)} if hooks else {}
        histories.append(train_grpo(policy, ref, tok, train, config, progress=False,
                                    reward_fn=verifier_reward(train), **extra).history)
    with_hooks, without = histories
    assert {"format_rate", "step_accuracy", "pass1", "zero_std_groups", "entropy", "kl", "kl_k1",
            "clip_fraction"} <= set(with_hooks[0])
    for a, b in zip(with_hooks, without):
        assert a["reward"] == b["reward"] and a["loss"] == b["loss"]


def test_the_answer_budget_fits_every_demonstration_and_report_counts_classes(data):
    from course_utils.models import load_tokenizer
    from course_utils.reasoning.evaluation import answer_budget, report
    tok = load_tokenizer("base")
    for split in data.values():
        for row in split:
            n = len(tok(" " + row["response"], add_special_tokens=False)["input_ids"]) + 1     # + end of text
            assert n <= answer_budget(row["n_swaps"]) and answer_budget(row["n_swaps"]) - n <= 5
    rows = [PROBLEM] * 3
    answers = [RIGHT, "Answer: Tom.", "oops"]
    out = report(answers, [verify(a, "Ben") for a in answers], rows)
    assert (out["accuracy"], out["wrong_answer"], out["no_answer"]) == (pytest.approx(1 / 3),) * 3
    assert out["step_accuracy"] == pytest.approx(1 / 3) and out["format_rate"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no answers"):
        report([], [], [])


def test_rlvr_config_holds_the_calibrated_settings_and_takes_changes():
    from course_utils.reasoning.evaluation import answer_budget
    from course_utils.reasoning.rlvr import rlvr_config
    cfg = rlvr_config(steps=7, seed=3)
    assert (cfg.steps, cfg.seed, cfg.prompts_per_step, cfg.group_size, cfg.lr, cfg.beta, cfg.iterations) == \
        (7, 3, 16, 8, 1e-4, 0.0, 1)
    assert cfg.max_new_tokens == answer_budget(6) and cfg.min_lr_ratio == 0.1 and cfg.warmup_steps == 5
    assert rlvr_config(loss_type="dr_grpo", scale_rewards="none").loss_type == "dr_grpo"


def test_the_shipped_reasoning_start_writes_both_styles_and_its_steps_pay():
    """The start of chapter 17's RL, as its report says and as a fresh check on 40 problems finds.
    Bounds: built with half the answers worked, it wrote 0.504 worked answers at T = 1 on 200
    problems x 4 (its report), right 0.777 of the time, direct ones 0.154; another draw of styles
    gave 0.44, 0.571 and 0.143. The fresh check's 80 answers hold about 40 of each style."""
    import json

    from course_utils.models import SHIPPED, load_model
    from course_utils.reasoning.evaluation import style_report
    report = json.loads((SHIPPED["reasoning"] / "reasoning_report.json").read_text())
    sampled = report["sampled"]
    assert report["worked_share"] == 0.5 and 0.3 <= sampled["worked_share"] <= 0.7
    assert sampled["format_rate"] >= 0.95
    assert sampled["accuracy_worked"] > sampled["accuracy_direct"] + 0.2
    model, tok = load_model("reasoning")
    rows = list(make_reasoning_data(seed=0)["test"])[:40]
    fresh = style_report(model, tok, rows, n_samples=2)
    assert 0.2 < fresh["worked_share"] < 0.8
    assert fresh["accuracy_worked"] > fresh["accuracy_direct"] + 0.2
