"""Chapter 10 over seeds: one round of iterated RLHF (v1 -> v2 of the reward model).

Each seed runs a short PPO round from the SFT model against the shipped reward model (v1),
samples fresh pairs of the tuned policy's answers, has the simulated labelers label them, and
retrains the reward model from the SFT checkpoint in two arms with the same recipe and the
same number of steps:

* ``v2_old_only``: the old labels of SFT answers only (a control: retraining alone);
* ``v2_old_plus_new``: the old labels plus the new labels of the policy's answers.

Every arm, and the shipped ``v1``, is scored against the gold preference on pairs of fresh
answers of the same tuned policy (pairs whose two answers tie in gold are left out). A seed
changes the PPO run, the prompts, the sampled answers, the labelers' noise and the reward
models' batch order.
"""

from __future__ import annotations

from course_utils.experiments import sweep

PROBE_PROMPT = "Write a sentence about a dog."
PROBE_GOOD = "The happy dog runs in the park."
PROBE_REPEATED = "The nice dog is nice and nice and nice."


def repeats_a_word(answer: str) -> bool:
    """True if a word of the answer (ignoring 'the', 'a', 'and', 'is') appears twice or more."""
    words = [w.strip(".,!?").lower() for w in answer.split()]
    words = [w for w in words if w and w not in {"the", "a", "an", "and", "is", "in", "of"}]
    return len(words) != len(set(words))


@sweep("rlhf_iteration", chapter="10",
       description="Iterated RLHF: reward model v1 against v2 (retrained on old labels only, or on old plus "
                   "new labels of the PPO policy's answers), accuracy against gold on fresh policy pairs",
       settings={"ppo_steps": 25, "n_old": 800, "n_new": 400, "n_test": 800},
       smoke={"ppo_steps": 2, "n_old": 32, "n_new": 32, "n_test": 64}, seeds=4)
def rlhf_iteration(seed: int, ppo_steps: int, n_old: int, n_new: int, n_test: int) -> list[dict]:
    from course_utils import world
    from course_utils.alignment.feedback import default_labelers, simulate_labels
    from course_utils.models import load_model, quiet_progress_bars
    from course_utils.alignment.reward_model import (gold_preference_pairs, preference_accuracy, preference_data,
                                           sample_pairs, score, train_reward_model)
    from course_utils.alignment.rlhf import RLHFConfig, train_ppo_rlhf
    from course_utils.training import TrainConfig, set_seed

    set_seed(seed)
    policy, tok = load_model("sft")
    ref, _ = load_model("sft")
    rm1, _ = load_model("rm", kind="classifier")
    train_prompts = list(world.open_prompts(seed=1, n=4000)["prompt"])
    run = train_ppo_rlhf(policy, ref, rm1, tok, train_prompts,
                         RLHFConfig(steps=ppo_steps, seed=seed), progress=False)
    last = run.history[-1]

    with quiet_progress_bars():
        new_pairs = sample_pairs(policy, tok, world.open_prompts(seed=1000 + seed, n=n_new)["prompt"],
                                 seed=seed, id_prefix="ppo")
        new_labels = simulate_labels(new_pairs, default_labelers(seed=100 + seed))
        old_labels = preference_data(ref, tok, n_old, seed=seed, prompt_seed=2000 + seed)
        test = sample_pairs(policy, tok, world.open_prompts(seed=3000 + seed, n=n_test)["prompt"],
                            seed=10_000 + seed, id_prefix="test")
    gold_test = gold_preference_pairs(test)
    answers = list(new_pairs["a"]) + list(new_pairs["b"])
    repeated_share = sum(repeats_a_word(a) for a in answers) / max(len(answers), 1)

    old_rows, all_rows = list(old_labels), list(old_labels) + list(new_labels)
    steps = max(2 * len(all_rows) // 32, 2)   # the same number of steps for both retrained arms
    models = {"v1": rm1}
    for arm, rows in [("v2_old_only", old_rows), ("v2_old_plus_new", all_rows)]:
        cfg = TrainConfig(steps=steps, batch_size=32, lr=1e-4, warmup_steps=min(20, steps // 2),
                          log_every=10 ** 9, seed=seed, desc=arm)
        models[arm], _, _ = train_reward_model(rows, cfg, progress=False)

    out = []
    for arm, model in models.items():
        acc = preference_accuracy(model, tok, gold_test) if gold_test else float("nan")
        probe = score(model, tok, [PROBE_PROMPT] * 2, [PROBE_GOOD, PROBE_REPEATED])
        out.append({"arm": arm, "accuracy": float(acc), "correct": round(float(acc) * len(gold_test)),
                    "n_pairs": len(gold_test), "n_test_pairs": len(test),
                    "n_new_labels": len(new_labels), "n_old_labels": len(old_rows), "rm_steps": steps,
                    "repeated_minus_good": float(probe[1] - probe[0]),
                    "policy_kl": float(last["kl"]), "policy_gold": float(last["gold"]),
                    "repeated_share": float(repeated_share)})
    return out
