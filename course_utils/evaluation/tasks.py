"""Evaluation on the tiny world's instruction tasks: exact match per task."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from course_utils.models import generate
from course_utils.world import check_answer


def exact_match(model, tokenizer, rows: Iterable[Mapping], max_new_tokens: int = 24,
                batch_size: int = 64, chat: bool = True) -> dict[str, float]:
    """Greedy-decode every prompt and compare with the reference response.

    Returns ``{task: accuracy}`` for each task present, plus ``"mean"``: the unweighted
    mean over tasks (so every task counts the same, whatever its size).
    """
    rows = list(rows)
    if not rows:
        raise ValueError("exact_match needs at least one example")
    outs = generate(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=max_new_tokens,
                    batch_size=batch_size, chat=chat)
    hits: dict[str, list[bool]] = defaultdict(list)
    for r, o in zip(rows, outs):
        hits[r["task"]].append(check_answer(o, r["response"]))
    scores = {t: sum(h) / len(h) for t, h in hits.items()}
    scores["mean"] = sum(scores.values()) / len(scores)
    return scores


def format_scores(scores: Mapping[str, float]) -> str:
    """One line, e.g. ``add 1.00 | uppercase 0.95 | ... | mean 0.97``."""
    return " | ".join(f"{k} {v:.2f}" for k, v in scores.items())
