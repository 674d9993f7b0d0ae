"""Kahneman-Tversky optimisation (KTO; Ethayarajh et al., 2024): alignment from unpaired labels.

KTO needs no pairs: each example is one answer marked *desirable* or *undesirable*. With the
implicit reward ``r(x, y) = log pi(y|x) - log pi_ref(y|x)`` (as in DPO) and a reference point
``z0`` that estimates ``KL(pi || pi_ref)``::

    v(x, y) = lambda_D * sigma(beta * (r(x, y) - z0))     if y is desirable
              lambda_U * sigma(beta * (z0 - r(x, y)))     if y is undesirable

    L_KTO = mean over examples of ( lambda_y - v(x, y) )        (paper eq. 7)

so a desirable answer is pushed above the reference point and an undesirable one below it.
``z0`` is estimated as in TRL's ``KTOTrainer``: the batch mean of ``log pi(y'|x) -
log pi_ref(y'|x)`` over *mismatched* pairs (prompt ``x_i`` with the answer of an earlier
example to another prompt), clamped at 0 and not differentiated.

The course builds KTO's data from the same simulated labelers as DPO's
(:func:`unpaired_rows`): every labelled pair gives its chosen answer as desirable and its
rejected answer as undesirable, as TRL's ``unpair_preference_dataset`` does. The pairing is
then thrown away: KTO sees each answer alone.

A batch of B examples is one tensor of B rows plus B mismatched rows (``kl_*`` keys); the
reference log-probabilities of both are computed once, before training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F

from course_utils.alignment.dpo import sequence_logps
from course_utils.sft import collate_sft, tokenize_chat
from course_utils.training import TrainConfig, TrainResult, train


def kto_loss(logps: torch.Tensor, ref_logps: torch.Tensor, desirable: torch.Tensor, kl: torch.Tensor,
             beta: float, desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> torch.Tensor:
    """The KTO loss (module docstring).

    Args:
        logps, ref_logps: summed response log-probabilities of the policy and the reference, (B,).
        desirable: (B,) bool, True for a desirable answer.
        kl: the reference point ``z0``, a scalar (already clamped and detached by the caller).
    Returns:
        ``mean_i w_i * (1 - sigma(beta * s_i))`` with ``s_i = r_i - z0`` for desirable and
        ``z0 - r_i`` for undesirable answers (``lambda_y - v`` with ``lambda_y = w_i``).
    """
    desirable = desirable.bool()
    r = logps - ref_logps
    s = torch.where(desirable, r - kl, kl - r)
    w = torch.where(desirable, torch.full_like(r, desirable_weight), torch.full_like(r, undesirable_weight))
    return (w * (1 - torch.sigmoid(beta * s))).mean()


def kto_reference_point(kl_logps: torch.Tensor, ref_kl_logps: torch.Tensor) -> torch.Tensor:
    """``z0 = max(0, mean(log pi(y'|x) - log pi_ref(y'|x)))`` over mismatched pairs (B,), detached."""
    return (kl_logps - ref_kl_logps).mean().detach().clamp(min=0)


def unpaired_rows(rows: Iterable[Mapping]) -> list[dict]:
    """Preference rows (``prompt``, ``chosen``, ``rejected``) -> KTO rows (``prompt``, ``completion``, ``label``).

    Pair i gives rows 2i (chosen, desirable) and 2i + 1 (rejected, undesirable).
    """
    out = []
    for r in rows:
        out.append({"prompt": r["prompt"], "completion": r["chosen"], "label": True})
        out.append({"prompt": r["prompt"], "completion": r["rejected"], "label": False})
    if not out:
        raise ValueError("the preference data set is empty")
    return out


def tokenize_unpaired(tokenizer, rows: Iterable[Mapping]) -> list[dict]:
    """KTO rows -> tokens of each answer and of a mismatched answer (the prompt with the answer of
    the nearest earlier row that has another prompt)."""
    rows = list(rows)
    if len(rows) < 2:
        raise ValueError("KTO needs at least two examples (the reference point uses mismatched pairs)")
    bad = [r for r in rows if not isinstance(r.get("label"), bool)]
    if bad:
        raise ValueError(f"every KTO row needs a bool 'label' (desirable or not); got {bad[0]!r}")
    return [{"example": tokenize_chat(tokenizer, r["prompt"], r["completion"]),
             "kl": tokenize_chat(tokenizer, r["prompt"], rows[_mismatched(rows, i)]["completion"]),
             "label": r["label"]} for i, r in enumerate(rows)]


def _mismatched(rows: list[Mapping], i: int) -> int:
    """The nearest earlier row (cyclically) whose prompt differs from row ``i``'s."""
    for back in range(1, len(rows)):
        j = (i - back) % len(rows)
        if rows[j]["prompt"] != rows[i]["prompt"]:
            return j
    raise ValueError("KTO's reference point needs at least two different prompts")


