"""Pretraining the tiny base model: ``python -m course_utils.pretrain``.

Reproduces the shipped ``course_utils/assets/base`` from scratch: generate the corpus,
train the byte-level BPE tokenizer, pack the documents into blocks of ``block_size``
tokens, and train a tiny Llama with next-token prediction through :func:`training.train`.
It prints throughput (tokens/s), the achieved GFLOP/s and, for comparison, the fp32
matrix-multiply GFLOP/s of this machine measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from course_utils import world
from course_utils.models import SHIPPED, count_parameters, new_tiny_model
from course_utils.tokenizer import train_tokenizer
from course_utils.training import TrainConfig, save_checkpoint, train

BLOCK_SIZE = 128


def pack_documents(tokenizer, docs: list[str], block_size: int = BLOCK_SIZE) -> torch.Tensor:
    """Tokenize ``docs``, join them with the end-of-text token, cut into blocks.

    Returns a ``LongTensor`` of shape ``(n_blocks, block_size)``; the tail that does not fill
    a whole block is dropped. A block may start or end mid-document, as in GPT pretraining.
    """
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    flat: list[int] = []
    for doc in ids:
        flat += doc + [tokenizer.eos_token_id]
    n = len(flat) // block_size
    if n == 0:
        raise ValueError(f"{len(flat)} tokens are fewer than one block of {block_size}")
    return torch.tensor(flat[: n * block_size]).view(n, block_size)


def collate_blocks(blocks: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stack blocks into ``input_ids`` and ``labels`` (equal: the model shifts labels itself)."""
    x = torch.stack(blocks)
    return {"input_ids": x, "labels": x}


@torch.no_grad()
def validation_loss(model, blocks: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` over ``blocks`` (N, T)."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        x = blocks[i:i + batch_size].to(model.device)
        loss = model(input_ids=x, labels=x).loss
        n = x.numel() - x.shape[0]  # predicted positions per block: T - 1
        total += loss.item() * n
        count += n
    return total / count


def matmul_gflops(n: int = 1024, seconds: float = 2.0) -> float:
    """fp32 GFLOP/s of ``n x n`` matrix multiplication on this machine (2 n^3 flops each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def flops_per_token(model, block_size: int = BLOCK_SIZE) -> float:
    """Training FLOPs per token, forward and backward: 6 N + 12 L d T (Kaplan et al. 2020).

    ``N`` counts all parameters (the tied output head is a real matmul); the second term is
    attention over a context of ``T`` tokens in ``L`` layers of width ``d``.
    """
    cfg = model.config
    return 6 * count_parameters(model) + 12 * cfg.num_hidden_layers * cfg.hidden_size * block_size


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Pretrain the tiny base model from scratch.")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--docs", type=int, default=400_000)
    ap.add_argument("--seed", type=int, default=world.DEFAULT_SEED)
    ap.add_argument("--out", default=str(SHIPPED["base"]))
    args = ap.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    peak = matmul_gflops()
    print(f"fp32 matmul on this machine: {peak:.0f} GFLOP/s")
    docs = world.make_corpus(args.docs, seed=args.seed)
    tok = train_tokenizer(docs)
    train_blocks = pack_documents(tok, docs)
    val_blocks = pack_documents(tok, world.make_corpus(5_000, seed=args.seed, split="validation"))
    model = new_tiny_model(tok, seed=args.seed)
    print(f"corpus: {len(docs):,} documents, {train_blocks.numel():,} tokens; "
          f"vocabulary {len(tok)}; model {count_parameters(model):,} parameters")

    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      warmup_steps=200, weight_decay=0.1, log_every=100, seed=args.seed,
                      desc="pretraining")
    result = train(model, train_blocks, collate_blocks, cfg)
    tokens = result.examples_seen * BLOCK_SIZE
    tps = tokens / result.seconds
    gflops = tps * flops_per_token(model) / 1e9
    val = validation_loss(model, val_blocks)
    report = {"parameters": count_parameters(model), "steps": args.steps,
              "batch_size": args.batch_size, "block_size": BLOCK_SIZE, "tokens": tokens,
              "seconds": round(result.seconds, 1), "tokens_per_second": round(tps),
              "achieved_gflops": round(gflops, 1), "matmul_gflops": round(peak, 1),
              "peak_fraction": round(gflops / peak, 3), "val_loss": round(val, 4),
              "seed": args.seed, "docs": args.docs, "torch_threads": torch.get_num_threads()}
    out = Path(args.out)
    save_checkpoint(out, model, tok, history=result.history)
    (out / "pretrain_report.json").write_text(json.dumps(report, indent=1))
    print(f"{tokens:,} tokens in {result.seconds:.0f} s: {tps:,.0f} tokens/s, "
          f"{gflops:.1f} GFLOP/s = {100 * gflops / peak:.0f}% of the {peak:.0f} GFLOP/s matmul peak")
    print(f"validation loss {val:.3f} nats/token; saved to {out}")
    return report


if __name__ == "__main__":
    main()
