"""One run dashboard for every training loop: records, a live plot, a JSONL log and warnings.

Every loop of the course hands each logged row to a :class:`RunDashboard`:
:func:`course_utils.training.train` (SFT, reward model, the DPO family),
:func:`course_utils.alignment.rlhf.train_ppo_rlhf` (PPO) and
:func:`course_utils.alignment.grpo.train_grpo` (GRPO, RLOO, RL with verifiable rewards).
A row is a flat dict with ``step`` and any of the columns below; a loop logs the ones it has.

====================  =================================================================
column                meaning
====================  =================================================================
``loss``              the loss the optimiser minimised (mean over the logged steps)
``lr``                learning rate
``grad_norm``         L2 norm of all gradients before clipping
``reward``            mean reward of the sampled answers (GRPO, RLVR)
``proxy``, ``gold``   reward-model score and hidden gold reward of the answers (PPO)
``kl``                KL to the reference per answer, nats (GRPO: k3 estimator; PPO: k1)
``kl_k1``, ``kl_k3``  the same with the other estimator
``entropy``           mean token entropy of the sampled answers (nats)
``length``            mean answer length in tokens
``truncated``         share of answers cut at the length cap (none ends with end-of-text)
``eos_rate``          share of answers that end with end-of-text (PPO; SFT with an evaluation)
``end_prob``          mean probability of end-of-text right after held-out reference answers (SFT)
``zero_std_groups``   share of GRPO groups whose rewards are all equal (no gradient)
``clip_fraction``     share of tokens (or answers) whose ratio was clipped
``format_rate``       share of answers a format checker accepts (RLVR)
``chosen_reward``     DPO's implicit reward of the chosen answers, beta * (log pi - log ref)
``rejected_reward``   the same for the rejected answers
``margin_accuracy``   share of pairs with chosen_reward > rejected_reward
====================  =================================================================

**Warnings.** After each row, every check in :data:`CHECKS` looks at the history so far and
may return a plain sentence: the signature of a known failure was seen. A few checks are
*notes* (:data:`NOTES`): what they see happens in healthy runs too, and their sentence says
how to read it (a DPO run's chosen reward falling, a GRPO loss near 0). Each check fires at
most once per run (the first step it sees the signature); :meth:`RunDashboard.log` returns the
new alerts, prints them, and keeps them in ``alerts``. Checks need the columns they read; a
loop that does not log a column is never warned about it. :func:`check_history` runs the same
checks over a finished history (e.g. one read back with :func:`read_log`).

**The log.** With ``path``, every row is appended to a JSONL file as it arrives (one JSON
object per line, flushed at once, so a crashed run keeps every step it finished);
:func:`read_log` reads it back with errors that name the line.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from course_utils.jsonl import JSONLError, json_lines
from course_utils.plotting import plot_history

#: Panels of the live plot: each draws those of its columns that the run logs.
PANELS: tuple[tuple[str, ...], ...] = (
    ("loss",), ("reward", "proxy", "gold", "format_rate"), ("kl", "kl_k1", "kl_k3"), ("entropy",),
    ("length",), ("grad_norm",), ("chosen_reward", "rejected_reward"), ("margin_accuracy",),
    ("zero_std_groups", "truncated", "eos_rate", "end_prob", "clip_fraction"),
)


@dataclass(frozen=True)
class Alert:
    """What a check saw: the ``step`` it was first seen, the check's name, a sentence, and its
    ``level``: ``"warning"`` (a failure signature) or ``"note"`` (a healthy run can show it too,
    and a learner often mistakes it for one: :data:`NOTES`)."""
    step: int
    check: str
    message: str
    level: str = "warning"

    def __str__(self) -> str:
        return f"step {self.step}: {self.message}"


def _col(history: Sequence[Mapping], key: str) -> list[float]:
    return [float(r[key]) for r in history if key in r and r[key] is not None]


def _last(history: Sequence[Mapping], key: str, n: int) -> list[float] | None:
    """The last ``n`` values of ``key``, or None if fewer were logged."""
    values = _col(history, key)
    return values[-n:] if len(values) >= n else None


def _stuck_at(history: Sequence[Mapping], key: str, value: float, n: int) -> bool:
    """True when the last ``n`` logged values of ``key`` all equal ``value`` (and ``n`` were logged)."""
    last = _last(history, key, n)
    return last is not None and all(v == value for v in last)


# ---------------------------------------------------------------------------------------------
# The checks: each takes the history so far and returns a sentence when its signature is there.
# ---------------------------------------------------------------------------------------------
def check_not_finite(history: Sequence[Mapping]) -> str | None:
    """Any number in the newest row is NaN or infinite."""
    bad = [k for k, v in history[-1].items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        return (f"{', '.join(bad)} is not a finite number: the run diverged. Lower the learning rate "
                f"or look for an empty batch (a loss over zero tokens).")
    return None


def check_no_gradient_groups(history: Sequence[Mapping], n: int = 3) -> str | None:
    """Every GRPO group had equal rewards in each of the last ``n`` steps: the advantages are all 0."""
    if _stuck_at(history, "zero_std_groups", 1.0, n):
        return (f"every group has zero reward spread in each of the last {n} steps: no gradient. "
                f"All answers of a prompt are equally right or wrong: check the reward function "
                f"and that the tasks are neither too easy nor too hard.")
    return None


def check_never_ends(history: Sequence[Mapping], n: int = 2) -> str | None:
    """Every answer was cut at the length cap (``truncated`` 1, or ``eos_rate`` 0) in the last ``n`` steps."""
    if _stuck_at(history, "truncated", 1.0, n) or _stuck_at(history, "eos_rate", 0.0, n):
        return (f"no answer ends with end-of-text in the last {n} steps: every one is cut at the length "
                f"cap. Check that end-of-text is a trained label (pad = eos masks it out of the loss) "
                f"and that the cap leaves room for a full answer.")
    return None


def check_end_not_learned(history: Sequence[Mapping], floor: float = 0.9) -> str | None:
    """Right after a reference answer, end-of-text had a mean probability below ``floor``
    (``end_prob``, an evaluation over held-out prompts): the model is not learning where to stop.

    Answers may still end for a while (the base model ends short texts from pretraining), so this
    column shows the bug long before ``eos_rate`` does. The floor comes from chapter 18's sweep
    ``failures`` (5 seeds, 150 steps, evaluated every 50): healthy SFT runs were at 0.998 or above
    at the first and the last evaluation (the two the sweep stores), runs with the end-of-text
    label removed ended between 0.11 and 0.81.
    """
    last = _last(history, "end_prob", 1)
    if last is not None and last[0] < floor:
        return (f"after a reference answer the model gives end-of-text a probability of only {last[0]:.2f} "
                f"(below {floor}): it is not learning where answers stop. Check that each answer's closing "
                f"end-of-text is a trained label (print one batch's labelled tokens): padding with "
                f"end-of-text, or a mask one token off, removes it.")
    return None


def check_reward_always_zero(history: Sequence[Mapping], n: int = 5) -> str | None:
    """The mean reward was exactly 0 in each of the last ``n`` steps."""
    if _stuck_at(history, "reward", 0.0, n):
        return (f"the reward was 0 for every answer in the last {n} steps. Print a few answers next to "
                f"their rewards: a parser that never matches or answers truncated at the cap score 0.")
    return None


def check_format_never_fires(history: Sequence[Mapping], n: int = 5) -> str | None:
    """The format checker accepted no answer in the last ``n`` steps."""
    if _stuck_at(history, "format_rate", 0.0, n):
        return (f"the format reward has not fired once in {n} steps. Run the checker on an answer "
                f"you know is well formed: its pattern may not match the model's template.")
    return None


def check_kl_jump(history: Sequence[Mapping], factor: float = 10.0, floor: float = 1.0) -> str | None:
    """KL to the reference reached ``factor`` times its largest earlier value, and at least ``floor`` nats.

    The floor keeps the first steps quiet: KL starts at 0, and a healthy step of the course's
    PPO run takes it from 0.05 to 0.5 nats (tests/test_dashboard.py).
    """
    values = _col(history, "kl")
    if len(values) >= 2:
        before = max(max(values[:-1]), 1e-3)
        if values[-1] >= floor and values[-1] >= factor * before:
            earlier = max(values[:-1])
            was = (f"{values[-1] / before:.0f}x its largest earlier value ({earlier:.3f})" if earlier >= 1e-3
                   else f"from at most {earlier:.3f} before")
            return (f"KL to the reference jumped to {values[-1]:.2f} nats, {was}. The learning rate may be "
                    f"too high, or the reference is not the frozen start model.")
    return None


def check_grad_norm_jump(history: Sequence[Mapping], factor: float = 10.0, n: int = 5) -> str | None:
    """The gradient norm reached ``factor`` times the median of the ``n`` rows before."""
    values = _col(history, "grad_norm")
    if len(values) > n:
        before = sorted(values[-n - 1:-1])[n // 2]
        if before > 0 and values[-1] >= factor * before:
            return (f"the gradient norm jumped to {values[-1]:.3g}, {values[-1] / before:.0f}x its recent "
                    f"median ({before:.3g}). A learning rate too high, or one bad batch.")
    return None


def check_entropy_collapse(history: Sequence[Mapping], floor: float = 0.05) -> str | None:
    """The sampled answers' token entropy fell below ``floor`` nats (after starting above it)."""
    values = _col(history, "entropy")
    if len(values) >= 2 and values[0] > floor and values[-1] < floor:
        return (f"token entropy fell to {values[-1]:.3f} nats (from {values[0]:.3f}): the policy samples "
                f"almost one answer per prompt, so RL explores nothing new. A larger KL coefficient "
                f"or a lower learning rate keeps more of it.")
    return None


