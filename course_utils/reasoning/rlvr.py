"""RL with verifiable rewards: chapter 11's GRPO with the verifier as its reward.

No new training loop: :func:`course_utils.alignment.grpo.train_grpo` takes a ``reward_fn``, a
``log_fn`` and an ``eval_fn``, and this module builds the three from the verifier.

* :func:`verifier_reward` -- ``reward_fn(prompts, responses) -> (N,)``: a reward of
  :mod:`course_utils.reasoning.verifier` (correctness by default) for each response, looked up
  by its prompt among the problems;
* :func:`verifier_log` -- ``log_fn``: per step, the ``format_rate``, the ``step_accuracy`` and
  the mean length in tokens of the answers that are right and of those that are not
  (``length_right``, ``length_wrong``; "not right" includes malformed answers; a step without
  a right, or without a wrong, answer leaves that column out). These lengths count the
  decoded answer's tokens, without the end-of-text token that GRPO's own ``length`` counts;
* :func:`heldout_pass1` -- ``eval_fn(policy)``: pass@1 on held-out problems, from
  ``n_samples`` answers per problem at temperature 1 (:func:`course_utils.reasoning.scaling.pass_at_k`
  with k = 1 is the share right).

:func:`rlvr_config` holds the course's settings for these runs.

``train_grpo`` itself logs the rest of what an RLVR run is judged by: ``reward`` (with the
default correctness reward, the share right at the sampling temperature), ``zero_std_groups`` (groups that all scored the same:
no gradient), ``entropy``, ``kl`` (k3) and ``kl_k1``, ``clip_fraction``, ``length`` and
``truncated``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from course_utils.alignment.grpo import GRPOConfig
from course_utils.reasoning.evaluation import answer_budget, style_report
from course_utils.reasoning.verifier import correctness_reward, step_reward, verify

Reward = Callable[[str, Mapping], float]


def _by_prompt(problems: Sequence[Mapping]) -> dict[str, Mapping]:
    table = {p["prompt"]: p for p in problems}
    if not table:
        raise ValueError("no problems to reward")
    return table


def verifier_reward(problems: Sequence[Mapping], reward: Reward = correctness_reward):
    """``reward_fn(prompts, responses) -> (N,)`` float tensor: ``reward(response, problem)`` each."""
    table = _by_prompt(problems)

    def reward_fn(prompts: list[str], responses: list[str]) -> torch.Tensor:
        missing = [p for p in prompts if p not in table]
        if missing:
            raise KeyError(f"a prompt that is not among the problems: {missing[0]!r}")
        return torch.tensor([reward(r, table[p]) for p, r in zip(prompts, responses)], dtype=torch.float32)
    return reward_fn


def verifier_log(problems: Sequence[Mapping], tokenizer):
    """``log_fn(prompts, responses, rewards) -> dict``: format rate, step accuracy, lengths of right and
    of not-right answers (see the module docstring)."""
    table = _by_prompt(problems)

    def log_fn(prompts: list[str], responses: list[str], rewards: torch.Tensor) -> dict[str, float]:
        verdicts = [verify(r, table[p]["answer"]) for p, r in zip(prompts, responses)]
        lengths = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses]
        out = {"format_rate": sum(v.well_formed for v in verdicts) / len(verdicts),
               "step_accuracy": sum(step_reward(r, table[p]) for p, r in zip(prompts, responses)) / len(responses)}
        right = [n for n, v in zip(lengths, verdicts) if v.correct]
        wrong = [n for n, v in zip(lengths, verdicts) if not v.correct]
        if right:
            out["length_right"] = sum(right) / len(right)
        if wrong:
            out["length_wrong"] = sum(wrong) / len(wrong)
        return out
    return log_fn


def heldout_pass1(problems: Sequence[Mapping], tokenizer, n_samples: int = 4, seed: int = 0, worked: bool = True):
    """``eval_fn(policy) -> {"pass1": ...}``: the share right of ``n_samples`` answers per problem at
    temperature 1 (:func:`~course_utils.reasoning.evaluation.style_report`'s ``pass1``)."""
    if not problems:
        raise ValueError("no held-out problems")

    def eval_fn(policy) -> dict[str, float]:
        return {"pass1": style_report(policy, tokenizer, problems, n_samples, seed, worked)["pass1"]}
    return eval_fn


def rlvr_config(steps: int = 20, seed: int = 0, **changes) -> GRPOConfig:
    """The course's RLVR settings (calibrated in docs/maintainers.md), as a :class:`GRPOConfig`.

    16 problems x 8 answers a step at temperature 1, room for a worked answer to 6 swaps,
    lr 1e-4 with 5 warm-up steps and a cosine decay to a tenth, one update per batch (so the
    ratio is 1 and the clip never acts), no KL penalty (beta = 0, as Dr. GRPO and DAPO), and
    the course sampler. ``changes`` overrides any field, e.g. ``loss_type="dr_grpo"``.
    """
    settings = dict(steps=steps, prompts_per_step=16, group_size=8, max_new_tokens=answer_budget(6),
                    temperature=1.0, lr=1e-4, beta=0.0, iterations=1, warmup_steps=5, min_lr_ratio=0.1,
                    sampler="course", seed=seed, desc="RLVR")
    settings.update(changes)
    return GRPOConfig(**settings)
