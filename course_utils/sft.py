"""Supervised fine-tuning (SFT) on instruction data: tokenization with prompt masking, padding.

For one example the loss is the token cross-entropy over the *response* only::

    L(theta) = - sum_{t in response} log p_theta(token_t | tokens_<t)  /  (# response tokens)

Prompt tokens get the label -100, which PyTorch's cross-entropy ignores. Batches are
right-padded with the pad token; padded positions get attention mask 0 and label -100.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from .training import TrainConfig, TrainResult, train

IGNORE_INDEX = -100


def tokenize_chat(tokenizer, prompt: str, response: str, mask_prompt: bool = True) -> dict[str, list[int]]:
    """Token ids of a (prompt, response) chat and their labels.

    The chat template marks the assistant's tokens (``{% generation %}``); with
    ``mask_prompt=True`` every other token gets label -100.
    """
    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
        tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids = list(enc["input_ids"])
    mask = list(enc["assistant_masks"])
    if not any(mask):
        raise ValueError(f"the chat template marked no assistant tokens for response {response!r}")
    labels = [t if (m or not mask_prompt) else IGNORE_INDEX for t, m in zip(ids, mask)]
    return {"input_ids": ids, "labels": labels}


def tokenize_rows(tokenizer, rows: Iterable[Mapping], mask_prompt: bool = True) -> list[dict]:
    """:func:`tokenize_chat` applied to rows with ``prompt`` and ``response`` fields."""
    return [tokenize_chat(tokenizer, r["prompt"], r["response"], mask_prompt) for r in rows]


def tokenize_documents(tokenizer, docs: Iterable[str]) -> list[dict[str, list[int]]]:
    """Plain pretraining documents as examples with every token labelled.

    Mixed into SFT data as *replay*: a share of the pretraining objective keeps skills the
    instruction data does not exercise from fading (InstructGPT mixes pretraining data into
    its RL updates for the same reason). Each document is framed by end-of-text tokens, as
    in the packed pretraining stream.
    """
    docs = list(docs)
    if not docs:
        return []
    eos = tokenizer.eos_token_id
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    return [{"input_ids": [eos] + d + [eos], "labels": [IGNORE_INDEX] + d + [eos]} for d in ids]


def collate_sft(examples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad tokenized examples into ``input_ids``, ``attention_mask``, ``labels`` of shape (B, T)."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        attn[i, :n] = 1
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def run_sft(model, tokenizer, rows: Iterable[Mapping], config: TrainConfig,
            mask_prompt: bool = True, replay: Iterable[str] = (), **train_kwargs) -> TrainResult:
    """Fine-tune ``model`` on instruction ``rows`` with the course loop (:func:`training.train`).

    ``replay``: optional pretraining documents mixed into the data (see :func:`tokenize_documents`).
    """
    data = tokenize_rows(tokenizer, rows, mask_prompt) + tokenize_documents(tokenizer, replay)
    if not data:
        raise ValueError("the SFT data set is empty")
    pad = tokenizer.pad_token_id
    return train(model, data, lambda b: collate_sft(b, pad), config, tokenizer=tokenizer,
                 **train_kwargs)


def build_sft_model(out: str | Path, steps: int = 1500, batch_size: int = 32, lr: float = 1e-3,
                    seed: int = 0, n_per_task: int = 200, replay_docs: int = 3000) -> dict:
    """Fine-tune the shipped base model on the tiny world's instructions, evaluate, save.

    Trains ``steps`` steps of ``batch_size`` examples with the course loop (warm-up, then
    cosine decay from ``lr``) on the instruction training split plus ``replay_docs``
    pretraining documents (replay; see :func:`tokenize_documents`), scores exact match on the test split and on the held-out-words
    split (``n_per_task`` examples per task), and writes the model, tokenizer, training
    history and ``sft_report.json`` to ``out`` atomically. Returns the report.
    """
    from . import world
    from .evaluation import exact_match, format_scores
    from .models import load_model
    from .training import save_checkpoint

    model, tok = load_model("base")
    data = world.make_instruction_data(seed)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=30,
                      log_every=50, seed=seed, desc="SFT")
    replay = world.make_corpus(replay_docs, seed=seed, split="replay") if replay_docs else []
    result = run_sft(model, tok, data["train"], cfg, replay=replay)
    scores = exact_match(model, tok, world.per_task(data["test"], n_per_task))
    held = exact_match(model, tok, world.per_task(data["test_heldout_words"], n_per_task))
    print(f"  test exact match:           {format_scores(scores)}")
    print(f"  held-out words exact match: {format_scores(held)}")
    report = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
              "replay_docs": replay_docs,
              "seconds": round(result.seconds, 1), "test_exact_match": scores,
              "heldout_words_exact_match": held}
    save_checkpoint(Path(out), model, tok, history=result.history,
                    extra_files={"sft_report.json": json.dumps(report, indent=1)})
    return report
