"""Learning from the policy's own samples, round by round: rejection sampling and online DPO.

**Rejection-sampling fine-tuning** (expert iteration; Dong et al. 2023 "RAFT", Touvron et al.
2023 "Llama 2", Anthony et al. 2017): each round samples ``k`` answers to each of a fresh set
of prompts from the *current* policy, keeps the one the reward model scores highest, and
runs SFT on the kept answers (:func:`sft.run_sft`, the course loop)::

    for round t:   y*_x = argmax_{y_1..y_k ~ pi_t(.|x)} r_RM(x, y)        for each prompt x
                   pi_{t+1} = SFT(pi_t, {(x, y*_x)})

One round is best-of-k distilled into the weights; iterating moves the sampling
distribution, so the next round's best answers are better still (or hack the reward
model harder: it sees only the proxy).

**Online iterative DPO** (Xiong et al., 2024; Guo et al., 2024 "OAIF"; Dong et al., 2024
"RLHF workflow"): each round samples fresh pairs from the *current* policy, has the simulated
labelers label them (the same labelers as the offline data, :mod:`feedback`), and runs DPO
on them (:func:`dpo.run_dpo`) against a fixed reference (the SFT model), so the KL anchor does
not drift. Offline DPO learns from the SFT model's answers only; online DPO's labels are
always about answers the policy now gives.

Both run with the course loop; each round starts a fresh optimizer (as a new ``train`` call).
Budgets: sampled answers (``k`` per prompt) for rejection sampling; labelled pairs (two
sampled answers each) for online DPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from course_utils.training import TrainConfig


@torch.no_grad()
def best_of_k(policy, reward_model, tokenizer, prompts: Sequence[str], k: int, seed: int = 0,
              temperature: float = 1.0, max_new_tokens: int = 24) -> list[dict]:
    """``k`` answers per prompt from ``policy``; the reward model's favourite of each.

    Returns one row per prompt: ``prompt``, ``response`` (the best answer), ``score`` (its
    reward-model score) and ``mean_score`` (the mean over the ``k`` answers).
    """
    from course_utils.models import generate
    from course_utils.alignment.reward_model import score
    if k < 1 or not prompts:
        raise ValueError(f"best_of_k needs k >= 1 and at least one prompt (k={k}, {len(prompts)} prompts)")
    flat = [p for p in prompts for _ in range(k)]
    answers = generate(policy, tokenizer, flat, max_new_tokens=max_new_tokens, temperature=temperature,
                       seed=seed, batch_size=256)
    s = score(reward_model, tokenizer, flat, answers, batch_size=256).view(len(prompts), k)
    pick = s.argmax(1)
    return [{"prompt": p, "response": answers[i * k + int(pick[i])], "score": float(s[i, pick[i]]),
             "mean_score": float(s[i].mean())} for i, p in enumerate(prompts)]


def rejection_sampling_finetune(policy, reward_model, tokenizer, prompts: Sequence[str], rounds: int,
                                prompts_per_round: int, k: int, config: TrainConfig, seed: int = 0,
                                progress: bool = False) -> list[dict]:
    """Rejection-sampling fine-tuning of ``policy`` (in place): ``rounds`` rounds of best-of-``k`` then SFT.

    Round ``t`` uses prompts ``[t * prompts_per_round, (t + 1) * prompts_per_round)`` of
    ``prompts`` (fresh prompts every round) and ``config`` with seed ``config.seed + t``.
    Returns one row per round: ``round``, ``answers`` (sampled), ``kept``, ``best_score``,
    ``mean_score`` (the reward model's mean over all sampled answers: how the policy did
    before this round's update), ``sft_loss`` (last logged loss).
    """
    from course_utils.sft import run_sft
    if rounds * prompts_per_round > len(prompts):
        raise ValueError(f"{rounds} rounds of {prompts_per_round} prompts need {rounds * prompts_per_round} "
                         f"prompts; got {len(prompts)}")
    history = []
    for t in range(rounds):
        chunk = list(prompts[t * prompts_per_round:(t + 1) * prompts_per_round])
        kept = best_of_k(policy, reward_model, tokenizer, chunk, k, seed=seed * 1000 + t)
        res = run_sft(policy, tokenizer, kept, replace(config, seed=config.seed + t, desc=f"RFT round {t + 1}"),
                      progress=progress)
        history.append({"round": t + 1, "answers": len(chunk) * k, "kept": len(kept),
                        "best_score": sum(r["score"] for r in kept) / len(kept),
                        "mean_score": sum(r["mean_score"] for r in kept) / len(kept),
                        "sft_loss": res.losses[-1]})
    return history


def online_iterative_dpo(policy, ref, tokenizer, prompts: Sequence[str], rounds: int, pairs_per_round: int,
                         config: TrainConfig, beta: float = 0.5, seed: int = 0, labelers: Sequence | None = None,
                         loss_type: str = "sigmoid", progress: bool = False) -> list[dict]:
    """Online iterative DPO on ``policy`` (in place) against the fixed reference ``ref``.

    Round ``t`` samples a pair of answers from the current policy for each of
    ``pairs_per_round`` fresh prompts (pairs of identical answers are dropped), has
    ``labelers`` (default :func:`feedback.default_labelers` with ``seed``) label them, and runs
    :func:`dpo.run_dpo` on the labels with ``config`` (seed ``config.seed + t``). Returns one
    row per round: ``round``, ``pairs`` (labelled), ``answers`` (sampled), ``gold_agreement``
    of the labels, ``dpo_loss`` (last logged loss).
    """
    from course_utils.alignment.dpo import run_dpo
    from course_utils.alignment.feedback import default_labelers, gold_agreement, simulate_labels
    from course_utils.models import quiet_progress_bars
    from course_utils.alignment.reward_model import sample_pairs
    if rounds * pairs_per_round > len(prompts):
        raise ValueError(f"{rounds} rounds of {pairs_per_round} prompts need {rounds * pairs_per_round} "
                         f"prompts; got {len(prompts)}")
    labelers = list(labelers) if labelers is not None else default_labelers(seed=seed)
    history = []
    for t in range(rounds):
        chunk = list(prompts[t * pairs_per_round:(t + 1) * pairs_per_round])
        with quiet_progress_bars():
            pairs = sample_pairs(policy, tokenizer, chunk, seed=seed * 1000 + t, id_prefix=f"round{t + 1}-")
        if len(pairs) == 0:
            raise ValueError(f"round {t + 1}: every sampled pair was two identical answers; nothing to label")
        labels = simulate_labels(pairs, labelers)
        res = run_dpo(policy, ref, tokenizer, labels, replace(config, seed=config.seed + t,
                                                              desc=f"online DPO round {t + 1}"),
                      beta=beta, loss_type=loss_type, progress=progress)
        try:
            agree = gold_agreement(labels)
        except ValueError:            # every pair a gold tie
            agree = float("nan")
        history.append({"round": t + 1, "pairs": len(labels), "answers": 2 * len(chunk),
                        "gold_agreement": agree, "dpo_loss": res.losses[-1]})
    return history

