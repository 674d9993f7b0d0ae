"""Chapters 11 and 12 over seeds: the PPO/DPO reward-KL frontier, GRPO on practised and new pairs,
over-optimisation with and without the KL penalty, and the best-of-n curve."""

from __future__ import annotations

import functools
import math

from course_utils.experiments import sweep


@functools.lru_cache(maxsize=1)
def _models():
    from course_utils.models import load_model
    ref, tok = load_model("sft")
    rm, _ = load_model("rm", kind="classifier")
    return ref, rm, tok


@functools.lru_cache(maxsize=2)
def _labels(n_pairs: int):
    """Chapter 11's preference pairs (fixed across seeds: the seed varies the training, not the data)."""
    from course_utils.alignment.reward_model import preference_data
    ref, _, tok = _models()
    return preference_data(ref, tok, n_pairs, seed=0, prompt_seed=1)


def _prompts(n_eval: int):
    from course_utils import world
    train_prompts = list(world.open_prompts(seed=1, n=4000)["prompt"])
    eval_prompts = list(world.open_prompts(seed=50, n=200)["prompt"])[:n_eval]
    return train_prompts, eval_prompts


@sweep("ppo_dpo_frontier", chapter="11",
       description="Gold reward and exact KL to the SFT model at the end of DPO (3 betas) and PPO (2 KL coefficients), "
                   "measured alike: 200 held-out prompts x 2 temperature-1 answers",
       settings={"dpo_betas": [0.1, 0.5, 2.0], "dpo_steps": 125, "ppo_coefs": [0.1, 0.5], "ppo_steps": 25,
                 "n_pairs": 2000, "n_eval": 200},
       smoke={"dpo_betas": [0.5], "dpo_steps": 4, "ppo_coefs": [0.1], "ppo_steps": 2, "n_pairs": 64, "n_eval": 16},
       seeds=3)
