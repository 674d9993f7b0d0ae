"""The real-model track: the course's SFT, reward model, DPO and PPO on a hub model and public data.

``python -m course_utils.pipeline --model NAME_OR_FOLDER --sft-data SFT --preference-data PREFS
--stages sft,dpo`` (or ``sft,rm,dpo``, ``sft,rm,ppo``) runs the stages here instead of the
tiny-world ones. They use the same code as the chapters (:func:`sft.run_sft`,
:func:`reward_model.train_reward_model`, :func:`dpo.run_dpo`, :func:`rlhf.train_ppo_rlhf` with
``gold=None``; one training loop, one PPO core) on any chat template (:func:`sft.assistant_mask`),
read public data schemas (:mod:`hub_data`), and run on :func:`device.pick_device`'s device.

There is no gold reward outside the tiny world, so every stage is scored without one, on
rows held out of training (``--heldout-fraction``, a seeded split):

    sft  ``sft_heldout_loss_before`` / ``_after``: mean token cross-entropy (nats) of the
         held-out answers before and after training.
    rm   ``rm_heldout_accuracy``: share of held-out pairs where r(x, chosen) > r(x, rejected).
    dpo  ``dpo_heldout_accuracy``: share of held-out pairs whose implicit reward
         ``beta * (log pi - log pi_ref)`` ranks the chosen answer first, and the mean margin
         ``dpo_heldout_margin`` (nats times beta); ``dpo_ref_accuracy``: the same ranking by
         the starting model's own log-probabilities (``log pi_ref(chosen) > log pi_ref(rejected)``).
    ppo  PPO with a KL penalty (``--ppo-kl-coef``) against the reward model of the ``rm`` stage
         (or ``--reward-model``), on the single-turn prompts of the training pairs, rollouts of
         ``--batch-size`` answers. On held-out prompts (at most ``--eval-prompts``, 2
         temperature-1 samples each, the same seed before and after):
         ``ppo_rm_score_before`` / ``_after`` and ``ppo_rm_gain`` (after minus before): the
         reward model's mean score of the policy's samples, the quantity PPO maximised, so a
         gain shows that the optimisation worked, not that the answers got better (chapter 12);
         ``ppo_kl``: KL(policy || starting model) in nats per answer, the exact KL of each
         position's next-token distribution summed along the answer; ``ppo_win_rate``: share of
         held-out prompts where the reward model scores the policy's greedy answer above the
         starting model's (ties count half).

Checkpoints go to ``--out/sft``, ``--out/rm``, ``--out/dpo``, ``--out/ppo``; ``dpo``, ``rm`` and
``ppo`` start from the SFT checkpoint of the same command when there is one, else from ``--model``.

A hub id given to ``--model``, ``--sft-data`` or ``--preference-data`` is read from the local
Hugging Face cache; ``--download`` allows downloading what is not there (:mod:`course_utils.hub`).
Before any stage runs, :func:`check_sources` resolves ``--model`` and ends the command with
one sentence if it is not available.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from course_utils.device import autocast, describe, pick_device
from course_utils.hub import hub_offline
from course_utils.real.hub_data import DataFormatError, load_preference_rows, load_sft_rows, split_rows
from course_utils.models import ModelNotFoundError, generate, load_model, load_tokenizer, resolve
from course_utils.sft import collate_sft, tokenize_chat, tokenize_rows
from course_utils.training import TrainConfig, save_checkpoint


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The pipeline's real-model flags."""
    g = ap.add_argument_group("real model (course_utils.real.real_model)")
    g.add_argument("--model", default=None,
                   help="hub id or local folder: run the stages sft, rm, dpo, ppo on this model instead of the tiny world")
    g.add_argument("--sft-data", default=None, help="SFT data: a .jsonl/.json file or a hub data set id")
    g.add_argument("--preference-data", default=None,
                   help="preference data (prompt/chosen/rejected or HH-RLHF style): a file or a hub id")
    g.add_argument("--data-split", default="train", help="split of hub data sets")
    g.add_argument("--download", action="store_true",
                   help="download --model and hub data sets that are not in the local Hugging Face cache "
                        "(default: the cache only, no network)")
    g.add_argument("--limit", type=int, default=None, help="use at most this many rows of each data set")
    g.add_argument("--heldout-fraction", type=float, default=0.1, help="rows held out for evaluation")
    g.add_argument("--max-length", type=int, default=1024, help="leave out examples longer than this (tokens)")
    g.add_argument("--batch-size", type=int, default=8, help="examples (or pairs) per step")
    g.add_argument("--sft-lr", type=float, default=2e-5, help="SFT learning rate on a real model")
    g.add_argument("--rm-steps", type=int, default=100, help="reward-model steps on a real model")
    g.add_argument("--rm-lr", type=float, default=1e-5)
    g.add_argument("--reward-model", default=None,
                   help="reward-model folder for ppo on a real model (default: the one the rm stage of this command trains)")
    g.add_argument("--ppo-lr", type=float, default=1e-6, help="PPO learning rate on a real model")
    g.add_argument("--ppo-kl-coef", type=float, default=0.1, help="PPO's KL penalty beta on a real model")
    g.add_argument("--max-new-tokens", type=int, default=128,
                   help="answer length of PPO's rollouts and of the evaluation samples on a real model")
    g.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")


