"""Group relative policy optimisation (GRPO; Shao et al., 2024, DeepSeekMath) with a verifiable reward.

No reward model and no value head: for each prompt, sample a *group* of G answers, score
each with a program (here: is the sum right?), and use the group as the baseline::

    A_i = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + 1e-4)          (the same for every token of answer i)

    L = - mean_tokens min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)  +  beta * mean_tokens k3(pi, pi_ref)

with ``rho`` the token probability ratio to the policy that sampled the group (1 on the
first pass; the clipped objective is the shared PPO core's) and ``k3`` the KL estimator of
:mod:`course_utils.alignment.rlhf`. ``std`` is the unbiased standard deviation, as in TRL's
``GRPOTrainer``; a group whose answers are all right (or all wrong) has zero advantage,
so its policy term is zero and only the KL term moves it. ``mean_tokens`` averages over
every answer token of the batch (the DAPO / TRL ``loss_type="bnpo"``-style aggregation),
not the paper's per-answer mean ``1/|o_i|`` followed by a mean over answers.

**Loss aggregation** (``GRPOConfig.loss_type``, as TRL's ``GRPOConfig.loss_type``; ``l_it`` is
the per-token loss above, policy and KL terms alike, ``m_it`` the answer-token mask)::

    grpo     mean_i ( sum_t m_it l_it / |o_i| )        the paper: short answers weigh more per token
    bnpo     sum_it m_it l_it / sum_it m_it            the course's default: every token weighs the same
    dr_grpo  sum_it m_it l_it / (N * L_max)            Dr. GRPO (Liu et al., 2025): a constant, no length bias
    dapo     sum_it m_it l_it / (tokens in the whole generation batch)   DAPO (Yu et al., 2025)

The course updates on the whole generation batch at once, so ``dapo`` and ``bnpo`` give
the same number here; they differ when a generation batch is split into minibatches.
Dr. GRPO also drops the division by the group's std (``scale_rewards="none"``); DAPO also
clips the ratio higher above than below (``clip_high=0.28``).

**The KL term is the course's choice.** ``beta`` (0.04, the DeepSeekMath value) applies to every
``loss_type``. The GRPO paper has this k3 penalty; Dr. GRPO's objective (Liu et al., 2025) has
no KL term (the authors' released recipes run with ``beta=0``), and DAPO (Yu et al., 2025) drops
it too. So ``loss_type="dr_grpo"`` and ``"dapo"`` with the default ``beta=0.04`` are those
papers' aggregations *plus* the course's KL penalty, a deviation from both; ``beta=0.0`` gives
the papers' (and TRL's default) behaviour.

**RLOO** (``estimator="rloo"``): the leave-one-out baseline of Ahmadian et al. (2024, after
Kool et al., 2019) inside the course's clipped, multi-epoch update. The same groups, but the
baseline of answer i is the mean reward of the *other* G - 1 answers, the KL penalty is part
of the reward (summed k1, as TRL's ``RLOOTrainer``), and the ratio is taken per answer, not per
token::

    R_i = r_i - beta * sum_t (log pi_old - log pi_ref)_it
    A_i = R_i - (sum_j R_j - R_i) / (G - 1)                      (an unbiased baseline: it excludes i)
    L   = - mean_i min(rho_i A_i, clip(rho_i, 1 - eps, 1 + eps) A_i),  rho_i = pi(o_i) / pi_old(o_i)

The ratio, the clip and the several updates per batch (``GRPOConfig.iterations``) are the course's
(and TRL's ``RLOOTrainer``'s), not the paper's: Ahmadian et al.'s RLOO is on-policy REINFORCE,
one gradient step per batch of samples, ``-mean_i A_i log pi(o_i)``, with no ratio and no clip.
With one update per batch the ratio is 1 when the gradient is taken, the clip never acts, and
the loss above has the paper's gradient.

**Warm-up** (``GRPOConfig.warmup_steps``): Adam's first update moves every weight whose gradient
is well above Adam's ``eps`` (1e-8) by about ``lr`` in the direction of its gradient's sign,
however weak the gradient, and an RL gradient from a few dozen sampled answers is mostly noise. Raising the learning rate linearly over the
first steps lets Adam's averages settle first. Off by default (the earlier chapters' runs are
without it). **Decay** (``GRPOConfig.min_lr_ratio``): after the warm-up, a cosine decay from
``lr`` towards ``min_lr_ratio * lr``, the course loop's schedule
(:func:`course_utils.training.lr_at`: the floor would be reached one step after the last, so
the last step runs a little above it); the default 1.0 keeps the rate constant.

**Dynamic sampling** (``GRPOConfig.dynamic_sampling``, DAPO, Yu et al., 2025): a group whose
answers all score the same has zero advantage and adds nothing to the policy gradient, only
to the token count it is averaged over (with ``beta > 0`` it still carries the KL term, and
under RLOO the KL-shaped reward can give it an advantage; dropping it drops those too). With
``dynamic_sampling=k`` each step samples groups
for ``k * prompts_per_step`` prompts and updates on the first ``prompts_per_step`` groups that
have a reward spread (fewer if fewer have one; none at all: the step makes no update). DAPO
keeps sampling until the batch is full; drawing a fixed ``k`` times the prompts is the same
rule with a bounded cost. ``kept_groups`` is the share of ``prompts_per_step`` updated on.

**Expert iteration** (``estimator="expert"``; rejection-sampling fine-tuning, as in STaR,
Zelikman et al., 2022, and RAFT, Dong et al., 2023): the same groups, but the update keeps only
the answers with the full reward (1.0: the right ones, for the verifier's correctness) and
raises their log-likelihood, every kept token weighing the same::

    L = - mean_{kept answers i, tokens t} rho_it  +  beta * mean_{kept i, t} k3_it,      rho_it = pi(token) / pi_old(token)

With one update per batch rho is 1 when the gradient is taken, and with ``beta = 0`` (as in
:func:`course_utils.reasoning.rlvr.rlvr_config`) the gradient is exactly SFT's on the kept
answers: no baseline, no answer given a negative weight (the softmax still lowers the rest). ``kept_answers`` logs their share;
a step with none makes no update. Compared with GRPO at the same ``prompts_per_step`` and
``group_size``, it sees the same number of sampled answers.

Whatever is updated on, the logged columns other than ``clip_fraction``, ``grad_norm`` and
``loss`` describe every sampled answer; a step with no update leaves those three out (the
schedule still moves on).

``reward_fn`` replaces the exact-answer reward (e.g. a reward model's score on open prompts).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_utils.dashboard import RunDashboard
from course_utils.rl.ppo import clipped_surrogate, masked_mean, ppo_loss
from course_utils.alignment.rlhf import Rollout, kl_k1, kl_k3, response_logits, sample_rollout
from course_utils.training import lr_at
from course_utils.world import check_answer


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4,
                     scale: str = "group") -> torch.Tensor:
    """Group-normalised advantages: rewards (P * G,) ordered group by group -> (P * G,).

    ``A = (r - group mean) / (std + eps)`` with the group's std (``scale="group"``), the whole
    batch's (``"batch"``), or no division at all (``"none"``, Dr. GRPO), as TRL's ``scale_rewards``.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale must be 'group', 'batch' or 'none', not {scale!r}")
    r = rewards.view(-1, group_size)
    mean = r.mean(1, keepdim=True)
    if scale == "none":
        return (r - mean).view(-1)
    std = r.std(1, keepdim=True) if scale == "group" else rewards.std()   # unbiased, as TRL
    return ((r - mean) / (std + eps)).view(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Leave-one-out advantages: ``A_i = r_i - mean_{j != i} r_j`` within each group; (P * G,) -> (P * G,)."""
    if group_size < 2:
        raise ValueError("RLOO needs at least two answers per prompt")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards.view(-1, group_size)
    baseline = (r.sum(1, keepdim=True) - r) / (group_size - 1)
    return (r - baseline).view(-1)


LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


def aggregate_tokens(x: torch.Tensor, mask: torch.Tensor, loss_type: str = "bnpo",
                     max_completion_length: int | None = None, num_items: float | None = None) -> torch.Tensor:
    """Average a per-token quantity ``x`` (N, T) over the answer tokens ``mask`` (N, T) as ``loss_type`` says
    (module docstring). ``dr_grpo`` needs ``max_completion_length``; ``dapo`` divides by ``num_items``
    (the tokens of the whole generation batch; default: those of this batch)."""
    if loss_type == "grpo":
        return ((x * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return masked_mean(x, mask)
    if loss_type == "dr_grpo":
        if not max_completion_length:
            raise ValueError("dr_grpo divides by max_completion_length: give it")
        return (x * mask).sum() / (x.shape[0] * max_completion_length)
    if loss_type == "dapo":
        return (x * mask).sum() / (mask.sum() if num_items is None else torch.as_tensor(num_items)).clamp(min=1.0)
    raise ValueError(f"unknown loss_type {loss_type!r}; choose from {', '.join(LOSS_TYPES)}")


def grpo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, beta: float = 0.04, loss_type: str = "bnpo", clip: float = 0.2,
              clip_high: float | None = None, max_completion_length: int | None = None,
              num_items: float | None = None, kl_ratio_correction: bool = False) -> torch.Tensor:
    """GRPO's loss (module docstring): the clipped objective plus ``beta`` k3, aggregated by ``loss_type``.

    All tensors are (N, T) (the advantage of answer i repeated along its tokens); the result
    is ``aggregate(clipped) + beta * aggregate(k3)``, which equals TRL's aggregate of the sum.
    ``kl_ratio_correction``: weigh k3 by the ratio ``pi / pi_old`` (the samples come from
    ``pi_old``, so the weighted mean estimates KL(pi || pi_ref) without bias), as TRL's
    ``use_bias_correction_kl`` (on by default there); the course's loop leaves it off.
    """
    policy = aggregate_tokens(clipped_surrogate(new_logp, old_logp, advantages, clip, clip_high), mask,
                              loss_type, max_completion_length, num_items)
    k3 = kl_k3(new_logp, ref_logp)
    if kl_ratio_correction:
        k3 = k3 * (new_logp - old_logp).exp()
    kl = aggregate_tokens(k3, mask, loss_type, max_completion_length, num_items)
    return policy + beta * kl


def rloo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              clip: float = 0.2, clip_high: float | None = None) -> torch.Tensor:
    """RLOO's loss (module docstring): the clipped objective on whole-answer ratios.

    ``new_logp``, ``old_logp``, ``mask``: (N, T) token log-probabilities and answer mask;
    ``advantages``: (N,). Returns ``mean_i -min(rho_i A_i, clip(rho_i) A_i)``.
    """
    return clipped_surrogate((new_logp * mask).sum(1), (old_logp * mask).sum(1), advantages, clip, clip_high).mean()


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
    loss_type: str = "bnpo"        # token aggregation: grpo | bnpo | dr_grpo | dapo (module docstring)
    scale_rewards: str = "group"   # divide by the group's std, the batch's, or "none" (Dr. GRPO)
    clip_high: float | None = None  # upper clip (DAPO: 0.28); None: the same as `clip`
    estimator: str = "grpo"        # "grpo" (group-normalised, per token), "rloo" (leave-one-out, per answer),
                                   # or "expert" (expert iteration: the NLL of the answers with full reward)
    warmup_steps: int = 0          # the learning rate rises linearly from lr / warmup_steps over this many steps
    min_lr_ratio: float = 1.0      # then a cosine decay to min_lr_ratio * lr (1.0: constant; module docstring)
    dynamic_sampling: int = 0      # k >= 2: sample k * prompts_per_step prompts, keep groups with a spread (DAPO)
    sampler: str = "hf"            # "hf" (model.generate) or "course" (course_utils.sampling: faster, another stream)


@dataclass
class GRPOResult:
    policy: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def train_grpo(policy, ref, tokenizer, rows: Sequence[Mapping], config: GRPOConfig,
               progress: bool = True,
               reward_fn: Callable[[list[str], list[str]], torch.Tensor] | None = None,
               log_fn: Callable[[list[str], list[str], torch.Tensor], Mapping[str, float]] | None = None,
               eval_fn: Callable[[torch.nn.Module], Mapping[str, float]] | None = None,
               eval_every: int = 10, callback: Callable[[dict], None] | None = None,
               dashboard: RunDashboard | None = None) -> GRPOResult:
    """GRPO (or RLOO) on ``policy`` (in place) over instruction ``rows`` (``prompt``, ``response``): reward 1 for
    an exact answer, or ``reward_fn(prompts, responses) -> (N,)`` if given (then rows need only ``prompt``).

    Logged per step: ``reward`` (mean over the sampled answers: accuracy at the sampling
    temperature), ``solved_groups`` (share of groups with every answer right),
    ``zero_std_groups`` (groups whose rewards are all equal: no policy gradient), ``kl`` (mean
    per-answer k3 sum to ``ref``), ``kl_k1`` (the same with k1), ``entropy`` (mean token entropy
    of the sampled answers, nats), ``length`` (mean answer tokens), ``truncated`` (share of
    answers cut at ``max_new_tokens``), ``clip_fraction``, ``grad_norm`` (before clipping, the
    last update of the step), ``loss``, ``lr`` (the learning rate of the step's updates), and with
    dynamic sampling ``kept_groups``, with expert iteration ``kept_answers`` (module docstring; a
    step with no update has no ``loss``, ``grad_norm`` or ``clip_fraction``). Each row also goes
    to ``dashboard`` (live plot, JSONL log, warnings: :mod:`course_utils.dashboard`).

    ``log_fn(prompts, responses, rewards)`` adds its own columns each step (e.g. a verifier's
    format rate); ``eval_fn(policy)`` adds columns after the first step and every ``eval_every``
    steps (e.g. held-out pass@1); ``callback(row)`` sees each row (e.g. a live plot). None of
    them changes the run: the same seed gives the same policy with or without them.
    """
    cfg = config
    if cfg.loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {cfg.loss_type!r}; choose from {', '.join(LOSS_TYPES)}")
    if cfg.estimator not in ("grpo", "rloo", "expert"):
        raise ValueError(f"estimator must be 'grpo', 'rloo' or 'expert', not {cfg.estimator!r}")
    if cfg.sampler not in ("hf", "course"):
        raise ValueError(f"sampler must be 'hf' or 'course', not {cfg.sampler!r}")
    if cfg.dynamic_sampling == 1 or cfg.dynamic_sampling < 0:
        raise ValueError(f"dynamic_sampling is 0 (off) or a factor of at least 2, not {cfg.dynamic_sampling}")
    if cfg.dynamic_sampling and cfg.group_size < 2:
        raise ValueError("dynamic_sampling keeps groups with a reward spread: it needs group_size >= 2")
    if not 0.0 <= cfg.min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], not {cfg.min_lr_ratio}")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    ref.eval()
    ref.requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    unit = replace(cfg, lr=1.0)     # the schedule's factor, without dividing by lr (lr may be 0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: lr_at(i, unit))
    result = GRPOResult(policy, config=asdict(cfg))
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=cfg.desc, disable=not progress, mininterval=0.5)
    for step in bar:
        picked = [rng.choice(rows) for _ in range(cfg.prompts_per_step * max(1, cfg.dynamic_sampling))]
        prompts = [r["prompt"] for r in picked for _ in range(cfg.group_size)]
        ro = sample_rollout(policy, None, ref, tokenizer, prompts, cfg.max_new_tokens, cfg.temperature, cfg.sampler)
        if reward_fn is None:
            targets = [r["response"] for r in picked for _ in range(cfg.group_size)]
            rewards = torch.tensor([float(check_answer(o, t)) for o, t in zip(ro.responses, targets)])
        else:
            rewards = torch.as_tensor(reward_fn(ro.prompts, ro.responses), dtype=torch.float32).view(-1)
        sampled = {"reward": rewards.mean().item(), "groups": rewards.view(-1, cfg.group_size),
                   "rollout": ro, "rewards": rewards}
        update = True
        if cfg.dynamic_sampling:
            spread = (sampled["groups"].std(1) > 0).nonzero().view(-1)[:cfg.prompts_per_step].tolist()
            keep = [g * cfg.group_size + j for g in spread for j in range(cfg.group_size)]
            kept_groups = len(spread) / cfg.prompts_per_step
            update = bool(keep)      # no group with a spread: nothing to learn from this step
            if keep:
                ro, rewards = _rows(ro, keep), rewards[keep]
        if cfg.estimator == "expert":
            keep = (rewards >= 1.0).nonzero().view(-1).tolist()
            kept_answers = len(keep) / len(rewards)
            update = update and bool(keep)
            if keep:
                ro, rewards = _rows(ro, keep), rewards[keep]
            adv = torch.ones_like(ro.old_logp)
        elif cfg.estimator == "rloo":
            shaped = rewards - cfg.beta * (kl_k1(ro.old_logp, ro.ref_logp) * ro.mask).sum(1)
            adv = rloo_advantages(shaped, cfg.group_size)
        else:
            adv = group_advantages(rewards, cfg.group_size, scale=cfg.scale_rewards).unsqueeze(1).expand_as(ro.mask)
        policy.train()
        lr = optimizer.param_groups[0]["lr"]
        updates = {}                      # loss, grad_norm and clip_fraction of the step's last update
        for _ in range(cfg.iterations if update else 0):
            logits = response_logits(policy, ro.batch)
            new_logp = torch.gather(F.log_softmax(logits, -1), 2, ro.tokens.unsqueeze(-1)).squeeze(-1)
            if cfg.estimator == "rloo":
                loss = rloo_loss(new_logp, ro.old_logp, adv, ro.mask, cfg.clip, cfg.clip_high)
                clipped = ppo_loss((new_logp * ro.mask).sum(1).detach(), (ro.old_logp * ro.mask).sum(1), adv,
                                   torch.zeros_like(adv), torch.zeros_like(adv), clip=cfg.clip, vf_coef=0.0)
            elif cfg.loss_type == "bnpo" and cfg.clip_high is None:   # the course's default, unchanged
                clipped = ppo_loss(new_logp, ro.old_logp, adv, torch.zeros_like(adv), torch.zeros_like(adv),
                                   clip=cfg.clip, vf_coef=0.0, mask=ro.mask)
                kl = masked_mean(kl_k3(new_logp, ro.ref_logp), ro.mask)
                loss = clipped.policy + cfg.beta * kl
            else:
                loss = grpo_loss(new_logp, ro.old_logp, ro.ref_logp, adv, ro.mask, cfg.beta, cfg.loss_type,
                                 cfg.clip, cfg.clip_high, cfg.max_new_tokens)
                clipped = ppo_loss(new_logp.detach(), ro.old_logp, adv, torch.zeros_like(adv),
                                   torch.zeros_like(adv), clip=cfg.clip, vf_coef=0.0, mask=ro.mask)
            optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            optimizer.step()
            updates = {"clip_fraction": clipped.clip_fraction, "grad_norm": float(grad_norm), "loss": loss.item()}
        schedule.step()
        policy.eval()
        groups, full = sampled["groups"], sampled["rollout"]     # every sampled answer, kept or not
        row = {"step": step + 1, "reward": sampled["reward"],
               "solved_groups": (groups.min(1).values == 1).float().mean().item(),
               "zero_std_groups": (groups.std(1) == 0).float().mean().item(),
               "kl": (kl_k3(full.old_logp, full.ref_logp) * full.mask).sum(1).mean().item(),
               "kl_k1": (kl_k1(full.old_logp, full.ref_logp) * full.mask).sum(1).mean().item(),
               "entropy": masked_mean(full.entropy, full.mask).item(), "length": full.mask.sum(1).mean().item(),
               "truncated": (~full.ended).float().mean().item(),
               **updates, "lr": lr}
        if cfg.dynamic_sampling:
            row["kept_groups"] = kept_groups
        if cfg.estimator == "expert":
            row["kept_answers"] = kept_answers
        if log_fn is not None:
            row.update(log_fn(full.prompts, full.responses, sampled["rewards"]))
        if eval_fn is not None and (step == 0 or (step + 1) % eval_every == 0 or step + 1 == cfg.steps):
            with _rng_kept():
                row.update(eval_fn(policy))
        row["seconds"] = time.perf_counter() - t0
        result.history.append(row)
        if dashboard is not None:
            dashboard.log(row)
        if callback is not None:
            callback(row)
        bar.set_postfix(reward=f"{row['reward']:.2f}", kl=f"{row['kl']:.3f}", refresh=False)
    bar.close()
    if dashboard is not None:
        dashboard.close()
    return result


def _rows(ro: Rollout, keep: list[int]) -> Rollout:
    """The rollout's rows ``keep`` only (every tensor indexed along its first dimension)."""
    idx = torch.tensor(keep, dtype=torch.long)
    batch = {k: (v[idx] if torch.is_tensor(v) and v.dim() > 0 else v) for k, v in ro.batch.items()}
    return Rollout([ro.prompts[i] for i in keep], [ro.responses[i] for i in keep], batch, ro.tokens[idx],
                   ro.mask[idx], ro.ended[idx], ro.old_logp[idx], ro.ref_logp[idx], ro.values[idx],
                   ro.entropy[idx], ro.exact_kl[idx])


@contextmanager
def _rng_kept():
    """Run a block (an evaluation that samples) without moving torch's global random state."""
    state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(state)


@torch.no_grad()
def sampled_accuracy(policy, tokenizer, rows: Sequence[Mapping], n_samples: int = 4, temperature: float = 1.0,
                     seed: int = 0, max_new_tokens: int = 12) -> float:
    """Share of ``n_samples`` sampled answers per row that are exactly right (pass@1 at ``temperature``)."""
    from course_utils.models import generate
    prompts = [r["prompt"] for r in rows for _ in range(n_samples)]
    targets = [r["response"] for r in rows for _ in range(n_samples)]
    outs = generate(policy, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                    seed=seed, batch_size=128)
    return sum(check_answer(o, t) for o, t in zip(outs, targets)) / len(prompts)
