"""The instructor's numbers for a room: counts, agreement with gold and with each other, the class reward model.

Everything takes a :class:`Room` (the pairs and every stored label), read from the room
folder (:meth:`Room.open`, the same machine as the server) or from the server's
``/export`` with the instructor key (:meth:`Room.fetch`, e.g. from a JupyterHub notebook).

**Agreement with gold.** A ``prefer`` label agrees when its chosen response has the higher
gold reward; pairs whose responses tie on gold are left out. k agreeing of n gives a
Wilson interval (:func:`course_utils.evaluation.uncertainty.wilson`).

**Agreement with each other: Fleiss' kappa** (Fleiss 1971). Pair i got n_i votes, n_ij of
them in category j (A, B, tie)::

    P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1))      agreeing pairs of votes on pair i
    P   = mean_i P_i                                   observed agreement
    p_j = sum_i n_ij / sum_i n_i,   P_e = sum_j p_j^2  agreement expected by chance
    kappa = (P - P_e) / (1 - P_e)

With the same number of votes on every pair this is Fleiss' formula exactly; pairs with
fewer than two votes carry no agreement and are left out. 1 is perfect agreement, 0 is
chance (Landis and Koch read 0.21-0.40 as fair, 0.41-0.60 as moderate).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset

from course_utils.alignment.feedback import PREFERENCE_SCHEMA, gold_of
from course_utils.alignment.label_db import LabelDB
from course_utils.evaluation.uncertainty import Interval, wilson

CATEGORIES = ("a", "b", "tie")


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa of a table of counts: one row per item, one column per category (see above)."""
    rows = [list(r) for r in table if sum(r) >= 2]
    if not rows:
        raise ValueError("Fleiss' kappa needs an item with at least two votes")
    p_i = [(sum(c * c for c in r) - sum(r)) / (sum(r) * (sum(r) - 1)) for r in rows]
    total = sum(sum(r) for r in rows)
    p_e = sum((sum(r[j] for r in rows) / total) ** 2 for j in range(len(rows[0])))
    if p_e == 1:
        raise ValueError("every vote is in one category: kappa is undefined")
    return (sum(p_i) / len(p_i) - p_e) / (1 - p_e)


@dataclass
class Room:
    """A room's pairs and its stored labels (undo rows included), as the store returns them."""
    pairs: list[dict]
    rows: list[dict]

    @classmethod
    def open(cls, folder: str | os.PathLike) -> "Room":
        db = LabelDB(folder)
        try:
            return cls(db.pairs(), db.rows())
        finally:
            db.close()

    @classmethod
    def fetch(cls, url: str, instructor_key: str, timeout: float = 30) -> "Room":
        req = urllib.request.Request(url.rstrip("/") + "/export",
                                     headers={"Authorization": f"Bearer {instructor_key}"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=timeout) as r:
            out = json.loads(r.read())
        return cls(out["pairs"], out["labels"])

    @property
    def live(self) -> list[dict]:
        """Labels not undone, each with ``vote`` (a, b, tie or skip)."""
        undone = {r["undoes"] for r in self.rows if r["judgement"] == "undo"}
        a_of = {p["pair_id"]: p["a"] for p in self.pairs}
        out = []
        for r in self.rows:
            if r["judgement"] == "undo" or r["label_id"] in undone:
                continue
            vote = r["judgement"] if r["judgement"] != "prefer" else ("a" if r["chosen"] == a_of[r["pair_id"]] else "b")
            out.append({**r, "vote": vote})
        return out

    def counts(self) -> dict[str, Counter]:
        """Per participant: labels, and how many of each vote."""
        out: dict[str, Counter] = defaultdict(Counter)
        for r in self.live:
            out[r["labeler"]]["labels"] += 1
            out[r["labeler"]][r["vote"]] += 1
        return dict(sorted(out.items()))

    def gold_agreement(self) -> tuple[dict[str, Interval], Interval]:
        """Agreement with gold per participant and for the room, with Wilson intervals."""
        hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in self.live:
            if r["judgement"] != "prefer":
                continue
            d = gold_of(r["prompt"], r["chosen"]) - gold_of(r["prompt"], r["rejected"])
            if d != 0:
                hits[r["labeler"]][0] += d > 0
                hits[r["labeler"]][1] += 1
        per = {name: wilson(k, n) for name, (k, n) in sorted(hits.items())}
        k, n = sum(h[0] for h in hits.values()), sum(h[1] for h in hits.values())
        if not n:
            raise ValueError("no label yet on a pair with a gold preference")
        return per, wilson(k, n)

    def kappa(self) -> float:
        """Fleiss' kappa over the votes A, B and tie (skips left out)."""
        votes: dict[str, Counter] = defaultdict(Counter)
        for r in self.live:
            if r["vote"] in CATEGORIES:
                votes[r["pair_id"]][r["vote"]] += 1
        return fleiss_kappa([[c[k] for k in CATEGORIES] for c in votes.values()])

    def preferences(self) -> Dataset:
        """The room's live ``prefer`` labels as a Dataset (the fields of a PreferenceStore's)."""
        keys = [k for k in PREFERENCE_SCHEMA if k != "judgement"]
        rows = [{k: r[k] for k in keys} for r in self.live if r["judgement"] == "prefer"]
        return Dataset.from_list(rows) if rows else Dataset.from_dict({k: [] for k in keys})

    def export_jsonl(self, path: str | os.PathLike) -> int:
        """Write every live label (ties and skips too) to ``path`` atomically; return how many."""
        path, live = Path(path), self.live
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in live)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return len(live)


