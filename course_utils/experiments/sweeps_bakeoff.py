"""Chapter 14's bake-off: the preference-optimisation family at an equal budget, measured alike.

Every method starts from the shipped SFT model and is scored the same way: temperature-1
answers (2 per prompt, sampling seed 0) to the same held-out open prompts give the gold
reward, the reward model's score (proxy), the exact KL to the SFT model (summed over the
answer, nats) and the answer length (tokens); greedy answers to the instruction test split
give the exact match, whose drop from the SFT model's is the *alignment tax*.

Budgets, by family (the unit each family spends):

* **offline** (DPO, IPO, cDPO, robust DPO, SimPO, ORPO, KTO): ``n_pairs`` labelled pairs of
  SFT answers (the simulated labelers of chapter 9), ``epochs`` passes at 32 pairs a step
  (KTO: 64 unpaired answers a step, the same answers).
* **online** (PPO, RLOO, GRPO x 3 aggregations, rejection-sampling fine-tuning): ``n_answers``
  sampled answers scored by the shipped reward model (itself trained on 4,000 labelled pairs,
  a cost these methods share).
* **online DPO**: ``n_pairs`` labelled pairs as the offline methods, but of the policy's own
  answers, in ``rounds`` rounds.
* **best-of-n** (n = 4, 16): no training; n answers per evaluation answer, the reward
  model's favourite kept; its KL is the bound ``log n - (n - 1) / n``, not a measurement.

Each row also holds the method's wall time when ``timing`` is on: ``seconds`` (sampling,
scoring and training, not evaluation; for best-of-n its share of sampling and scoring the
16 answers) and, for the offline methods, ``data_seconds`` (sampling and labelling their
pairs, once for all of them); a seed changes the preference data, the prompts, the
sampling and the training order, not the evaluation prompts or the evaluation seed.

Stored with 5 seeds by ``python -m course_utils.experiments --only bakeoff`` (about 25 minutes
on 2 cores); ``python -m course_utils.experiments.sweeps_bakeoff [--seed S] [--methods A,B]``
runs one seed and prints it, storing nothing. ``tests/test_experiments.py`` re-trains seed 0's
DPO row at full size and compares it with the stored one.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import replace

from course_utils.experiments import sweep

#: One setting per method (declared, not tuned on the gold reward).
METHODS = ("SFT", "best-of-4", "best-of-16", "PPO", "DPO", "IPO", "cDPO", "robust DPO", "SimPO", "ORPO", "KTO",
           "RLOO", "GRPO", "Dr. GRPO", "DAPO", "RFT", "online DPO")
SETTINGS = {"methods": list(METHODS), "n_pairs": 1000, "epochs": 2, "n_answers": 1600, "rounds": 2,
            "n_eval": 200, "n_tax": 20, "timing": True}
SMOKE = {"methods": ["SFT", "best-of-4", "DPO", "KTO", "RLOO", "RFT"], "n_pairs": 64, "epochs": 1,
         "n_answers": 128, "n_eval": 8, "n_tax": 2, "timing": False}
DESCRIPTION = ("The preference-optimisation family from the SFT model at equal budgets (1,000 labelled pairs "
               "offline; 1,600 sampled answers online): gold, proxy, exact KL, length and instruction exact "
               "match on 200 held-out prompts x 2 answers")
SWEEP = {"name": "bakeoff", "chapter": "14", "description": DESCRIPTION, "settings": SETTINGS, "smoke": SMOKE,
         "seeds": 5}

FAMILY = {"SFT": "baseline", "best-of-4": "inference", "best-of-16": "inference", "PPO": "online",
          "RLOO": "online", "GRPO": "online", "Dr. GRPO": "online", "DAPO": "online", "RFT": "online",
          "online DPO": "online pairs"}


@functools.lru_cache(maxsize=1)
def _models():
    from course_utils.models import load_model
    ref, tok = load_model("sft")
    rm, _ = load_model("rm", kind="classifier")
    return ref, rm, tok


def _eval_prompts(n_eval: int) -> list[str]:
    from course_utils import world
    return list(world.open_prompts(seed=50, n=200)["prompt"])[:n_eval]


def _tax_rows(n_tax: int):
    from course_utils import world
    return world.per_task(world.make_instruction_data(0)["test"], n_tax)


def measure(policy, n_eval: int, n_tax: int) -> dict:
    """Gold, proxy, exact KL to SFT and length of 2 answers to each held-out prompt; instruction exact match."""
    from course_utils.evaluation.tasks import exact_match
    from course_utils.alignment.rlhf import evaluate_policy
    ref, rm, tok = _models()
    e = evaluate_policy(policy, rm, tok, _eval_prompts(n_eval), ref=ref, n_samples=2, seed=0)
    em = exact_match(policy, tok, _tax_rows(n_tax))["mean"]
    return {"gold": e["gold"], "proxy": e["proxy"], "kl": e["kl_exact"], "kl_kind": "exact",
            "length": e["length"], "exact_match": em}


def best_of_n_rows(ns: list[int], n_eval: int, sft_exact_match: float) -> list[dict]:
    """Best-of-n by the reward model over SFT answers, 2 draws per held-out prompt (as the others' 2 answers)."""
    import torch

    from course_utils.alignment.feedback import gold_of
    from course_utils.models import generate
    from course_utils.alignment.reward_model import score
    ref, rm, tok = _models()
    n_max = max(ns)
    draws = [p for p in _eval_prompts(n_eval) for _ in range(2)]
    t0 = time.perf_counter()
    flat = [p for p in draws for _ in range(n_max)]
    answers = generate(ref, tok, flat, max_new_tokens=24, temperature=1.0, seed=0, batch_size=256)
    proxy = score(rm, tok, flat, answers, batch_size=256).view(len(draws), n_max)
    seconds = time.perf_counter() - t0
    rows = []
    for n in ns:
        pick = proxy[:, :n].argmax(1)
        chosen = [answers[i * n_max + int(j)] for i, j in enumerate(pick)]
        lengths = [len(tok(a, add_special_tokens=False)["input_ids"]) + 1 for a in chosen]   # + end of text
        rows.append({"gold": sum(gold_of(p, a) for p, a in zip(draws, chosen)) / len(draws),
                     "proxy": proxy[torch.arange(len(draws)), pick].mean().item(),
                     "kl": math.log(n) - (n - 1) / n, "kl_kind": "bound",
                     "length": sum(lengths) / len(lengths), "exact_match": sft_exact_match,
                     "answers_sampled": n * len(draws), "labelled_pairs": 0, "seconds": seconds * n / n_max})
    return rows


def train_method(method: str, seed: int, n_pairs: int, epochs: int, n_answers: int, rounds: int, labels):
    """Train one method from a fresh SFT copy; return (policy, budget fields)."""
    from course_utils import world
    from course_utils.alignment.dpo import run_dpo
    from course_utils.alignment.grpo import GRPOConfig, train_grpo
    from course_utils.alignment.iterative import online_iterative_dpo, rejection_sampling_finetune
    from course_utils.alignment.kto import run_kto, unpaired_rows
    from course_utils.models import load_model
    from course_utils.alignment.reward_model import score
    from course_utils.alignment.rlhf import RLHFConfig, train_ppo_rlhf
    from course_utils.training import TrainConfig, set_seed

    ref, rm, tok = _models()
    set_seed(seed)
    policy, _ = load_model("sft")
    # `epochs` passes over n_pairs at 32 pairs a step (a few identical pairs are dropped: the steps stay the same,
    # whichever methods run); online DPO spreads the same steps over its rounds
    steps = max(1, epochs * n_pairs // 32)
    offline_cfg = TrainConfig(steps=steps, batch_size=32, lr=1e-4, warmup_steps=min(10, steps // 2),
                              log_every=max(1, steps), seed=seed, desc=method)
    offline = {"answers_sampled": 2 * n_pairs, "labelled_pairs": len(labels) if labels is not None else 0}
    online_prompts = list(world.open_prompts(seed=300 + seed, n=4000)["prompt"])
    dpo_family = {"DPO": ("sigmoid", 0.5, {}), "IPO": ("ipo", 1.0, {}), "cDPO": ("cdpo", 0.5, {"label_smoothing": 0.2}),
                  "robust DPO": ("robust", 0.5, {"label_smoothing": 0.2}), "SimPO": ("simpo", 2.0, {"gamma": 1.0}),
                  "ORPO": ("orpo", 0.1, {})}
    if method in dpo_family:
        loss_type, beta, extra = dpo_family[method]
        run_dpo(policy, ref, tok, labels, offline_cfg, beta=beta, loss_type=loss_type, progress=False, **extra)
        return policy, offline
    if method == "KTO":
        cfg = replace(offline_cfg, batch_size=64)
        run_kto(policy, ref, tok, unpaired_rows(labels), cfg, beta=0.5, progress=False)
        return policy, offline
    online = {"answers_sampled": n_answers, "labelled_pairs": 0}
    if method == "PPO":
        train_ppo_rlhf(policy, ref, rm, tok, online_prompts, RLHFConfig(steps=max(1, n_answers // 64), seed=seed),
                       progress=False)
        return policy, online
    grpo_family = {"RLOO": {"estimator": "rloo", "beta": 0.1},
                   "GRPO": {"loss_type": "grpo"},
                   "Dr. GRPO": {"loss_type": "dr_grpo", "scale_rewards": "none"},
                   "DAPO": {"loss_type": "dapo", "clip_high": 0.28}}
    if method in grpo_family:
        cfg = GRPOConfig(steps=max(1, n_answers // 64), prompts_per_step=16, group_size=4, max_new_tokens=24,
                         lr=1e-4, iterations=4, seed=seed, desc=method, **grpo_family[method])
        train_grpo(policy, ref, tok, [{"prompt": p} for p in online_prompts], cfg, progress=False,
                   reward_fn=lambda p, r: score(rm, tok, p, r))
        return policy, online
    if method == "RFT":
        k = 4
        per_round = max(1, n_answers // (k * rounds))
        rft_steps = max(1, 2 * per_round // 32)
        cfg = TrainConfig(steps=rft_steps, batch_size=32, lr=1e-4, warmup_steps=min(5, rft_steps // 2),
                          log_every=max(1, rft_steps), seed=seed)
        rejection_sampling_finetune(policy, rm, tok, online_prompts, rounds, per_round, k, cfg, seed=seed)
        return policy, online
    if method == "online DPO":
        per_round = max(1, n_pairs // rounds)
        cfg = replace(offline_cfg, steps=max(1, steps // rounds), warmup_steps=min(10, max(1, steps // rounds) // 2))
        hist = online_iterative_dpo(policy, ref, tok, online_prompts, rounds, per_round, cfg, beta=0.5, seed=seed)
        return policy, {"answers_sampled": 2 * per_round * rounds, "labelled_pairs": sum(h["pairs"] for h in hist)}
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


@sweep(**SWEEP)
def bakeoff(seed: int, methods, n_pairs: int, epochs: int, n_answers: int, rounds: int, n_eval: int, n_tax: int,
            timing: bool = True) -> list[dict]:
    """One seed of the bake-off: one row per method (module docstring)."""
    from course_utils.models import quiet_progress_bars
    from course_utils.alignment.reward_model import preference_data
    from course_utils.training import set_seed

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    ref, rm, tok = _models()
    set_seed(seed)
    sft = measure(ref, n_eval, n_tax)
    labels = None
    rows = []
    for method in methods:
        if method == "SFT":
            rows.append({"method": method, **sft, "answers_sampled": 0, "labelled_pairs": 0, "seconds": 0.0})
            continue
        if method.startswith("best-of-"):
            continue            # all best-of-n rows come from one set of answers, below
        if labels is None and method not in FAMILY:      # the offline data, sampled and labelled once
            t0 = time.perf_counter()
            with quiet_progress_bars():
                labels = preference_data(ref, tok, n_pairs, seed=seed, prompt_seed=100 + seed, id_prefix="bake")
            data_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        policy, budget = train_method(method, seed, n_pairs, epochs, n_answers, rounds, labels)
        seconds = time.perf_counter() - t0
        row = {"method": method, **measure(policy, n_eval, n_tax), **budget, "seconds": seconds}
        if method not in FAMILY:
            row["data_seconds"] = data_seconds      # sampling and labelling the pairs, shared by the offline methods
        rows.append(row)
    ns = [int(m.split("-")[-1]) for m in methods if m.startswith("best-of-")]
    if ns:
        for n, row in zip(ns, best_of_n_rows(ns, n_eval, sft["exact_match"])):
            rows.append({"method": f"best-of-{n}", **row})
    order = {m: i for i, m in enumerate(methods)}
    rows.sort(key=lambda r: order[r["method"]])
    for r in rows:
        r["family"] = FAMILY.get(r["method"], "offline")
        r["budget_unit"] = {"offline": "labelled pairs", "online pairs": "labelled pairs",
                            "online": "sampled answers"}.get(r["family"], "none")
        r["gold_gain"] = r["gold"] - sft["gold"]
        r["proxy_minus_gold"] = r["proxy"] - r["gold"]
        r["tax"] = sft["exact_match"] - r["exact_match"]
        if not timing:
            r.pop("seconds", None)
            r.pop("data_seconds", None)
    return rows


def main(argv: list[str] | None = None) -> None:
    """``python -m course_utils.experiments.sweeps_bakeoff [--seed S] [--smoke] [--methods A,B]``: one seed, printed."""
    import argparse
    import json
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="the reduced settings")
    ap.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    args = ap.parse_args(argv)
    settings = {**SETTINGS, **(SMOKE if args.smoke else {})}
    if args.methods:
        settings["methods"] = [m.strip() for m in args.methods.split(",")]
    t0 = time.perf_counter()
    rows = bakeoff(args.seed, **settings)
    total = time.perf_counter() - t0
    keys = ["gold_gain", "kl", "proxy_minus_gold", "length", "tax", "seconds"]
    print(f"{'method':12s} " + " ".join(f"{k:>16s}" for k in keys))
    for r in rows:
        print(f"{r['method']:12s} " + " ".join(f"{r.get(k, float('nan')):16.3f}" for k in keys))
    print(f"seed {args.seed}: {total:.0f} s for {len(rows)} methods")
    print(json.dumps({"seed": args.seed, "wall_s": round(total, 1), "rows": rows}))


if __name__ == "__main__":
    main()
