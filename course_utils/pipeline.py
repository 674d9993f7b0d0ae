"""The tiny-world pipeline: ``python -m course_utils.pipeline [--stages a,b,...]``.

Each stage starts from the shipped checkpoints, measures something and returns a dict of
metrics. The command prints a readable table and, as its very last line, one JSON object
with every metric plus ``seconds_<stage>`` for each stage run.

Stages:
    base  validation loss of the shipped base model (``base_val_loss``) and its exact match
          on the instruction test split before any tuning (``base_exact_match``).
    sft   supervised fine-tuning of the shipped base model (:func:`sft.build_sft_model`):
          exact match after SFT averaged over tasks (``sft_exact_match``) and on the worst
          task (``sft_exact_match_min``), plus held-out-words accuracy. Writes the checkpoint
          to ``--out/sft``; ``--ship`` writes it to the package instead, where
          ``load_model("sft")`` and the later chapters find it.
    rm    reward model (:func:`reward_model.build_reward_model`): pairs of SFT samples labelled
          by simulated labelers, a Bradley-Terry reward model on the SFT weights;
          ``rm_accuracy``: its pairwise accuracy against the gold preference on pairs from
          new samples; ``labeler_agreement``: how often the labelers agreed with gold.
          Writes ``--out/rm``, or with ``--ship`` the package's ``rm`` checkpoint.
    ppo   PPO with a KL penalty against the SFT model, the reward model as reward
          (:func:`rlhf.train_ppo_rlhf`); ``ppo_gold_gain``: mean gold reward of the PPO
          policy's temperature-1 samples minus the SFT model's, on the same held-out prompts
          and seed; ``ppo_kl``: KL(policy || SFT) in nats per response on those samples
          (the exact KL of each position's next-token distribution, summed along the answer).
    dpo   DPO (beta 0.5) on preference labels of SFT samples (:func:`dpo.run_dpo`);
          ``dpo_gold_gain`` and ``dpo_kl`` measured as for PPO.
    grpo  GRPO on addition problems with a verifiable reward (:func:`grpo.train_grpo`), on
          the validation split's addition prompts (operand pairs never seen in SFT);
          ``grpo_accuracy_gain``: exact-match accuracy of temperature-1 samples on those
          problems, after minus before; ``grpo_test_accuracy_*``: the same on the test
          split's pairs, which GRPO never practised.
    rloo  RLOO (:func:`grpo.train_grpo` with ``estimator="rloo"``): groups of 4 answers per open
          prompt, the reward model's score minus a KL penalty, a leave-one-out baseline;
          ``rloo_gold_gain`` and ``rloo_kl`` measured as for PPO.
    kto   KTO (:func:`kto.run_kto`) on the DPO stage's labelled pairs, unpaired (each chosen answer
          desirable, each rejected one undesirable); ``kto_gold_gain`` and ``kto_kl`` measured as
          for PPO.

    safety  refusal SFT of the SFT model (:func:`course_utils.safety.methods.refusal_sft`) on chapter
          19's requests, keeping ``--safety-lookalike-share`` of the harmless look-alikes; gold-judged
          greedy answers to the test split's held-out requests before and after:
          ``safety_harmful_compliance_*`` (harmful requests answered with the harmful act),
          ``safety_needless_refusal_*`` (look-alike requests refused), ``safety_proper_refusal_*``
          and ``safety_helpful_*`` (harmless requests answered helpfully). Writes ``--out/safety``.
    reasoning  SFT of the SFT model on chapter 17's *who has the ball?* with half of the
          answers worked and half direct (:func:`course_utils.reasoning.evaluation.build_reasoning_model`);
          ``reasoning_pass1`` (temperature-1 answers to held-out problems), ``reasoning_worked_share``
          and ``reasoning_accuracy_worked`` / ``_direct``. Writes ``--out/reasoning``, or with
          ``--ship`` the package's ``reasoning`` checkpoint (the start of chapter 17's RL).
    rlvr  RL with verifiable rewards (chapter 17): GRPO from the ``reasoning`` checkpoint on the
          ``rl`` split (problems no worked answer was written for), the verifier's correctness as
          reward; gold-free measures before and after on held-out ``test`` problems:
          ``rlvr_pass1_*``, ``rlvr_format_rate_*``, ``rlvr_worked_share_*``, and the mean token
          entropy of the first and last steps' samples (``rlvr_entropy_*``). Writes ``--out/rlvr``.

Stages run in the order given; a stage that needs a checkpoint (``sft`` for ``rm``,
``ppo``, ``dpo``, ``grpo``, ``rloo``, ``kto``, ``safety``, ``reasoning``; ``rm`` for ``ppo`` and ``rloo``;
``reasoning`` for ``rlvr``) takes the one an
earlier stage of the same command trained, else the shipped one. With no ``--stages`` every stage runs, from the
shipped base model: SFT, reward model, PPO, DPO, GRPO, RLOO, KTO, safety, the reasoning start and RLVR,
then the classic RL stages.
    qlearning     tabular Q-learning on slippery FrozenLake 4x4; ``frozenlake_success``: success
                  rate of the greedy policy over 1,000 evaluation episodes (and the optimum's,
                  from value iteration, for comparison).
    dqn           DQN on CartPole-v1; ``dqn_cartpole_return``: mean return of the last 20
                  training episodes (and of 20 greedy evaluation episodes).
    ppo_cartpole  PPO on CartPole-v1 with the course's PPO core; ``ppo_cartpole_return``: mean
                  return of the last 20 training episodes (and of 20 greedy evaluation episodes).

With ``--model NAME_OR_FOLDER`` (a hub id or a folder saved with ``save_pretrained``) the stages
``sft``, ``rm``, ``dpo`` and ``ppo`` run on that model with ``--sft-data`` and ``--preference-data``
(default ``--stages sft,dpo``; ``ppo`` needs ``rm`` earlier in the command or ``--reward-model``),
scored on held-out rows without a gold reward; see :mod:`course_utils.real.real_model`. Hub ids come
from the local Hugging Face cache; ``--download`` allows downloading them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from course_utils import world
from course_utils.evaluation.tasks import exact_match, format_scores
from course_utils.models import SHIPPED, load_model
from course_utils.pretrain import pack_documents, validation_loss
from course_utils.sft import build_sft_model


def stage_base(args: argparse.Namespace) -> dict[str, float]:
    """Shipped base model: validation loss on a regenerated corpus, exact match before tuning."""
    model, tok = load_model("base")
    val_docs = world.make_corpus(args.val_docs, seed=args.seed, split="validation")
    val = validation_loss(model, pack_documents(tok, val_docs))
    test = world.make_instruction_data(args.seed)["test"]
    rows = world.per_task(test, args.n_per_task)
    scores = exact_match(model, tok, rows)
    print(f"  base exact match: {format_scores(scores)}")
    return {"base_val_loss": round(val, 4), "base_exact_match": round(scores["mean"], 4)}


def checkpoint(args: argparse.Namespace, name: str) -> str | Path:
    """The checkpoint ``name`` trained earlier in this command, else the shipped one."""
    return args.produced.get(name, name)


def stage_sft(args: argparse.Namespace) -> dict[str, float]:
    """SFT from the shipped base model; the checkpoint goes to ``--out/sft`` or, with ``--ship``, the package."""
    out = SHIPPED["sft"] if args.ship else Path(args.out) / "sft"
    report = build_sft_model(out, steps=args.sft_steps, seed=args.seed, n_per_task=args.n_per_task)
    args.produced["sft"] = out
    test, held = dict(report["test_exact_match"]), dict(report["heldout_words_exact_match"])
    mean, held_mean = test.pop("mean"), held.pop("mean")
    print(f"  saved to {out}")
    return {"sft_exact_match": round(mean, 4), "sft_exact_match_min": round(min(test.values()), 4),
            "sft_heldout_words_exact_match": round(held_mean, 4)}


def stage_rm(args: argparse.Namespace) -> dict[str, float]:
    """Reward model from simulated preference labels on SFT samples; ``--ship`` puts it in the package."""
    from course_utils.alignment.reward_model import build_reward_model
    out = SHIPPED["rm"] if args.ship else Path(args.out) / "rm"
    report = build_reward_model(out, n_prompts=args.rm_prompts, seed=args.seed, policy=checkpoint(args, "sft"))
    args.produced["rm"] = out
    print(f"  {report['pairs']} labelled pairs; accuracy vs gold {report['accuracy_vs_gold']:.3f} "
          f"(vs held-out labels {report['accuracy_vs_labels']:.3f}); labelers agree with gold "
          f"{report['labeler_agreement']:.3f}; saved to {out}")
    return {"rm_accuracy": report["accuracy_vs_gold"], "labeler_agreement": report["labeler_agreement"]}


def _policy_ref_rm(args: argparse.Namespace):
    """A trainable copy of the SFT checkpoint, a frozen copy as reference, the reward model, the tokenizer."""
    policy, tok = load_model(checkpoint(args, "sft"))
    ref, _ = load_model(checkpoint(args, "sft"))
    rm, _ = load_model(checkpoint(args, "rm"), kind="classifier")
    return policy, ref, rm, tok


def _gold_comparison(policy, ref, rm, tok, args) -> tuple[dict, dict]:
    """Temperature-1 samples of ``ref`` (the SFT model) and ``policy`` on the same held-out prompts and seed."""
    from course_utils.alignment.rlhf import evaluate_policy
    prompts = list(world.open_prompts(seed=args.seed + 50, n=args.eval_prompts)["prompt"])
    before = evaluate_policy(ref, rm, tok, prompts, ref=ref, n_samples=2, seed=args.seed)
    after = evaluate_policy(policy, rm, tok, prompts, ref=ref, n_samples=2, seed=args.seed)
    print(f"  SFT:    gold {before['gold']:+.3f}  proxy {before['proxy']:+.3f}")
    print(f"  tuned:  gold {after['gold']:+.3f}  proxy {after['proxy']:+.3f}  "
          f"KL {after['kl_exact']:.2f} nats (k1 estimate {after['kl']:.2f})")
    return before, after


def _gold_gain_and_save(name: str, policy, ref, rm, tok, args, history) -> dict[str, float]:
    """Compare ``policy`` with the SFT model (:func:`_gold_comparison`), save it to ``--out/name``,
    and return ``{name}_gold_gain`` (mean gold after minus before) and ``{name}_kl`` (exact KL, nats)."""
    from course_utils.training import save_checkpoint
    before, after = _gold_comparison(policy, ref, rm, tok, args)
    save_checkpoint(Path(args.out) / name, policy, tok, history=history)
    return {f"{name}_gold_gain": round(after["gold"] - before["gold"], 4), f"{name}_kl": round(after["kl_exact"], 3)}


def stage_ppo(args: argparse.Namespace) -> dict[str, float]:
    """PPO-RLHF from the SFT model against the reward model, with a KL penalty."""
    from course_utils.alignment.rlhf import RLHFConfig, train_ppo_rlhf
    policy, ref, rm, tok = _policy_ref_rm(args)
    prompts = list(world.open_prompts(seed=args.seed + 1, n=4000)["prompt"])
    res = train_ppo_rlhf(policy, ref, rm, tok, prompts, RLHFConfig(steps=args.ppo_steps, seed=args.seed))
    return _gold_gain_and_save("ppo", policy, ref, rm, tok, args, res.history)


def stage_dpo(args: argparse.Namespace) -> dict[str, float]:
    """DPO from the SFT model on simulated preference labels of its samples."""
    from course_utils.alignment.dpo import run_dpo
    from course_utils.alignment.reward_model import preference_data
    from course_utils.training import TrainConfig
    policy, ref, rm, tok = _policy_ref_rm(args)
    labels = preference_data(ref, tok, args.dpo_prompts, seed=args.seed, prompt_seed=args.seed + 1)
    cfg = TrainConfig(steps=args.dpo_steps, batch_size=32, lr=args.dpo_lr, warmup_steps=10, log_every=10,
                      seed=args.seed, desc="DPO")
    res = run_dpo(policy, ref, tok, labels, cfg, beta=args.dpo_beta)
    return _gold_gain_and_save("dpo", policy, ref, rm, tok, args, res.history)


def stage_grpo(args: argparse.Namespace) -> dict[str, float]:
    """GRPO on the addition task: reward 1 for an exact answer, group-relative advantages."""
    from course_utils.alignment.grpo import GRPOConfig, sampled_accuracy, train_grpo
    from course_utils.training import save_checkpoint
    policy, tok = load_model(checkpoint(args, "sft"))
    ref, _ = load_model(checkpoint(args, "sft"))
    data = world.make_instruction_data(args.seed)
    practice = [r for r in data["validation"] if r["task"] == "add"]
    test_rows = [r for r in data["test"] if r["task"] == "add"]
    before, test_before = sampled_accuracy(ref, tok, practice, seed=args.seed), sampled_accuracy(ref, tok, test_rows, seed=args.seed)
    res = train_grpo(policy, ref, tok, practice, GRPOConfig(steps=args.grpo_steps, seed=args.seed))
    after, test_after = sampled_accuracy(policy, tok, practice, seed=args.seed), sampled_accuracy(policy, tok, test_rows, seed=args.seed)
    print(f"  addition, temperature-1 samples: practised problems {before:.3f} -> {after:.3f}; "
          f"new pairs {test_before:.3f} -> {test_after:.3f}")
    save_checkpoint(Path(args.out) / "grpo", policy, tok, history=res.history)
    return {"grpo_accuracy_before": round(before, 4), "grpo_accuracy_after": round(after, 4),
            "grpo_accuracy_gain": round(after - before, 4), "grpo_test_accuracy_before": round(test_before, 4),
            "grpo_test_accuracy_after": round(test_after, 4)}


def stage_rloo(args: argparse.Namespace) -> dict[str, float]:
    """RLOO from the SFT model against the reward model: leave-one-out baseline, KL penalty in the reward."""
    from course_utils.alignment.grpo import GRPOConfig, train_grpo
    from course_utils.alignment.reward_model import score
    policy, ref, rm, tok = _policy_ref_rm(args)
    rows = [{"prompt": p} for p in world.open_prompts(seed=args.seed + 1, n=4000)["prompt"]]
    cfg = GRPOConfig(steps=args.rloo_steps, prompts_per_step=16, group_size=4, max_new_tokens=24,
                     beta=args.rloo_beta, lr=1e-4, iterations=4, estimator="rloo", seed=args.seed, desc="RLOO")
    res = train_grpo(policy, ref, tok, rows, cfg, reward_fn=lambda p, r: score(rm, tok, p, r))
    return _gold_gain_and_save("rloo", policy, ref, rm, tok, args, res.history)


def stage_kto(args: argparse.Namespace) -> dict[str, float]:
    """KTO from the SFT model on the DPO stage's preference labels, unpaired into desirable / undesirable."""
    from course_utils.alignment.kto import run_kto, unpaired_rows
    from course_utils.alignment.reward_model import preference_data
    from course_utils.training import TrainConfig
    policy, ref, rm, tok = _policy_ref_rm(args)
    labels = preference_data(ref, tok, args.dpo_prompts, seed=args.seed, prompt_seed=args.seed + 1)
    cfg = TrainConfig(steps=args.kto_steps, batch_size=64, lr=args.dpo_lr, warmup_steps=10, log_every=10,
                      seed=args.seed, desc="KTO")
    res = run_kto(policy, ref, tok, unpaired_rows(labels), cfg, beta=args.kto_beta)
    return _gold_gain_and_save("kto", policy, ref, rm, tok, args, res.history)


