"""Reward model: the Bradley-Terry loss, batches, accuracy, and the shipped reward model's goal."""

import json
import math

import pytest
import torch

from course_utils import world
from course_utils.alignment.feedback import gold_of
from course_utils.models import SHIPPED, load_model
from course_utils.alignment.reward_model import (bradley_terry_loss, collate_preferences, gold_preference_pairs,
                                       pairwise_accuracy, preference_accuracy, reward_model_loss,
                                       sample_pairs, score, tokenize_preferences, train_reward_model)
from course_utils.training import TrainConfig


def test_bradley_terry_loss_by_hand():
    rc, rr = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 0.0, 1.0])
    by_hand = -sum(math.log(1 / (1 + math.exp(-(c - r)))) for c, r in zip(rc.tolist(), rr.tolist())) / 3
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(by_hand, rel=1e-6)
    # stable where log(sigmoid(x)) underflows: a margin of -200 costs 200, not inf
    assert bradley_terry_loss(torch.tensor([-100.0]), torch.tensor([100.0])).item() == pytest.approx(200.0)


def test_pairwise_accuracy_counts_ties_half():
    assert pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 2.0, 1.0])) == 0.625
    with pytest.raises(ValueError, match="no pairs"):
        pairwise_accuracy(torch.zeros(0), torch.zeros(0))


def test_batch_layout_chosen_first_then_rejected():
    _, tok = load_model("sft")
    rows = [{"prompt": "Write a sentence about a dog.", "chosen": "The happy dog runs.", "rejected": "dog"},
            {"prompt": "Describe a cup in one sentence.", "chosen": "A cup.", "rejected": "The red cup is nice and kind."}]
    data = tokenize_preferences(tok, rows)
    batch = collate_preferences(data, tok.pad_token_id)
    assert batch["input_ids"].shape[0] == 4
    for i, e in enumerate(data):
        n, m = len(e["chosen_ids"]), len(e["rejected_ids"])
        assert batch["input_ids"][i, :n].tolist() == e["chosen_ids"] and batch["attention_mask"][i].sum() == n
        assert batch["input_ids"][2 + i, :m].tolist() == e["rejected_ids"] and batch["attention_mask"][2 + i].sum() == m
    assert "The happy dog runs." in tok.decode(data[0]["chosen_ids"])
    with pytest.raises(ValueError, match="empty"):
        tokenize_preferences(tok, [])


def test_reward_model_learns_from_preferences():
    """A short run on gold-ordered pairs lifts held-out accuracy from chance to well above it."""
    policy, tok = load_model("sft")
    pairs = sample_pairs(policy, tok, world.open_prompts(seed=11, n=600)["prompt"], seed=3)
    rows = gold_preference_pairs(pairs)
    train, test = rows[:-150], rows[-150:]
    model, tok, result = train_reward_model(train, TrainConfig(steps=40, batch_size=32, lr=2e-4, log_every=10),
                                            progress=False)
    assert result.losses[-1] < result.losses[0]
    assert preference_accuracy(model, tok, test) > 0.75
    # the same loss as the training loop's, on one batch
    batch = collate_preferences(tokenize_preferences(tok, test[:8]), tok.pad_token_id)
    with torch.no_grad():
        r = model(**batch).logits[:, 0]
        assert reward_model_loss(model, batch).item() == pytest.approx(bradley_terry_loss(r[:8], r[8:]).item(), rel=1e-6)


def test_shipped_reward_model_meets_the_goal():
    report = json.loads((SHIPPED["rm"] / "rm_report.json").read_text())
    assert report["accuracy_vs_gold"] >= 0.85
    assert report["accuracy_vs_gold"] >= report["labeler_agreement"] - 0.03
    # and on pairs sampled here, from prompts and a seed the report never saw
    policy, tok = load_model("sft")
    pairs = sample_pairs(policy, tok, world.open_prompts(seed=99, n=300)["prompt"], seed=5)
    rm, rm_tok = load_model("rm", kind="classifier")
    assert preference_accuracy(rm, rm_tok, gold_preference_pairs(pairs)) >= 0.85


def test_shipped_reward_model_tracks_gold_and_keeps_its_blind_spot():
    rm, tok = load_model("rm", kind="classifier")
    prompt = "Write a sentence about a dog."
    good, bad = "The happy dog runs in the park.", "The sad dog runs in the park."
    r = score(rm, tok, [prompt] * 2, [good, bad])
    assert r[0] > r[1] and gold_of(prompt, good) > gold_of(prompt, bad)
    # repeated praise: gold punishes the repetition, the reward model likes the praise
    hack = "The nice dog is nice and nice and nice."
    r_hack = score(rm, tok, [prompt], [hack])[0]
    assert gold_of(prompt, hack) < gold_of(prompt, good) and r_hack > r[0]


def test_pairwise_credit_scores_each_pair_and_averages_to_the_accuracy():
    import torch

    from course_utils.alignment.reward_model import pairwise_accuracy, pairwise_credit

    rc, rr = torch.tensor([2.0, 0.0, 1.0, -1.0]), torch.tensor([1.0, 1.0, 1.0, -3.0])
    assert pairwise_credit(rc, rr).tolist() == [1.0, 0.0, 0.5, 1.0]
    assert pairwise_accuracy(rc, rr) == 0.625
