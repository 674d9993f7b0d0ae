"""Reward models: a scalar score r(x, y) learned from pairwise preferences (Bradley-Terry).

The model is the SFT language model with its output layer replaced by a linear head that
reads the hidden state of the *last* token of ``prompt + response`` (in the chat template)
and returns one number (``AutoModelForSequenceClassification`` with ``num_labels=1``).

For a labelled pair (x, y_w preferred over y_l) the Bradley-Terry model says
``P(y_w > y_l) = sigma(r(x, y_w) - r(x, y_l))``, so maximum likelihood minimises::

    L = - mean_i log sigma( r(x_i, y_w,i) - r(x_i, y_l,i) )         (Ouyang et al. 2022, eq. 1)

A batch of B pairs is fed as one tensor of 2B sequences: rows ``0..B-1`` are the chosen
responses, rows ``B..2B-1`` the rejected ones, so the model returns rewards of shape
``(2B,)`` that split into ``r_chosen`` and ``r_rejected`` of shape ``(B,)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from datasets import Dataset

from course_utils.models import generate, load_model
from course_utils.training import TrainConfig, TrainResult, save_checkpoint, train


# ---------------------------------------------------------------------------------
# Comparison data: two sampled completions per prompt
# ---------------------------------------------------------------------------------
def sample_pairs(model, tokenizer, prompts: Sequence[str], temperature: float = 1.0,
                 seed: int = 0, max_new_tokens: int = 32, id_prefix: str = "p") -> Dataset:
    """Two temperature-``temperature`` samples per prompt, as pairs to compare.

    Returns a Dataset with ``pair_id``, ``prompt``, ``a`` and ``b``. Pairs whose two
    completions are identical are dropped: there is nothing to compare.
    """
    prompts = list(prompts)
    outs = generate(model, tokenizer, prompts + prompts, max_new_tokens=max_new_tokens,
                    temperature=temperature, seed=seed)
    n = len(prompts)
    rows = [{"pair_id": f"{id_prefix}{i:05d}", "prompt": p, "a": outs[i], "b": outs[n + i]}
            for i, p in enumerate(prompts) if outs[i] != outs[n + i]]
    return Dataset.from_list(rows)


# ---------------------------------------------------------------------------------
# Tokenization and batches
# ---------------------------------------------------------------------------------
def tokenize_response(tokenizer, prompt, response: str) -> list[int]:
    """Token ids of the chat ``[user: prompt, assistant: response]``, as the policy wrote it.

    ``prompt`` is a user message or a list of messages (a multi-turn history).
    """
    from course_utils.sft import chat_messages
    return list(tokenizer.apply_chat_template(chat_messages(prompt, response),
                                              tokenize=True, return_dict=True)["input_ids"])


def tokenize_preferences(tokenizer, rows: Iterable[Mapping]) -> list[dict[str, list[int]]]:
    """Rows with ``prompt``, ``chosen``, ``rejected`` -> ``{"chosen_ids", "rejected_ids"}``."""
    out = [{"chosen_ids": tokenize_response(tokenizer, r["prompt"], r["chosen"]),
            "rejected_ids": tokenize_response(tokenizer, r["prompt"], r["rejected"])} for r in rows]
    if not out:
        raise ValueError("the preference data set is empty")
    return out


def pad_right(seqs: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token lists into ``input_ids`` and ``attention_mask`` of shape (N, T)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        attn[i, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": attn}


def collate_preferences(examples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """B tokenized pairs -> one batch of 2B rows: the B chosen first, then the B rejected."""
    return pad_right([e["chosen_ids"] for e in examples] + [e["rejected_ids"] for e in examples],
                     pad_token_id)


# ---------------------------------------------------------------------------------
# The loss and the metric
# ---------------------------------------------------------------------------------
def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """``-mean(log sigma(r_chosen - r_rejected))`` over pairs; both of shape (B,).

    ``F.logsigmoid`` is used instead of ``log(sigmoid(.))``, which underflows to -inf
    for large negative margins.
    """
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def rewards(model, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Scalar rewards of shape (N,) for a batch of N sequences."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]


def reward_model_loss(model, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The training loss for :func:`training.train`: Bradley-Terry on a 2B-row batch."""
    r = rewards(model, batch)
    b = r.shape[0] // 2
    return bradley_terry_loss(r[:b], r[b:])