def stage_reasoning(args: argparse.Namespace) -> dict[str, float]:
    """SFT on who-has-the-ball with a mix of worked and direct answers; ``--ship`` puts it in the package."""
    from course_utils.reasoning.evaluation import build_reasoning_model
    out = SHIPPED["reasoning"] if args.ship else Path(args.out) / "reasoning"
    report = build_reasoning_model(out, steps=args.reasoning_steps, seed=args.seed, start=checkpoint(args, "sft"))
    args.produced["reasoning"] = out
    sampled = report["sampled"]
    print(f"  held-out, temperature 1: pass@1 {sampled['pass1']:.3f}; worked answers {sampled['worked_share']:.3f} "
          f"(right {sampled['accuracy_worked']:.3f}), direct ones right {sampled['accuracy_direct']:.3f}; saved to {out}")
    return {"reasoning_pass1": round(sampled["pass1"], 4), "reasoning_worked_share": round(sampled["worked_share"], 4),
            "reasoning_accuracy_worked": round(sampled["accuracy_worked"], 4),
            "reasoning_accuracy_direct": round(sampled["accuracy_direct"], 4)}


def stage_rlvr(args: argparse.Namespace) -> dict[str, float]:
    """GRPO with the verifier's reward from the reasoning checkpoint; held-out pass@1, format, style, entropy."""
    from course_utils.reasoning.evaluation import style_report
    from course_utils.reasoning.rlvr import rlvr_config, verifier_log, verifier_reward
    from course_utils.reasoning.tasks import make_reasoning_data
    from course_utils.alignment.grpo import train_grpo
    from course_utils.training import save_checkpoint
    policy, tok = load_model(checkpoint(args, "reasoning"))
    ref, _ = load_model(checkpoint(args, "reasoning"))
    data = make_reasoning_data(seed=args.seed, n_rl=args.rlvr_problems)
    pool, test = list(data["rl"]), list(data["test"])[:args.rlvr_eval]
    before = style_report(ref, tok, test)
    res = train_grpo(policy, ref, tok, pool, rlvr_config(steps=args.rlvr_steps, seed=args.seed),
                     reward_fn=verifier_reward(pool), log_fn=verifier_log(pool, tok))
    after = style_report(policy, tok, test)
    save_checkpoint(Path(args.out) / "rlvr", policy, tok, history=res.history)
    first, last = res.history[0], res.history[-1]
    print(f"  held-out, temperature 1: pass@1 {before['pass1']:.3f} -> {after['pass1']:.3f}; worked answers "
          f"{before['worked_share']:.3f} -> {after['worked_share']:.3f}; token entropy {first['entropy']:.4f} -> "
          f"{last['entropy']:.4f}")
    out = {}
    for key in ("pass1", "format_rate", "worked_share"):
        out[f"rlvr_{key}_before"], out[f"rlvr_{key}_after"] = round(before[key], 4), round(after[key], 4)
    out["rlvr_entropy_first"], out["rlvr_entropy_last"] = round(first["entropy"], 5), round(last["entropy"], 5)
    return out


