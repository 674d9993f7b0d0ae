"""Chapter 15's arena: every model the course makes answers the same held-out prompts.

Per seed the tuned models are trained afresh (the seed varies their training, not the data);
each model answers each of ``n_prompts`` held-out open prompts once, at temperature 1 with
one sampling seed for all; the rows keep every answer's gold and proxy (reward-model) score,
rounded to 4 decimals, so the chapter can fit Bradley-Terry scores under either judge.
"""

from __future__ import annotations

from course_utils.experiments import sweep
from course_utils.experiments.sweeps_prefs import _labels, _models, _prompts

MODELS = ["base", "SFT", "DPO", "PPO", "PPO, no KL penalty", "GRPO", "best-of-4", "best-of-16"]


def _answers(policy, tok, prompts, seed: int = 0) -> list[str]:
    from course_utils.models import generate
    return generate(policy, tok, prompts, max_new_tokens=24, temperature=1.0, seed=seed)


def _best_of(ref, rm, tok, prompts, n: int) -> list[str]:
    """The reward model's favourite of ``n`` SFT answers per prompt."""
    from course_utils.alignment.reward_model import score
    flat = [p for p in prompts for _ in range(n)]
    outs = _answers(ref, tok, flat, seed=7)
    s = score(rm, tok, flat, outs, batch_size=256).view(len(prompts), n)
    return [outs[i * n + int(k)] for i, k in enumerate(s.argmax(1))]


@sweep("arena", chapter="15",
       description="Base, SFT, DPO (beta 0.5), PPO (KL coef 0.1), PPO without KL penalty, GRPO (on addition) and "
                   "best-of-4/16 by the reward model answer the same held-out prompts once each at temperature 1: "
                   "per-answer gold and proxy scores",
       settings={"n_prompts": 200, "dpo_steps": 125, "ppo_steps": 25, "ppo_nokl_steps": 60, "grpo_steps": 40,
                 "n_pairs": 2000},
       smoke={"n_prompts": 6, "dpo_steps": 2, "ppo_steps": 1, "ppo_nokl_steps": 1, "grpo_steps": 1, "n_pairs": 64},
       seeds=3)
def arena(seed: int, n_prompts: int, dpo_steps: int, ppo_steps: int, ppo_nokl_steps: int, grpo_steps: int,
          n_pairs: int) -> list[dict]:
    from course_utils import world
    from course_utils.alignment.dpo import run_dpo
    from course_utils.alignment.feedback import gold_of
    from course_utils.alignment.grpo import GRPOConfig, train_grpo
    from course_utils.models import load_model
    from course_utils.alignment.reward_model import score
    from course_utils.alignment.rlhf import RLHFConfig, train_ppo_rlhf
    from course_utils.training import TrainConfig, set_seed

    ref, rm, tok = _models()
    train_prompts, _ = _prompts(200)
    prompts = list(world.open_prompts(seed=60, n=n_prompts)["prompt"])   # held out from every training set

    def trained(name):
        set_seed(seed)
        policy, _ = load_model("base" if name == "base" else "sft")
        if name == "DPO":
            run_dpo(policy, ref, tok, _labels(n_pairs), TrainConfig(
                steps=dpo_steps, batch_size=32, lr=1e-4, warmup_steps=min(10, dpo_steps // 2),
                log_every=max(1, dpo_steps), seed=seed, desc="DPO"), beta=0.5, progress=False)
        elif name.startswith("PPO"):
            nokl = name != "PPO"
            train_ppo_rlhf(policy, ref, rm, tok, train_prompts,
                           RLHFConfig(steps=ppo_nokl_steps if nokl else ppo_steps, kl_coef=0.0 if nokl else 0.1,
                                      seed=seed), progress=False)
        elif name == "GRPO":
            practice = [r for r in world.make_instruction_data(0)["validation"] if r["task"] == "add"]
            train_grpo(policy, ref, tok, practice, GRPOConfig(steps=grpo_steps, seed=seed), progress=False)
        return policy

    rows = []
    for name in MODELS:
        if name.startswith("best-of-"):
            answers = _best_of(ref, rm, tok, prompts, int(name.split("-")[-1]))
        else:
            answers = _answers(trained(name) if name != "SFT" else ref, tok, prompts)
        proxy = score(rm, tok, prompts, answers, batch_size=256).tolist()
        rows.append({"model": name,
                     "gold": [round(gold_of(p, a), 4) for p, a in zip(prompts, answers)],
                     "proxy": [round(float(x), 4) for x in proxy],
                     "words": [len(a.split()) for a in answers]})
    return rows