# ---------------------------------------------------------------------------------
# What the track needs (chapter 16 stops in its first cell without it)
# ---------------------------------------------------------------------------------
class TrackUnavailable(RuntimeError):
    """The real-model track cannot run here; shown in a notebook as its one sentence, no traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        return [str(self)]


_MISSING: list[str] | None = None


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers (and ``HF_HUB_OFFLINE`` is not set)."""
    import socket
    if hub_offline():
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def requirement_sentence(missing: Sequence[str]) -> str:
    """The one sentence that says what the track needs and what is missing here."""
    return ("The real-model track needs a GPU (CUDA or Apple MPS) and a connection to the Hugging Face hub, "
            f"and here there is {' and '.join(missing)}, so its cells do not run "
            "(tests/test_real_model_pipeline.py runs the same code offline on a small local model).")


def check_track(need_gpu: bool = True) -> bool:
    """Check for a GPU and the hub; print one sentence saying what is there or what is missing."""
    global _MISSING
    missing = []
    if need_gpu and pick_device().type == "cpu":
        missing.append("no GPU")
    if not hub_reachable():
        missing.append("no connection to the hub")
    _MISSING = missing
    print(requirement_sentence(missing) if missing else f"Ready: {describe()}, and the hub answers.")
    return not missing


def require_track() -> None:
    """Raise :class:`TrackUnavailable` (one sentence, no traceback) unless :func:`check_track` passed."""
    if _MISSING is None:
        from contextlib import redirect_stdout
        from io import StringIO
        with redirect_stdout(StringIO()):
            check_track()
    if _MISSING:
        raise TrackUnavailable(requirement_sentence(_MISSING))