def stage_safety(args: argparse.Namespace) -> dict[str, float]:
    """Refusal SFT of the SFT model; harmful compliance and needless refusal before and after, gold-judged."""
    from course_utils.safety.methods import refusal_sft, safety_report
    from course_utils.safety.requests import make_safety_data
    from course_utils.training import save_checkpoint
    start = checkpoint(args, "sft")
    test = list(make_safety_data(seed=args.seed)["test"])
    before_model, tok = load_model(start)
    before = safety_report(before_model, tok, test)
    model, tok, _, res = refusal_sft(seed=args.seed, steps=args.safety_steps,
                                     lookalike_share=args.safety_lookalike_share, start=start)
    after = safety_report(model, tok, test)
    save_checkpoint(Path(args.out) / "safety", model, tok, history=res.history)
    out = {}
    for key, name in [("harmful_compliance", "harmful_compliance"), ("needless_refusal_lookalike", "needless_refusal"),
                      ("proper_refusal", "proper_refusal"), ("helpful", "helpful")]:
        print(f"  {name.replace('_', ' ')}: {before[key]:.3f} -> {after[key]:.3f} "
              f"(of {after[key + '_n']}; 95% interval after {after[key + '_lo']:.3f} to {after[key + '_hi']:.3f})")
        out[f"safety_{name}_before"], out[f"safety_{name}_after"] = round(before[key], 4), round(after[key], 4)
    return out


