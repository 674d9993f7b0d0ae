"""Chapter 09 over seeds: what a reward model's accuracy against gold depends on (label noise,
label count, training steps), every arm trained with the same learning rate and schedule."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from course_utils.experiments import sweep


@lru_cache(maxsize=4)
def _pairs(n_train: int, n_test: int):
    """Chapter 09's training and test pairs (the SFT model's samples; the same for every seed)."""
    from course_utils import world
    from course_utils.models import load_model
    from course_utils.alignment.reward_model import sample_pairs
    policy, tok = load_model("sft")
    train = sample_pairs(policy, tok, world.open_prompts(seed=1, n=n_train)["prompt"], seed=0, id_prefix="train")
    test = sample_pairs(policy, tok, world.open_prompts(seed=2, n=n_test)["prompt"], seed=1, id_prefix="test")
    return train, test


@sweep("rm_labels", chapter="09",
       description="reward models trained on labels of three noise levels (labelers of beta 1, the course's "
                   "beta 1.5-3, gold) and three label counts, every arm with the same schedule (batch 32, "
                   "lr 3e-4, 5 warm-up steps, cosine decay); plus the course labels at half the steps; "
                   "accuracy against gold on chapter 09's test pairs",
       settings={"n_train": 2000, "n_test": 600, "counts": [250, 1000, 2000], "steps": 62},
       smoke={"n_train": 60, "n_test": 40, "counts": [30, 60], "steps": 3}, seeds=3)
def rm_labels(seed: int, n_train: int, n_test: int, counts: list, steps: int) -> list[dict]:
    from course_utils.alignment.feedback import SimulatedLabeler, default_labelers, gold_agreement, simulate_labels
    from course_utils.alignment.reward_model import gold_preference_pairs, preference_accuracy, train_reward_model
    from course_utils.training import TrainConfig, set_seed

    train_pairs, test_pairs = _pairs(n_train, n_test)
    gold_test = gold_preference_pairs(test_pairs)
    order = np.random.default_rng(seed).permutation(len(train_pairs))
    kinds = {"noisy (beta 1)": [SimulatedLabeler("noisy", 1.0, seed)],
             "course (beta 1.5-3)": default_labelers(seed=seed),
             "gold (no noise)": None}

    def run(labs, n, n_steps):
        sub = train_pairs.select(sorted(order[:n].tolist()))
        rows = gold_preference_pairs(sub) if labs is None else simulate_labels(sub, labs)
        agree = 1.0 if labs is None else gold_agreement(rows)
        set_seed(seed)
        config = TrainConfig(steps=n_steps, batch_size=32, lr=3e-4, warmup_steps=min(5, n_steps - 1),
                             log_every=max(1, n_steps // 4), seed=seed)
        model, tok, _ = train_reward_model(rows, config, progress=False)
        return {"labels": len(rows), "label_gold_agreement": float(agree),
                "acc_gold": float(preference_accuracy(model, tok, gold_test)), "test_pairs": len(gold_test)}

    out = []
    for name, labs in kinds.items():
        for n in counts:
            out.append({"arm": f"{name}, {n} pairs, {steps} steps", "noise": name, "pairs": int(n),
                        "steps": int(steps), **run(labs, int(n), steps)})
    half = max(2, steps // 2)
    out.append({"arm": f"course (beta 1.5-3), {counts[-1]} pairs, {half} steps", "noise": "course (beta 1.5-3)",
                "pairs": int(counts[-1]), "steps": int(half), **run(kinds["course (beta 1.5-3)"], int(counts[-1]), half)})
    return out
