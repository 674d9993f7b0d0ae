"""Rejection-sampling fine-tuning and online iterative DPO: short rounds run, keep the best answers, label fresh pairs."""
import pytest

from course_utils import world
from course_utils.models import load_model
from course_utils.training import TrainConfig


@pytest.fixture(scope="module")
def models():
    policy, tok = load_model("sft")
    ref, _ = load_model("sft")
    rm, _ = load_model("rm", kind="classifier")
    return policy, ref, rm, tok


def test_best_of_k_keeps_the_reward_models_favourite(models):
    from course_utils.alignment.iterative import best_of_k
    from course_utils.alignment.reward_model import score
    _, ref, rm, tok = models
    prompts = list(world.open_prompts(seed=7, n=6)["prompt"])
    rows = best_of_k(ref, rm, tok, prompts, k=4, seed=3)
    assert [r["prompt"] for r in rows] == prompts
    assert all(r["score"] >= r["mean_score"] - 1e-6 for r in rows)
    assert any(r["score"] > r["mean_score"] + 1e-3 for r in rows)          # the k answers differ
    rescored = score(rm, tok, prompts, [r["response"] for r in rows])
    assert all(abs(a - r["score"]) < 1e-4 for a, r in zip(rescored.tolist(), rows))
    with pytest.raises(ValueError, match="k >= 1"):
        best_of_k(ref, rm, tok, prompts, k=0)


def test_rejection_sampling_and_online_dpo_rounds(models):
    from course_utils.alignment.iterative import online_iterative_dpo, rejection_sampling_finetune
    policy, ref, rm, tok = models
    prompts = list(world.open_prompts(seed=8, n=16)["prompt"])
    cfg = TrainConfig(steps=2, batch_size=4, lr=1e-4, log_every=1)
    h = rejection_sampling_finetune(policy, rm, tok, prompts, rounds=2, prompts_per_round=8, k=2, config=cfg)
    assert [r["round"] for r in h] == [1, 2] and all(r["answers"] == 16 and r["kept"] == 8 for r in h)
    assert all(r["best_score"] >= r["mean_score"] for r in h)
    h = online_iterative_dpo(policy, ref, tok, prompts, rounds=2, pairs_per_round=8, config=cfg)
    assert [r["round"] for r in h] == [1, 2] and all(0 < r["pairs"] <= 8 and r["answers"] == 16 for r in h)
    assert all(r["dpo_loss"] > 0 for r in h)
    with pytest.raises(ValueError, match="need 48 prompts"):
        online_iterative_dpo(policy, ref, tok, prompts, rounds=3, pairs_per_round=16, config=cfg)