def stage_qlearning(args: argparse.Namespace) -> dict[str, float]:
    """Q-learning on slippery FrozenLake 4x4, compared with value iteration's optimal policy."""
    import gymnasium as gym

    from course_utils.rl import tabular
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    P, R = tabular.mdp_arrays(env)
    _, optimal, _, _ = tabular.value_iteration(P, R, gamma=tabular.FROZENLAKE_QLEARNING["gamma"])
    res = tabular.q_learning(env, seed=args.seed, progress=True, **tabular.FROZENLAKE_QLEARNING)
    success = tabular.evaluate_policy(env, tabular.greedy_policy(res.Q), episodes=1000, seed=args.seed)
    best = tabular.evaluate_policy(env, optimal, episodes=1000, seed=args.seed)
    print(f"  greedy Q-learning policy: success {success:.3f}; value-iteration optimum: {best:.3f}")
    return {"frozenlake_success": round(success, 3), "frozenlake_optimal_success": round(best, 3)}


def stage_dqn(args: argparse.Namespace) -> dict[str, float]:
    """DQN on CartPole-v1 with a replay buffer, a target network and the Huber loss."""
    import gymnasium as gym

    from course_utils.rl.dqn import DQNConfig, evaluate_q, train_dqn
    res = train_dqn(gym.make("CartPole-v1"), DQNConfig(seed=args.seed))
    last = sum(res.returns[-20:]) / len(res.returns[-20:])
    greedy = evaluate_q(gym.make("CartPole-v1"), res.q_net, episodes=20)
    print(f"  {len(res.returns)} episodes; last 20 mean return {last:.1f}; greedy {sum(greedy) / 20:.1f}")
    return {"dqn_cartpole_return": round(last, 1), "dqn_cartpole_greedy_return": round(sum(greedy) / 20, 1)}