def check_gold_falls(history: Sequence[Mapping], n: int = 10, margin: float = 0.1) -> str | None:
    """Over the last ``n`` rows the proxy reward rose while the gold reward fell by ``margin``.

    Compares the means of the older and the newer half of the window.
    """
    proxy, gold = _last(history, "proxy", n), _last(history, "gold", n)
    if proxy is None or gold is None:
        return None
    h = n // 2
    d_proxy = sum(proxy[h:]) / (n - h) - sum(proxy[:h]) / h
    d_gold = sum(gold[h:]) / (n - h) - sum(gold[:h]) / h
    if d_proxy > 0 and d_gold <= -margin:
        return (f"the reward model's score rose (+{d_proxy:.2f}) while the gold reward fell "
                f"({d_gold:.2f}) over the last {n} steps: over-optimisation, or a reward with the wrong "
                f"sign. Keep the checkpoint before the fall, or raise the KL coefficient.")
    return None


def check_chosen_falls(history: Sequence[Mapping], n: int = 6) -> str | None:
    """A note, not a fault: DPO's chosen reward fell while margin accuracy rose, over ``n`` rows."""
    chosen, acc = _last(history, "chosen_reward", n), _last(history, "margin_accuracy", n)
    if chosen is None or acc is None:
        return None
    if chosen[-1] < chosen[0] and acc[-1] > acc[0] and chosen[-1] < 0:
        return (f"the chosen answers' implicit reward fell ({chosen[0]:.2f} -> {chosen[-1]:.2f}) "
                f"while margin accuracy rose ({acc[0]:.2f} -> {acc[-1]:.2f}). DPO only widens the gap: "
                f"it can lower both log-probabilities. Fine unless the chosen answers' quality falls.")
    return None