def collate_unpaired(examples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """B examples -> ``input_ids``/``attention_mask``/``labels`` (B, T), the same with a ``kl_`` prefix
    for the mismatched rows, ``desirable`` (B,), and ``ref_logps``/``ref_kl_logps`` (B,) if present."""
    batch = collate_sft([e["example"] for e in examples], pad_token_id)
    kl = collate_sft([e["kl"] for e in examples], pad_token_id)
    batch.update({f"kl_{k}": v for k, v in kl.items()})
    batch["desirable"] = torch.tensor([e["label"] for e in examples])
    if "ref_logps" in examples[0]:
        batch["ref_logps"] = torch.tensor([e["ref_logps"] for e in examples])
        batch["ref_kl_logps"] = torch.tensor([e["ref_kl_logps"] for e in examples])
    return batch


def _kl_rows(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[3:]: v for k, v in batch.items() if k.startswith("kl_")}


@torch.no_grad()
def add_reference_logps(ref_model, data: list[dict], pad_token_id: int, batch_size: int = 64) -> list[dict]:
    """Store the frozen reference model's log-probabilities of each answer and mismatched answer."""
    ref_model.eval()
    for i in range(0, len(data), batch_size):
        chunk = data[i:i + batch_size]
        batch = collate_unpaired(chunk, pad_token_id)
        lp, kl = sequence_logps(ref_model, batch), sequence_logps(ref_model, _kl_rows(batch))
        for e, a, b in zip(chunk, lp.tolist(), kl.tolist()):
            e["ref_logps"], e["ref_kl_logps"] = a, b
    return data


def kto_batch_loss(model, batch: Mapping[str, torch.Tensor], beta: float, desirable_weight: float = 1.0,
                   undesirable_weight: float = 1.0) -> torch.Tensor:
    """KTO loss of a collated batch: the policy's log-probabilities of the answers (with gradients)
    and of the mismatched answers (without), against the stored reference log-probabilities."""
    with torch.no_grad():
        kl_logps = sequence_logps(model, _kl_rows(batch))
    z0 = kto_reference_point(kl_logps, batch["ref_kl_logps"])
    lp = sequence_logps(model, batch)
    return kto_loss(lp, batch["ref_logps"], batch["desirable"], z0, beta, desirable_weight, undesirable_weight)


def run_kto(model, ref_model, tokenizer, rows: Iterable[Mapping], config: TrainConfig, beta: float = 0.5,
            desirable_weight: float = 1.0, undesirable_weight: float = 1.0, **train_kwargs) -> TrainResult:
    """Train ``model`` (in place) with KTO on rows with ``prompt``, ``completion`` and a bool ``label``
    (:func:`unpaired_rows` makes them from preference pairs), using the course loop."""
    pad = tokenizer.pad_token_id
    data = add_reference_logps(ref_model, tokenize_unpaired(tokenizer, rows), pad)
    return train(model, data, lambda b: collate_unpaired(b, pad), config,
                 loss_fn=lambda m, b: kto_batch_loss(m, b, beta, desirable_weight, undesirable_weight),
                 tokenizer=tokenizer, **train_kwargs)
