"""Fine-tune on *who has the ball?* and check a model's answers with the verifier.

:func:`build_reasoning_model` builds the shipped start of chapter 17's RL (``load_model("reasoning")``):
the shipped SFT model fine-tuned on a half-and-half mix of worked and direct answers.

:func:`sft_reasoning` is chapter 04's supervised fine-tuning (the course loop,
:func:`course_utils.sft.run_sft`) on the task's ``train`` split, worked or direct answers.
:func:`check_answers` samples one answer per problem (greedy by default) and sorts each with
:func:`~course_utils.reasoning.verifier.verify`; :func:`report` sums the verdicts up as the
share right, the share of steps right and the failure classes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from course_utils.models import generate, load_model
from course_utils.reasoning.tasks import make_reasoning_data
from course_utils.reasoning.verifier import CLASSES, Verdict, step_reward, verify
from course_utils.sft import run_sft
from course_utils.training import TrainConfig, TrainResult, set_seed

TOKENS_PER_STEP = 11         # " Mia and Tom swap: Tom has it." with the tiny world's tokenizer
TOKENS_FOR_ANSWER = 7        # " Answer: Ben."


def answer_budget(n_swaps: int, worked: bool = True) -> int:
    """``max_new_tokens`` that fits a worked (or direct) answer to ``n_swaps`` swaps, plus 4 spare."""
    return (TOKENS_PER_STEP * n_swaps if worked else 0) + TOKENS_FOR_ANSWER + 4


def check_answers(model, tokenizer, rows: Sequence[Mapping], worked: bool = True, temperature: float = 0.0,
                  seed: int | None = None) -> tuple[list[str], list[Verdict]]:
    """One answer per problem (greedy unless ``temperature > 0``) and its verdict."""
    budget = answer_budget(max(r["n_swaps"] for r in rows), worked)
    answers = generate(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=budget,
                       temperature=temperature, seed=seed)
    return answers, [verify(a, r["answer"]) for a, r in zip(answers, rows)]


def report(answers: Sequence[str], verdicts: Sequence[Verdict], rows: Sequence[Mapping]) -> dict[str, float]:
    """``accuracy``, ``step_accuracy`` (mean :func:`step_reward`), ``format_rate`` and the share of each class."""
    if not verdicts:
        raise ValueError("no answers to report on")
    n = len(verdicts)
    out = {"accuracy": sum(v.correct for v in verdicts) / n,
           "step_accuracy": sum(step_reward(a, r) for a, r in zip(answers, rows)) / n,
           "format_rate": sum(v.well_formed for v in verdicts) / n}
    out.update({c: sum(v.label == c for v in verdicts) / n for c in CLASSES if c != "correct"})
    return out


def sft_reasoning(worked: bool = True, steps: int = 600, seed: int = 0, n_train: int = 5000, lr: float = 1e-3,
                  batch_size: int = 32, start: str = "sft", eval_every: int | None = None, n_eval: int = 200,
                  progress: bool = True, worked_share: float | None = None):
    """Fine-tune ``start`` (the shipped SFT model) on ``train`` of :func:`make_reasoning_data` ``(seed)``.

    With ``eval_every``, the first ``n_eval`` problems of ``test`` are checked greedily every
    that many steps and at the end; the history's rows then hold ``test_accuracy`` and the
    rest of :func:`report`. Returns ``(model, tokenizer, data, result)``; ``data`` holds the
    splits (worked or direct answers). ``worked_share``: train on a mix of the two styles
    (:func:`make_reasoning_data`); the checks then accept either.
    """
    set_seed(seed)
    data = make_reasoning_data(seed=seed, n_train=n_train, worked=worked, worked_share=worked_share)
    model, tok = load_model(start)
    if worked_share is not None:
        desc = f"SFT, {worked_share:.0%} worked answers"
    else:
        desc = f"SFT, {'worked' if worked else 'direct'} answers"
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=20, seed=seed,
                         eval_every=eval_every, desc=desc)
    eval_fn = None
    if eval_every:
        rows = list(data["test"])[:n_eval]

        def eval_fn(m) -> dict[str, float]:
            answers, verdicts = check_answers(m, tok, rows, worked=worked)
            return {f"test_{k}": v for k, v in report(answers, verdicts, rows).items()}
    result: TrainResult = run_sft(model, tok, data["train"], config, progress=progress, eval_fn=eval_fn)
    return model, tok, data, result


def style_report(model, tokenizer, rows: Sequence[Mapping], n_samples: int = 4, seed: int = 1,
                 worked: bool = True) -> dict[str, float]:
    """Temperature-1 answers (``n_samples`` per problem) split by style: ``pass1`` (the share right),
    ``worked_share`` (answers with at least one step sentence), ``accuracy_worked``,
    ``accuracy_direct`` (the share right among answers of each style; 0.0 for a style never
    written) and ``format_rate``. ``worked=False`` gives the answers only a direct answer's
    room (:func:`answer_budget`)."""
    many = [r for r in rows for _ in range(n_samples)]
    _, verdicts = check_answers(model, tokenizer, many, worked=worked, temperature=1.0, seed=seed)
    styles = [bool(v.steps) for v in verdicts]

    def accuracy(style: bool) -> float:
        picked = [v.correct for v, w in zip(verdicts, styles) if w == style]
        return sum(picked) / len(picked) if picked else 0.0
    return {"pass1": sum(v.correct for v in verdicts) / len(verdicts), "worked_share": sum(styles) / len(styles),
            "accuracy_worked": accuracy(True), "accuracy_direct": accuracy(False),
            "format_rate": sum(v.well_formed for v in verdicts) / len(verdicts)}


def build_reasoning_model(out: str | Path, steps: int = 900, worked_share: float = 0.5, seed: int = 0,
                          n_eval: int = 200, progress: bool = True, start: str | Path = "sft") -> dict:
    """Fine-tune ``start`` (the shipped SFT model) on ``train`` with a ``worked_share`` of worked answers
    (:func:`sft_reasoning`), report its answers to the first ``n_eval`` ``test`` problems
    (:func:`style_report`, 4 answers each, and greedy accuracy), and save the model, its
    training history and ``reasoning_report.json`` to ``out`` atomically. Returns the report."""
    from course_utils.training import save_checkpoint

    model, tok, data, result = sft_reasoning(steps=steps, seed=seed, worked_share=worked_share, progress=progress,
                                             start=str(start))
    rows = list(data["test"])[:n_eval]
    answers, verdicts = check_answers(model, tok, rows)
    summary = {"steps": steps, "worked_share": worked_share, "seed": seed, "n_eval": n_eval,
               "seconds": round(result.seconds, 1), "greedy": report(answers, verdicts, rows),
               "sampled": style_report(model, tok, rows)}
    save_checkpoint(Path(out), model, tok, history=result.history,
                    extra_files={"reasoning_report.json": json.dumps(summary, indent=1)})
    return summary
