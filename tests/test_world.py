"""The tiny world: deterministic, well-formed tasks, honest held-out splits, documented gold reward."""
import re

import pytest

from course_utils import world


def test_corpus_is_deterministic_for_a_seed():
    assert world.make_corpus(500, seed=3) == world.make_corpus(500, seed=3)
    assert world.make_corpus(500, seed=3) != world.make_corpus(500, seed=4)
    assert world.make_corpus(200, split="train") != world.make_corpus(200, split="validation")


def test_instruction_data_is_deterministic_and_complete():
    a = world.make_instruction_data(seed=1, n_train=50, n_test=20, n_open_train=10)
    b = world.make_instruction_data(seed=1, n_train=50, n_test=20, n_open_train=10)
    for split in a:
        assert a[split].to_list() == b[split].to_list()
    assert set(a) == {"train", "validation", "test", "test_heldout_words"}
    assert set(a["train"]["task"]) == set(world.TASKS) | {"open"}
    assert set(a["test"]["task"]) == set(world.TASKS)
    assert len(world.TASKS) >= 5


@pytest.fixture(scope="module")
def data():
    return world.make_instruction_data()


def test_no_test_prompt_is_in_training(data):
    train = set(data["train"]["prompt"])
    for split in ["validation", "test", "test_heldout_words"]:
        assert not train & set(data[split]["prompt"]), split
    assert not set(data["validation"]["prompt"]) & set(data["test"]["prompt"])


def test_heldout_words_never_appear_in_training(data):
    held = world.HELDOUT_COPY_WORDS | world.HELDOUT_SENTIMENT_WORDS
    train_words = {w for r in data["train"] for w in re.findall(r"\w+", r["prompt"] + " " + r["response"])}
    assert not held & train_words
    for r in data["test_heldout_words"]:
        assert held & set(re.findall(r"\w+", r["prompt"])), r


def test_heldout_add_pairs_are_not_trained(data):
    pairs = world.heldout_add_pairs()
    trained = {world._add_pair(r["prompt"]) for r in data["train"] if r["task"] == "add"}
    assert not trained & (pairs["validation"] | pairs["test"])
    assert {world._add_pair(r["prompt"]) for r in data["test"] if r["task"] == "add"} <= pairs["test"]


def test_answers_are_correct(data):
    for r in data["test"]:
        p, ans = r["prompt"], r["response"]
        if r["task"] == "add":
            a, b = world._add_pair(p)
            assert ans == f"{a} plus {b} is {a + b}."
        elif r["task"] == "uppercase":
            assert ans == p.split(": ", 1)[1].upper()
        elif r["task"] == "reverse":
            assert ans.split() == p.split(": ", 1)[1].split()[::-1]
        elif r["task"] == "sentiment":
            assert ans in {"positive", "negative"}
        elif r["task"] == "qa":
            story = p.split("Story: ")[1].split("\nQuestion: ")[0]
            assert ans in story and len(story.split(". ")) in (2, 3)


def test_gold_reward_components():
    g = world.gold_breakdown("dog", "The happy dog plays in the park.")
    assert (g.mentions_subject, g.tone, g.repetition, g.length, g.ending) == (1.0, 0.5, 0.0, 0.0, 0.0)
    assert world.gold_breakdown("dog", "The cat plays.").mentions_subject == -1.0
    assert world.gold_breakdown("dog", "The dog is rude and lazy.").tone == -1.0
    assert world.gold_breakdown("dog", "The nice dog is nice and nice.").repetition == -1.0
    assert world.gold_breakdown("dog", "The dog is happy").ending == -0.5
    assert world.gold_breakdown("dog", "Dog.").length == -0.5
    long = "The dog " + "and the happy cat " * 4 + "runs."
    assert world.gold_breakdown("dog", long).length < 0
    # the best answers are friendly, on topic and concise
    assert world.gold_reward("dog", "The kind dog is happy.") > world.gold_reward("dog", "The dog is sad.")


def test_subject_of_open_prompts():
    for tmpl in world.OPEN_TEMPLATES:
        assert world.subject_of(tmpl.format(s="owl")) == "owl"
    with pytest.raises(ValueError, match="not an open-ended prompt"):
        world.subject_of("What is 2 plus 3?")
