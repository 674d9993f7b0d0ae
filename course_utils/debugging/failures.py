"""Chapter 18's broken runs: one bug each, in an otherwise healthy run, beside its healthy twin.

Every failure is the ``bug`` argument of one of three short runs, so a broken run and its
healthy twin differ in exactly the lines the bug changes (same seed, data and settings):

=====================  ======  ==================================================================
bug                    run     what is wrong
=====================  ======  ==================================================================
``pad_is_eos``         SFT     padding with end-of-text, then masking the padding by its token id:
                               every answer's own end-of-text is masked too (smol-course #159,
                               TRL #1623), so the model is never taught to stop
``mask_off_by_one``    SFT     the answer mask computed for the shifted targets and applied to the
                               unshifted labels: every label one token early, so the header's
                               line break is trained and the closing end-of-text is not
``sign_flip``          PPO     the reward model's score with the wrong sign (TRL #2771)
``shared_reference``   PPO     the reference model is the policy object itself, not a frozen copy
``lr_10x``             PPO     the learning rate ten times the recipe's
``cap_too_short``      GRPO    ``max_new_tokens`` shorter than every answer: all are cut, every
                               reward is 0 and no group has a reward spread
``parser_mismatch``    GRPO    a reward parser copied from another task's answer format (GSM8K's
                               ``#### N``): it never matches, so the reward never fires
=====================  ======  ==================================================================

Two readings look like failures and are not (the dashboard's *notes*): DPO's chosen reward
falling while its margin accuracy rises (:func:`dpo_run`), and GRPO's loss staying near 0 while
the reward rises (:func:`grpo_run` without a bug).

:data:`FAILURES` lists, for every bug, the dashboard checks that should fire on it; the healthy
twins should raise no warning (``tests/test_failures.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from course_utils import world
from course_utils.alignment.dpo import run_dpo
from course_utils.alignment.grpo import GRPOConfig, GRPOResult, train_grpo
from course_utils.alignment.reward_model import preference_data
from course_utils.alignment.rlhf import RLHFConfig, RLHFResult, train_ppo_rlhf
from course_utils.dashboard import RunDashboard
from course_utils.device import autocast
from course_utils.models import load_model
from course_utils.sft import IGNORE_INDEX, collate_sft, tokenize_chat
from course_utils.tokenizer import chat_prompt
from course_utils.training import TrainConfig, TrainResult, set_seed, train


@dataclass(frozen=True)
class Failure:
    """A bug of chapter 18: the ``run`` it breaks, what goes wrong, the dashboard checks that
    should fire on it (``fires``), and the fix."""
    bug: str
    run: str
    what: str
    fires: tuple[str, ...]
    fix: str


FAILURES: dict[str, Failure] = {f.bug: f for f in (
    Failure("pad_is_eos", "sft", "padding with end-of-text masks every answer's end-of-text out of the loss",
            ("end_not_learned",), "a pad token of its own, or mask padding by the attention mask, not by token id"),
    Failure("mask_off_by_one", "sft", "every label one token early: the header's line break is trained, "
            "end-of-text is not", ("end_not_learned",), "build the mask on the labels' own positions; print one "
            "example's labelled tokens before training"),
    Failure("sign_flip", "ppo", "the policy maximises minus the reward model's score",
            ("gold_falls",), "the reward is the score, higher is better: check the sign on two answers you can rank"),
    Failure("shared_reference", "ppo", "the reference is the policy: freezing it freezes the policy, KL is always 0",
            ("kl_stuck_at_zero",), "load a separate copy of the start model as the reference"),
    Failure("lr_10x", "ppo", "a learning rate ten times the recipe's throws the policy far from the reference",
            ("kl_jump",), "the recipe's learning rate; warm up, and clip the gradient norm"),
    Failure("cap_too_short", "grpo", "every answer is cut at the length cap before it ends",
            ("never_ends", "no_gradient_groups", "reward_always_zero"),
            "a cap above the longest answer you expect; watch the truncated share"),
    Failure("parser_mismatch", "grpo", "the reward's parser expects another format and never matches",
            ("format_never_fires", "no_gradient_groups", "reward_always_zero"),
            "run the reward function on a known good answer before training"),
)}

SFT_BUGS = tuple(b for b, f in FAILURES.items() if f.run == "sft")
PPO_BUGS = tuple(b for b, f in FAILURES.items() if f.run == "ppo")
GRPO_BUGS = tuple(b for b, f in FAILURES.items() if f.run == "grpo")


def _check_bug(bug: str | None, allowed: Sequence[str], run: str) -> None:
    if bug is not None and bug not in allowed:
        raise ValueError(f"unknown {run} bug {bug!r}; choose from None, {', '.join(allowed)}")


# ---------------------------------------------------------------------------------------------
# SFT: the labels
# ---------------------------------------------------------------------------------------------
def sft_example(tokenizer, row: Mapping, bug: str | None = None) -> dict[str, list[int]]:
    """Token ids and labels of one ``prompt``/``response`` row: the answer's tokens (with its
    closing end-of-text) labelled, -100 elsewhere (:func:`course_utils.sft.tokenize_chat`).

    ``bug="mask_off_by_one"``: the answer mask was computed on the *targets* of next-token
    prediction (position i holds token i + 1) and then applied to the labels (position i holds
    token i), so every label sits one token early::

        mask_of_targets[i] = answer_mask[i + 1];  labels[i] = ids[i] if mask_of_targets[i] else -100
    """
    _check_bug(bug, (*SFT_BUGS,), "SFT")
    ex = tokenize_chat(tokenizer, row["prompt"], row["response"])
    if bug == "mask_off_by_one":
        answer_mask = [int(label != IGNORE_INDEX) for label in ex["labels"]]
        mask_of_targets = answer_mask[1:] + [0]
        ex = {"input_ids": ex["input_ids"],
              "labels": [t if m else IGNORE_INDEX for t, m in zip(ex["input_ids"], mask_of_targets)]}
    return ex


def collate_pad_is_eos(examples: list[dict], eos_token_id: int) -> dict[str, torch.Tensor]:
    """The ``pad_is_eos`` bug: right-pad with end-of-text (``tokenizer.pad_token = tokenizer.eos_token``,
    common when a model ships without a pad token), then mask "the padding" by its token id.

    The second line also masks every answer's own closing end-of-text: the one token that
    teaches the model to stop gets no loss. Shapes as :func:`course_utils.sft.collate_sft`.
    """
    batch = collate_sft(examples, pad_token_id=eos_token_id)
    batch["labels"][batch["input_ids"] == eos_token_id] = IGNORE_INDEX
    return batch


def labelled_text(tokenizer, example: Mapping) -> str:
    """The tokens an example's loss is computed on, in order, with ``·`` for each run of
    unlabelled tokens: the one print that shows a masking bug before any training."""
    out, gap = [], False
    for t, label in zip(example["input_ids"], example["labels"]):
        if label == IGNORE_INDEX:
            if not gap:
                out.append("·")
            gap = True
        else:
            out.append(tokenizer.decode([t]))
            gap = False
    return "".join(out)


@torch.no_grad()
def end_probability(model, tokenizer, rows: Sequence[Mapping]) -> float:
    """Mean probability the model gives end-of-text right after each row's reference answer
    (prompt and answer in the chat template): how well it has learnt where an answer stops."""
    model.eval()
    eos, probs = tokenizer.eos_token_id, []
    for row in rows:
        ids = tokenize_chat(tokenizer, row["prompt"], row["response"])["input_ids"]
        end = len(ids) - 1 - ids[::-1].index(eos)          # the answer's closing end-of-text
        logits = model(torch.tensor([ids[:end]], device=model.device)).logits[0, -1]
        probs.append(torch.softmax(logits.float(), -1)[eos].item())
    return sum(probs) / len(probs)


@torch.no_grad()
def ending_stats(model, tokenizer, rows: Sequence[Mapping], max_new_tokens: int = 24) -> dict[str, float]:
    """Greedy answers to the ``rows``' prompts: ``eos_rate`` (share that end with end-of-text
    within ``max_new_tokens``), ``exact`` (share exactly right, :func:`world.check_answer`), and
    ``end_prob`` (:func:`end_probability` on the same rows)."""
    end_prob = end_probability(model, tokenizer, rows)
    model.eval()
    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer([chat_prompt(tokenizer, r["prompt"]) for r in rows], return_tensors="pt",
                        padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = old_side
    with autocast(model.device):
        out = model.generate(**enc.to(model.device), do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    new = out[:, enc["input_ids"].shape[1]:]
    ended = (new == tokenizer.eos_token_id).any(1)
    texts = [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    right = [world.check_answer(t, r["response"]) for t, r in zip(texts, rows)]
    return {"eos_rate": ended.float().mean().item(), "exact": sum(right) / len(rows), "end_prob": end_prob}


def sft_run(bug: str | None = None, steps: int = 150, batch_size: int = 16, lr: float = 1e-3,
            seed: int = 0, n_eval: int = 40, eval_every: int = 50, dashboard: RunDashboard | None = None,
            progress: bool = True) -> tuple[torch.nn.Module, TrainResult]:
    """Instruction-tune the shipped base model on the tiny world's tasks, with or without an SFT ``bug``.

    Every ``eval_every`` steps the model answers ``n_eval`` validation prompts greedily and
    :func:`ending_stats` is logged (``eos_rate``, ``exact``, ``end_prob``), so the dashboard sees
    whether answers end and whether the model is learning where they should. Returns the model
    and the loop's result.
    """
    _check_bug(bug, SFT_BUGS, "SFT")
    set_seed(seed)
    model, tok = load_model("base")
    data = world.make_instruction_data(seed)
    examples = [sft_example(tok, r, bug if bug == "mask_off_by_one" else None) for r in data["train"]]
    if bug == "pad_is_eos":
        def collate(b): return collate_pad_is_eos(b, tok.eos_token_id)
    else:
        def collate(b): return collate_sft(b, tok.pad_token_id)
    held_out = [r for r in data["validation"] if r["task"] != "open"][:n_eval]
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=10, log_every=eval_every,
                         eval_every=eval_every, seed=seed, desc=f"SFT ({bug or 'healthy'})")
    result = train(model, examples, collate, config, eval_fn=lambda m: ending_stats(m, tok, held_out),
                   progress=progress, dashboard=dashboard)
    return model, result


# ---------------------------------------------------------------------------------------------
# PPO against the shipped reward model
# ---------------------------------------------------------------------------------------------
class SignFlipped(torch.nn.Module):
    """The ``sign_flip`` bug: a reward model whose score comes out negated (a ``-`` left over
    from a loss, or "lower is better" read as "higher is better")."""

    def __init__(self, reward_model: torch.nn.Module):
        super().__init__()
        self.reward_model = reward_model

    def forward(self, **inputs):
        out = self.reward_model(**inputs)
        out.logits = -out.logits
        return out


def ppo_run(bug: str | None = None, steps: int = 20, batch_size: int = 32, lr: float = 1e-4,
            kl_coef: float = 0.2, seed: int = 0, dashboard: RunDashboard | None = None,
            progress: bool = True) -> RLHFResult:
    """Chapter 10's PPO recipe (shipped SFT policy and reward model, β = 0.2), shorter and with
    a smaller batch, with or without a PPO ``bug``. Gold is logged, never trained on."""
    _check_bug(bug, PPO_BUGS, "PPO")
    set_seed(seed)
    policy, tok = load_model("sft")
    ref = policy if bug == "shared_reference" else load_model("sft")[0]
    rm, _ = load_model("rm", kind="classifier")
    if bug == "sign_flip":
        rm = SignFlipped(rm)
    config = RLHFConfig(steps=steps, batch_size=batch_size, lr=lr * (10 if bug == "lr_10x" else 1),
                        kl_coef=kl_coef, seed=seed, desc=f"PPO ({bug or 'healthy'})")
    prompts = list(world.open_prompts(seed=1, n=4000)["prompt"])
    return train_ppo_rlhf(policy, ref, rm, tok, prompts, config, progress=progress, dashboard=dashboard)


# ---------------------------------------------------------------------------------------------
# GRPO on the addition problems, with the reward written out as a parser
# ---------------------------------------------------------------------------------------------
SUM_FORMAT = re.compile(r"(\d+) plus (\d+) is (\d+)\.")     # the tiny world's answers: "20 plus 1 is 21."
GSM8K_FORMAT = re.compile(r"####\s*(-?\d+)")                # GSM8K's answers end "#### 21"


def parse_total(text: str, bug: str | None = None) -> int | None:
    """The total an answer states, or None if it is not in the expected format.

    ``bug="parser_mismatch"``: the parser of a recipe written for GSM8K, looking for ``#### N``."""
    if bug == "parser_mismatch":
        m = GSM8K_FORMAT.search(text)
        return int(m.group(1)) if m else None
    m = SUM_FORMAT.fullmatch(text.strip())
    return int(m.group(3)) if m else None


