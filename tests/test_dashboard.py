"""The run dashboard: every check fires on its failure and stays silent on healthy runs."""

import json
import math
from pathlib import Path

import pytest
import torch

from course_utils import dashboard as dash
from course_utils.dashboard import CHECKS, NOTES, RunDashboard, check_history, read_log
from course_utils.jsonl import JSONLError


def rows(n: int, **columns) -> list[dict]:
    """``n`` rows; a column is a constant or a function of the step (1..n)."""
    return [{"step": s, **{k: (v(s) if callable(v) else v) for k, v in columns.items()}} for s in range(1, n + 1)]


#: One history per check with that check's failure signature, and nothing else wrong.
FAILURES = {
    "not_finite": rows(3, loss=lambda s: float("nan") if s == 3 else 1.0),
    "no_gradient_groups": rows(3, zero_std_groups=1.0, reward=1.0),
    "never_ends": rows(2, truncated=1.0),
    "end_not_learned": rows(3, end_prob=lambda s: 0.999 if s < 3 else 0.6, eos_rate=1.0),
    "reward_always_zero": rows(5, reward=0.0, zero_std_groups=lambda s: 0.5 if s == 1 else 0.9),
    "format_never_fires": rows(5, format_rate=0.0),
    "kl_jump": rows(4, kl=lambda s: 0.05 * s if s < 4 else 2.5),
    "grad_norm_jump": rows(8, grad_norm=lambda s: 1.0 + 0.01 * s if s < 8 else 15.0),
    "entropy_collapse": rows(5, entropy=lambda s: 1.2 - 0.1 * s if s < 5 else 0.03),
    "gold_falls": rows(10, proxy=lambda s: 0.1 * s, gold=lambda s: 1.0 - 0.05 * s),
    "kl_stuck_at_zero": rows(4, kl=0.0, grad_norm=1.0),
    "gradient_zero": rows(3, grad_norm=0.0),
    "chosen_falls": rows(6, chosen_reward=lambda s: -0.1 * s, margin_accuracy=lambda s: 0.5 + 0.05 * s),
    "loss_not_progress": rows(6, loss=lambda s: 0.001 * (-1) ** s, reward=lambda s: 0.3 + 0.05 * s),
}

#: Healthy histories with the same columns: no check may fire on any of them.
HEALTHY = [
    rows(30, loss=lambda s: 2.0 / s, grad_norm=lambda s: 1.0 + 0.3 * (s % 3)),
    rows(30, reward=lambda s: min(1.0, 0.2 + 0.03 * s), zero_std_groups=lambda s: 0.2 + 0.02 * s,
         kl=lambda s: 0.01 * (s - 1), loss=lambda s: 0.3 / s, truncated=0.05, format_rate=0.9, entropy=lambda s: 1.0 - 0.01 * s),
    rows(30, proxy=lambda s: 0.05 * s, gold=lambda s: 0.04 * s, kl=lambda s: 0.05 * s, eos_rate=0.95),
    rows(6, loss=lambda s: 3.0 / s, end_prob=lambda s: 0.99 + 0.001 * s, eos_rate=1.0, exact=lambda s: 0.1 * s),
    rows(30, chosen_reward=lambda s: 0.02 * s, rejected_reward=lambda s: -0.05 * s,
         margin_accuracy=lambda s: min(1.0, 0.5 + 0.02 * s)),
]


def test_every_check_has_a_failure_case():
    assert set(FAILURES) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_each_check_fires_on_its_failure_and_only_it(name):
    alerts = check_history(FAILURES[name])
    assert [a.check for a in alerts] == [name]
    assert alerts[0].step == FAILURES[name][-1]["step"]  # first seen where the signature completes
    assert len(alerts[0].message) > 40                   # a sentence, not a code
    assert alerts[0].level == ("note" if name in NOTES else "warning")


@pytest.mark.parametrize("history", HEALTHY)
def test_no_warning_fires_on_healthy_histories(history):
    assert [a for a in check_history(history) if a.level == "warning"] == []


def test_a_shared_reference_is_told_apart_from_a_policy_that_does_not_move():
    assert [a.check for a in check_history(rows(5, kl=0.0, grad_norm=0.0))] == ["gradient_zero"]
    assert [a.check for a in check_history(rows(5, kl=0.0, grad_norm=0.5))] == ["kl_stuck_at_zero"]


@pytest.mark.parametrize("name", ["base", "sft", "rm", "reasoning"])
def test_no_check_fires_on_the_shipped_training_runs(name):
    from course_utils.models import resolve
    history = json.loads((Path(resolve(name)) / "history.json").read_text())["history"]
    assert len(history) > 10
    assert check_history(history) == []


def test_a_check_fires_once_per_run():
    d = RunDashboard(live=False, echo=False)
    fired = [d.log({"step": s, "truncated": 1.0}) for s in range(1, 6)]
    assert [len(f) for f in fired] == [0, 1, 0, 0, 0]
    assert [a.check for a in d.alerts] == ["never_ends"]


def test_the_log_is_written_row_by_row_and_reads_back(tmp_path):
    path = tmp_path / "runs" / "ppo.jsonl"
    d = RunDashboard(path=path, live=False, echo=False)
    d.log({"step": 1, "loss": 1.5, "kl": torch.tensor(0.25)})
    assert read_log(path) == [{"step": 1, "loss": 1.5, "kl": 0.25}]   # on disk before the run ends
    d.log({"step": 2, "loss": float("nan")})
    lines = path.read_text().splitlines()
    assert json.loads(lines[1]) == {"step": 2, "loss": None}         # valid JSON: NaN is written as null
    back = read_log(path)
    assert math.isnan(back[1]["loss"])
    assert [a.check for a in check_history(back)] == ["not_finite"]


