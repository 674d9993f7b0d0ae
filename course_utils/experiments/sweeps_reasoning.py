"""Chapter 17 over seeds: do worked steps beat direct answers on *who has the ball?*

Each seed fine-tunes the shipped SFT model twice on the same problems of
:func:`course_utils.reasoning.tasks.make_reasoning_data` (the seed's problems): once on worked
answers, once on direct ones, the same number of steps. Both are checked greedily on ``test``
(2 to 6 swaps, patterns never trained on) and on ``test_longer`` (8 swaps). A row holds the
share right, the share of steps right, the format rate and each failure class, per split.
"""

from __future__ import annotations

from course_utils.experiments import sweep


@sweep("reasoning_sft", chapter="17",
       description="Worked steps vs direct answers on who-has-the-ball: SFT from the shipped SFT model, "
                   "greedy accuracy on held-out patterns and on longer problems",
       settings={"steps": 600, "n_train": 5000, "n_eval": 300}, smoke={"steps": 12, "n_eval": 8}, seeds=5)
def reasoning_sft(seed: int, steps: int, n_train: int, n_eval: int) -> list[dict]:
    from course_utils.reasoning.evaluation import check_answers, report, sft_reasoning

    out = []
    for worked in (True, False):
        model, tok, data, result = sft_reasoning(worked=worked, steps=steps, seed=seed, n_train=n_train,
                                                 progress=False)
        row = {"arm": "worked" if worked else "direct", "loss_last": result.history[-1]["loss"]}
        for split in ("test", "test_longer"):
            rows = list(data[split])[:n_eval]
            answers, verdicts = check_answers(model, tok, rows, worked=worked)
            row.update({f"{split}_{k}": v for k, v in report(answers, verdicts, rows).items()})
        out.append(row)
    return out
