"""Group relative policy optimisation (GRPO; Shao et al., 2024, DeepSeekMath) with a verifiable reward.

No reward model and no value head: for each prompt, sample a *group* of G answers, score
each with a program (here: is the sum right?), and use the group as the baseline::

    A_i = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + 1e-4)          (the same for every token of answer i)

    L = - mean_tokens min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)  +  beta * mean_tokens k3(pi, pi_ref)

with ``rho`` the token probability ratio to the policy that sampled the group (1 on the
first pass; the clipped objective is the shared PPO core's) and ``k3`` the KL estimator of
:mod:`course_utils.rlhf`. ``std`` is the unbiased standard deviation, as in TRL's
``GRPOTrainer``; a group whose answers are all right (or all wrong) has zero advantage,
so its policy term is zero and only the KL term moves it. ``mean_tokens`` averages over
every answer token of the batch (the DAPO / TRL ``loss_type="bnpo"``-style aggregation),
not the paper's per-answer mean ``1/|o_i|`` followed by a mean over answers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .ppo import masked_mean, ppo_loss
from .rlhf import kl_k3, response_logits, sample_rollout
from .world import check_answer


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """Group-normalised advantages: rewards (P * G,) ordered group by group -> (P * G,)."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards.view(-1, group_size)
    mean = r.mean(1, keepdim=True)
    std = r.std(1, keepdim=True)          # unbiased, as TRL
    return ((r - mean) / (std + eps)).view(-1)


@dataclass
class GRPOConfig:
    """Settings of :func:`train_grpo`."""
    steps: int = 40
    prompts_per_step: int = 16
    group_size: int = 8
    max_new_tokens: int = 12
    temperature: float = 1.0
    lr: float = 1e-4
    beta: float = 0.04
    clip: float = 0.2
    iterations: int = 4            # updates per group (mu in the paper); the clip matters from the second
    max_grad_norm: float = 1.0
    seed: int = 0
    desc: str = "GRPO"


@dataclass
class GRPOResult:
    policy: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def train_grpo(policy, ref, tokenizer, rows: Sequence[Mapping], config: GRPOConfig,
               progress: bool = True) -> GRPOResult:
    """GRPO on ``policy`` (in place) over instruction ``rows`` (``prompt``, ``response``): reward 1 for an exact answer.

    Logged per step: ``reward`` (mean over the sampled answers: accuracy at the sampling
    temperature), ``solved_groups`` (share of groups with every answer right),
    ``zero_std_groups``, ``kl`` (mean per-answer k3 sum), ``clip_fraction``, ``loss``.
    """
    cfg = config
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    ref.eval()
    ref.requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    result = GRPOResult(policy, config=asdict(cfg))
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=cfg.desc, disable=not progress, mininterval=0.5)
    for step in bar:
        picked = [rng.choice(rows) for _ in range(cfg.prompts_per_step)]
        prompts = [r["prompt"] for r in picked for _ in range(cfg.group_size)]
        targets = [r["response"] for r in picked for _ in range(cfg.group_size)]
        ro = sample_rollout(policy, None, ref, tokenizer, prompts, cfg.max_new_tokens, cfg.temperature)
        rewards = torch.tensor([float(check_answer(o, t)) for o, t in zip(ro.responses, targets)])
        adv = group_advantages(rewards, cfg.group_size).unsqueeze(1).expand_as(ro.mask)
        policy.train()
        for _ in range(cfg.iterations):
            logits = response_logits(policy, ro.batch)
            new_logp = torch.gather(F.log_softmax(logits, -1), 2, ro.tokens.unsqueeze(-1)).squeeze(-1)
            clipped = ppo_loss(new_logp, ro.old_logp, adv, torch.zeros_like(adv), torch.zeros_like(adv),
                               clip=cfg.clip, vf_coef=0.0, mask=ro.mask)
            kl = masked_mean(kl_k3(new_logp, ro.ref_logp), ro.mask)
            loss = clipped.policy + cfg.beta * kl
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            optimizer.step()
        policy.eval()
        groups = rewards.view(-1, cfg.group_size)
        row = {"step": step + 1, "reward": rewards.mean().item(),
               "solved_groups": (groups.min(1).values == 1).float().mean().item(),
               "zero_std_groups": (groups.std(1) == 0).float().mean().item(),
               "kl": (kl_k3(ro.old_logp, ro.ref_logp) * ro.mask).sum(1).mean().item(),
               "clip_fraction": clipped.clip_fraction, "loss": loss.item(),
               "seconds": time.perf_counter() - t0}
        result.history.append(row)
        bar.set_postfix(reward=f"{row['reward']:.2f}", kl=f"{row['kl']:.3f}", refresh=False)
    bar.close()
    return result


@torch.no_grad()
def sampled_accuracy(policy, tokenizer, rows: Sequence[Mapping], n_samples: int = 4, temperature: float = 1.0,
                     seed: int = 0, max_new_tokens: int = 12) -> float:
    """Share of ``n_samples`` sampled answers per row that are exactly right (pass@1 at ``temperature``)."""
    from .models import generate
    prompts = [r["prompt"] for r in rows for _ in range(n_samples)]
    targets = [r["response"] for r in rows for _ in range(n_samples)]
    outs = generate(policy, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                    seed=seed, batch_size=128)
    return sum(check_answer(o, t) for o, t in zip(outs, targets)) / len(prompts)
