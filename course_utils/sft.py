"""Supervised fine-tuning (SFT) on instruction data: tokenization with prompt masking, padding.

For one example the loss is the token cross-entropy over the *response* only::

    L(theta) = - sum_{t in response} log p_theta(token_t | tokens_<t)  /  (# response tokens)

Prompt tokens get the label -100, which PyTorch's cross-entropy ignores. Batches are
right-padded with the pad token; padded positions get attention mask 0 and label -100.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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
            mask_prompt: bool = True, **train_kwargs) -> TrainResult:
    """Fine-tune ``model`` on instruction ``rows`` with the course loop (:func:`training.train`)."""
    data = tokenize_rows(tokenizer, rows, mask_prompt)
    if not data:
        raise ValueError("the SFT data set is empty")
    pad = tokenizer.pad_token_id
    return train(model, data, lambda b: collate_sft(b, pad), config, tokenizer=tokenizer,
                 **train_kwargs)


def main(argv: list[str] | None = None) -> dict:
    """``python -m course_utils.sft``: fine-tune the shipped base model, evaluate, save."""
    import argparse
    import json
    from pathlib import Path

    from . import world
    from .evaluation import exact_match, format_scores
    from .models import SHIPPED, load_model
    from .training import save_checkpoint

    ap = argparse.ArgumentParser(description="Supervised fine-tuning of the shipped base model.")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=world.DEFAULT_SEED)
    ap.add_argument("--out", default=str(SHIPPED["sft"]))
    args = ap.parse_args(argv)

    model, tok = load_model("base")
    data = world.make_instruction_data(args.seed)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=30,
                      log_every=50, seed=args.seed, desc="SFT")
    result = run_sft(model, tok, data["train"], cfg)
    scores = exact_match(model, tok, data["test"])
    held = exact_match(model, tok, data["test_heldout_words"])
    print(f"test exact match:           {format_scores(scores)}")
    print(f"held-out words exact match: {format_scores(held)}")
    report = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
              "seconds": round(result.seconds, 1), "test_exact_match": scores,
              "heldout_words_exact_match": held}
    out = Path(args.out)
    save_checkpoint(out, model, tok, history=result.history)
    (out / "sft_report.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