def test_read_log_names_the_bad_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": \n')
    with pytest.raises(JSONLError, match=r"log.jsonl:2: not valid JSON"):
        read_log(path)
    path.write_text('{"loss": 1.0}\n')
    with pytest.raises(JSONLError, match=r"log.jsonl:1: .*'step'"):
        read_log(path)
    path.write_text("\n")
    with pytest.raises(JSONLError, match="no rows"):
        read_log(path)
    with pytest.raises(JSONLError, match="no such file"):
        read_log(tmp_path / "missing.jsonl")


def test_a_row_needs_a_step():
    with pytest.raises(ValueError, match="step"):
        RunDashboard(live=False).log({"loss": 1.0})


def test_draw_shows_one_panel_per_logged_group():
    d = RunDashboard(live=False, echo=False)
    for row in FAILURES["gold_falls"]:
        d.log({**row, "kl": 0.1, "loss": 1.0})
    fig = d.draw()
    titled = [ax for ax in fig.axes if ax.axison]
    assert len(titled) == 3              # loss; proxy + gold; kl
    assert any(line.get_linestyle() == "--" for line in titled[0].get_lines())  # the alert's step is marked


# --- the loops log to it -----------------------------------------------------------------------
def _tiny_rows():
    from course_utils import world
    return [r for r in world.make_instruction_data()["train"] if r["task"] == "add"][:50]


def test_train_logs_grad_norm_and_dpo_metrics_and_the_dashboard_changes_nothing():
    from course_utils.alignment.dpo import run_dpo
    from course_utils.models import load_model
    from course_utils.training import TrainConfig
    pairs = [{"prompt": "What is 2 plus 3?", "chosen": "5", "rejected": "6"},
             {"prompt": "What is 4 plus 4?", "chosen": "8", "rejected": "9"}] * 8
    cfg = TrainConfig(steps=4, batch_size=8, lr=1e-4, log_every=2, seed=1)
    ref, tok = load_model("sft")
    runs = []
    for d in (None, RunDashboard(live=False, echo=False)):
        policy, _ = load_model("sft")
        res = run_dpo(policy, ref, tok, pairs, cfg, dashboard=d, progress=False)
        runs.append((res, policy, d))
    (plain, p1, _), (logged, p2, d) = runs
    assert d.history == logged.history == plain.history
    for row in d.history:
        assert {"loss", "lr", "grad_norm", "chosen_reward", "rejected_reward", "margin_accuracy"} <= set(row)
        assert 0.0 <= row["margin_accuracy"] <= 1.0 and row["grad_norm"] > 0
    assert all(torch.equal(a, b) for a, b in zip(p1.parameters(), p2.parameters()))


def test_grpo_with_answers_cut_at_the_cap_is_warned_about():
    """A real failure: a length cap of one token cuts every answer before its end-of-text."""
    from course_utils.alignment.grpo import GRPOConfig, train_grpo
    from course_utils.models import load_model
    policy, tok = load_model("sft")
    ref, _ = load_model("sft")
    d = RunDashboard(live=False, echo=False)
    train_grpo(policy, ref, tok, _tiny_rows(), GRPOConfig(steps=3, prompts_per_step=4, group_size=4,
                                                         max_new_tokens=1), progress=False, dashboard=d)
    assert all(r["truncated"] == 1.0 for r in d.history)
    assert "never_ends" in [a.check for a in d.alerts]


def test_a_healthy_grpo_run_raises_no_alert_and_a_constant_reward_does():
    from course_utils.alignment.grpo import GRPOConfig, train_grpo
    from course_utils.models import load_model
    cfg = GRPOConfig(steps=5, prompts_per_step=4, group_size=4)
    results = {}
    for name, reward_fn in (("healthy", None), ("constant", lambda p, r: torch.zeros(len(r)))):
        policy, tok = load_model("sft")
        ref, _ = load_model("sft")
        d = RunDashboard(live=False, echo=False)
        train_grpo(policy, ref, tok, _tiny_rows(), cfg, progress=False, reward_fn=reward_fn, dashboard=d)
        results[name] = [a.check for a in d.alerts if a.level == "warning"]
    assert results["healthy"] == []
    # every advantage is 0, so the gradient is exactly 0 and the KL stays 0 (not a shared reference)
    assert results["constant"] == ["no_gradient_groups", "gradient_zero", "reward_always_zero"]


def test_a_healthy_ppo_run_raises_no_alert():
    from course_utils.alignment.rlhf import RLHFConfig, train_ppo_rlhf
    from course_utils import world
    from course_utils.models import load_model
    policy, tok = load_model("sft")
    ref, _ = load_model("sft")
    rm, _ = load_model("rm", kind="classifier")
    prompts = list(world.open_prompts(seed=5, n=100)["prompt"])
    d = RunDashboard(live=False, echo=False)
    train_ppo_rlhf(policy, ref, rm, tok, prompts, RLHFConfig(steps=4, batch_size=16, seed=0), progress=False,
                   dashboard=d)
    assert len(d.history) == 4 and "grad_norm" in d.history[0]
    assert d.alerts == []


def test_checks_are_documented_with_their_signature():
    for name, check in CHECKS.items():
        assert check.__doc__ and check.__name__ == f"check_{name}", name
    assert dash.__doc__ and "JSONL" in dash.__doc__