def class_reward_model(room: Room, steps: int = 62, n_test_prompts: int = 300, seed: int = 0) -> dict:
    """Chapter 09's trainer on the room's pooled labels; its accuracy against gold beside the shipped reward model's.

    The test pairs are fresh SFT samples (chapter 09's held-out prompts), ordered by gold.
    Returns the model, its tokenizer, the two accuracies (Wilson intervals) and the seconds.
    """
    from course_utils import world
    from course_utils.alignment.reward_model import (gold_preference_pairs, preference_credit, sample_pairs,
                                                     train_reward_model)
    from course_utils.models import load_model
    from course_utils.training import TrainConfig, set_seed
    labels = room.preferences()
    if len(labels) < 8:
        raise ValueError(f"only {len(labels)} preference labels so far: label a few more pairs first")
    set_seed(seed)
    cfg = TrainConfig(steps=steps, batch_size=min(32, len(labels)), lr=3e-4, warmup_steps=5, log_every=10,
                      seed=seed, desc="class reward model")
    model, tok, result = train_reward_model(labels, cfg, progress=False)
    policy, _ = load_model("sft")
    test = gold_preference_pairs(sample_pairs(policy, tok, world.open_prompts(seed=2, n=n_test_prompts)["prompt"],
                                              seed=1, id_prefix="test"))
    shipped, _ = load_model("rm", kind="classifier")
    ours, theirs = preference_credit(model, tok, test), preference_credit(shipped, tok, test)
    return {"model": model, "tokenizer": tok, "labels": len(labels), "steps": steps,
            "seconds": result.seconds, "test_pairs": len(test),
            "class_rm": wilson(int(ours.sum().round()), len(test)),
            "shipped_rm": wilson(int(theirs.sum().round()), len(test))}


def class_ppo(reward_model, tokenizer, steps: int = 50, batch_size: int = 64, kl_coef: float = 0.2,
              n_eval_prompts: int = 200, seed: int = 0, progress: bool = True, desc: str = "PPO") -> dict:
    """Chapter 10's PPO run (the shipped SFT policy, 50 steps of 64, β = 0.2) against ``reward_model``; the gold result.

    The run is :func:`course_utils.alignment.rlhf.train_ppo_rlhf` on chapter 10's training
    prompts, ``steps`` rollouts of ``batch_size`` responses (gold is logged, never trained on).
    Before and after, one temperature-1 response to each of chapter 10's ``n_eval_prompts``
    evaluation prompts is scored by gold, with the same random seed both times; the gain is
    the mean of the per-prompt differences (after - before) with a t interval (:func:`mean_ci`).
    Returns the run's ``history`` and ``seconds``, ``before``, ``after`` and ``gain`` (Intervals
    of mean gold reward per response), and ``after_values`` (the gold of each prompt's response
    after the run): two runs with the same ``seed`` and ``n_eval_prompts`` are compared prompt
    by prompt on these.
    """
    from course_utils import world
    from course_utils.alignment.rlhf import RLHFConfig, gold_scores, sample_rollout, train_ppo_rlhf
    from course_utils.evaluation.uncertainty import mean_ci
    from course_utils.models import load_model
    from course_utils.training import set_seed

    train_prompts = list(world.open_prompts(seed=1, n=4000)["prompt"])
    eval_prompts = list(world.open_prompts(seed=50, n=n_eval_prompts)["prompt"])
    set_seed(seed)
    policy, _ = load_model("sft")
    ref, _ = load_model("sft")

    def gold_now() -> list[float]:
        torch.manual_seed(seed + 1)
        ro = sample_rollout(policy, None, ref, tokenizer, eval_prompts, max_new_tokens=24)
        return list(gold_scores(ro.prompts, ro.responses))

    before = gold_now()
    config = RLHFConfig(steps=steps, batch_size=batch_size, kl_coef=kl_coef, seed=seed, desc=desc)
    result = train_ppo_rlhf(policy, ref, reward_model, tokenizer, train_prompts, config, progress=progress)
    after = gold_now()
    return {"history": result.history, "seconds": result.history[-1]["seconds"],
            "before": mean_ci(before), "after": mean_ci(after),
            "gain": mean_ci([a - b for a, b in zip(after, before)]), "after_values": after}
