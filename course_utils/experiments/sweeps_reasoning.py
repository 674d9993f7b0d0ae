"""Chapter 17 over seeds: do worked steps beat direct answers on *who has the ball?*

Each seed fine-tunes the shipped SFT model twice on the same problems of
:func:`course_utils.reasoning.tasks.make_reasoning_data` (the seed's problems): once on worked
answers, once on direct ones, the same number of steps. Both are checked greedily on ``test``
(2 to 6 swaps, patterns never trained on) every ``eval_every`` steps, and on ``test_longer``
(8 swaps) at the end. A row (arm, split, step) holds the share right, the share of steps
right, the format rate and the share of each failure class.
"""

from __future__ import annotations

from course_utils.experiments import sweep


@sweep("reasoning_sft", chapter="17",
       description="Worked steps vs direct answers on who-has-the-ball: SFT from the shipped SFT model, "
                   "greedy accuracy on held-out patterns during training and on longer problems at the end",
       settings={"steps": 900, "eval_every": 300, "n_train": 5000, "n_eval": 200},
       smoke={"steps": 12, "eval_every": 10, "n_eval": 8}, seeds=5)
def reasoning_sft(seed: int, steps: int, eval_every: int, n_train: int, n_eval: int) -> list[dict]:
    from course_utils.reasoning.evaluation import check_answers, report, sft_reasoning

    out = []
    for worked in (True, False):
        arm = "worked" if worked else "direct"
        model, tok, data, result = sft_reasoning(worked=worked, steps=steps, seed=seed, n_train=n_train,
                                                 eval_every=eval_every, n_eval=n_eval, progress=False)
        for h in result.history:
            if "test_accuracy" in h:
                out.append({"arm": arm, "split": "test", "step": h["step"], "loss": h["loss"],
                            **{k.removeprefix("test_"): v for k, v in h.items() if k.startswith("test_")}})
        rows = list(data["test_longer"])[:n_eval]
        answers, verdicts = check_answers(model, tok, rows, worked=worked)
        out.append({"arm": arm, "split": "test_longer", "step": steps, "loss": result.history[-1]["loss"],
                    **report(answers, verdicts, rows)})
    return out