def stage_ppo_cartpole(args: argparse.Namespace) -> dict[str, float]:
    """PPO on CartPole-v1 with the course's PPO core (course_utils.rl.ppo)."""
    from course_utils.rl.policy_gradient import PPOConfig, evaluate_agent, train_ppo
    res = train_ppo(PPOConfig(seed=args.seed))
    last = sum(res.returns[-20:]) / len(res.returns[-20:])
    greedy = evaluate_agent(res.agent, episodes=20)
    print(f"  {len(res.returns)} episodes; last 20 mean return {last:.1f}; greedy {sum(greedy) / 20:.1f}")
    return {"ppo_cartpole_return": round(last, 1), "ppo_cartpole_greedy_return": round(sum(greedy) / 20, 1)}


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "base": stage_base, "sft": stage_sft, "rm": stage_rm, "ppo": stage_ppo, "dpo": stage_dpo,
    "grpo": stage_grpo, "rloo": stage_rloo, "kto": stage_kto, "safety": stage_safety,
    "reasoning": stage_reasoning, "rlvr": stage_rlvr, "qlearning": stage_qlearning, "dqn": stage_dqn,
    "ppo_cartpole": stage_ppo_cartpole}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="stages: " + ", ".join(STAGES))
    ap.add_argument("--stages", default=",".join(STAGES),
                    help="comma-separated stages to run (default: all)")
    ap.add_argument("--seed", type=int, default=world.DEFAULT_SEED)
    ap.add_argument("--n-per-task", type=int, default=200, help="test examples per task")
    ap.add_argument("--val-docs", type=int, default=5000, help="validation documents")
    ap.add_argument("--out", default="runs", help="folder for checkpoints the stages train")
    ap.add_argument("--ship", action="store_true",
                    help="write trained checkpoints into the package (replaces the shipped ones)")
    ap.add_argument("--sft-steps", type=int, default=1500, help="SFT optimisation steps")
    ap.add_argument("--rm-prompts", type=int, default=4000,
                    help="prompts (pairs of samples) labelled for the reward model")
    ap.add_argument("--ppo-steps", type=int, default=50, help="PPO steps (rollouts of 64; of --batch-size with --model)")
    ap.add_argument("--dpo-prompts", type=int, default=2000, help="labelled pairs for DPO")
    ap.add_argument("--dpo-steps", type=int, default=125, help="DPO optimisation steps (batch 32)")
    ap.add_argument("--dpo-beta", type=float, default=0.5)
    ap.add_argument("--dpo-lr", type=float, default=1e-4)
    ap.add_argument("--grpo-steps", type=int, default=40, help="GRPO steps (16 prompts x 8 answers)")
    ap.add_argument("--rloo-steps", type=int, default=50, help="RLOO steps (16 prompts x 4 answers)")
    ap.add_argument("--rloo-beta", type=float, default=0.1, help="RLOO's KL penalty per answer")
    ap.add_argument("--kto-steps", type=int, default=125,
                    help="KTO optimisation steps (batch 64 answers: 32 pairs' worth, as DPO)")
    ap.add_argument("--kto-beta", type=float, default=0.5)
    ap.add_argument("--safety-steps", type=int, default=300, help="refusal SFT steps (batch 32)")
    ap.add_argument("--safety-lookalike-share", type=float, default=1.0,
                    help="share of the harmless look-alike requests kept in refusal SFT (0 to 1)")
    ap.add_argument("--reasoning-steps", type=int, default=900, help="SFT steps of the reasoning start (batch 32)")
    ap.add_argument("--rlvr-steps", type=int, default=20, help="GRPO steps of RLVR (16 problems x 8 answers)")
    ap.add_argument("--rlvr-problems", type=int, default=3000, help="problems in the rl split RLVR practises on")
    ap.add_argument("--rlvr-eval", type=int, default=200, help="held-out problems for RLVR's measures (4 answers each)")
    ap.add_argument("--eval-prompts", type=int, default=200,
                    help="held-out open prompts for the gold comparisons (2 samples each; with --model, "
                         "at most this many held-out prompts for ppo)")
    from course_utils.real.real_model import STAGES as REAL_STAGES, add_arguments, check_sources
    add_arguments(ap)
    args = ap.parse_args(argv)
    args.produced = {}
    stages = REAL_STAGES if args.model else STAGES  # --model: the real-model stages
    if args.model and args.stages == ",".join(STAGES):
        args.stages = "sft,dpo"
    names = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in names if s not in stages]
    if unknown or not names:
        ap.error(f"unknown stage(s) {unknown}; choose from {', '.join(stages)}")
    if args.model:  # a hub id: from the local cache (or, with --download, the hub), else one sentence now
        check_sources(args)
    torch.manual_seed(args.seed)
    metrics: dict[str, float] = {}
    for name in names:
        print(f"== stage {name}", flush=True)
        t0 = time.perf_counter()
        metrics.update(stages[name](args))
        metrics[f"seconds_{name}"] = round(time.perf_counter() - t0, 1)
    width = max(len(k) for k in metrics)
    print("\n" + "metric".ljust(width) + " | value")
    print("-" * width + "-|-------")
    for k, v in metrics.items():
        print(f"{k.ljust(width)} | {v}")
    print(json.dumps(metrics), flush=True)
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
