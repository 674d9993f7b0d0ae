"""AI feedback: a language-model judge trained from labelled pairs, and preference labels from it.

RLAIF (Bai et al., 2022; Lee et al., 2023) replaces most human comparisons by the verdicts of
a model. The tiny world's version: a *pairwise judge*, the SFT model fine-tuned with the
course loop (:func:`course_utils.sft.run_sft`) to answer one token, ``A`` or ``B``, to::

    <prompt>
    A: <first answer>
    B: <second answer>
    Which answer is better, A or B?

Its verdict on a pair is a probability, read from the next-token logits ``z`` at the
answer position (shape ``(vocab,)`` per pair)::

    P(first is better) = exp(z_A) / (exp(z_A) + exp(z_B))

so :class:`LMJudge` is a judge in the sense of :mod:`course_utils.evaluation.judges` and can be audited
for agreement, position and length bias there. :func:`ai_labels` then labels any number of
fresh pairs with it, in the same row format as the simulated human labelers
(:func:`course_utils.alignment.feedback.simulate_labels`), ready for DPO or a reward model.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from datasets import Dataset

from course_utils.alignment.feedback import now
from course_utils.evaluation.judges import Judge, swap_averaged
from course_utils.sft import run_sft
from course_utils.tokenizer import chat_prompt
from course_utils.training import TrainConfig, TrainResult

JUDGE_QUESTION = "Which answer is better, A or B?"


def judge_prompt(prompt: str, first: str, second: str) -> str:
    """The judge's input for one ordered pair (see the module docstring)."""
    return f"{prompt}\nA: {first}\nB: {second}\n{JUDGE_QUESTION}"


def judge_training_rows(preferences: Iterable[Mapping], seed: int = 0,
                        both_orders: bool = False) -> list[dict]:
    """SFT rows ``{prompt, response}`` teaching the judge: response ``"A"`` when the chosen answer is shown first.

    Each preference row (``prompt``, ``chosen``, ``rejected``) is shown in one random order
    (seeded), or with ``both_orders=True`` in both (twice the rows; a judge trained so has
    little reason to favour a position).
    """
    rng = random.Random(f"judge-order-{seed}")
    rows: list[dict] = []
    for k, r in enumerate(preferences):
        missing = {"prompt", "chosen", "rejected"} - set(r)
        if missing:
            raise ValueError(f"preference row {k} lacks field(s) {sorted(missing)}")
        for chosen_first in ([True, False] if both_orders else [rng.random() < 0.5]):
            first, second = (r["chosen"], r["rejected"]) if chosen_first else (r["rejected"], r["chosen"])
            rows.append({"prompt": judge_prompt(r["prompt"], first, second),
                         "response": "A" if chosen_first else "B"})
    if not rows:
        raise ValueError("the judge's training set is empty")
    return rows


def train_judge(model, tokenizer, preferences: Iterable[Mapping], config: TrainConfig,
                seed: int = 0, both_orders: bool = False, **train_kwargs) -> TrainResult:
    """Fine-tune ``model`` into a pairwise judge on labelled pairs with the course loop."""
    return run_sft(model, tokenizer, judge_training_rows(preferences, seed, both_orders), config,
                   **train_kwargs)


class LMJudge:
    """A causal LM used as a pairwise judge: ``judge(prompts, first, second) -> P(first better)``, shape ``(n,)``."""

    def __init__(self, model, tokenizer, batch_size: int = 64):
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("A", "B")]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"the judge needs 'A' and 'B' to be single tokens, got {ids}")
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.a_id, self.b_id = ids[0][0], ids[1][0]

    @torch.no_grad()
    def __call__(self, prompts: list[str], first: list[str], second: list[str]) -> np.ndarray:
        texts = [chat_prompt(self.tokenizer, judge_prompt(p, a, b))
                 for p, a, b in zip(prompts, first, second)]
        self.model.eval()
        out: list[np.ndarray] = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i:i + self.batch_size], return_tensors="pt", padding=True,
                                 add_special_tokens=False, padding_side="right")
            enc = {k: v.to(self.model.device) for k, v in enc.items()}
            logits = self.model(**enc).logits                          # (B, T, vocab)
            last = enc["attention_mask"].sum(dim=1) - 1                # (B,) last prompt position
            z = logits[torch.arange(logits.shape[0]), last][:, [self.a_id, self.b_id]].float()
            out.append(torch.softmax(z, dim=-1)[:, 0].cpu().numpy())   # P(A) against P(B)
        return np.concatenate(out) if out else np.zeros(0)


def ai_labels(judge: Judge, pairs: Iterable[Mapping], name: str = "judge",
              swap: bool = False) -> Dataset:
    """Label ``pairs`` (``pair_id``, ``prompt``, ``a``, ``b``) with a judge's decisions.

    The judge prefers ``a`` when ``P(a better) > 1/2`` (with ``swap=True``, the swap-averaged
    probability); rows match :func:`course_utils.alignment.feedback.simulate_labels`, ``labeler`` =
    ``name`` and ``source`` saying it is AI feedback.
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("ai_labels needs at least one pair")
    j = swap_averaged(judge) if swap else judge
    p = np.asarray(j([r["prompt"] for r in pairs], [r["a"] for r in pairs], [r["b"] for r in pairs]))
    rows = []
    for r, pa in zip(pairs, p):
        chosen, rejected = (r["a"], r["b"]) if pa > 0.5 else (r["b"], r["a"])
        rows.append({"pair_id": str(r["pair_id"]), "prompt": r["prompt"], "chosen": chosen,
                     "rejected": rejected, "labeler": name, "time": now(),
                     "source": f"AI feedback ({'swap-averaged ' if swap else ''}judge)"})
    return Dataset.from_list(rows)
