"""Benchmarks, measured side by side in one run: ``python -m course_tools.bench`` (``make bench``).

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
3. Sampling tokens/s of the course sampler (:func:`course_utils.sampling.sample_tokens`) against
   ``model.generate``, called as ``sample_rollout`` calls it (temperature 1, no top-k or top-p),
   on the shipped SFT model, the same left-padded batch of 64 prompts and the same
   ``max_new_tokens``: the reasoning task's test prompts (``make_reasoning_data(seed=0,
   n_train=200)["test"]``, ``answer_budget(6)`` = 77 tokens) and PPO's rollout prompts
   (``world.open_prompts(seed=1)``, 24 tokens). New tokens count up to and including each row's
   first EOS. Each round times ``SAMPLING_REPEATS`` batches per side, alternating call by call
   (course first in even rounds), after one warm-up call each. Also printed: the new tokens per
   row, the share of the course sampler's time that its prefill alone takes (the forward pass over
   the prompts and one draw: ``max_new_tokens=1``), and its compute at 2 N FLOPs per prompt or
   new token (N parameters, the tied head once; the prefill computes the head for the last prompt
   token only, so this count is a little high) against the fp32 matmul GFLOP/s measured in the round.
4. The execution time of every chapter notebook (copies in a temporary folder).

``--sampling-model NAME_OR_FOLDER`` samples from another model: the shipped SFT model answers
the reasoning prompts in about 2 tokens, so that setting mostly times the prompts' forward
pass; a model fine-tuned on the task (:func:`course_utils.reasoning.evaluation.sft_reasoning`,
saved with ``save_pretrained``) writes 30 to 70 tokens of steps, as in RL on it.
``--only training|sampling|chapters`` runs one section alone (``--only sampling --rounds 5``
takes about 20 seconds here); ``--skip-chapters`` leaves the chapters out.

Every measurement is repeated in ``--rounds`` rounds (default 11), interleaved: each round runs
the course and TRL one after the other, in alternating order (course first in even rounds, TRL
first in odd ones; the kinds run in reverse order in odd rounds, so the grouped and random SFT
runs of the grouping gain alternate too), then a pretraining round with the matmul peak
measured just before and just after it, then the sampling round. A load that starts mid-run then lands on both sides of a ratio instead of one. Each
ratio is reported as the median of its per-round ratios with their min–max; a ratio whose
rounds spread by more than ``UNSTABLE_SPREAD`` (20%) of the median is flagged as unstable and
printed as such, never as a result. The spread leaves out the highest and the lowest round
(with 5 rounds or more): ``(second highest - second lowest) / median``. A min–max spread
grows with the number of rounds, so with it a longer run would be flagged more often, and
one round disturbed by a passing job would void ten that agree. Chapter times run in
``--chapter-rounds`` rounds (default 2) and are flagged the same way.

Prints a markdown table and, as its last line, one JSON object: ``ratios`` (for ``sft_vs_trl``,
``sft_grouped_vs_trl``, ``rm_vs_trl``, ``dpo_vs_trl`` (course steps/s over TRL's),
``sft_grouping_gain`` (the course's SFT steps/s with length-grouped batches over random ones),
``pretrain_peak_fraction``, ``sampling_reasoning_vs_generate`` and ``sampling_ppo_vs_generate``
(the course sampler's tokens/s over ``generate``'s), ``sampling_reasoning_peak_fraction`` and
``sampling_ppo_peak_fraction``: ``median``, ``min``, ``max``, ``spread``, ``stable``),
``unstable`` (the names of the flagged ones) and, with chapters, ``course_minutes``. Nothing
here is asserted: timings depend on the machine.

Does a result hold beyond its own run? ``--save run1.json`` keeps a run's summary; a later run
with ``--compare run1.json`` prints, for every ratio, whether each run's median lies inside the
other run's min–max (:func:`compare_runs`). A ratio whose medians fall outside each other's
ranges has drifted between the runs, and its range understates the machine's variation.

How often should that happen by chance alone? If rounds were independent draws from one
distribution, the median of ``m`` new rounds falls outside the min–max of ``n`` earlier ones with
the probability :func:`outside_range_probability` computes exactly (by counting orderings): 7.0%
for 7 rounds against 7, 1.2% for 11 against 11. Checked both ways for six ratios, that is up to
a 14% chance per ratio with 7 rounds, so two clean runs of 7 rounds disagree on at least one of
six ratios more often than not; with 11 rounds, at most 2.5% per ratio and 14% for any of six.
This is why the default is 11 rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BATCH, STEPS, WARMUP = 16, 80, 5
UNSTABLE_SPREAD = 0.20
TRL_ARGS = dict(bf16=False, gradient_checkpointing=False, use_cpu=True, report_to=[], disable_tqdm=True,
                logging_strategy="no", save_strategy="no", learning_rate=1e-4,
                per_device_train_batch_size=BATCH, dataloader_num_workers=0, seed=0)


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pairs(n: int) -> list[dict]:
    from course_utils.models import load_model
    from course_utils.alignment.reward_model import preference_data
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
    the padded batches, attention over the padded length), the share of padding, and the fp32
    matmul GFLOP/s measured in this process just before the steps (the peak they are set against).
    """
    from course_utils.pretrain import flops_per_token, matmul_gflops
    peak = matmul_gflops(seconds=1.0)
    from course_utils.training import TrainConfig, train
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
            "padding": 1 - sum(real[WARMUP:STEPS]) / sum(tokens[WARMUP:STEPS]), "matmul_gflops": peak}


