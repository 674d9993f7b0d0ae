"""Teaching the tiny model when to refuse, on the course's own loops, and measuring it.

Everything here is a training loop the course already has, fed with chapter 19's data:

* :func:`refusal_sft` -- chapter 04's SFT (:func:`course_utils.sft.run_sft`) on the ``train``
  split of :func:`~course_utils.safety.requests.make_safety_data`: refusals for harmful
  requests, helpful answers for look-alikes and ordinary requests. ``lookalike_share`` keeps
  that share of the look-alike rows; at 0 the model sees refusals next to the forbidden words
  and never sees those words in a request it must answer.
* :func:`safety_dpo` -- chapter 11's DPO (:func:`course_utils.alignment.dpo.run_dpo`) on
  HH-style pairs (:func:`~course_utils.safety.requests.preference_pairs`): *harmlessness* pairs
  (refusal over harmful answer) and *helpfulness* pairs (helpful answer over needless refusal),
  both kinds mixed or one alone.
* :func:`red_team` -- a search for the harmful requests a model complies with: every
  (rule, act, target, frame) of the world, held out or not, answered and judged.
* :func:`safety_report` -- a model's answers to a split's requests, judged by the gold policy
  (:func:`~course_utils.safety.gold.judge`) and summed up by :func:`summarise`: the
  harmful-compliance rate, the needless-refusal rate on look-alikes and on ordinary requests,
  each with a Wilson 95% interval, and the share of harmless requests answered helpfully.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from course_utils.alignment.dpo import run_dpo
from course_utils.models import generate, load_model
from course_utils.safety.gold import judge, rate
from course_utils.safety.requests import (FRAMES, RULES, combos, heldout_combos, make_safety_data,
                                           make_twins, preference_pairs)
from course_utils.sft import run_sft
from course_utils.training import TrainConfig, set_seed

#: Tokens an answer may take: the longest reference answer of seed 0's splits, and the longest
#: refusal followed by a rule's reason, are 44 tokens each (the new words split into pieces).
MAX_ANSWER_TOKENS = 48


def summarise(rows: Sequence[Mapping], answers: Sequence[str]) -> dict[str, float]:
    """The gold judgements of ``answers`` to the requests ``rows``, summed up.

    Returns, each with ``_lo`` and ``_hi`` (Wilson 95%) and ``_n`` (the requests it is over; a
    rate whose kind is absent is left out): ``harmful_compliance`` (share of harmful requests
    answered with harmful compliance), ``proper_refusal`` (share of harmful requests properly
    refused), ``needless_refusal_lookalike`` and ``needless_refusal_ordinary`` (share of those
    harmless requests refused without help), ``helpful`` (share of harmless requests answered
    helpfully: class ``compliance``).
    """
    rows = list(rows)
    if not rows:
        raise ValueError("no requests to report on")
    present = {r["kind"] for r in rows}
    out: dict[str, float] = {}
    for name, label, kinds in [("harmful_compliance", "harmful_compliance", ("harmful",)),
                               ("proper_refusal", "proper_refusal", ("harmful",)),
                               ("needless_refusal_lookalike", "needless_refusal", ("harmless_lookalike",)),
                               ("needless_refusal_ordinary", "needless_refusal", ("ordinary",)),
                               ("helpful", "compliance", ("harmless_lookalike", "ordinary"))]:
        if present & set(kinds):
            ci = rate(rows, answers, label, kinds)
            out.update({name: ci.value, f"{name}_lo": ci.lo, f"{name}_hi": ci.hi, f"{name}_n": ci.n})
    return out


def safety_report(model, tokenizer, rows: Sequence[Mapping], temperature: float = 0.0,
                  seed: int | None = None) -> dict[str, float]:
    """Answer every request of ``rows`` (greedy unless ``temperature > 0``) and :func:`summarise` the judgements."""
    rows = list(rows)
    if not rows:
        raise ValueError("no requests to report on")
    answers = generate(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=MAX_ANSWER_TOKENS,
                       temperature=temperature, seed=seed)
    return summarise(rows, answers)


def attack_requests(seed: int = 0) -> list[dict]:
    """Every harmful request template of the world once: each (rule, act, target) combination in
    each of the :data:`~course_utils.safety.requests.FRAMES`, 550 requests, in a fixed order.

    A request that needs another child (``take_thing``) gets one drawn with ``seed``. Each row is
    a harmful request as :func:`make_safety_data` writes it, plus ``held_out``: whether its
    combination is one that seed ``seed``'s ``train`` split never shows.
    """
    rng = random.Random(f"safety-attacks-{seed}")
    held = heldout_combos(seed)
    rows = []
    for rule in RULES:
        for combo in combos(rule):
            for frame in FRAMES:
                harmful, _ = make_twins(rng, combo, frame)
                rows.append({**harmful, "held_out": combo in held})
    return rows


def red_team(model, tokenizer, requests: Sequence[Mapping] | None = None, seed: int = 0,
             temperature: float = 0.0, samples: int = 1) -> list[dict]:
    """Answer every request of ``requests`` (default :func:`attack_requests` ``(seed)``) ``samples``
    times and judge each answer; the red team keeps the rows labelled ``harmful_compliance``.

    Returns one row per answer: the request's fields, ``answer`` and ``label`` (the gold class).
    Greedy answers (``temperature=0``) are the same every time, so ``samples`` > 1 needs a
    temperature.
    """
    rows = list(attack_requests(seed) if requests is None else requests)
    if not rows:
        raise ValueError("no requests to attack with")
    if samples < 1 or (samples > 1 and temperature == 0):
        raise ValueError(f"samples must be 1, or more with a temperature above 0; got samples={samples}, "
                         f"temperature={temperature}")
    prompts = [r["prompt"] for r in rows for _ in range(samples)]
    answers = generate(model, tokenizer, prompts, max_new_tokens=MAX_ANSWER_TOKENS, temperature=temperature,
                       seed=seed)
    expanded = [r for r in rows for _ in range(samples)]
    return [{**r, "answer": a, "label": judge(r, a).label} for r, a in zip(expanded, answers)]


def refusal_rows(rows: Sequence[Mapping], lookalike_share: float = 1.0) -> list[Mapping]:
    """The rows of refusal SFT: every harmful and ordinary row of ``rows``, and the first
    ``round(lookalike_share * n)`` of its ``n`` harmless look-alike rows (a split's order is
    already seeded and random). At 0 the model never sees a forbidden word in a request it
    must answer."""
    if not 0.0 <= lookalike_share <= 1.0:
        raise ValueError(f"lookalike_share must lie in [0, 1], not {lookalike_share}")
    rows = list(rows)
    keep = round(lookalike_share * sum(r["kind"] == "harmless_lookalike" for r in rows))
    out = []
    for r in rows:
        if r["kind"] == "harmless_lookalike":
            if keep == 0:
                continue
            keep -= 1
        out.append(r)
    return out


def refusal_sft(seed: int = 0, steps: int = 300, lookalike_share: float = 1.0, n_train: int = 200,
                lr: float = 1e-3, batch_size: int = 32, start: str = "sft", progress: bool = True):
    """SFT of ``start`` (the shipped SFT model) on :func:`refusal_rows` of the ``train`` split of
    :func:`make_safety_data` ``(seed, n_train)``, ``steps`` batches whatever the share.

    Returns ``(model, tokenizer, data, result)``.
    """
    data = make_safety_data(seed=seed, n_train=n_train)
    rows = refusal_rows(data["train"], lookalike_share)
    set_seed(seed)
    model, tok = load_model(start)
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=20, seed=seed,
                         desc=f"refusal SFT, look-alike share {lookalike_share:g}")
    result = run_sft(model, tok, rows, config, progress=progress)
    return model, tok, data, result


PAIR_KINDS = ("both", "harmlessness", "helpfulness")


def safety_dpo(policy, ref, tokenizer, rows: Sequence[Mapping], pairs: str = "both", steps: int = 200,
               beta: float = 0.1, lr: float = 1e-4, batch_size: int = 32, seed: int = 0, progress: bool = True):
    """DPO of ``policy`` (in place) against ``ref`` on the preference pairs of ``rows`` (requests).

    ``pairs``: ``"both"`` (every pair), ``"harmlessness"`` (harmful requests only) or
    ``"helpfulness"`` (harmless requests only). Returns ``run_dpo``'s result.
    """
    if pairs not in PAIR_KINDS:
        raise ValueError(f"pairs must be one of {PAIR_KINDS}, not {pairs!r}")
    data = [p for p in preference_pairs(rows, seed=seed) if pairs == "both" or p["kind"] == pairs]
    if not data:
        raise ValueError(f"no {pairs} pairs among the requests")
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=10, seed=seed,
                         desc=f"DPO, {pairs} pairs")
    return run_dpo(policy, ref, tokenizer, data, config, beta=beta, progress=progress)


RM_KINDS = ("single", "helpfulness", "harmlessness")


def hh_reward_models(seed: int = 0, n_train: int = 200, steps: int = 150, lr: float = 3e-4, batch_size: int = 32,
                     progress: bool = True) -> dict:
    """Three Bradley-Terry reward models on the HH-style pairs of the ``train`` split of
    :func:`make_safety_data` ``(seed, n_train)``, each from the shipped SFT weights with chapter
    09's :func:`~course_utils.alignment.reward_model.train_reward_model`: ``"single"`` on both
    kinds of pairs, ``"helpfulness"`` and ``"harmlessness"`` on one kind each, the same steps.

    Returns ``{kind: (model, tokenizer)}``.
    """
    from course_utils.alignment.reward_model import train_reward_model

    pairs = preference_pairs(make_safety_data(seed=seed, n_train=n_train)["train"], seed=seed)
    out = {}
    for kind in RM_KINDS:
        rows = [p for p in pairs if kind == "single" or p["kind"] == kind]
        config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=10, seed=seed,
                             desc=f"reward model, {kind}")
        model, tok, _ = train_reward_model(rows, config, progress=progress)
        out[kind] = (model, tok)
    return out


def combined_scores(reward_models: Mapping, prompts: Sequence[str], answers: Sequence[str],
                    weight: float | None) -> list[float]:
    """The reward of each (prompt, answer): the ``"single"`` model's score when ``weight`` is
    ``None``, else ``weight * z_harmless + (1 - weight) * z_helpful``.

    ``z`` is a model's score standardised over the answers given (minus their mean, over their
    standard deviation), so that the weight, not the two models' scales, sets the balance.
    """
    from course_utils.alignment.reward_model import score

    if weight is None:
        model, tok = reward_models["single"]
        return score(model, tok, prompts, answers).tolist()
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1] (or be None for the single model), not {weight}")
    z = {}
    for kind in ("helpfulness", "harmlessness"):
        model, tok = reward_models[kind]
        s = score(model, tok, prompts, answers)
        z[kind] = (s - s.mean()) / s.std().clamp(min=1e-6)
    return (weight * z["harmlessness"] + (1 - weight) * z["helpfulness"]).tolist()


def rerank(rows: Sequence[Mapping], candidates: Sequence[Sequence[str]], reward_models: Mapping,
           weight: float | None) -> list[str]:
    """For each request of ``rows``, the candidate answer of highest :func:`combined_scores` (best-of-n)."""
    rows, candidates = list(rows), [list(c) for c in candidates]
    if len(rows) != len(candidates) or not rows or any(not c for c in candidates):
        raise ValueError(f"need one non-empty list of candidates per request: {len(rows)} requests, "
                         f"{len(candidates)} candidate lists")
    prompts = [r["prompt"] for r, cs in zip(rows, candidates) for _ in cs]
    flat = [a for cs in candidates for a in cs]
    scores = combined_scores(reward_models, prompts, flat, weight)
    out, i = [], 0
    for cs in candidates:
        best = max(range(len(cs)), key=lambda j: scores[i + j])
        out.append(cs[best])
        i += len(cs)
    return out
