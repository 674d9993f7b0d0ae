"""Chapter 17 over seeds: RL with verifiable rewards from the shipped reasoning start.

One start for every seed, ``load_model("reasoning")`` (SFT on half worked, half direct answers);
the seeds vary RL's draws of problems and its samples, so the intervals are over RL runs from
that start. RL practises on seed 0's ``rl`` split (3,000 problems no worked answer was written
for) and is measured on seed 0's ``test`` split (patterns the start never trained on).

Arms, each :func:`course_utils.reasoning.rlvr.rlvr_config` for ``steps`` steps (the GRPO core):

====================  ======================================================================
``correct``           the verifier's correctness reward (the course's RLVR)
``format``            the format reward alone (well-formed, whatever the name)
``both``              correctness + 0.2 format (:func:`~course_utils.reasoning.verifier.combined_reward`)
``grpo_mean``         correctness, the paper's per-answer mean (``loss_type="grpo"``)
``dr_grpo``           correctness, Dr. GRPO (``loss_type="dr_grpo"``, no division by the std)
``expert``            expert iteration at equal samples: the NLL of the sampled right answers
====================  ======================================================================

Rows (``kind``):
* ``step``: per arm and step, what the run logs (reward, length, length_right, length_wrong,
  entropy, kl, zero_std_groups, format_rate);
* ``final``: per arm (and ``start``), :func:`style_report` on ``n_eval`` test problems x 4;
* ``passk``: per model (``start``, ``correct``) and k, pass@k from ``k_max`` answers to each of
  ``n_passk`` test problems (the unbiased estimator), over all right answers
  (``pass_at_k``) and over right worked answers (``pass_at_k_worked``), with the model's mean
  tokens per answer (``tokens_per_answer``);
* ``vote``: per n, the start's majority vote over its first n answers to each of those problems
  (well-formed answers only), and the tokens the n answers cost per problem (best-of-n with
  the verifier is the start's pass@n).
"""

from __future__ import annotations

from course_utils.experiments import sweep

ARMS = {"correct": ("correct", {}), "format": ("format", {}), "both": ("both", {}),
        "grpo_mean": ("correct", {"loss_type": "grpo"}),
        "dr_grpo": ("correct", {"loss_type": "dr_grpo", "scale_rewards": "none"}),
        "expert": ("correct", {"estimator": "expert"})}
STEP_KEYS = ("reward", "length", "length_right", "length_wrong", "entropy", "kl", "zero_std_groups", "format_rate")


@sweep("rlvr", chapter="17",
       description="RLVR from the shipped reasoning start: GRPO with correctness, format, both, the per-answer "
                   "mean, Dr. GRPO, and expert iteration; pass@k of the start and the RL model; majority vote",
       settings={"steps": 20, "n_rl": 3000, "n_eval": 100, "n_passk": 50, "k_max": 64},
       smoke={"steps": 2, "n_rl": 200, "n_eval": 4, "n_passk": 2, "k_max": 4}, seeds=5)
def rlvr(seed: int, steps: int, n_rl: int, n_eval: int, n_passk: int, k_max: int) -> list[dict]:
    from course_utils.alignment.grpo import train_grpo
    from course_utils.models import generate, load_model
    from course_utils.reasoning.evaluation import answer_budget, style_report
    from course_utils.reasoning.rlvr import rlvr_config, verifier_log, verifier_reward
    from course_utils.reasoning.scaling import majority_vote, pass_at_k_curve
    from course_utils.reasoning.tasks import make_reasoning_data
    from course_utils.reasoning.verifier import combined_reward, correctness_reward, format_reward, verify

    rewards = {"correct": correctness_reward, "format": format_reward, "both": combined_reward}
    data = make_reasoning_data(seed=0, n_rl=n_rl)
    pool, test = list(data["rl"]), list(data["test"])[:n_eval]
    start, tok = load_model("reasoning")
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k <= k_max]
    out = [{"kind": "final", "arm": "start", **style_report(start, tok, test, seed=seed)}]

    def samples(model, name):
        rows = list(data["test"])[:n_passk]
        many = [r for r in rows for _ in range(k_max)]
        answers = generate(model, tok, [r["prompt"] for r in many], max_new_tokens=answer_budget(6),
                           temperature=1.0, seed=seed, sampler="course")
        verdicts = [verify(a, r["answer"]) for a, r in zip(answers, many)]
        tokens = [len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers]
        right = [sum(v.correct for v in verdicts[i * k_max:(i + 1) * k_max]) for i in range(len(rows))]
        worked = [sum(v.correct and bool(v.steps) for v in verdicts[i * k_max:(i + 1) * k_max]) for i in range(len(rows))]
        for k, any_right, worked_right in zip(ks, pass_at_k_curve(right, k_max, ks).values(),
                                              pass_at_k_curve(worked, k_max, ks).values()):
            out.append({"kind": "passk", "arm": name, "k": k, "pass_at_k": any_right, "pass_at_k_worked": worked_right,
                        "tokens_per_answer": sum(tokens) / len(tokens)})
        return tokens, verdicts, rows

    n_tokens, verdicts, rows = samples(start, "start")
    for n in ks:
        right, cost = 0, 0
        for i, row in enumerate(rows):
            first = range(i * k_max, i * k_max + n)
            right += majority_vote([verdicts[j].answer if verdicts[j].well_formed else None for j in first]) == row["answer"]
            cost += sum(n_tokens[j] for j in first)
        out.append({"kind": "vote", "arm": "start", "n": n, "majority": right / len(rows), "tokens": cost / len(rows)})

    for arm, (reward, changes) in ARMS.items():
        policy, _ = load_model("reasoning")
        res = train_grpo(policy, start, tok, pool, rlvr_config(steps=steps, seed=seed, **changes), progress=False,
                         reward_fn=verifier_reward(pool, rewards[reward]), log_fn=verifier_log(pool, tok))
        for h in res.history:
            out.append({"kind": "step", "arm": arm, "step": h["step"], **{k: h[k] for k in STEP_KEYS if k in h}})
        out.append({"kind": "final", "arm": arm, **style_report(policy, tok, test, seed=seed)})
        if arm == "correct":
            samples(policy, "correct")
    return out
