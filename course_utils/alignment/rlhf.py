"""RLHF with PPO: the language model as a policy, the reward model as its reward.

The objective (Ouyang et al., 2022; Stiennon et al., 2020)::

    maximise   E_{x ~ prompts, y ~ pi(.|x)} [ r(x, y) ]  -  beta * KL( pi(.|x) || pi_ref(.|x) )

where ``r`` is the reward model and ``pi_ref`` the frozen SFT model. The KL term keeps the
policy where the reward model was trained (its samples) and keeps the text fluent.

One PPO step on the language model:

1. **Rollout**: B prompts, one sampled response each (temperature 1, the KV cache), at
   most ``max_new_tokens`` tokens. Response tokens up to and including the first
   end-of-text token count (``mask``); a response without one gets ``no_eos_penalty``.
2. **Scores**: log-probabilities of the response tokens under the policy (``old_logp``)
   and the reference (``ref_logp``), the value head's values, the reward model's score.
3. **Token rewards** (shape (B, T)): ``r_t = -beta * (old_logp_t - ref_logp_t)`` at every
   response token, plus the reward model's score at the last one.
4. **Advantages**: GAE over tokens with ``gamma = 1``, ``lam = 0.95`` (:func:`ppo.gae`).
5. **Update**: the clipped PPO objective from the shared core (:func:`ppo.ppo_update`),
   several epochs of minibatches, token-masked.

KL estimators, with ``log_ratio = logp - ref_logp`` of a token sampled from the policy
(Schulman, "Approximating KL divergence", 2020)::

    k1 = log_ratio                       unbiased; can be negative for one sample
    k3 = (exp(-log_ratio) - 1) + log_ratio   unbiased; never negative; lower variance when pi is
                                             close to pi_ref (far from it, a heavy tail can make it the larger)

Summed over the tokens of a response, each estimates the sequence-level KL in nats.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_utils import world
from course_utils.dashboard import RunDashboard
from course_utils.rl.ppo import gae, ppo_update
from course_utils.alignment.reward_model import score
from course_utils.device import autocast, to_device
from course_utils.sampling import sample_tokens
from course_utils.tokenizer import chat_prompt


# ---------------------------------------------------------------------------------
# KL estimators
# ---------------------------------------------------------------------------------
def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k1 estimate of KL(pi || pi_ref): ``logp - ref_logp`` (same shape as the inputs)."""
    return logp - ref_logp


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate: ``(ratio - 1) - log ratio`` with ``ratio = pi_ref / pi``; never negative."""
    log_ratio = ref_logp - logp
    return log_ratio.exp() - 1 - log_ratio


def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact per-position KL(pi || pi_ref) over the whole vocabulary: logits (..., V) -> (...)."""
    logp, ref = F.log_softmax(logits, -1), F.log_softmax(ref_logits, -1)
    return (logp.exp() * (logp - ref)).sum(-1)


# ---------------------------------------------------------------------------------
# Policy with a value head
# ---------------------------------------------------------------------------------
class ValueHead(torch.nn.Module):
    """V(s_t): a linear layer on the policy's last hidden state, one number per position."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T)
        return self.linear(hidden).squeeze(-1)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding (as ``generate`` uses): cumsum(mask) - 1, 0 on pads."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_logits(model, batch: dict[str, torch.Tensor], hidden: bool = False):
    """Logits (B, T, V) predicting each of the T response tokens (and the last hidden states)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], output_hidden_states=hidden)
    P = batch["prompt_len"]
    T = batch["input_ids"].shape[1] - P
    logits = out.logits[:, P - 1:P - 1 + T]
    return (logits, out.hidden_states[-1][:, P - 1:P - 1 + T]) if hidden else logits