# ---------------------------------------------------------------------------------
# Gold-free measurements
# ---------------------------------------------------------------------------------
@torch.no_grad()
def heldout_loss(model, examples: Sequence[dict], pad_token_id: int, batch_size: int = 8) -> float:
    """Mean cross-entropy (nats per labelled token) of tokenized examples, over all their tokens."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = {k: v.to(model.device) for k, v in collate_sft(list(examples[i:i + batch_size]), pad_token_id).items()}
        with autocast(model.device):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels.flatten(),
                                                 ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((labels != -100).sum())
    return total / max(count, 1)


@torch.no_grad()
def implicit_reward_accuracy(policy, ref, tokenizer, rows: Sequence[Mapping], beta: float,
                             batch_size: int = 8) -> dict[str, float]:
    """DPO's implicit reward on preference rows: ranking accuracy, mean margin, and the reference's own ranking.

    ``margin = beta * [(log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x))]``.
    """
    from course_utils.alignment.dpo import collate_pairs, sequence_logps, tokenize_pairs
    data = tokenize_pairs(tokenizer, rows)
    margins, ref_right = [], []
    for model in (policy, ref):
        model.eval()
    for i in range(0, len(data), batch_size):
        batch = collate_pairs(data[i:i + batch_size], tokenizer.pad_token_id)
        lp = sequence_logps(policy, {k: v.to(policy.device) for k, v in batch.items()}).float().cpu()
        lr = sequence_logps(ref, {k: v.to(ref.device) for k, v in batch.items()}).float().cpu()
        b = lp.shape[0] // 2
        margins += (beta * ((lp[:b] - lr[:b]) - (lp[b:] - lr[b:]))).tolist()
        ref_right += (lr[:b] > lr[b:]).tolist()
    return {"accuracy": sum(m > 0 for m in margins) / len(margins), "margin": sum(margins) / len(margins),
            "ref_accuracy": sum(ref_right) / len(ref_right)}


def single_turn_prompts(rows: Sequence[Mapping]) -> list[str]:
    """The user message of every preference row whose prompt is one user message."""
    return [r["prompt"][0]["content"] for r in rows
            if len(r["prompt"]) == 1 and r["prompt"][0]["role"] == "user"]


@torch.no_grad()
def win_rate(policy_a, policy_b, reward_model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 128,
             seed: int = 0) -> float:
    """Share of prompts where the reward model scores ``policy_a``'s greedy answer above ``policy_b``'s (ties count half)."""
    from course_utils.alignment.reward_model import score
    a = generate(policy_a, tokenizer, list(prompts), max_new_tokens=max_new_tokens, seed=seed, batch_size=8)
    b = generate(policy_b, tokenizer, list(prompts), max_new_tokens=max_new_tokens, seed=seed, batch_size=8)
    ra, rb = score(reward_model, tokenizer, prompts, a), score(reward_model, tokenizer, prompts, b)
    return float(((ra > rb).float() + 0.5 * (ra == rb).float()).mean())


def fits(tokenizer, row: Mapping, max_length: int) -> bool:
    """Whether both answers of a preference row fit in ``max_length`` tokens with their prompt."""
    return all(len(tokenize_chat(tokenizer, row["prompt"], row[k])["input_ids"]) <= max_length
               for k in ("chosen", "rejected"))


# ---------------------------------------------------------------------------------
# Stages (the pipeline calls these with its parsed arguments)
# ---------------------------------------------------------------------------------
def _need(args: argparse.Namespace, flag: str, stage: str) -> str:
    value = getattr(args, flag.strip("-").replace("-", "_"))
    if not value:
        raise SystemExit(f"the stage {stage} on a real model needs {flag} (a .jsonl file or a hub data set id)")
    return value


def check_sources(args: argparse.Namespace) -> None:
    """Resolve ``--model`` once, before any stage: a hub id becomes its folder in the local cache.

    With ``--download`` a hub id that is not cached is downloaded first. A model that cannot be
    found ends the command with :class:`models.ModelNotFoundError`'s one sentence, no traceback.
    Later stages (and :func:`reward_model.train_reward_model`) then load a local folder.
    """
    try:
        args.model = resolve(args.model, download=args.download)
    except ModelNotFoundError as e:
        raise SystemExit(str(e)) from None


def _data(load: Callable, args: argparse.Namespace, flag: str, stage: str):
    """Rows from ``load`` (an SFT or preference loader); a missing or malformed data set ends the command in one sentence."""
    try:
        return load(_need(args, flag, stage), args.data_split, args.limit, download=args.download)
    except DataFormatError as e:
        raise SystemExit(str(e)) from None


def _config(args, steps: int, lr: float, desc: str) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=args.batch_size, lr=lr, warmup_steps=min(10, steps // 10),
                       log_every=max(1, min(10, steps // 5)), seed=args.seed, desc=desc)


def _start(args) -> str | Path:
    return args.produced.get("sft", args.model)


def _preferences(args, tok, stage: str):
    rows = _data(load_preference_rows, args, "--preference-data", stage)
    train, held = split_rows(rows, args.heldout_fraction, args.seed)
    train = [r for r in train if fits(tok, r, args.max_length)]
    held = [r for r in held if fits(tok, r, args.max_length)]
    if not train or not held:
        raise SystemExit(f"no preference pair fits in --max-length {args.max_length} tokens")
    return train, held


def stage_sft(args: argparse.Namespace) -> dict[str, float]:
    """SFT of ``--model`` on ``--sft-data``; held-out answer loss before and after."""
    from course_utils.sft import run_sft
    print(f"  device: {describe(pick_device(args.device))}")
    rows = _data(load_sft_rows, args, "--sft-data", "sft")
    train_rows, held_rows = split_rows(rows, args.heldout_fraction, args.seed)
    model, tok = load_model(args.model, device=args.device or "auto")
    held = tokenize_rows(tok, held_rows, max_length=args.max_length)
    before = heldout_loss(model, held, tok.pad_token_id)
    res = run_sft(model, tok, train_rows, _config(args, args.sft_steps, args.sft_lr, "SFT"),
                  max_length=args.max_length)
    after = heldout_loss(model, held, tok.pad_token_id)
    out = Path(args.out) / "sft"
    save_checkpoint(out, model, tok, history=res.history)
    args.produced["sft"] = out
    print(f"  held-out answer loss {before:.3f} -> {after:.3f} nats/token; {res.seconds:.1f} s of training; "
          f"saved to {out}")
    return {"sft_heldout_loss_before": round(before, 4), "sft_heldout_loss_after": round(after, 4),
            "sft_train_examples": len(train_rows), "sft_steps_per_second": round(args.sft_steps / res.seconds, 3)}


def stage_rm(args: argparse.Namespace) -> dict[str, float]:
    """A reward model from the SFT checkpoint (or ``--model``) on ``--preference-data``."""
    from course_utils.alignment.reward_model import preference_accuracy, train_reward_model
    start = _start(args)
    tok = load_tokenizer(start)
    train_rows, held = _preferences(args, tok, "rm")
    model, tok, res = train_reward_model(train_rows, _config(args, args.rm_steps, args.rm_lr, "reward model"),
                                         init=str(start))
    acc = preference_accuracy(model, tok, held)
    out = Path(args.out) / "rm"
    save_checkpoint(out, model, tok, history=res.history)
    args.produced["rm"] = out
    print(f"  held-out pairwise accuracy {acc:.3f} on {len(held)} pairs; saved to {out}")
    return {"rm_heldout_accuracy": round(acc, 4), "rm_train_pairs": len(train_rows)}


def stage_dpo(args: argparse.Namespace) -> dict[str, float]:
    """DPO from the SFT checkpoint (or ``--model``) on ``--preference-data``; held-out implicit-reward accuracy."""
    from course_utils.alignment.dpo import run_dpo
    start = _start(args)
    policy, tok = load_model(start, device=args.device or "auto")
    ref, _ = load_model(start, device=args.device or "auto")
    ref.requires_grad_(False)
    train_rows, held = _preferences(args, tok, "dpo")
    res = run_dpo(policy, ref, tok, train_rows, _config(args, args.dpo_steps, args.dpo_lr, "DPO"),
                  beta=args.dpo_beta)
    ev = implicit_reward_accuracy(policy, ref, tok, held, args.dpo_beta)
    out = Path(args.out) / "dpo"
    save_checkpoint(out, policy, tok, history=res.history)
    args.produced["dpo"] = out
    print(f"  held-out pairs: implicit-reward accuracy {ev['accuracy']:.3f} (margin {ev['margin']:+.3f}); "
          f"the starting model ranks {ev['ref_accuracy']:.3f} of them right; saved to {out}")
    return {"dpo_heldout_accuracy": round(ev["accuracy"], 4), "dpo_heldout_margin": round(ev["margin"], 4),
            "dpo_ref_accuracy": round(ev["ref_accuracy"], 4), "dpo_train_pairs": len(train_rows)}


def stage_ppo(args: argparse.Namespace) -> dict[str, float]:
    """PPO-RLHF from the SFT checkpoint (or ``--model``) against the reward model; gold-free measures on held-out prompts."""
    from course_utils.alignment.rlhf import RLHFConfig, evaluate_policy, train_ppo_rlhf
    rm_path = args.produced.get("rm", args.reward_model)
    if rm_path is None:
        raise SystemExit("the stage ppo on a real model needs a reward model: run the stage rm before it "
                         "(--stages rm,ppo) or pass --reward-model FOLDER")
    start, device = _start(args), args.device or "auto"
    policy, tok = load_model(start, device=device)
    ref, _ = load_model(start, device=device)
    rm, _ = load_model(rm_path, kind="classifier", device=device)
    train_rows, held_rows = _preferences(args, tok, "ppo")
    prompts, held = single_turn_prompts(train_rows), single_turn_prompts(held_rows)[:args.eval_prompts]
    if not prompts or not held:
        raise SystemExit("the stage ppo needs single-turn prompts (one user message) in --preference-data, "
                         f"in the training and the held-out rows; found {len(prompts)} and {len(held)}")
    cfg = RLHFConfig(steps=args.ppo_steps, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                     lr=args.ppo_lr, kl_coef=args.ppo_kl_coef, minibatches=2 if args.batch_size >= 2 else 1,
                     seed=args.seed, desc="PPO")

    def measure(model) -> dict[str, float]:
        return evaluate_policy(model, rm, tok, held, ref=ref, n_samples=2, seed=args.seed,
                               max_new_tokens=args.max_new_tokens, gold=None, batch_size=args.batch_size)

    before = measure(ref)
    res = train_ppo_rlhf(policy, ref, rm, tok, prompts, cfg, gold=None)
    seconds = res.history[-1]["seconds"] if res.history else 0.0
    after = measure(policy)
    wins = win_rate(policy, ref, rm, tok, held, max_new_tokens=args.max_new_tokens, seed=args.seed)
    out = Path(args.out) / "ppo"
    save_checkpoint(out, policy, tok, history=res.history)
    args.produced["ppo"] = out
    print(f"  held-out prompts ({len(held)} x 2 samples): reward-model score {before['proxy']:+.3f} -> "
          f"{after['proxy']:+.3f}, KL to the start {after['kl_exact']:.3f} nats per answer; win rate by the "
          f"reward model over the start {wins:.3f}; {seconds:.1f} s of PPO; saved to {out}")
    return {"ppo_rm_score_before": round(before["proxy"], 4), "ppo_rm_score_after": round(after["proxy"], 4),
            "ppo_rm_gain": round(after["proxy"] - before["proxy"], 4), "ppo_kl": round(after["kl_exact"], 4),
            "ppo_win_rate": round(wins, 4), "ppo_eos_rate": round(after["eos_rate"], 4),
            "ppo_train_prompts": len(prompts),
            "ppo_steps_per_second": round(args.ppo_steps / seconds, 3) if seconds > 0 else 0.0}


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "sft": stage_sft, "rm": stage_rm, "dpo": stage_dpo, "ppo": stage_ppo}


# ---------------------------------------------------------------------------------
# What it needs: chapter 13's memory arithmetic per method
# ---------------------------------------------------------------------------------
#: Bytes per model parameter for weights, gradients and optimizer states, in fp32 with AdamW
#: (chapter 13): a trained model 4 + 4 + 8 = 16, a frozen one 4 (its weights only).
TRAINED_BYTES, FROZEN_BYTES = 16, 4
#: Models each method keeps in memory: (trained, frozen). The PPO value head is one linear
#: layer on the policy (chapter 10), too small to count.
METHOD_MODELS = {"SFT": (1, 0), "reward model": (1, 0), "DPO": (1, 1), "PPO": (1, 2)}
#: Model sizes of the table: the SmolLM2 and Qwen2.5 instruct models' parameter counts, rounded.
TABLE_SIZES = {"135M (SmolLM2-135M)": 135e6, "360M (SmolLM2-360M)": 360e6,
               "0.5B (Qwen2.5-0.5B)": 0.5e9, "1.7B (SmolLM2-1.7B)": 1.7e9}


def training_memory_gib(n_params: float, method: str) -> float:
    """GiB for weights, gradients and AdamW states of ``method`` (full fine-tuning, fp32), before activations.

    ``bytes = n_params * (16 * trained models + 4 * frozen models)``: DPO adds the frozen
    reference, PPO the reference and the reward model. Mixed precision (bf16 autocast)
    keeps fp32 weights, so it changes activations, not this sum.
    """
    trained, frozen = METHOD_MODELS[method]
    return n_params * (TRAINED_BYTES * trained + FROZEN_BYTES * frozen) / 2**30


def memory_table() -> str:
    """The README's table: GiB per model size and method, from :func:`training_memory_gib`."""
    lines = ["| model size | " + " | ".join(METHOD_MODELS) + " |",
             "|---|" + "---:|" * len(METHOD_MODELS)]
    for label, n in TABLE_SIZES.items():
        lines.append(f"| {label} | " + " | ".join(f"{training_memory_gib(n, m):.1f} GiB" for m in METHOD_MODELS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(memory_table())