def ppo_dpo_frontier(seed: int, dpo_betas, dpo_steps: int, ppo_coefs, ppo_steps: int, n_pairs: int,
                     n_eval: int) -> list[dict]:
    from course_utils.alignment.dpo import run_dpo
    from course_utils.models import load_model
    from course_utils.alignment.rlhf import RLHFConfig, evaluate_policy, train_ppo_rlhf
    from course_utils.training import TrainConfig, set_seed

    ref, rm, tok = _models()
    labels = _labels(n_pairs)
    train_prompts, eval_prompts = _prompts(n_eval)

    def measure(policy):
        # the same prompts, samples per prompt and sampling seed for every method
        e = evaluate_policy(policy, rm, tok, eval_prompts, ref=ref, n_samples=2, seed=0)
        return {"gold": e["gold"], "proxy": e["proxy"], "kl_exact": e["kl_exact"]}

    rows = [{"method": "SFT", "setting": 0.0, "arm": "SFT", **measure(ref)}] if seed == 0 else []
    for b in dpo_betas:
        set_seed(seed)
        policy, _ = load_model("sft")
        cfg = TrainConfig(steps=dpo_steps, batch_size=32, lr=1e-4, warmup_steps=min(10, dpo_steps // 2),
                          log_every=max(1, dpo_steps), seed=seed, desc=f"DPO beta={b}")
        run_dpo(policy, ref, tok, labels, cfg, beta=b, progress=False)
        rows.append({"method": "DPO", "setting": float(b), "arm": f"DPO beta {b}", **measure(policy)})
    for c in ppo_coefs:
        set_seed(seed)
        policy, _ = load_model("sft")
        train_ppo_rlhf(policy, ref, rm, tok, train_prompts, RLHFConfig(steps=ppo_steps, kl_coef=c, seed=seed),
                       progress=False)
        rows.append({"method": "PPO", "setting": float(c), "arm": f"PPO kl {c}", **measure(policy)})
    return rows


@sweep("grpo_pairs", chapter="11",
       description="GRPO (40 steps of 16 questions x 8 answers) on the validation split's addition pairs: "
                   "accuracy of temperature-1 answers (4 per question) on practised and new pairs, before and after",
       settings={"steps": 40}, smoke={"steps": 2}, seeds=5)
def grpo_pairs(seed: int, steps: int) -> list[dict]:
    from course_utils import world
    from course_utils.alignment.grpo import GRPOConfig, sampled_accuracy, train_grpo
    from course_utils.models import generate, load_model
    from course_utils.training import set_seed

    ref, _, tok = _models()
    data = world.make_instruction_data(0)
    sets = {"practised": [r for r in data["validation"] if r["task"] == "add"],
            "new pairs": [r for r in data["test"] if r["task"] == "add"]}
    set_seed(seed)
    policy, _ = load_model("sft")
    train_grpo(policy, ref, tok, sets["practised"], GRPOConfig(steps=steps, prompts_per_step=16, group_size=8,
                                                                seed=seed), progress=False)
    rows = []
    for name, rs in sets.items():
        before = sampled_accuracy(ref, tok, rs, seed=0)
        after = sampled_accuracy(policy, tok, rs, seed=0)
        prompts = [r["prompt"] for r in rs]
        g_before = sum(o == r["response"] for o, r in zip(generate(ref, tok, prompts), rs))
        g_after = sum(o == r["response"] for o, r in zip(generate(policy, tok, prompts), rs))
        rows.append({"arm": name, "n": len(rs), "before": before, "after": after, "change": after - before,
                     "greedy_before": g_before, "greedy_after": g_after, "greedy_change": g_after - g_before})
    return rows


def _sentiment_stats(model, tok):
    """Greedy answers to every sentiment question of the test split: exact match, and the share of
    answers longer than one word (the SFT answer is one word, the label)."""
    from course_utils import world
    from course_utils.models import generate
    rows = [r for r in world.make_instruction_data(0)["test"] if r["task"] == "sentiment"]
    outs = generate(model, tok, [r["prompt"] for r in rows])
    return {"sentiment_n": len(rows),
            "sentiment_exact": sum(o.strip() == r["response"] for o, r in zip(outs, rows)) / len(rows),
            "sentiment_multiword": sum(len(o.split()) > 1 for o in outs) / len(rows),
            "sentiment_label_first": sum(o.split()[:1] == [r["response"]] or
                                         (o.split()[:1] and o.split()[0].strip(".,:").lower() == r["response"])
                                         for o, r in zip(outs, rows)) / len(rows)}


@sweep("overoptimisation", chapter="12",
       description="PPO with KL coefficient 0.1 (30 steps) and 0 (60 steps): proxy and gold of the last step's 64 "
                   "answers, peak gold over steps, a held-out evaluation (150 prompts x 2 answers) and the "
                   "sentiment answers' length",
       settings={"runs": [[0.1, 30], [0.0, 60]], "n_eval": 150},
       smoke={"runs": [[0.1, 2], [0.0, 2]], "n_eval": 8}, seeds=3)
def overoptimisation(seed: int, runs, n_eval: int) -> list[dict]:
    from course_utils.models import load_model
    from course_utils.alignment.rlhf import RLHFConfig, evaluate_policy, train_ppo_rlhf
    from course_utils.training import set_seed

    ref, rm, tok = _models()
    train_prompts, eval_prompts = _prompts(n_eval)
    rows = []
    if seed == 0:
        e = evaluate_policy(ref, rm, tok, eval_prompts, ref=ref, n_samples=2, seed=0)
        rows.append({"arm": "SFT", "eval_gold": e["gold"], "eval_proxy": e["proxy"], "eval_kl": e["kl_exact"],
                     **_sentiment_stats(ref, tok)})
    for c, steps in runs:
        set_seed(seed)
        policy, _ = load_model("sft")
        h = train_ppo_rlhf(policy, ref, rm, tok, train_prompts, RLHFConfig(steps=int(steps), kl_coef=c, seed=seed),
                           progress=False).history
        best = max(h, key=lambda r: r["gold"])
        e = evaluate_policy(policy, rm, tok, eval_prompts, ref=ref, n_samples=2, seed=0)
        rows.append({"arm": f"KL coef {c}", "kl_coef": float(c), "steps": int(steps),
                     "proxy_end": h[-1]["proxy"], "gold_end": h[-1]["gold"], "kl_end": h[-1]["kl_exact"],
                     "proxy_max": max(r["proxy"] for r in h),
                     "gold_peak": best["gold"], "peak_step": best["step"], "kl_at_peak": best["kl_exact"],
                     "eval_gold": e["gold"], "eval_proxy": e["proxy"], "eval_kl": e["kl_exact"],
                     **_sentiment_stats(policy, tok)})
    return rows


@sweep("best_of_n", chapter="12",
       description="Best-of-n by the reward model over 64 SFT answers to each of 150 held-out prompts: proxy, gold, "
                   "gold of the best answer by gold itself, the KL bound log n - (n-1)/n, and repeated answers",
       settings={"n_prompts": 150, "n_max": 64}, smoke={"n_prompts": 6, "n_max": 8}, seeds=5)
def best_of_n(seed: int, n_prompts: int, n_max: int) -> list[dict]:
    import torch

    from course_utils.alignment.feedback import gold_of
    from course_utils.models import generate
    from course_utils.alignment.reward_model import score

    ref, rm, tok = _models()
    _, eval_prompts = _prompts(200)
    prompts = eval_prompts[:n_prompts]
    flat = [p for p in prompts for _ in range(n_max)]
    answers = generate(ref, tok, flat, temperature=1.0, seed=3 + seed, batch_size=256)
    proxy = score(rm, tok, flat, answers, batch_size=256).view(n_prompts, n_max)
    gold = torch.tensor([gold_of(p, a) for p, a in zip(flat, answers)]).view(n_prompts, n_max)
    per_prompt = [answers[i * n_max:(i + 1) * n_max] for i in range(n_prompts)]
    rows = []
    n = 1
    while n <= n_max:
        pick = proxy[:, :n].argmax(1)
        idx = torch.arange(n_prompts)
        # share of the n answers that repeat an earlier one (the KL formula assumes none do)
        repeats = sum(n - len(set(a[:n])) for a in per_prompt) / (n_prompts * n)
        rows.append({"n": n, "kl_bound": math.log(n) - (n - 1) / n, "proxy": proxy[idx, pick].mean().item(),
                     "gold": gold[idx, pick].mean().item(), "gold_oracle": gold[:, :n].max(1).values.mean().item(),
                     "repeat_share": repeats})
        n *= 2
    return rows