def check_kl_stuck_at_zero(history: Sequence[Mapping], n: int = 3) -> str | None:
    """KL to the reference was exactly 0 in the last ``n`` rows, after the first, while the
    gradient was not 0: something is trained, yet the policy never leaves the reference (the
    reference moves with it, or was frozen together with it and only the value head learns)."""
    values, grads = _col(history, "kl"), _last(history, "grad_norm", n)
    if len(values) > n and all(v == 0.0 for v in values[-n:]) and grads is not None and min(grads) > 0:
        return (f"KL to the reference has been exactly 0 for {n} steps while the run computes gradients: "
                f"the reference is the policy itself (the same object, or weights it shares), so the two "
                f"move together, or freezing the reference froze the policy. Load a separate copy and freeze it.")
    return None


def check_loss_not_progress(history: Sequence[Mapping], n: int = 6, small: float = 0.02) -> str | None:
    """A note: over the last ``n`` rows the RL loss stayed within ``small`` of 0 while the reward rose."""
    loss, reward = _last(history, "loss", n), _last(history, "reward", n)
    if loss is None or reward is None:
        return None
    if max(abs(v) for v in loss) < small and reward[-1] - reward[0] > 0.1:
        return (f"the loss stays near 0 (|loss| < {small}) while the reward rose {reward[0]:.2f} -> "
                f"{reward[-1]:.2f}. That is normal: group-normalised advantages average to 0, so "
                f"the loss's value says nothing about progress. Watch the reward and the KL.")
    return None