def pairwise_credit(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Per pair, shape (N,): 1 where the chosen response gets the higher reward, 0 where the
    lower, 0.5 for a tie (the items of a paired test such as McNemar's)."""
    return (r_chosen > r_rejected).float() + 0.5 * (r_chosen == r_rejected).float()


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Fraction of pairs where the chosen response gets the higher reward (a tie counts half)."""
    if r_chosen.numel() == 0:
        raise ValueError("pairwise accuracy of no pairs is undefined")
    return pairwise_credit(r_chosen, r_rejected).mean().item()


@torch.no_grad()
def score(model, tokenizer, prompts: Sequence[str], responses: Sequence[str],
          batch_size: int = 128) -> torch.Tensor:
    """The reward model's score of each (prompt, response), shape (N,)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    model.eval()
    seqs = [tokenize_response(tokenizer, p, r) for p, r in zip(prompts, responses)]
    device = next(model.parameters()).device
    out = [rewards(model, {k: v.to(device) for k, v in
                           pad_right(seqs[i:i + batch_size], tokenizer.pad_token_id).items()})
           for i in range(0, len(seqs), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)


def preference_credit(model, tokenizer, rows: Sequence[Mapping]) -> torch.Tensor:
    """:func:`pairwise_credit` of the reward model on each preference row, shape (N,)."""
    rows = list(rows)
    if not rows:
        raise ValueError("pairwise accuracy of no pairs is undefined")
    prompts = [r["prompt"] for r in rows]
    rc = score(model, tokenizer, prompts, [r["chosen"] for r in rows])
    rr = score(model, tokenizer, prompts, [r["rejected"] for r in rows])
    return pairwise_credit(rc, rr)


def preference_accuracy(model, tokenizer, rows: Sequence[Mapping]) -> float:
    """Pairwise accuracy of the reward model on preference rows (``prompt``, ``chosen``, ``rejected``)."""
    return preference_credit(model, tokenizer, rows).mean().item()


# ---------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------
def train_reward_model(rows: Iterable[Mapping], config: TrainConfig, init: str = "sft",
                       **train_kwargs):
    """A reward model initialised from ``init`` (a new scalar head), trained on ``rows``.

    Returns ``(model, tokenizer, TrainResult)``.
    """
    model, tok = load_model(init, kind="classifier", num_labels=1)
    data = tokenize_preferences(tok, rows)
    pad = tok.pad_token_id
    result: TrainResult = train(model, data, lambda b: collate_preferences(b, pad), config,
                                loss_fn=reward_model_loss, tokenizer=tok, **train_kwargs)
    return model, tok, result


def gold_preference_pairs(pairs: Iterable[Mapping]) -> list[dict]:
    """Pairs as preference rows ordered by the *gold* reward; gold ties left out."""
    from course_utils.alignment.feedback import gold_of
    rows = []
    for p in pairs:
        ga, gb = gold_of(p["prompt"], p["a"]), gold_of(p["prompt"], p["b"])
        if ga != gb:
            chosen, rejected = (p["a"], p["b"]) if ga > gb else (p["b"], p["a"])
            rows.append({"pair_id": p["pair_id"], "prompt": p["prompt"],
                         "chosen": chosen, "rejected": rejected})
    return rows


def preference_data(policy, tokenizer, n_prompts: int, betas: Sequence[float] = (1.5, 2.0, 3.0),
                    seed: int = 0, prompt_seed: int = 1, id_prefix: str = "train") -> Dataset:
    """Pairs of ``policy`` samples on ``n_prompts`` open prompts, labelled by the simulated labelers.

    The course's standard preference data: the reward model (and DPO) train on it.
    """
    from course_utils import world
    from course_utils.alignment.feedback import default_labelers, simulate_labels
    prompts = world.open_prompts(seed=prompt_seed, n=n_prompts)["prompt"]
    pairs = sample_pairs(policy, tokenizer, prompts, seed=seed, id_prefix=id_prefix)
    return simulate_labels(pairs, default_labelers(betas, seed))


def build_reward_model(out: str | Path, n_prompts: int = 4000, epochs: float = 2.0,
                       batch_size: int = 32, lr: float = 1e-4, betas: Sequence[float] = (1.5, 2.0, 3.0),
                       n_test_prompts: int = 1000, seed: int = 0, policy: str | Path = "sft") -> dict:
    """Sample comparisons from the ``policy`` checkpoint, label them with simulated labelers, train, save.

    The reward model starts from the same checkpoint. Reports the reward model's pairwise
    accuracy against the gold preference on pairs of
    fresh samples and against the labelers' labels of the same pairs (gold ties left out), and
    the labelers' own agreement with gold on the training pairs. Returns the report.
    """
    from course_utils import world
    from course_utils.alignment.feedback import default_labelers, gold_agreement, simulate_labels

    sft, tok = load_model(policy)
    labels = preference_data(sft, tok, n_prompts, betas, seed=seed, prompt_seed=seed + 1)
    test_prompts = world.open_prompts(seed=seed + 2, n=n_test_prompts)["prompt"]
    test_pairs = sample_pairs(sft, tok, test_prompts, seed=seed + 1, id_prefix="test")
    agreement = gold_agreement(labels)
    steps = int(epochs * len(labels) / batch_size)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=20,
                      log_every=20, seed=seed, desc="reward model")
    model, tok, result = train_reward_model(labels, cfg, init=policy)
    gold_test = gold_preference_pairs(test_pairs)
    accuracy = preference_accuracy(model, tok, gold_test)
    gold_ids = {g["pair_id"] for g in gold_test}
    decided = [p for p in test_pairs if p["pair_id"] in gold_ids]
    vs_labels = preference_accuracy(model, tok, simulate_labels(decided, default_labelers(betas, seed)))
    report = {"pairs": len(labels), "test_pairs": len(gold_test), "labelers": list(betas),
              "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
              "seconds": round(result.seconds, 1), "accuracy_vs_gold": round(accuracy, 4),
              "accuracy_vs_labels": round(vs_labels, 4), "labeler_agreement": round(agreement, 4)}
    save_checkpoint(Path(out), model, tok, history=result.history,
                    extra_files={"rm_report.json": json.dumps(report, indent=1)})
    return report