def grpo_run(bug: str | None = None, steps: int = 12, prompts_per_step: int = 8, group_size: int = 8,
             max_new_tokens: int = 12, seed: int = 0, dashboard: RunDashboard | None = None,
             progress: bool = True) -> GRPOResult:
    """Chapter 11's GRPO on addition problems with a parsed reward (1 if the parsed total is the
    right sum), with or without a GRPO ``bug``. Logs ``format_rate``: the share of answers
    the parser could read."""
    _check_bug(bug, GRPO_BUGS, "GRPO")
    set_seed(seed)
    policy, tok = load_model("sft")
    ref, _ = load_model("sft")
    rows = [r for r in world.make_instruction_data(0)["validation"] if r["task"] == "add"]
    total = {r["prompt"]: parse_total(r["response"]) for r in rows}
    parser_bug = bug if bug == "parser_mismatch" else None

    def reward_fn(prompts: list[str], responses: list[str]) -> torch.Tensor:
        return torch.tensor([float(parse_total(a, parser_bug) == total[p]) for p, a in zip(prompts, responses)])

    def log_fn(prompts: list[str], responses: list[str], rewards: torch.Tensor) -> dict[str, float]:
        return {"format_rate": sum(parse_total(a, parser_bug) is not None for a in responses) / len(responses)}

    config = GRPOConfig(steps=steps, prompts_per_step=prompts_per_step, group_size=group_size,
                        max_new_tokens=4 if bug == "cap_too_short" else max_new_tokens, seed=seed,
                        desc=f"GRPO ({bug or 'healthy'})")
    return train_grpo(policy, ref, tok, rows, config, progress=progress, reward_fn=reward_fn, log_fn=log_fn,
                      dashboard=dashboard)


# ---------------------------------------------------------------------------------------------
# DPO: a healthy run whose chosen reward falls
# ---------------------------------------------------------------------------------------------
def dpo_run(steps: int = 60, n_pairs: int = 480, beta: float = 0.1, seed: int = 0, log_every: int = 5,
            dashboard: RunDashboard | None = None, progress: bool = True) -> tuple[torch.nn.Module, TrainResult]:
    """Chapter 11's DPO (shipped SFT model, labels from the simulated labeler, β = 0.1), shorter:
    a healthy run on which DPO's chosen reward can fall while its margin accuracy rises."""
    set_seed(seed)
    ref, tok = load_model("sft")
    policy, _ = load_model("sft")
    labels = preference_data(ref, tok, n_pairs, seed=seed, prompt_seed=1)
    config = TrainConfig(steps=steps, batch_size=32, lr=1e-4, warmup_steps=10, log_every=log_every, seed=seed,
                         desc="DPO")
    return policy, run_dpo(policy, ref, tok, labels, config, beta=beta, progress=progress, dashboard=dashboard)