def check_gradient_zero(history: Sequence[Mapping], n: int = 3) -> str | None:
    """The gradient norm was exactly 0 in the last ``n`` rows: no parameter changes."""
    if _stuck_at(history, "grad_norm", 0.0, n):
        return (f"the gradient has been exactly 0 for {n} steps: nothing is learning. In GRPO or RLOO every "
                f"advantage is 0 (all answers of each group scored the same); otherwise the loss does not "
                f"depend on any parameter being trained.")
    return None


Check = Callable[[Sequence[Mapping]], "str | None"]

#: Every check, by name. A check fires at most once per run.
CHECKS: dict[str, Check] = {
    "not_finite": check_not_finite,
    "no_gradient_groups": check_no_gradient_groups,
    "never_ends": check_never_ends,
    "end_not_learned": check_end_not_learned,
    "reward_always_zero": check_reward_always_zero,
    "format_never_fires": check_format_never_fires,
    "kl_jump": check_kl_jump,
    "grad_norm_jump": check_grad_norm_jump,
    "entropy_collapse": check_entropy_collapse,
    "gold_falls": check_gold_falls,
    "kl_stuck_at_zero": check_kl_stuck_at_zero,
    "gradient_zero": check_gradient_zero,
    "chosen_falls": check_chosen_falls,
    "loss_not_progress": check_loss_not_progress,
}

#: The checks whose alert is a note: the run may be healthy; the alert explains a reading.
NOTES: frozenset[str] = frozenset({"chosen_falls", "loss_not_progress"})


def check_history(history: Sequence[Mapping], checks: Mapping[str, Check] = CHECKS) -> list[Alert]:
    """Replay ``history`` row by row through ``checks``: the alerts a live dashboard would have raised."""
    alerts: list[Alert] = []
    fired: set[str] = set()
    for i in range(len(history)):
        alerts += _run_checks(history[:i + 1], checks, fired)
    return alerts


def _run_checks(history: Sequence[Mapping], checks: Mapping[str, Check], fired: set[str]) -> list[Alert]:
    new = []
    for name, check in checks.items():
        if name not in fired:
            message = check(history)
            if message:
                fired.add(name)
                new.append(Alert(int(history[-1].get("step", len(history))), name, message,
                                 "note" if name in NOTES else "warning"))
    return new


def read_log(path: str | os.PathLike) -> list[dict]:
    """The rows of a dashboard's JSONL log. Raises :class:`JSONLError` naming a bad line."""
    path = Path(path)
    if not path.exists():
        raise JSONLError(f"{path}: no such file")
    rows = []
    for where, row in json_lines(path):
        if not isinstance(row, dict) or "step" not in row:
            raise JSONLError(f"{where}: a dashboard row must be a JSON object with a 'step'")
        rows.append({k: (float("nan") if v is None else v) for k, v in row.items()})
    if not rows:
        raise JSONLError(f"{path}: the log holds no rows")
    return rows


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


