"""Chapter 18 over seeds: does each bug show its signature, and do the healthy twins stay quiet?

Each seed runs every broken run of :mod:`course_utils.debugging.failures` and its healthy twin
at the chapter's sizes, each with a :class:`~course_utils.dashboard.RunDashboard` (no plot), and
records which checks fired (warnings and notes, with the step each fired first) and the values
the chapter compares: for SFT the share of greedy answers that end and that are exactly right,
and the probability of end-of-text right after reference answers; for PPO the gold and proxy
reward and the KL of the first and last rollouts; for GRPO the reward, the format rate and the
share of answers cut at the cap; for DPO the implicit rewards and the margin accuracy. A seed changes the data order, the sampling and, for SFT, the data itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from course_utils.experiments import sweep

#: the columns kept from each run's history (first and last logged value)
KEPT = {"sft": ("loss", "eos_rate", "exact", "end_prob"),
        "ppo": ("proxy", "gold", "kl", "grad_norm", "eos_rate"),
        "grpo": ("reward", "format_rate", "truncated", "zero_std_groups", "loss", "grad_norm"),
        "dpo": ("loss", "chosen_reward", "rejected_reward", "margin_accuracy")}


def summarise(run: str, arm: str, bug: str | None, history: Sequence[Mapping], alerts) -> dict:
    """One row: the arm, what fired (and when), and the first and last value of the kept columns."""
    row = {"arm": arm, "run": run, "bug": bug or "none",
           "warnings": ",".join(sorted(a.check for a in alerts if a.level == "warning")),
           "notes": ",".join(sorted(a.check for a in alerts if a.level == "note"))}
    for a in alerts:
        row[f"step_{a.check}"] = a.step
    for key in KEPT[run]:
        values = [r[key] for r in history if key in r]
        if values:
            row[f"{key}_first"], row[f"{key}_last"] = float(values[0]), float(values[-1])
    if run == "ppo":
        row["kl_max"] = max(r["kl"] for r in history)
    return row


@sweep("failures", chapter="18",
       description="Chapter 18's broken runs and their healthy twins: which dashboard checks fire, and the "
                   "values they compare",
       settings={"sft_steps": 150, "ppo_steps": 20, "grpo_steps": 12, "dpo_steps": 60},
       smoke={"sft_steps": 20, "ppo_steps": 4, "grpo_steps": 5, "dpo_steps": 10}, seeds=5)
def failures(seed: int, sft_steps: int, ppo_steps: int, grpo_steps: int, dpo_steps: int) -> list[dict]:
    from course_utils.dashboard import RunDashboard
    from course_utils.debugging import failures as f

    out = []
    for bug in (None, *f.SFT_BUGS):
        board = RunDashboard(live=False, echo=False)
        f.sft_run(bug, steps=sft_steps, seed=seed, dashboard=board, progress=False)
        out.append(summarise("sft", f"SFT {bug or 'healthy'}", bug, board.history, board.alerts))
    for bug in (None, *f.PPO_BUGS):
        board = RunDashboard(live=False, echo=False)
        f.ppo_run(bug, steps=ppo_steps, seed=seed, dashboard=board, progress=False)
        out.append(summarise("ppo", f"PPO {bug or 'healthy'}", bug, board.history, board.alerts))
    for bug in (None, *f.GRPO_BUGS):
        board = RunDashboard(live=False, echo=False)
        f.grpo_run(bug, steps=grpo_steps, seed=seed, dashboard=board, progress=False)
        out.append(summarise("grpo", f"GRPO {bug or 'healthy'}", bug, board.history, board.alerts))
    board = RunDashboard(live=False, echo=False)
    f.dpo_run(steps=dpo_steps, seed=seed, dashboard=board, progress=False)
    out.append(summarise("dpo", "DPO healthy", None, board.history, board.alerts))
    return out


def main() -> None:
    """Run seed 0 at the sweep's settings and print its rows (before storing it)."""
    import json
    import time
    t0 = time.perf_counter()
    for row in failures(0, sft_steps=150, ppo_steps=20, grpo_steps=12, dpo_steps=60):
        print(json.dumps(row))
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
