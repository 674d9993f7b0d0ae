"""Direct preference optimisation (DPO; Rafailov et al., 2023).

The KL-regularised objective ``max E[r(x, y)] - beta * KL(pi || pi_ref)`` has the closed-form
optimum ``pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x)``. Solved for the reward,
``r(x, y) = beta * log(pi*(y|x) / pi_ref(y|x)) + beta * log Z(x)``; put into the
Bradley-Terry likelihood, ``Z(x)`` cancels and the policy itself is trained on preferences::

    L_DPO = - mean log sigma( beta * [ (log pi(y_w|x) - log pi_ref(y_w|x))
                                     - (log pi(y_l|x) - log pi_ref(y_l|x)) ] )

``log pi(y|x)`` is the summed log-probability of the response tokens (the prompt is
masked, as in SFT). ``beta * (log pi - log pi_ref)`` is the *implicit reward*.

A batch of B pairs is one tensor of 2B rows, chosen first, then rejected (as for the
reward model); the reference log-probabilities are computed once, before training.

**The DPO family** (``loss_type=`` of :func:`dpo_batch_loss` and :func:`run_dpo`). With the
log-ratio margin ``h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))``::

    sigmoid  DPO                -log sigma(beta h)                                  Rafailov et al. 2023
    hinge    hinge on h (TRL)   max(0, 1 - beta h)                                  after Zhao et al. 2023
    ipo      IPO                (h_len - 1 / (2 beta))^2, h_len: per-token log-ratios  Azar et al. 2023
    cdpo     conservative DPO   -(1 - eps) log sigma(beta h) - eps log sigma(-beta h)   Mitchell 2023
    robust   robust DPO         [-(1 - eps) log sigma(beta h) + eps log sigma(-beta h)] / (1 - 2 eps)
                                                                                     Chowdhury et al. 2024
    simpo    SimPO (no ref)     -log sigma(beta (avg log pi(y_w) - avg log pi(y_l)) - gamma)  Meng et al. 2024
    orpo     ORPO (no ref)      NLL(y_w) - lam log sigma(log odds(y_w) - log odds(y_l))       Hong et al. 2024

``hinge`` is TRL's ``loss_type="hinge"``: SLiC's calibration hinge moved onto DPO's
reference-normalised margin h. SLiC-HF itself (Zhao et al., 2023) is not this loss: its hinge,
``max(0, delta - log pi(y_w|x) + log pi(y_l|x))``, compares the policy's own log-probabilities
with no reference model, and it adds a cross-entropy (SFT) term on reference answers to stay
near the starting model. The course computes TRL's form.

``avg log pi`` is the log-probability per response token; ``odds(y) = p / (1 - p)`` with
``p = exp(avg log pi(y))``. SimPO and ORPO need no reference model. Each loss is one
function below; TRL's ``DPOTrainer`` (sigmoid, hinge, ipo, robust), ``CPOTrainer`` (simpo)
and ``ORPOTrainer`` compute the same numbers on the same batch (tests/test_preference_losses.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F

from course_utils.sft import IGNORE_INDEX, collate_sft, tokenize_chat
from course_utils.training import TrainConfig, TrainResult, train


def sequence_logps(model, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Summed log-probabilities of the labelled tokens of each row: (N, T) batch -> (N,)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    logp = F.log_softmax(logits[:, :-1], -1)
    mask = labels != IGNORE_INDEX
    picked = torch.gather(logp, 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


def dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """The DPO loss (module docstring) from summed log-probabilities, each of shape (B,)."""
    margin = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


def response_lengths(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Number of labelled (response) tokens of each row: (N, T) batch -> (N,), at least 1."""
    return (batch["labels"][:, 1:] != IGNORE_INDEX).sum(-1).clamp(min=1)


def hinge_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
               ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """TRL's hinge on the DPO margin: ``mean max(0, 1 - beta h)``; inputs (B,).

    The reference-normalised form of TRL's ``DPOTrainer`` (``loss_type="hinge"``), not SLiC-HF's
    loss (Zhao et al., 2023), which has no reference model and adds an SFT term (module docstring).
    """
    margin = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)
    return torch.relu(1 - beta * margin).mean()


def ipo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float, chosen_len: torch.Tensor,
             rejected_len: torch.Tensor) -> torch.Tensor:
    """IPO (Azar et al., 2023, eq. 17): a squared loss that pulls the margin to ``1 / (2 beta)``.

    ``L = mean( ((pi_w - ref_w) / |y_w| - (pi_l - ref_l) / |y_l|  -  1 / (2 beta))^2 )``.
    Summed log-probabilities (B,) are divided by the response lengths (B,) first, as TRL
    does (confirmed with the paper's authors): without it the square grows with length.
    Unlike DPO's log-sigmoid, the square stops pushing once the margin reaches its target,
    so the policy cannot run off to infinite margins on deterministic preferences.
    """
    h = (pi_chosen - ref_chosen) / chosen_len - (pi_rejected - ref_rejected) / rejected_len
    return ((h - 1 / (2 * beta)) ** 2).mean()


def cdpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
              ref_rejected: torch.Tensor, beta: float, label_smoothing: float) -> torch.Tensor:
    """Conservative DPO (Mitchell, 2023): DPO with labels flipped with probability ``eps``.

    ``L = mean( -(1 - eps) log sigma(beta h) - eps log sigma(-beta h) )`` on inputs of shape
    (B,). Its optimum is a finite margin ``log((1 - eps) / eps) / beta``, not infinity.
    """
    margin = beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected))
    eps = label_smoothing
    return (-(1 - eps) * F.logsigmoid(margin) - eps * F.logsigmoid(-margin)).mean()


def robust_dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                    ref_rejected: torch.Tensor, beta: float, label_smoothing: float) -> torch.Tensor:
    """Robust DPO (Chowdhury et al., 2024): an unbiased loss under labels flipped with rate ``eps``.

    ``L = mean( [-(1 - eps) log sigma(beta h) + eps log sigma(-beta h)] / (1 - 2 eps) )`` on
    inputs (B,), ``0 <= eps < 0.5``. In expectation over the label noise it equals the DPO
    loss on clean labels (cDPO instead changes the optimum).
    """
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"robust DPO needs 0 <= label_smoothing < 0.5, got {label_smoothing}")
    margin = beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected))
    eps = label_smoothing
    return ((-(1 - eps) * F.logsigmoid(margin) + eps * F.logsigmoid(-margin)) / (1 - 2 * eps)).mean()


def simpo_loss(avg_chosen: torch.Tensor, avg_rejected: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """SimPO (Meng et al., 2024): reference-free, length-normalised, with a target margin ``gamma``.

    ``L = mean( -log sigma(beta * (avg_w - avg_l) - gamma) )`` where ``avg`` (B,) is the
    log-probability per response token of the *policy* (no reference model). The implicit
    reward ``beta * avg log pi(y|x)`` is the one the policy uses when it generates.
    """
    return -F.logsigmoid(beta * (avg_chosen - avg_rejected) - gamma).mean()


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, computed stably (branch at ``-log 2``)."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(avg_chosen: torch.Tensor, avg_rejected: torch.Tensor, nll: torch.Tensor, lam: float) -> torch.Tensor:
    """ORPO (Hong et al., 2024, eqs. 4-7): SFT plus an odds-ratio term, no reference model.

    ``L = nll - lam * mean log sigma( log odds(y_w) - log odds(y_l) )`` with
    ``log odds(y) = avg - log(1 - exp(avg))``, ``avg`` (B,) the policy's log-probability per
    response token, and ``nll`` (scalar) the SFT loss on the chosen responses.
    """
    log_odds = (avg_chosen - avg_rejected) - (log1mexp(avg_chosen) - log1mexp(avg_rejected))
    return nll - lam * F.logsigmoid(log_odds).mean()


#: The DPO family's ``loss_type`` values; ``simpo`` and ``orpo`` use no reference model.
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "cdpo", "robust", "simpo", "orpo")
REFERENCE_FREE = ("simpo", "orpo")


def tokenize_pairs(tokenizer, rows: Iterable[Mapping]) -> list[dict]:
    """Rows with ``prompt``, ``chosen``, ``rejected`` -> SFT-style tokens of both answers."""
    out = [{"chosen": tokenize_chat(tokenizer, r["prompt"], r["chosen"]),
            "rejected": tokenize_chat(tokenizer, r["prompt"], r["rejected"])} for r in rows]
    if not out:
        raise ValueError("the preference data set is empty")
    return out