def one(kind: str, impl: str) -> dict:
    """One measurement (run in its own process): steps/s and peak memory."""
    from datasets import Dataset

    from course_utils import world
    from course_utils.models import load_model
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp()
    try:
        if kind in ("sft", "sft_grouped"):
            grouped = kind == "sft_grouped"
            model, tok = load_model("base")
            rows = list(world.make_instruction_data()["train"])[:BATCH * STEPS]
            if impl == "course":
                from course_utils.sft import collate_sft, tokenize_rows
                from course_utils.training import causal_lm_loss
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
                                                    max_steps=STEPS, **TRL_ARGS),
                                     callbacks=[clock.callback])
                trainer.train()
                res = {"steps_per_second": clock.steps_per_second()}
        elif kind in ("rm", "dpo"):
            rows = _pairs(370)   # sampled once per process; the loops cycle over them
            conv = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                       "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                       "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
            if kind == "rm":
                model, tok = load_model("sft", kind="classifier")
                if impl == "course":
                    from course_utils.alignment.reward_model import collate_preferences, reward_model_loss, tokenize_preferences
                    data = tokenize_preferences(tok, rows)
                    res = _course_steps_per_second(model, data, lambda b: collate_preferences(b, tok.pad_token_id),
                                                   reward_model_loss)
                else:
                    from trl import RewardConfig, RewardTrainer
                    clock = _Clock()
                    trainer = RewardTrainer(model=model, processing_class=tok, train_dataset=conv,
                                            args=RewardConfig(output_dir=tmp, max_length=256, dataset_num_proc=None,
                                                              center_rewards_coefficient=None, max_steps=STEPS, **TRL_ARGS),
                                            callbacks=[clock.callback])
                    trainer.train()
                    res = {"steps_per_second": clock.steps_per_second()}
            else:
                model, tok = load_model("sft")
                ref, _ = load_model("sft")
                if impl == "course":
                    from course_utils.alignment.dpo import add_reference_logps, collate_pairs, dpo_batch_loss, tokenize_pairs
                    data = add_reference_logps(ref, tokenize_pairs(tok, rows), tok.pad_token_id)
                    res = _course_steps_per_second(model, data, lambda b: collate_pairs(b, tok.pad_token_id),
                                                   lambda m, b: dpo_batch_loss(m, b, 0.5))
                else:
                    from trl import DPOConfig, DPOTrainer
                    clock = _Clock()
                    trainer = DPOTrainer(model=model, ref_model=ref, processing_class=tok, train_dataset=conv,
                                         args=DPOConfig(output_dir=tmp, beta=0.5, max_length=256, dataset_num_proc=None,
                                                        precompute_ref_log_probs=True, max_steps=STEPS, **TRL_ARGS),
                                         callbacks=[clock.callback])
                    trainer.train()
                    res = {"steps_per_second": clock.steps_per_second()}
        else:
            raise ValueError(f"unknown benchmark {kind!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"kind": kind, "impl": impl, **res, "peak_mb": peak_mb()}


def _in_subprocess(kind: str, impl: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "course_tools.bench", "--one", kind, impl, "--steps", str(STEPS)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def pretrain_throughput(steps: int = 30) -> dict:
    """GFLOP/s of pretraining steps on the tiny model against the fp32 matmul GFLOP/s.

    The peak is measured just before and just after the steps; the fraction uses their mean."""
    from course_utils import world
    from course_utils.models import load_tokenizer, new_tiny_model
    from course_utils.pretrain import BLOCK_SIZE, collate_blocks, flops_per_token, matmul_gflops, pack_documents
    from course_utils.training import TrainConfig, train
    tok = load_tokenizer("base")
    blocks = pack_documents(tok, world.make_corpus(3000, seed=0))
    model = new_tiny_model(tok)
    before = matmul_gflops(seconds=1.0)
    res = train(model, blocks, collate_blocks, TrainConfig(steps=steps, batch_size=32, lr=1e-3, log_every=steps),
                progress=False)
    after = matmul_gflops(seconds=1.0)
    gflops = res.examples_seen * BLOCK_SIZE / res.seconds * flops_per_token(model) / 1e9
    peak = (before + after) / 2
    return {"pretrain_gflops": gflops, "matmul_gflops": peak, "pretrain_peak_fraction": gflops / peak}


def spread_summary(values: list[float]) -> dict:
    """Median, min, max and spread of per-round values; ``stable`` if the spread is at most
    ``UNSTABLE_SPREAD``. The spread is ``(second highest - second lowest) / median`` with 5
    values or more (one stray round at either end does not count), ``(max - min) / median``
    with fewer."""
    med = statistics.median(values)
    v = sorted(values)
    spread = ((v[-2] - v[1]) if len(v) >= 5 else (v[-1] - v[0])) / med
    return {"median": round(med, 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "spread": round(spread, 3), "stable": spread <= UNSTABLE_SPREAD, "rounds": [round(v, 3) for v in values]}


def outside_range_probability(n: int, m: int) -> float:
    """P(the median of ``m`` new draws lies outside the min–max of ``n`` earlier draws), for
    independent draws from one continuous distribution (``m`` odd).

    The median is the k-th smallest new draw, k = (m + 1) / 2. It lies below every earlier draw
    exactly when the k smallest of all n + m draws are new ones; all C(n + m, m) orderings of
    new and old are equally likely, and C(n + m - k, m - k) of them start with k new draws. By
    symmetry the same holds above the maximum, so the answer is 2 C(n+m-k, m-k) / C(n+m, m).
    """
    from math import comb
    if m % 2 == 0 or n < 1:
        raise ValueError(f"need an odd number of new rounds and at least one earlier round, got m={m}, n={n}")
    k = (m + 1) // 2
    return 2 * comb(n + m - k, m - k) / comb(n + m, m)


def _fmt(values: list[float], unit: str = "", digits: int = 2) -> str:
    s = spread_summary(values)
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def _ratio_cell(s: dict, percent: bool = False) -> str:
    """A ratio as ``median (min–max)``, or a flag with no result where the rounds disagree."""
    def f(v: float) -> str:
        return f"{v:.0%}" if percent else f"{v:.2f}"
    if not s["stable"]:
        return f"unstable: rounds spread {s['spread']:.0%} (all rounds {f(s['min'])}–{f(s['max'])}), no result"
    return f"{f(s['median'])}{'' if percent else 'x'} ({f(s['min'])}–{f(s['max'])})"


def chapter_minutes(rounds: int = 2) -> dict[str, list[float]]:
    """Execution time of every chapter notebook in each of ``rounds`` rounds, on copies in a temporary folder."""
    from .notebooks import execute
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "chapters", Path(tmp) / "chapters", ignore=shutil.ignore_patterns("data"))
        for r in range(rounds):
            for nb in sorted((Path(tmp) / "chapters").glob("*.ipynb")):
                times.setdefault(nb.stem, []).append(execute(nb) / 60)
                print(f"  round {r + 1}: {nb.stem}: {times[nb.stem][-1]:.1f} min", flush=True)
    return times


def compare_runs(new: dict, old: dict) -> list[dict]:
    """For every ratio in both summaries: does each run's median lie in the other's min–max?

    ``holds`` is true when both medians lie inside the other run's range and both runs were
    stable; a ratio flagged unstable in either run never holds.
    """
    rows = []
    for name in sorted(set(new["ratios"]) & set(old["ratios"])):
        a, b = new["ratios"][name], old["ratios"][name]
        new_in_old = b["min"] <= a["median"] <= b["max"]
        old_in_new = a["min"] <= b["median"] <= a["max"]
        rows.append({"ratio": name, "new": a["median"], "new_range": (a["min"], a["max"]),
                     "old": b["median"], "old_range": (b["min"], b["max"]),
                     "holds": bool(new_in_old and old_in_new and a["stable"] and b["stable"])})
    return rows


KINDS = (("sft", "SFT"), ("sft_grouped", "SFT (length-grouped)"), ("rm", "reward model"), ("dpo", "DPO"))
#: The sections of a run, each runnable alone with ``--only``.
SECTIONS = ("training", "sampling", "chapters")


#: Sampling workloads: (name, what it is). Each is 64 prompts sampled at temperature 1 by the shipped SFT model.
SAMPLING_SETTINGS = (("reasoning", "reasoning test prompts"), ("ppo", "PPO rollout prompts"))
SAMPLING_BATCH, SAMPLING_REPEATS = 64, 5
#: The model that samples (``--sampling-model``): the shipped SFT model answers the reasoning
#: prompts in a few tokens, a model fine-tuned on the task (``sft_reasoning``) writes its steps.
SAMPLING_MODEL = "sft"
_SAMPLING: dict = {}


def _sampling_setup() -> dict:
    """The shipped SFT model and each setting's left-padded batch and ``max_new_tokens`` (loaded once per process)."""
    if not _SAMPLING:
        from course_utils import world
        from course_utils.models import count_parameters, load_model
        from course_utils.reasoning.evaluation import answer_budget
        from course_utils.reasoning.tasks import make_reasoning_data
        from course_utils.tokenizer import chat_prompt
        model, tok = load_model(SAMPLING_MODEL)
        prompts = {"reasoning": (list(make_reasoning_data(seed=0, n_train=200)["test"]["prompt"])[:SAMPLING_BATCH],
                                 answer_budget(6)),
                   "ppo": (list(world.open_prompts(seed=1, n=SAMPLING_BATCH)["prompt"]), 24)}   # RLHFConfig's 24 tokens
        tok.padding_side = "left"
        batches = {name: (tok([chat_prompt(tok, p) for p in ps], return_tensors="pt", padding=True,
                              add_special_tokens=False), n) for name, (ps, n) in prompts.items()}
        _SAMPLING.update(model=model, tok=tok, batches=batches, n_params=count_parameters(model))
    return _SAMPLING


def _sample_once(impl: str, setting: str, seed: int) -> tuple[float, int, int]:
    """One batch sampled by ``impl`` ("course" or "generate"): seconds, new tokens, prompt tokens.

    New tokens count each row up to and including its first EOS (all of them without one)."""
    from course_utils.device import autocast
    from course_utils.sampling import sample_tokens
    st = _sampling_setup()
    model, tok = st["model"], st["tok"]
    enc, max_new = st["batches"][setting]
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    if impl == "course":
        new = sample_tokens(model, enc["input_ids"], enc["attention_mask"], max_new, tok.eos_token_id,
                            tok.pad_token_id, temperature=1.0)
    else:   # exactly as sample_rollout calls it
        with torch.no_grad(), autocast(model.device):
            seq = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = seq[:, enc["input_ids"].shape[1]:]
    seconds = time.perf_counter() - t0
    is_eos = (new == tok.eos_token_id).long()
    counted = int(((is_eos.cumsum(1) - is_eos) == 0).sum())
    return seconds, counted, int(enc["attention_mask"].sum())


def sampling_round(r: int) -> dict:
    """Round ``r`` of the sampling benchmark: tokens/s of the course sampler and of ``model.generate``.

    For each setting, each implementation samples ``SAMPLING_REPEATS`` batches (the same seeds
    for both, though not the same samples: the two draw from their random streams differently), alternating course and generate call by call, the course first in even rounds.
    Also the course sampler's prefill alone (``max_new_tokens=1``), and the fp32 matmul GFLOP/s
    just before: the course sampler's compute, at 2 N FLOPs per token processed (prompt and new
    tokens; N parameters, the tied output head counted once), is set against it.
    """
    from course_utils.pretrain import matmul_gflops
    from course_utils.sampling import sample_tokens
    st = _sampling_setup()
    if not st.get("warm"):
        for setting, _ in SAMPLING_SETTINGS:   # first calls allocate; keep them out of the timings
            _sample_once("course", setting, 0), _sample_once("generate", setting, 0)
        st["warm"] = True
    peak = matmul_gflops(seconds=1.0)
    out: dict = {"matmul_gflops": peak}
    order = ("course", "generate") if r % 2 == 0 else ("generate", "course")
    for setting, _ in SAMPLING_SETTINGS:
        tot = {impl: [0.0, 0, 0] for impl in order}
        for i in range(SAMPLING_REPEATS):
            for impl in order:
                sec, new, prompt = _sample_once(impl, setting, seed=1000 * r + i)
                tot[impl][0] += sec
                tot[impl][1] += new
                tot[impl][2] += prompt
        enc, tok = st["batches"][setting][0], st["tok"]
        t0 = time.perf_counter()   # the sampler's prefill: the prompts' forward pass and one draw
        sample_tokens(st["model"], enc["input_ids"], enc["attention_mask"], 1, tok.eos_token_id, tok.pad_token_id)
        prefill = time.perf_counter() - t0
        c, g = tot["course"], tot["generate"]
        out[setting] = {"course_tps": c[1] / c[0], "generate_tps": g[1] / g[0],
                        "ratio": (c[1] / c[0]) / (g[1] / g[0]),
                        "new_per_row": c[1] / (SAMPLING_REPEATS * SAMPLING_BATCH),
                        "prefill_share": prefill / (c[0] / SAMPLING_REPEATS),
                        "gflops": 2 * st["n_params"] * (c[1] + c[2]) / c[0] / 1e9, "matmul_gflops": peak}
    return out


def class_store_throughput(participants: int = 30, pairs_each: int = 40) -> dict:
    """Sustained labels/s of the class server with ``participants`` simulated labelers at once
    (clients on this machine too, each journalling to disk), and the kill test's audit."""
    from course_tools.classroom.simulate import simulate_class
    return {"sustained": simulate_class(participants, pairs_each, kill=False),
            "killed_midway": simulate_class(participants, pairs_each, kill=True)}


def _training_rows(runs: dict[str, dict[str, list[dict]]], pre: list[dict], ratios: dict, rows: list[str]) -> None:
    """Table rows and ratios of the training section: the course's loops against TRL's, pretraining."""
    for kind, name in KINDS:
        course, trl = runs[kind]["course"], runs[kind]["trl"]
        per_round = [c["steps_per_second"] / t["steps_per_second"] for c, t in zip(course, trl)]
        ratios[f"{kind}_vs_trl"] = s = spread_summary(per_round)
        rows.append(f"| {name} step, batch {BATCH} | {_fmt([c['steps_per_second'] for c in course], ' steps/s')}, "
                    f"{max(c['peak_mb'] for c in course):.0f} MB | {_fmt([t['steps_per_second'] for t in trl], ' steps/s')}, "
                    f"{max(t['peak_mb'] for t in trl):.0f} MB | {_ratio_cell(s)} |")
    gain = [g["steps_per_second"] / c["steps_per_second"]
            for g, c in zip(runs["sft_grouped"]["course"], runs["sft"]["course"])]
    ratios["sft_grouping_gain"] = s = spread_summary(gain)
    rows.append(f"| course SFT, length-grouped over random batches | | | {_ratio_cell(s)} |")
    ratios["pretrain_peak_fraction"] = s = spread_summary([p["pretrain_peak_fraction"] for p in pre])
    rows.append(f"| pretraining | {_fmt([p['pretrain_gflops'] for p in pre], ' GFLOP/s', 0)} "
                f"| fp32 matmul {_fmt([p['matmul_gflops'] for p in pre], ' GFLOP/s', 0)} | {_ratio_cell(s, percent=True)} of peak |")
    # How much of the machine a course step already uses: a bound on what any loop could gain.
    for kind, name in KINDS:
        course = runs[kind]["course"]
        fractions = [c["gflops"] / c["matmul_gflops"] for c in course]
        rows.append(f"| course {name} step: compute | {_fmt([c['gflops'] for c in course], ' GFLOP/s', 0)}, "
                    f"{statistics.median(c['padding'] for c in course):.0%} padding "
                    f"| fp32 matmul {_fmt([c['matmul_gflops'] for c in course], ' GFLOP/s', 0)} "
                    f"| {_ratio_cell(spread_summary(fractions), percent=True)} of peak |")


def _sampling_rows(samp: list[dict], ratios: dict, rows: list[str]) -> None:
    """Table rows and ratios of the sampling section: the course sampler against ``model.generate``."""
    st = _sampling_setup()
    for setting, desc in SAMPLING_SETTINGS:
        per = [s[setting] for s in samp]
        max_new = st["batches"][setting][1]
        ratios[f"sampling_{setting}_vs_generate"] = s = spread_summary([p["ratio"] for p in per])
        rows.append(f"| sampling, {desc}: batch {SAMPLING_BATCH}, at most {max_new} new tokens, T = 1 "
                    f"({statistics.median(p['new_per_row'] for p in per):.1f} per row) "
                    f"| {_fmt([p['course_tps'] for p in per], ' tokens/s', 0)} "
                    f"| generate {_fmt([p['generate_tps'] for p in per], ' tokens/s', 0)} | {_ratio_cell(s)} |")
        ratios[f"sampling_{setting}_peak_fraction"] = s = spread_summary([p["gflops"] / p["matmul_gflops"] for p in per])
        rows.append(f"| course sampler, {desc}: compute at 2N FLOPs per prompt or new token "
                    f"| {_fmt([p['gflops'] for p in per], ' GFLOP/s', 0)}, prefill alone "
                    f"{statistics.median(p['prefill_share'] for p in per):.0%} of its time "
                    f"| fp32 matmul {_fmt([p['matmul_gflops'] for p in per], ' GFLOP/s', 0)} "
                    f"| {_ratio_cell(s, percent=True)} of peak |")


def main(argv: list[str] | None = None) -> dict:
    global STEPS, SAMPLING_MODEL
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", nargs=2, metavar=("KIND", "IMPL"), help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=11, help="interleaved rounds per ratio (default 11)")
    ap.add_argument("--steps", type=int, default=STEPS, help=f"training steps per measurement (default {STEPS})")
    ap.add_argument("--chapter-rounds", type=int, default=2, help="rounds of chapter timings (default 2)")
    ap.add_argument("--skip-chapters", action="store_true", help="leave out the chapter timings")
    ap.add_argument("--save", type=Path, help="write this run's JSON summary to this file")
    ap.add_argument("--compare", type=Path, help="a summary saved by --save: say which ratios hold in both runs")
    ap.add_argument("--class-store", action="store_true", help="also the class server's labels/s (30 participants)")
    ap.add_argument("--sampling-model", default="sft", metavar="NAME_OR_FOLDER",
                    help="the model the sampling section samples from (default: the shipped sft model)")
    ap.add_argument("--only", choices=SECTIONS, help="run one section alone: " + ", ".join(SECTIONS))
    args = ap.parse_args(argv)
    if args.steps <= WARMUP + 1:
        ap.error(f"--steps must exceed the {WARMUP} warm-up steps by at least 2")
    STEPS = args.steps
    SAMPLING_MODEL = args.sampling_model
    if args.one:
        print(json.dumps(one(*args.one)))
        return {}
    sections = set(SECTIONS) if args.only is None else {args.only}
    if args.skip_chapters:
        sections.discard("chapters")
    runs: dict[str, dict[str, list[dict]]] = {kind: {"course": [], "trl": []} for kind, _ in KINDS}
    pre: list[dict] = []
    samp: list[dict] = []
    for r in range(args.rounds if sections - {"chapters"} else 0):
        if "training" in sections:
            # Kinds run in reverse order in odd rounds (ABBA), so that no ratio between two kinds,
            # such as the grouping gain, leans on which of the two always ran first.
            for kind, name in (KINDS if r % 2 == 0 else KINDS[::-1]):
                for impl in (("course", "trl") if r % 2 == 0 else ("trl", "course")):
                    runs[kind][impl].append(_in_subprocess(kind, impl))
            pre.append(pretrain_throughput())
        if "sampling" in sections:
            samp.append(sampling_round(r))
        print(f"  round {r + 1} of {args.rounds} done", flush=True)
    ratios: dict[str, dict] = {}
    rows: list[str] = []
    if "training" in sections:
        _training_rows(runs, pre, ratios, rows)
    if "sampling" in sections:
        _sampling_rows(samp, ratios, rows)
    summary: dict = {"ratios": ratios, "unstable": sorted(k for k, v in ratios.items() if not v["stable"])}
    if "chapters" in sections:
        times = chapter_minutes(args.chapter_rounds)
        totals = [sum(t[r] for t in times.values()) for r in range(args.chapter_rounds)]
        summary["course_minutes"] = spread_summary(totals)
        for name, m in times.items():
            flag = "" if spread_summary(m)["stable"] else " unstable"
            rows.append(f"| chapter {name} | {_fmt(m, ' min', 1)}{flag} | | |")
        flag = "" if summary["course_minutes"]["stable"] else " unstable"
        rows.append(f"| all chapters | {_fmt(totals, ' min', 1)}{flag} | | |")
    print(f"\n{args.rounds} interleaved rounds; each cell: median (min–max over rounds); a ratio whose rounds spread "
          f"by more than {UNSTABLE_SPREAD:.0%} of its median (highest and lowest round left out) is marked unstable.")
    print("\n| measurement | course | TRL / reference | ratio |\n|---|---|---|---|")
    print("\n".join(rows))
    if args.compare:
        old = json.loads(args.compare.read_text())
        rows = compare_runs(summary, old)
        print(f"\nAgainst {args.compare.name}: does each run's median lie in the other's range?")
        n_old = len(next(iter(old["ratios"].values()))["rounds"])
        if args.rounds % 2 and n_old % 2:
            p = outside_range_probability(n_old, args.rounds) + outside_range_probability(args.rounds, n_old)
            print(f"(With independent rounds, a ratio fails this by chance alone with probability at most {p:.1%}.)")
        print("| ratio | this run | that run | holds |\n|---|---|---|---|")
        for r in rows:
            print(f"| {r['ratio']} | {r['new']:.3f} ({r['new_range'][0]:.3f}–{r['new_range'][1]:.3f}) "
                  f"| {r['old']:.3f} ({r['old_range'][0]:.3f}–{r['old_range'][1]:.3f}) | {'yes' if r['holds'] else 'NO'} |")
        summary["compare"] = {r["ratio"]: r["holds"] for r in rows}
    if args.class_store:
        summary["class_store"] = c = class_store_throughput()
        print(f"\nclass store, {c['sustained']['participants']} participants: {c['sustained']['labels_per_s']:.0f} labels/s "
              f"sustained; server killed midway: {c['killed_midway']['lost']} lost, {c['killed_midway']['duplicated']} duplicated")
    if args.save:
        tmp = args.save.with_suffix(args.save.suffix + ".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(args.save)
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
