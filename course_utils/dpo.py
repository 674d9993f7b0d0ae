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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F

from .sft import IGNORE_INDEX, collate_sft, tokenize_chat
from .training import TrainConfig, TrainResult, train


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
        lp = sequence_logps(ref_model, collate_pairs(chunk, pad_token_id))
        for e, c, r in zip(chunk, lp[:len(chunk)].tolist(), lp[len(chunk):].tolist()):
            e["ref_chosen"], e["ref_rejected"] = c, r
    return data


def dpo_batch_loss(model, batch: Mapping[str, torch.Tensor], beta: float) -> torch.Tensor:
    """DPO loss of a collated batch (2B rows and the reference log-probabilities)."""
    lp = sequence_logps(model, batch)
    b = lp.shape[0] // 2
    return dpo_loss(lp[:b], lp[b:], batch["ref_chosen"], batch["ref_rejected"], beta)


def run_dpo(model, ref_model, tokenizer, rows: Iterable[Mapping], config: TrainConfig, beta: float = 0.5,
            **train_kwargs) -> TrainResult:
    """Train ``model`` (in place) with DPO on preference ``rows`` using the course loop."""
    pad = tokenizer.pad_token_id
    data = add_reference_logps(ref_model, tokenize_pairs(tokenizer, rows), pad)
    return train(model, data, lambda b: collate_pairs(b, pad), config,
                 loss_fn=lambda m, b: dpo_batch_loss(m, b, beta), tokenizer=tokenizer, **train_kwargs)
