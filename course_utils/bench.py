"""Benchmarks, measured side by side in one run: ``python -m course_utils.bench`` (``make bench``).

1. Training steps per second and peak memory of the course's loops against TRL's trainers on
   the same model, data, batch size and sequence lengths: SFT (``SFTTrainer``), reward model
   (``RewardTrainer``), DPO (``DPOTrainer``); SFT once more with batches grouped by length
   in both (``TrainConfig.group_by_length``, ``train_sampling_strategy="group_by_length"``). Each measurement runs in a fresh process (so
   its peak resident memory is its own); steps/s counts the steps after the first
   ``warmup`` (set-up and imports excluded, for both).
2. Pretraining throughput in GFLOP/s against the fp32 matrix-multiply GFLOP/s of this
   machine, measured in the same run.
   The GFLOP/s each course step reaches (on its padded batches) is set against the same
   peak: a step that already runs near it leaves little for any training loop to win.
3. The execution time of every chapter notebook (copies in a temporary folder).

Prints a markdown table and, as its last line, one JSON object: ``sft_vs_trl``,
``sft_grouped_vs_trl``, ``rm_vs_trl``, ``dpo_vs_trl`` (course steps/s divided by TRL's),
``sft_grouping_gain`` (the course's SFT steps/s with length-grouped batches over random
ones), ``pretrain_peak_fraction`` and ``course_minutes``. Nothing here is asserted: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BATCH, STEPS, WARMUP = 16, 40, 5
TRL_ARGS = dict(bf16=False, gradient_checkpointing=False, use_cpu=True, report_to=[], disable_tqdm=True,
                logging_strategy="no", save_strategy="no", max_steps=STEPS, learning_rate=1e-4,
                per_device_train_batch_size=BATCH, dataloader_num_workers=0, seed=0)


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pairs(n: int) -> list[dict]:
    from .models import load_model
    from .reward_model import preference_data
    sft, tok = load_model("sft")
    return list(preference_data(sft, tok, n, seed=0, prompt_seed=1))


class _Clock:
    """Times steps WARMUP+1 .. STEPS of a TRL run through a TrainerCallback."""

    def __init__(self):
        from transformers import TrainerCallback
        clock = self

        class CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == WARMUP:
                    clock.t0 = time.perf_counter()
                if state.global_step == STEPS:
                    clock.t1 = time.perf_counter()
        self.callback, self.t0, self.t1 = CB(), None, None

    def steps_per_second(self) -> float:
        return (STEPS - WARMUP) / (self.t1 - self.t0)


def _course_steps_per_second(model, data, collate, loss_fn, group_by_length: bool = False) -> dict:
    """Steps/s of the course loop, and the work in those steps.

    Also returns the GFLOP/s the timed steps reached (``flops_per_token`` on every token of
    the padded batches, attention over the padded length) and the share of padding.
    """
    from .pretrain import flops_per_token
    from .training import TrainConfig, train
    times, flops, tokens, real = [], [], [], []

    def timed_loss(m, b):
        times.append(time.perf_counter())
        ids = b["input_ids"]
        flops.append(ids.numel() * flops_per_token(m, block_size=ids.shape[1]))
        tokens.append(ids.numel())
        real.append(int(b["attention_mask"].sum()))
        return loss_fn(m, b)
    config = TrainConfig(steps=STEPS + 1, batch_size=BATCH, lr=1e-4, log_every=STEPS + 1,
                         group_by_length=group_by_length)
    train(model, data, collate, config, loss_fn=timed_loss, progress=False)
    seconds = times[STEPS] - times[WARMUP]
    return {"steps_per_second": (STEPS - WARMUP) / seconds,
            "gflops": sum(flops[WARMUP:STEPS]) / seconds / 1e9,
            "padding": 1 - sum(real[WARMUP:STEPS]) / sum(tokens[WARMUP:STEPS])}


def one(kind: str, impl: str) -> dict:
    """One measurement (run in its own process): steps/s and peak memory."""
    from datasets import Dataset

    from . import world
    from .models import load_model
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp()
    try:
        if kind in ("sft", "sft_grouped"):
            grouped = kind == "sft_grouped"
            model, tok = load_model("base")
            rows = list(world.make_instruction_data()["train"])[:BATCH * STEPS]
            if impl == "course":
                from .sft import collate_sft, tokenize_rows
                from .training import causal_lm_loss
                data = tokenize_rows(tok, rows)
                res = _course_steps_per_second(model, data, lambda b: collate_sft(b, tok.pad_token_id), causal_lm_loss,
                                               group_by_length=grouped)
            else:
                from trl import SFTConfig, SFTTrainer
                clock = _Clock()
                msgs = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
                        for r in rows]
                trainer = SFTTrainer(model=model, processing_class=tok, train_dataset=Dataset.from_dict({"messages": msgs}),
                                     args=SFTConfig(output_dir=tmp, assistant_only_loss=True, max_length=256, packing=False,
                                                    padding_free=False, dataset_num_proc=None,
                                                    train_sampling_strategy="group_by_length" if grouped else "random",
                                                    **TRL_ARGS),
                                     callbacks=[clock.callback])
                trainer.train()
                res = {"steps_per_second": clock.steps_per_second()}
        elif kind in ("rm", "dpo"):
            rows = _pairs(BATCH * STEPS // 2 + 50)[:BATCH * STEPS]
            conv = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                       "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                       "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
            if kind == "rm":
                model, tok = load_model("sft", kind="classifier")
                if impl == "course":
                    from .reward_model import collate_preferences, reward_model_loss, tokenize_preferences
                    data = tokenize_preferences(tok, rows)
                    res = _course_steps_per_second(model, data, lambda b: collate_preferences(b, tok.pad_token_id),
                                                   reward_model_loss)
                else:
                    from trl import RewardConfig, RewardTrainer
                    clock = _Clock()
                    trainer = RewardTrainer(model=model, processing_class=tok, train_dataset=conv,
                                            args=RewardConfig(output_dir=tmp, max_length=256, dataset_num_proc=None,
                                                              center_rewards_coefficient=None, **TRL_ARGS),
                                            callbacks=[clock.callback])
                    trainer.train()
                    res = {"steps_per_second": clock.steps_per_second()}
            else:
                model, tok = load_model("sft")
                ref, _ = load_model("sft")
                if impl == "course":
                    from .dpo import add_reference_logps, collate_pairs, dpo_batch_loss, tokenize_pairs
                    data = add_reference_logps(ref, tokenize_pairs(tok, rows), tok.pad_token_id)
                    res = _course_steps_per_second(model, data, lambda b: collate_pairs(b, tok.pad_token_id),
                                                   lambda m, b: dpo_batch_loss(m, b, 0.5))
                else:
                    from trl import DPOConfig, DPOTrainer
                    clock = _Clock()
                    trainer = DPOTrainer(model=model, ref_model=ref, processing_class=tok, train_dataset=conv,
                                         args=DPOConfig(output_dir=tmp, beta=0.5, max_length=256, dataset_num_proc=None,
                                                        precompute_ref_log_probs=True, **TRL_ARGS),
                                         callbacks=[clock.callback])
                    trainer.train()
                    res = {"steps_per_second": clock.steps_per_second()}
        else:
            raise ValueError(f"unknown benchmark {kind!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"kind": kind, "impl": impl, **res, "peak_mb": peak_mb()}


def _in_subprocess(kind: str, impl: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "course_utils.bench", "--one", kind, impl],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def pretrain_throughput(steps: int = 30) -> dict:
    """GFLOP/s of pretraining steps on the tiny model against the fp32 matmul GFLOP/s."""
    from . import world
    from .models import load_tokenizer, new_tiny_model
    from .pretrain import BLOCK_SIZE, collate_blocks, flops_per_token, matmul_gflops, pack_documents
    from .training import TrainConfig, train
    peak = matmul_gflops()
    tok = load_tokenizer("base")
    blocks = pack_documents(tok, world.make_corpus(3000, seed=0))
    model = new_tiny_model(tok)
    res = train(model, blocks, collate_blocks, TrainConfig(steps=steps, batch_size=32, lr=1e-3, log_every=steps),
                progress=False)
    gflops = res.examples_seen * BLOCK_SIZE / res.seconds * flops_per_token(model) / 1e9
    return {"pretrain_gflops": gflops, "matmul_gflops": peak, "pretrain_peak_fraction": gflops / peak}


def chapter_minutes() -> dict[str, float]:
    """Execution time of every chapter notebook, run on copies in a temporary folder."""
    from .notebooks import execute
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "chapters", Path(tmp) / "chapters", ignore=shutil.ignore_patterns("data"))
        for nb in sorted((Path(tmp) / "chapters").glob("*.ipynb")):
            times[nb.stem] = execute(nb) / 60
            print(f"  {nb.stem}: {times[nb.stem]:.1f} min", flush=True)
    return times


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", nargs=2, metavar=("KIND", "IMPL"), help=argparse.SUPPRESS)
    ap.add_argument("--skip-chapters", action="store_true", help="leave out the chapter timings")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(*args.one)))
        return {}
    rows, summary, course_runs = [], {}, {}
    for kind, name in (("sft", "SFT"), ("sft_grouped", "SFT (length-grouped)"),
                       ("rm", "reward model"), ("dpo", "DPO")):
        course, trl = _in_subprocess(kind, "course"), _in_subprocess(kind, "trl")
        course_runs[name] = course
        ratio = course["steps_per_second"] / trl["steps_per_second"]
        summary[f"{kind}_vs_trl"] = round(ratio, 2)
        rows.append(f"| {name} step, batch {BATCH} | {course['steps_per_second']:.2f} steps/s, {course['peak_mb']:.0f} MB "
                    f"| {trl['steps_per_second']:.2f} steps/s, {trl['peak_mb']:.0f} MB | {ratio:.2f}x |")
        print(rows[-1], flush=True)
    summary["sft_grouping_gain"] = round(course_runs["SFT (length-grouped)"]["steps_per_second"]
                                         / course_runs["SFT"]["steps_per_second"], 2)
    pre = pretrain_throughput()
    summary["pretrain_peak_fraction"] = round(pre["pretrain_peak_fraction"], 3)
    rows.append(f"| pretraining | {pre['pretrain_gflops']:.0f} GFLOP/s | fp32 matmul {pre['matmul_gflops']:.0f} GFLOP/s "
                f"| {pre['pretrain_peak_fraction']:.0%} of peak |")
    # How much of the machine a course step already uses: a bound on what any loop could gain.
    for name, run in course_runs.items():
        fraction = run["gflops"] / pre["matmul_gflops"]
        rows.append(f"| course {name} step: compute | {run['gflops']:.0f} GFLOP/s, {run['padding']:.0%} padding "
                    f"| fp32 matmul {pre['matmul_gflops']:.0f} GFLOP/s | {fraction:.0%} of peak |")
    if not args.skip_chapters:
        times = chapter_minutes()
        summary["course_minutes"] = round(sum(times.values()), 1)
        for name, m in times.items():
            rows.append(f"| chapter {name} | {m:.1f} min | | |")
        rows.append(f"| all chapters | {summary['course_minutes']:.1f} min | | |")
    print("\n| measurement | course | TRL / reference | ratio |\n|---|---|---|---|")
    print("\n".join(rows))
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