def collate_pairs(examples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """B pairs -> one batch of 2B rows (chosen first), plus ``ref_chosen``/``ref_rejected`` (B,) if present."""
    batch = collate_sft([e["chosen"] for e in examples] + [e["rejected"] for e in examples], pad_token_id)
    if "ref_chosen" in examples[0]:
        batch["ref_chosen"] = torch.tensor([e["ref_chosen"] for e in examples])
        batch["ref_rejected"] = torch.tensor([e["ref_rejected"] for e in examples])
    return batch


@torch.no_grad()
def add_reference_logps(ref_model, data: list[dict], pad_token_id: int, batch_size: int = 64) -> list[dict]:
    """Store the frozen reference model's log-probabilities in each example (computed once)."""
    ref_model.eval()
    for i in range(0, len(data), batch_size):
        chunk = data[i:i + batch_size]
        batch = collate_pairs(chunk, pad_token_id)
        lp = sequence_logps(ref_model, {k: v.to(ref_model.device) for k, v in batch.items()})
        for e, c, r in zip(chunk, lp[:len(chunk)].tolist(), lp[len(chunk):].tolist()):
            e["ref_chosen"], e["ref_rejected"] = c, r
    return data


def dpo_batch_loss(model, batch: Mapping[str, torch.Tensor], beta: float, loss_type: str = "sigmoid",
                   label_smoothing: float = 0.0, gamma: float = 0.5, with_metrics: bool = False):
    """A DPO-family loss of a collated batch (2B rows, plus the reference log-probabilities
    unless ``loss_type`` is reference-free).

    ``beta`` is each loss's own coefficient: DPO's beta, IPO's tau, SimPO's beta, ORPO's
    lambda. ``label_smoothing`` is cDPO's / robust DPO's flip rate ``eps``; ``gamma`` is
    SimPO's target margin.

    With ``with_metrics``, returns ``(loss, metrics)``; for the losses with a reference the
    metrics are the mean implicit rewards ``chosen_reward`` = beta * (log pi(y_w|x) - log
    ref(y_w|x)) and ``rejected_reward`` (the same for y_l), and ``margin_accuracy``, the share
    of the B pairs whose chosen reward is the larger (the run dashboard plots them).
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose from {', '.join(LOSS_TYPES)}")
    lp = sequence_logps(model, batch)
    b = lp.shape[0] // 2
    if loss_type in REFERENCE_FREE or loss_type == "ipo":
        n = response_lengths(batch).to(lp.dtype)
    if loss_type == "simpo":
        avg = lp / n
        loss = simpo_loss(avg[:b], avg[b:], beta, gamma)
    elif loss_type == "orpo":
        avg = lp / n
        nll = -lp[:b].sum() / n[:b].sum()              # token-mean cross-entropy of the chosen responses
        loss = orpo_loss(avg[:b], avg[b:], nll, beta)
    elif loss_type == "sigmoid":
        loss = dpo_loss(lp[:b], lp[b:], batch["ref_chosen"], batch["ref_rejected"], beta)
    elif loss_type == "hinge":
        loss = hinge_loss(lp[:b], lp[b:], batch["ref_chosen"], batch["ref_rejected"], beta)
    elif loss_type == "ipo":
        loss = ipo_loss(lp[:b], lp[b:], batch["ref_chosen"], batch["ref_rejected"], beta, n[:b], n[b:])
    elif loss_type == "cdpo":
        loss = cdpo_loss(lp[:b], lp[b:], batch["ref_chosen"], batch["ref_rejected"], beta, label_smoothing)
    else:
        loss = robust_dpo_loss(lp[:b], lp[b:], batch["ref_chosen"], batch["ref_rejected"], beta, label_smoothing)
    if not with_metrics:
        return loss
    metrics: dict[str, float] = {}
    if loss_type not in REFERENCE_FREE:
        with torch.no_grad():
            chosen = beta * (lp[:b] - batch["ref_chosen"])
            rejected = beta * (lp[b:] - batch["ref_rejected"])
            metrics = {"chosen_reward": chosen.mean().item(), "rejected_reward": rejected.mean().item(),
                       "margin_accuracy": (chosen > rejected).float().mean().item()}
    return loss, metrics


def run_dpo(model, ref_model, tokenizer, rows: Iterable[Mapping], config: TrainConfig, beta: float = 0.5,
            loss_type: str = "sigmoid", label_smoothing: float = 0.0, gamma: float = 0.5,
            **train_kwargs) -> TrainResult:
    """Train ``model`` (in place) with a DPO-family loss on preference ``rows`` using the course loop.

    The history's rows hold the loss and, for the losses with a reference, the implicit
    rewards and margin accuracy of :func:`dpo_batch_loss` (averaged over the logged steps).

    ``ref_model`` may be ``None`` for the reference-free losses (``simpo``, ``orpo``).
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose from {', '.join(LOSS_TYPES)}")
    pad = tokenizer.pad_token_id
    data = tokenize_pairs(tokenizer, rows)
    if loss_type not in REFERENCE_FREE:
        if ref_model is None:
            raise ValueError(f"loss_type {loss_type!r} needs a reference model")
        data = add_reference_logps(ref_model, data, pad)
    return train(model, data, lambda b: collate_pairs(b, pad), config,
                 loss_fn=lambda m, b: dpo_batch_loss(m, b, beta, loss_type, label_smoothing, gamma, with_metrics=True),
                 tokenizer=tokenizer, **train_kwargs)
