"""The tiny-world pipeline: ``python -m course_utils.pipeline [--stages a,b,...]``.

Each stage starts from the shipped checkpoints, measures something and returns a dict of
metrics. The command prints a readable table and, as its very last line, one JSON object
with every metric plus ``seconds_<stage>`` for each stage run.

Stages:
    base  validation loss of the shipped base model (``base_val_loss``) and its exact match
          on the instruction test split before any tuning (``base_exact_match``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import torch

from . import world
from .evaluation import exact_match, format_scores
from .models import load_model
from .pretrain import pack_documents, validation_loss


def stage_base(args: argparse.Namespace) -> dict[str, float]:
    """Shipped base model: validation loss on a regenerated corpus, exact match before tuning."""
    model, tok = load_model("base")
    val_docs = world.make_corpus(args.val_docs, seed=args.seed, split="validation")
    val = validation_loss(model, pack_documents(tok, val_docs))
    test = world.make_instruction_data(args.seed)["test"]
    rows = world.per_task(test, args.n_per_task)
    scores = exact_match(model, tok, rows)
    print(f"  base exact match: {format_scores(scores)}")
    return {"base_val_loss": round(val, 4), "base_exact_match": round(scores["mean"], 4)}


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {"base": stage_base}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="stages: " + ", ".join(STAGES))
    ap.add_argument("--stages", default=",".join(STAGES),
                    help="comma-separated stages to run (default: all)")
    ap.add_argument("--seed", type=int, default=world.DEFAULT_SEED)
    ap.add_argument("--n-per-task", type=int, default=200, help="test examples per task")
    ap.add_argument("--val-docs", type=int, default=5000, help="validation documents")
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        ap.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    torch.manual_seed(args.seed)
    metrics: dict[str, float] = {}
    for name in names:
        print(f"== stage {name}", flush=True)
        t0 = time.perf_counter()
        metrics.update(STAGES[name](args))
        metrics[f"seconds_{name}"] = round(time.perf_counter() - t0, 1)
    width = max(len(k) for k in metrics)
    print("\n" + "metric".ljust(width) + " | value")
    print("-" * width + "-|-------")
    for k, v in metrics.items():
        print(f"{k.ljust(width)} | {v}")
    print(json.dumps(metrics), flush=True)
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
