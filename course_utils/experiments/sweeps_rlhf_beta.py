"""Chapter 10 over seeds: how stable is the live PPO run at β = 0.1 and at β = 0.2?

Each seed runs chapter 10's PPO recipe (50 steps, 64 prompts per step, learning rate 1e-4)
from the SFT model against the shipped reward model, once per KL coefficient β, and records
how far the rollouts strayed from the SFT model during the run (the largest logged KL, and how
many of the logged rollouts were more than 5 nats away) and where the run ended: the gold
reward and the KL of 400 temperature-1 answers to 200 held-out prompts, the chapter's
evaluation. A seed changes the PPO run's sampling and batch order only.
"""

from __future__ import annotations

from course_utils.experiments import sweep


@sweep("rlhf_kl_coef", chapter="10",
       description="Chapter 10's PPO run at beta 0.1 and 0.2: KL excursions during the run, and the "
                   "gold reward and KL at its end",
       settings={"steps": 50, "kl_coefs": [0.1, 0.2]},
       smoke={"steps": 2, "kl_coefs": [0.1, 0.2]}, seeds=4)
def rlhf_kl_coef(seed: int, steps: int, kl_coefs: list[float]) -> list[dict]:
    from course_utils import world
    from course_utils.models import load_model
    from course_utils.alignment.rlhf import RLHFConfig, evaluate_policy, train_ppo_rlhf
    from course_utils.training import set_seed

    ref, tok = load_model("sft")
    rm, _ = load_model("rm", kind="classifier")
    train_prompts = list(world.open_prompts(seed=1, n=4000)["prompt"])
    eval_prompts = list(world.open_prompts(seed=50, n=200)["prompt"])
    out = []
    for beta in kl_coefs:
        set_seed(seed)
        policy, _ = load_model("sft")
        run = train_ppo_rlhf(policy, ref, rm, tok, train_prompts,
                             RLHFConfig(steps=steps, kl_coef=beta, seed=seed), progress=False)
        kls = [r["kl"] for r in run.history]
        end = evaluate_policy(policy, rm, tok, eval_prompts, ref=ref, n_samples=2, seed=0)
        out.append({"arm": f"beta {beta:g}", "kl_coef": beta, "max_rollout_kl": max(kls),
                    "rollouts_above_5_nats": sum(k > 5 for k in kls), "rollouts": len(kls),
                    "gold": end["gold"], "kl": end["kl"], "proxy": end["proxy"]})
    return out