class RunDashboard:
    """Collects a run's rows; optionally draws them live, writes them to JSONL and warns.

    Args:
        title: shown above the plot.
        path: a JSONL file to append every row to (created or truncated at start).
        live: redraw the panels in the notebook while the run goes (and at :meth:`close`);
            outside a notebook nothing is drawn. A redraw waits at least ``min_interval``
            seconds and ten times the last redraw's duration since the last one, so drawing
            takes at most about a tenth of the run's time.
        checks: the checks to run (default :data:`CHECKS`; ``{}`` for none).
        panels: the live plot's panels (default :data:`PANELS`); each shows the columns it
            names that the run has logged.
        echo: print each new alert as it fires.
    """

    def __init__(self, title: str = "training", path: str | os.PathLike | None = None, live: bool = True,
                 checks: Mapping[str, Check] = CHECKS, panels: Sequence[Sequence[str]] = PANELS,
                 echo: bool = True, min_interval: float = 1.0):
        self.title, self.checks, self.panels, self.echo = title, dict(checks), panels, echo
        self.history: list[dict] = []
        self.alerts: list[Alert] = []
        self._fired: set[str] = set()
        self.path = Path(path) if path else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")
        self.min_interval, self._drawn_at, self._draw_seconds = min_interval, 0.0, 0.0
        self._handle = None
        if live and _in_notebook():
            from IPython.display import display
            self._fig = plt.figure(figsize=(9, 2.6))
            plt.close(self._fig)  # shown through the display handle only
            self._handle = display(self._fig, display_id=True)

    def log(self, row: Mapping) -> list[Alert]:
        """Add one row (it needs ``step``); return the alerts it raised."""
        if "step" not in row:
            raise ValueError(f"a dashboard row needs a 'step': {dict(row)}")
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        self.history.append(row)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                    for k, v in row.items()}) + "\n")
                f.flush()
        new = _run_checks(self.history, self.checks, self._fired)
        self.alerts += new
        if self.echo:
            for alert in new:
                print(f"[{self.title}] {alert.level.upper()} {alert}")
        wait = max(self.min_interval, 10 * self._draw_seconds)
        if self._handle is not None and time.monotonic() - self._drawn_at >= wait:
            self.draw()
        return new

    def callback(self, row_or_history) -> None:
        """For loops that call back with the newest row or with the whole history."""
        self.log(row_or_history[-1] if isinstance(row_or_history, list) else row_or_history)

    def draw(self, fig=None):
        """Draw the panels that have data on ``fig`` (the live figure by default); return it."""
        started = time.monotonic()
        fig = fig if fig is not None else (self._fig if self._handle is not None else plt.figure(figsize=(9, 2.6)))
        fig.clear()
        used = [[k for k in panel if _col(self.history, k)] for panel in self.panels]
        used = [keys for keys in used if keys]
        if used:
            fig.set_size_inches(min(3.0 * len(used), 12), 2.6 * ((len(used) + 3) // 4))
            axes = fig.subplots((len(used) + 3) // 4, min(len(used), 4), squeeze=False).ravel()
            for ax, keys in zip(axes, used):
                plot_history(self.history, keys, ax=ax, title=keys[0] if len(keys) == 1 else "")
                for alert in self.alerts:
                    ax.axvline(alert.step, color="#c0392b", lw=0.8, ls="--")
            for ax in axes[len(used):]:
                ax.set_axis_off()
            fig.suptitle(self.title, fontsize=10)
            fig.tight_layout()
        if self._handle is not None and fig is self._fig:
            self._handle.update(fig)
            self._drawn_at = time.monotonic()
            self._draw_seconds = self._drawn_at - started
        return fig

    def close(self) -> None:
        """Draw the last rows (live dashboards only)."""
        if self._handle is not None:
            self.draw()
