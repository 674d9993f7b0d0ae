"""The PPO core: advantages (GAE), the clipped objective, and minibatch epochs.

It knows nothing about the environment or the model: CartPole (chapter 08) and the
language model (chapter 10) both hand it tensors of log-probabilities, values and rewards.

Generalised advantage estimation (Schulman et al., 2016). With TD errors
``delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)``::

    A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}        returns_t = A_t + V(s_t)

PPO's clipped surrogate (Schulman et al., 2017), with ratio ``rho = exp(logp_new - logp_old)``::

    L_policy = - mean( min( rho * A, clip(rho, 1 - eps, 1 + eps) * A ) )
    L_value  = mean( (V_new - returns)^2 ) / 2
    L        = L_policy + vf_coef * L_value - ent_coef * entropy

Diagnostics: ``approx_kl = mean((rho - 1) - log rho)`` (an unbiased, non-negative estimate
of KL(old || new)) and ``clip_fraction`` (share of samples whose ratio was clipped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@torch.no_grad()
def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
        last_value: torch.Tensor, gamma: float = 0.99, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns for a rollout of T steps (time is the first dimension).

    Args:
        rewards, values, dones: shape (T, ...) (e.g. (T, n_envs)); ``dones[t] = 1`` if the
            episode ended at step t (then nothing after t is bootstrapped).
        last_value: V of the state after the last step, shape (...).
    Returns:
        ``(advantages, returns)``, both shaped like ``rewards``.
    """
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_value, dtype=rewards.dtype)
    next_value = last_value.to(rewards.dtype)
    for t in reversed(range(T)):
        not_done = 1.0 - dones[t].to(rewards.dtype)
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        next_adv = delta + gamma * lam * not_done * next_adv
        adv[t] = next_adv
        next_value = values[t]
    return adv, adv + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (all positions when ``mask`` is None)."""
    if mask is None:
        return x.mean()
    return (x * mask).sum() / mask.sum().clamp(min=1)


def clipped_surrogate(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip: float = 0.2, clip_high: float | None = None) -> torch.Tensor:
    """PPO's clipped objective per element, as a loss: ``-min(rho * A, clip(rho, 1 - eps, 1 + eps_high) * A)``.

    ``rho = exp(new_logp - old_logp)``; ``eps_high = clip`` unless ``clip_high`` is given
    (DAPO's "clip-higher", Yu et al. 2025, uses 0.28). All tensors share one shape; the
    caller chooses how to average (:func:`ppo_loss`: a masked mean).
    """
    ratio = (new_logp - old_logp).exp()
    high = clip if clip_high is None else clip_high
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + high) * advantages)


@dataclass
class PPOLoss:
    """The total loss and its parts (tensors); diagnostics are floats."""
    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    approx_kl: float
    clip_fraction: float


def ppo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
             new_values: torch.Tensor, returns: torch.Tensor, entropy: torch.Tensor | None = None,
             clip: float = 0.2, vf_coef: float = 0.5, ent_coef: float = 0.0,
             mask: torch.Tensor | None = None) -> PPOLoss:
    """PPO's clipped loss (formulas in the module docstring).

    All tensors share one shape: (N,) for N transitions, or (B, T) for B sequences of T
    tokens with ``mask`` (B, T) marking the positions that count.
    """
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    policy = masked_mean(clipped_surrogate(new_logp, old_logp, advantages, clip), mask)
    value = 0.5 * masked_mean((new_values - returns) ** 2, mask)
    ent = masked_mean(entropy, mask) if entropy is not None else torch.zeros(())
    total = policy + vf_coef * value - ent_coef * ent
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1) - log_ratio, mask).item()
        clip_fraction = masked_mean(((ratio - 1).abs() > clip).float(), mask).item()
    return PPOLoss(total, policy, value, ent, approx_kl, clip_fraction)


def ppo_update(batch: dict[str, torch.Tensor], evaluate: Callable[[dict[str, torch.Tensor]], tuple],
               optimizer: torch.optim.Optimizer, parameters, epochs: int = 4, minibatch_size: int = 64,
               clip: float = 0.2, vf_coef: float = 0.5, ent_coef: float = 0.0, max_grad_norm: float = 0.5,
               normalize_advantages: bool = True, target_kl: float | None = None,
               generator: torch.Generator | None = None) -> dict[str, float]:
    """Several epochs of minibatch PPO steps on one rollout.

    Args:
        batch: tensors with first dimension N: ``old_logp``, ``advantages``, ``returns``,
            optionally ``mask``, plus whatever ``evaluate`` needs (observations, actions...).
        evaluate: ``evaluate(minibatch) -> (new_logp, new_values, entropy)`` under the
            current parameters, each shaped like ``minibatch["old_logp"]``.
        target_kl: stop the epochs early when the mean approximate KL exceeds it.
    Returns:
        Diagnostics averaged over all minibatch steps: ``loss``, ``policy_loss``,
        ``value_loss``, ``entropy``, ``approx_kl``, ``clip_fraction``, ``grad_norm`` (before
        clipping), ``steps``.
    """
    n = batch["old_logp"].shape[0]
    parameters = list(parameters)
    sums: dict[str, float] = {}
    steps = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        epoch_kl = []
        for start in range(0, n, minibatch_size):
            idx = order[start:start + minibatch_size]
            mb = {k: v[idx] for k, v in batch.items()}
            adv = mb["advantages"]
            if normalize_advantages and adv.numel() > 1:
                m = mb.get("mask")
                mean = masked_mean(adv, m)
                std = masked_mean((adv - mean) ** 2, m).sqrt()
                adv = (adv - mean) / (std + 1e-8)
            new_logp, new_values, entropy = evaluate(mb)
            out = ppo_loss(new_logp, mb["old_logp"], adv, new_values, mb["returns"], entropy,
                           clip=clip, vf_coef=vf_coef, ent_coef=ent_coef, mask=mb.get("mask"))
            if not torch.isfinite(out.total):
                raise FloatingPointError(f"the PPO loss is {out.total.item()}: lower the learning rate")
            optimizer.zero_grad()
            out.total.backward()
            if max_grad_norm:
                grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
            else:
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
            optimizer.step()
            steps += 1
            epoch_kl.append(out.approx_kl)
            for k, v in {"loss": out.total.item(), "policy_loss": out.policy.item(),
                         "value_loss": out.value.item(), "entropy": out.entropy.item(),
                         "approx_kl": out.approx_kl, "clip_fraction": out.clip_fraction,
                         "grad_norm": float(grad_norm)}.items():
                sums[k] = sums.get(k, 0.0) + v
        if target_kl is not None and sum(epoch_kl) / len(epoch_kl) > target_kl:
            break
    stats = {k: v / max(steps, 1) for k, v in sums.items()}
    stats["steps"] = steps
    return stats
