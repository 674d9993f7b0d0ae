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
    qlearning     tabular Q-learning on slippery FrozenLake 4x4; ``frozenlake_success``: success
                  rate of the greedy policy over 1,000 evaluation episodes (and the optimum's,
                  from value iteration, for comparison).
    dqn           DQN on CartPole-v1; ``dqn_cartpole_return``: mean return of the last 20
                  training episodes (and of 20 greedy evaluation episodes).
    ppo_cartpole  PPO on CartPole-v1 with the course's PPO core; ``ppo_cartpole_return``: mean
                  return of the last 20 training episodes (and of 20 greedy evaluation episodes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from . import world
from .evaluation import exact_match, format_scores
from .models import SHIPPED, load_model
from .pretrain import pack_documents, validation_loss
from .sft import build_sft_model


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


def stage_sft(args: argparse.Namespace) -> dict[str, float]:
    """SFT from the shipped base model; the checkpoint goes to ``--out/sft`` or, with ``--ship``, the package."""
    out = SHIPPED["sft"] if args.ship else Path(args.out) / "sft"
    report = build_sft_model(out, steps=args.sft_steps, seed=args.seed, n_per_task=args.n_per_task)
    test, held = dict(report["test_exact_match"]), dict(report["heldout_words_exact_match"])
    mean, held_mean = test.pop("mean"), held.pop("mean")
    print(f"  saved to {out}")
    return {"sft_exact_match": round(mean, 4), "sft_exact_match_min": round(min(test.values()), 4),
            "sft_heldout_words_exact_match": round(held_mean, 4)}


def stage_rm(args: argparse.Namespace) -> dict[str, float]:
    """Reward model from simulated preference labels on SFT samples; ``--ship`` puts it in the package."""
    from .reward_model import build_reward_model
    out = SHIPPED["rm"] if args.ship else Path(args.out) / "rm"
    report = build_reward_model(out, n_prompts=args.rm_prompts, seed=args.seed)
    print(f"  {report['pairs']} labelled pairs; accuracy vs gold {report['accuracy_vs_gold']:.3f} "
          f"(vs held-out labels {report['accuracy_vs_labels']:.3f}); labelers agree with gold "
          f"{report['labeler_agreement']:.3f}; saved to {out}")
    return {"rm_accuracy": report["accuracy_vs_gold"], "labeler_agreement": report["labeler_agreement"]}


def stage_qlearning(args: argparse.Namespace) -> dict[str, float]:
    """Q-learning on slippery FrozenLake 4x4, compared with value iteration's optimal policy."""
    import gymnasium as gym

    from . import tabular
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

    from .dqn import DQNConfig, evaluate_q, train_dqn
    res = train_dqn(gym.make("CartPole-v1"), DQNConfig(seed=args.seed))
    last = sum(res.returns[-20:]) / len(res.returns[-20:])
    greedy = evaluate_q(gym.make("CartPole-v1"), res.q_net, episodes=20)
    print(f"  {len(res.returns)} episodes; last 20 mean return {last:.1f}; greedy {sum(greedy) / 20:.1f}")
    return {"dqn_cartpole_return": round(last, 1), "dqn_cartpole_greedy_return": round(sum(greedy) / 20, 1)}


def stage_ppo_cartpole(args: argparse.Namespace) -> dict[str, float]:
    """PPO on CartPole-v1 with the course's PPO core (course_utils.ppo)."""
    from .policy_gradient import PPOConfig, evaluate_agent, train_ppo
    res = train_ppo(PPOConfig(seed=args.seed))
    last = sum(res.returns[-20:]) / len(res.returns[-20:])
    greedy = evaluate_agent(res.agent, episodes=20)
    print(f"  {len(res.returns)} episodes; last 20 mean return {last:.1f}; greedy {sum(greedy) / 20:.1f}")
    return {"ppo_cartpole_return": round(last, 1), "ppo_cartpole_greedy_return": round(sum(greedy) / 20, 1)}


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "base": stage_base, "sft": stage_sft, "rm": stage_rm, "qlearning": stage_qlearning, "dqn": stage_dqn,
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
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        ap.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    torch.manual_seed(args.seed)
    metrics: dict[str, float] = {}
    for name in names:
        print(f"== stage {name}", flush=True)
        t0 = time.perf_counter()
        metrics.update(STAGES[name](args))
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
