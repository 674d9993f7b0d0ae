"""The course's SFT on several processes: ``torchrun --nproc_per_node N -m course_utils.real.distributed``.

The training loop (:func:`training.train`) runs through Hugging Face Accelerate, so the
same code trains on one CPU, one GPU, or N processes started by ``torchrun`` or
``accelerate launch``: every process takes its share of each global batch, gradients are
averaged across processes (gloo on CPUs, NCCL on GPUs), and all ranks end with the same
weights. This script fine-tunes the shipped base model on the instruction data and writes,
per rank, the loss history and a fingerprint of the final weights to ``--out``::

    torchrun --standalone --nproc_per_node 2 -m course_utils.real.distributed --steps 30 --out runs/ddp
    accelerate launch --multi_gpu --num_processes 2 -m course_utils.real.distributed ...   # CPUs too

(``accelerate launch --cpu --num_processes 2`` silently starts a single process.)
On one machine with several GPUs, the same ``torchrun`` line uses one GPU per process; on
several machines add ``--nnodes``, ``--node_rank`` and ``--rdzv_endpoint``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from course_utils import world
from course_utils.models import load_model
from course_utils.sft import run_sft
from course_utils.training import TrainConfig


def fingerprint(model: torch.nn.Module) -> str:
    """A hash of every parameter's bytes: equal fingerprints mean identical weights."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32, help="global batch over all processes")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", default="runs/distributed")
    args = ap.parse_args(argv)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    model, tok = load_model("base")
    rows = world.make_instruction_data()["train"]
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=5, log_every=5,
                      desc=f"SFT rank {accelerator.process_index}")
    result = run_sft(model, tok, rows, cfg, accelerator=accelerator, progress=accelerator.is_main_process)
    report = {"rank": accelerator.process_index, "world_size": accelerator.num_processes,
              "backend": str(accelerator.distributed_type), "losses": result.losses,
              "fingerprint": fingerprint(accelerator.unwrap_model(model))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{accelerator.process_index}.json").write_text(json.dumps(report))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        print(f"{accelerator.num_processes} processes ({report['backend']}): loss "
              f"{result.losses[0]:.3f} -> {result.losses[-1]:.3f}", flush=True)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
