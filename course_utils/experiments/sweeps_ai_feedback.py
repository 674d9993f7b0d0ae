"""Chapter 15 over seeds: AI feedback against human feedback at a known truth.

A pairwise judge (:mod:`course_utils.evaluation.ai_feedback`) is trained on a small human-labelled set,
labels a large pool of pairs, and DPO trains on its labels; against it, DPO on the same pool
labelled by the simulated humans, and DPO on the small human set alone. The gold reward
scores every arm the same way.
"""

from __future__ import annotations

import functools
import random

from course_utils.experiments import sweep
from course_utils.experiments.sweeps_prefs import _models


@functools.lru_cache(maxsize=2)
def _pool(n_pairs: int):
    """Unlabelled pairs of SFT samples and the simulated humans' labels of them (fixed across seeds)."""
    from course_utils import world
    from course_utils.alignment.feedback import default_labelers, simulate_labels
    from course_utils.alignment.reward_model import sample_pairs
    ref, _, tok = _models()
    pairs = sample_pairs(ref, tok, world.open_prompts(seed=1, n=n_pairs)["prompt"], seed=0, id_prefix="train")
    return pairs, simulate_labels(pairs, default_labelers(seed=0))


@functools.lru_cache(maxsize=2)
def _audit_pairs(n_eval: int):
    from course_utils import world
    from course_utils.alignment.reward_model import sample_pairs
    ref, _, tok = _models()
    return sample_pairs(ref, tok, world.open_prompts(seed=50, n=n_eval)["prompt"], seed=3, id_prefix="audit")


@sweep("rlaif_vs_rlhf", chapter="15",
       description="DPO on n_large pairs labelled by a judge trained on n_small human-labelled pairs (as is, and "
                   "swap-averaged), against the same pairs labelled by the simulated humans and against the "
                   "n_small human pairs alone (the same steps, and the same epochs); gold, proxy and exact KL to SFT on 200 held-out prompts x 2 "
                   "answers; the judge audited on pairs of fresh samples",
       settings={"n_small": 200, "n_large": 2000, "judge_steps": 100, "dpo_steps": 125, "beta": 0.5,
                 "n_eval": 200},
       smoke={"n_small": 32, "n_large": 64, "judge_steps": 3, "dpo_steps": 3, "n_eval": 16},
       seeds=3)
def rlaif_vs_rlhf(seed: int, n_small: int, n_large: int, judge_steps: int, dpo_steps: int, beta: float,
                  n_eval: int) -> list[dict]:
    from course_utils import world
    from course_utils.evaluation.ai_feedback import LMJudge, ai_labels, train_judge
    from course_utils.alignment.dpo import run_dpo
    from course_utils.alignment.feedback import gold_agreement, gold_of
    from course_utils.evaluation.judges import agreement, length_bias, position_bias, swap_averaged
    from course_utils.models import load_model
    from course_utils.alignment.rlhf import evaluate_policy
    from course_utils.training import TrainConfig, set_seed

    ref, rm, tok = _models()
    pairs, human = _pool(n_large)
    small = human.select(sorted(random.Random(f"small-{seed}").sample(range(len(human)), n_small)))
    eval_prompts = list(world.open_prompts(seed=50, n=n_eval)["prompt"])

    set_seed(seed)
    judge_model, _ = load_model("sft")
    train_judge(judge_model, tok, small, TrainConfig(steps=judge_steps, batch_size=32, lr=3e-4,
                                                     warmup_steps=min(10, judge_steps // 2),
                                                     log_every=max(1, judge_steps), seed=seed,
                                                     desc="judge"), seed=seed, progress=False)
    judge = LMJudge(judge_model, tok)
    audit = _audit_pairs(n_eval)
    P, A, B = list(audit["prompt"]), list(audit["a"]), list(audit["b"])
    ga, gb = [gold_of(p, a) for p, a in zip(P, A)], [gold_of(p, b) for p, b in zip(P, B)]
    pos = position_bias(judge, P, A, B)
    try:
        length = length_bias(judge, P, A, B, ga, gb).value
    except ValueError:                      # no equal-gold pair of different lengths at this size
        length = None
    rows = [{"arm": "judge audit", "agreement": agreement(judge, P, A, B, ga, gb).value,
             "agreement_swapped": agreement(swap_averaged(judge), P, A, B, ga, gb).value,
             "first_shown_rate": pos["first_shown_rate"].value, "consistency": pos["consistency"].value,
             "prefers_longer": length}]

    # (arm, labels, DPO steps): every arm gets dpo_steps, and the small set also gets the steps of
    # the same number of epochs as the large sets (dpo_steps * n_small / n_large), where it cannot overfit as far
    small_steps = max(1, round(dpo_steps * n_small / n_large))
    arms = [("human small", small, dpo_steps), ("human small, equal epochs", small, small_steps),
            ("human large", human, dpo_steps), ("AI large", ai_labels(judge, pairs), dpo_steps),
            ("AI large swapped", ai_labels(judge, pairs, swap=True), dpo_steps)]
    for arm, labels, steps in arms:
        set_seed(seed)
        policy, _ = load_model("sft")
        cfg = TrainConfig(steps=steps, batch_size=32, lr=1e-4, warmup_steps=min(10, steps // 2),
                          log_every=max(1, steps), seed=seed, desc=f"DPO {arm}")
        run_dpo(policy, ref, tok, labels, cfg, beta=beta, progress=False)
        e = evaluate_policy(policy, rm, tok, eval_prompts, ref=ref, n_samples=2, seed=0)
        rows.append({"arm": arm, "pairs": len(labels), "steps": steps, "label_gold_agreement": gold_agreement(labels),
                     "gold": e["gold"], "proxy": e["proxy"], "kl_exact": e["kl_exact"], "length": e["length"]})
    if seed == 0:
        e = evaluate_policy(ref, rm, tok, eval_prompts, ref=ref, n_samples=2, seed=0)
        rows.append({"arm": "SFT", "gold": e["gold"], "proxy": e["proxy"], "kl_exact": e["kl_exact"],
                     "length": e["length"]})
    return rows