def token_logp(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log pi(token_t) for logits (B, T, V) and tokens (B, T) -> (B, T)."""
    return torch.gather(F.log_softmax(logits, -1), 2, tokens.unsqueeze(-1)).squeeze(-1)


# ---------------------------------------------------------------------------------
# Rollouts
# ---------------------------------------------------------------------------------
@dataclass
class Rollout:
    """One batch of sampled responses and everything PPO needs about them (B rows)."""
    prompts: list[str]
    responses: list[str]
    batch: dict[str, torch.Tensor]   # input_ids, attention_mask, position_ids, prompt_len
    tokens: torch.Tensor             # (B, T) response tokens
    mask: torch.Tensor               # (B, T) 1 for tokens up to and including the first EOS
    ended: torch.Tensor              # (B,) the response has an EOS
    old_logp: torch.Tensor           # (B, T)
    ref_logp: torch.Tensor           # (B, T)
    values: torch.Tensor             # (B, T)
    entropy: torch.Tensor            # (B, T)
    exact_kl: torch.Tensor           # (B, T) KL over the vocabulary at each position


@torch.no_grad()
def sample_rollout(policy, value_head: ValueHead | None, ref, tokenizer, prompts: Sequence[str],
                   max_new_tokens: int = 24, temperature: float = 1.0, sampler: str = "hf") -> Rollout:
    """Sample one response per prompt with the KV cache, then score every response token.

    Without a ``value_head`` (GRPO) the values are zeros. Everything runs on the policy's
    device; sampling runs under :func:`device.autocast` (bfloat16 on a GPU that supports it),
    the log-probabilities that PPO compares are computed in the weights' dtype.
    ``sampler="hf"`` samples with ``policy.generate`` (the stored results' random stream);
    ``sampler="course"`` with :func:`sampling.sample_tokens`, faster, from the same
    distribution but another random stream.
    """
    if sampler not in ("hf", "course"):
        raise ValueError(f"sampler must be 'hf' or 'course', not {sampler!r}")
    policy.eval()
    texts = [chat_prompt(tokenizer, p) for p in prompts]
    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = old_side
    enc = to_device(enc, policy.device)
    if sampler == "course":
        new = sample_tokens(policy, enc["input_ids"], enc["attention_mask"], max_new_tokens,
                            tokenizer.eos_token_id, tokenizer.pad_token_id, temperature)
        seq = torch.cat([enc["input_ids"], new], dim=1)
    else:
        with autocast(policy.device):
            seq = policy.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                  max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=tokenizer.eos_token_id)
    P = enc["input_ids"].shape[1]
    tokens = seq[:, P:]
    is_eos = tokens == tokenizer.eos_token_id
    after_eos = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    mask = (~after_eos).float()
    attn = torch.cat([enc["attention_mask"], mask.long()], dim=1)
    batch = {"input_ids": seq, "attention_mask": attn, "position_ids": position_ids(attn), "prompt_len": P}
    logits, hidden = response_logits(policy, batch, hidden=True)
    ref_logits = response_logits(ref, batch)
    logp_all = F.log_softmax(logits, -1)
    kept = tokens.masked_fill(mask == 0, tokenizer.pad_token_id)
    responses = [r.strip() for r in tokenizer.batch_decode(kept, skip_special_tokens=True)]
    values = value_head(hidden) if value_head is not None else torch.zeros_like(mask)
    return Rollout(list(prompts), responses, batch, tokens, mask, is_eos.any(1),
                   token_logp(logits, tokens), token_logp(ref_logits, tokens), values,
                   -(logp_all.exp() * logp_all).sum(-1), exact_kl(logits, ref_logits))


def token_rewards(score: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                  kl_coef: float) -> torch.Tensor:
    """Per-token rewards (B, T): ``-kl_coef * (logp - ref_logp)`` on response tokens, plus ``score`` (B,) at the last one."""
    rewards = -kl_coef * (logp - ref_logp) * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(score), device=score.device), last] += score
    return rewards


def token_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                     gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over tokens for (B, T) tensors: the response ends after its last masked token.

    Positions past the end are marked done, so nothing flows back from them; the value
    after the last token is 0 (the episode is over).
    """
    length = mask.sum(1, keepdim=True)
    t = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    dones = (t >= length - 1).float()                       # done at the last token and after
    adv, ret = gae(rewards.T, (values * mask).T, dones.T, torch.zeros(rewards.shape[0], device=rewards.device), gamma, lam)
    return adv.T * mask, ret.T * mask


# ---------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------
@dataclass
class RLHFConfig:
    """Settings of :func:`train_ppo_rlhf` (defaults: the course's measured recipe)."""
    steps: int = 50
    batch_size: int = 64           # prompts (responses) per rollout
    max_new_tokens: int = 24
    temperature: float = 1.0
    lr: float = 1e-4
    kl_coef: float = 0.1           # beta
    clip: float = 0.2
    vf_coef: float = 0.1
    epochs: int = 4
    minibatches: int = 2
    gamma: float = 1.0
    lam: float = 0.95
    no_eos_penalty: float = -1.0
    max_grad_norm: float = 1.0
    seed: int = 0
    desc: str = "PPO"


@dataclass
class RLHFResult:
    policy: torch.nn.Module
    value_head: ValueHead
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    samples: list[tuple[str, str]] = field(default_factory=list)  # (prompt, response) of the last rollout


def gold_scores(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """The hidden gold reward of each (open-ended prompt, response)."""
    return [world.gold_reward(world.subject_of(p), r) for p, r in zip(prompts, responses)]


#: A gold reward: (prompts, responses) -> one number per response.
GoldFn = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


def train_ppo_rlhf(policy, ref, reward_model, tokenizer, prompts: Sequence[str], config: RLHFConfig,
                   callback: Callable[[list[dict]], None] | None = None, progress: bool = True,
                   gold: GoldFn | None = gold_scores, dashboard: RunDashboard | None = None) -> RLHFResult:
    """PPO on ``policy`` (modified in place) against ``reward_model``, KL-anchored to ``ref``.

    Each step samples ``batch_size`` prompts from ``prompts``, runs one rollout and one
    :func:`ppo.ppo_update`. Logged per step (``history``): ``proxy`` (mean reward-model
    score), ``gold`` (mean gold reward of the same responses), ``kl`` (mean over responses
    of the summed k1 estimate, nats), ``kl_k3``, ``kl_exact``, ``entropy`` (nats per token),
    ``clip_fraction``, ``approx_kl``, ``value_loss``, ``grad_norm``, ``length`` (tokens),
    ``eos_rate``, ``seconds``. Each row also goes to ``dashboard`` (live plot, JSONL log,
    warnings: :mod:`course_utils.dashboard`); ``callback(history)`` is called after every step.

    ``gold`` scores the responses for the log only (training never sees it): the tiny world's
    :func:`gold_scores` by default, which needs the tiny world's prompts. ``gold=None`` (a real
    model, where no gold reward exists) leaves ``gold`` out of the log; the training itself
    is the same either way.
    """
    cfg = config
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    for model in (ref, reward_model):
        model.eval()
        model.requires_grad_(False)
    value_head = ValueHead(policy.config.hidden_size).to(policy.device)
    params = list(policy.parameters()) + list(value_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    result = RLHFResult(policy, value_head, config=asdict(cfg))
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=cfg.desc, disable=not progress, mininterval=0.5)
    for step in bar:
        batch_prompts = [rng.choice(prompts) for _ in range(cfg.batch_size)]
        ro = sample_rollout(policy, value_head, ref, tokenizer, batch_prompts, cfg.max_new_tokens, cfg.temperature)
        proxy = score(reward_model, tokenizer, ro.prompts, ro.responses)
        reward = proxy + cfg.no_eos_penalty * (~ro.ended).float()
        rewards = token_rewards(reward, ro.old_logp, ro.ref_logp, ro.mask, cfg.kl_coef)
        adv, ret = token_advantages(rewards, ro.values, ro.mask, cfg.gamma, cfg.lam)

        def evaluate(mb: dict[str, torch.Tensor]):
            b = {"input_ids": mb["input_ids"], "attention_mask": mb["attention_mask"],
                 "position_ids": mb["position_ids"], "prompt_len": ro.batch["prompt_len"]}
            logits, hidden = response_logits(policy, b, hidden=True)
            logp_all = F.log_softmax(logits, -1)
            new_logp = torch.gather(logp_all, 2, mb["tokens"].unsqueeze(-1)).squeeze(-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return new_logp, value_head(hidden), entropy

        policy.train()
        stats = ppo_update({"input_ids": ro.batch["input_ids"], "attention_mask": ro.batch["attention_mask"],
                            "position_ids": ro.batch["position_ids"], "tokens": ro.tokens, "mask": ro.mask,
                            "old_logp": ro.old_logp, "advantages": adv, "returns": ret},
                           evaluate, optimizer, params, epochs=cfg.epochs,
                           minibatch_size=cfg.batch_size // cfg.minibatches, clip=cfg.clip,
                           vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm, generator=gen)
        policy.eval()
        m = ro.mask
        row = {"step": step + 1, "proxy": proxy.mean().item()}
        if gold is not None:
            row["gold"] = sum(gold(ro.prompts, ro.responses)) / len(ro.prompts)
        row.update({
            "kl": (kl_k1(ro.old_logp, ro.ref_logp) * m).sum(1).mean().item(),
            "kl_k3": (kl_k3(ro.old_logp, ro.ref_logp) * m).sum(1).mean().item(),
            "kl_exact": (ro.exact_kl * m).sum(1).mean().item(),
            "entropy": ((ro.entropy * m).sum() / m.sum()).item(),
            "clip_fraction": stats["clip_fraction"], "approx_kl": stats["approx_kl"],
            "value_loss": stats["value_loss"], "grad_norm": stats["grad_norm"],
            "length": m.sum(1).mean().item(), "eos_rate": ro.ended.float().mean().item(),
            "seconds": time.perf_counter() - t0})
        result.history.append(row)
        result.samples = list(zip(ro.prompts, ro.responses))
        shown = {k: f"{row[k]:.2f}" for k in ("proxy", "gold", "kl") if k in row}
        bar.set_postfix(shown, refresh=False)
        if dashboard is not None:
            dashboard.log(row)
        if callback is not None:
            callback(result.history)
    bar.close()
    if dashboard is not None:
        dashboard.close()
    return result


@torch.no_grad()
def evaluate_policy(policy, reward_model, tokenizer, prompts: Sequence[str], ref=None,
                    n_samples: int = 1, seed: int = 0, max_new_tokens: int = 24,
                    gold: GoldFn | None = gold_scores, batch_size: int | None = None) -> dict[str, float]:
    """Mean proxy and gold reward of temperature-1 samples (and the KL to ``ref`` if given).

    Fixed prompts and seed, so two policies are compared on the same footing. Returns
    ``proxy`` (mean reward-model score), ``gold`` (mean of ``gold``; left out when
    ``gold=None``, as on a real model), ``length`` (tokens), ``eos_rate`` and, with ``ref``,
    ``kl`` (summed k1 estimate, nats per response) and ``kl_exact`` (the exact KL of each
    position's next-token distribution, summed along the response). ``batch_size`` samples
    that many responses at a time (a real model's vocabulary makes the exact KL's (B, T, V)
    tensors large); ``None`` samples all at once, as the tiny world's results were measured.
    """
    torch.manual_seed(seed)
    prompts = [p for p in prompts for _ in range(n_samples)]
    step = len(prompts) if batch_size is None else batch_size
    if step < 1:
        raise ValueError(f"evaluate_policy needs at least one prompt and batch_size >= 1, got {len(prompts)} "
                         f"prompts and batch_size={batch_size}")
    proxies, golds, lengths, ended, kls, exact = [], [], [], [], [], []
    for i in range(0, len(prompts), step):
        ro = sample_rollout(policy, None, ref if ref is not None else policy, tokenizer, prompts[i:i + step],
                            max_new_tokens)
        proxies.append(score(reward_model, tokenizer, ro.prompts, ro.responses))
        if gold is not None:
            golds += list(gold(ro.prompts, ro.responses))
        lengths.append(ro.mask.sum(1))
        ended.append(ro.ended.float())
        kls.append((kl_k1(ro.old_logp, ro.ref_logp) * ro.mask).sum(1))
        exact.append((ro.exact_kl * ro.mask).sum(1))
    out = {"proxy": torch.cat(proxies).mean().item()}
    if gold is not None:
        out["gold"] = sum(golds) / len(golds)
    out.update({"length": torch.cat(lengths).mean().item(), "eos_rate": torch.cat(ended).mean().item()})
    if ref is not None:
        out["kl"] = torch.cat(kls).mean().item()
        out["kl_exact"] = torch.cat(exact).mean().item()
    return out
