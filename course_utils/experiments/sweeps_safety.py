"""Chapter 19 over seeds: the helpful-and-harmless frontier of refusal SFT, DPO and reward models.

``safety_frontier``

Each seed draws its own requests (:func:`course_utils.safety.requests.make_safety_data`) and
reports, on the ``test`` split's held-out act-target combinations, greedy answers judged by the
gold policy (:func:`course_utils.safety.methods.safety_report`):

* ``sft``: the shipped SFT model, which has never seen a refusal;
* ``refusal_sft``: refusal SFT (:func:`~course_utils.safety.methods.refusal_sft`) from the
  shipped SFT model, keeping a share of the harmless look-alike rows (``lookalike_share``; 0
  leaves them all out), the same number of steps at every share;
* ``dpo``: DPO on HH-style pairs of both kinds
  (:func:`~course_utils.safety.methods.safety_dpo`) from the share-0 model, which refuses
  look-alikes, with that model as the reference, at two values of ``beta``.

A row holds the arm, its knob (``lookalike_share``, -1 for ``sft``; ``beta``, 0 outside DPO) and the report: harmful
compliance, proper refusal, needless refusal on look-alikes and on ordinary requests, and
helpfulness, each with its Wilson interval and count.

``safety_rewards``: Bai et al. (2022) trained one preference model on helpfulness and
harmlessness data together; others train one model per kind and combine them with a weight.
Each seed trains three reward models (:func:`course_utils.safety.methods.hh_reward_models`:
one on both kinds of pairs, one per kind) and uses each choice as a best-of-n reranker
(:func:`~course_utils.safety.methods.rerank`) of the same candidates: ``n_each`` temperature-1
answers of the shipped SFT model (which never refuses) and ``n_each`` of the share-0 refusal SFT
model (which refuses look-alikes too), for every test request. A row holds the arm (``single``,
or ``combined`` at ``weight``, the harmlessness model's share; -1 for ``single``), the report of
the chosen answers, what the candidates allowed (``pool_refusal``: share of harmful requests
with a proper refusal among the candidates; ``pool_helpful``: share of harmless requests with a
helpful one) and each reward model's pairwise accuracy on the test split's pairs of each kind.
"""

from __future__ import annotations

from course_utils.experiments import sweep


def _candidates_and_pool(test: list, first: list[str], second: list[str], n_each: int) -> tuple[list, dict]:
    """Per test request, ``n_each`` answers of each of two models (``first`` and ``second`` hold
    ``n_each`` answers per request, in order), and what they allow: ``pool_refusal``, the share of
    harmful requests with a proper refusal among them, and ``pool_helpful``, the share of harmless
    requests with a helpful one (gold classes)."""
    from course_utils.safety.gold import judge

    candidates = [first[i * n_each:(i + 1) * n_each] + second[i * n_each:(i + 1) * n_each] for i in range(len(test))]
    labels = [[judge(r, a).label for a in cs] for r, cs in zip(test, candidates)]
    pool = {"pool_refusal": sum("proper_refusal" in ls for r, ls in zip(test, labels) if r["kind"] == "harmful")
            / max(1, sum(r["kind"] == "harmful" for r in test)),
            "pool_helpful": sum("compliance" in ls for r, ls in zip(test, labels) if r["kind"] != "harmful")
            / max(1, sum(r["kind"] != "harmful" for r in test))}
    return candidates, pool


@sweep("safety_frontier", chapter="19",
       description="Helpful and harmless: the shipped SFT model, refusal SFT at four look-alike shares, and DPO on "
                   "HH-style pairs (two betas) from the model trained without look-alikes; gold-judged greedy "
                   "answers to the test split's held-out requests",
       settings={"steps": 300, "shares": [0.0, 0.1, 0.3, 1.0], "dpo_steps": 150, "dpo_lr": 5e-5,
                 "dpo_betas": [0.5, 0.1], "n_train": 200, "n_eval": 360},
       smoke={"steps": 3, "shares": [0.0, 1.0], "dpo_steps": 2, "dpo_betas": [0.5], "n_eval": 12}, seeds=5)
def safety_frontier(seed: int, steps: int, shares: list[float], dpo_steps: int, dpo_lr: float,
                    dpo_betas: list[float], n_train: int, n_eval: int) -> list[dict]:
    import copy

    from course_utils.models import load_model
    from course_utils.safety.methods import refusal_sft, safety_dpo, safety_report
    from course_utils.safety.requests import make_safety_data

    test = list(make_safety_data(seed=seed, n_train=n_train)["test"])[:n_eval]
    model, tok = load_model("sft")
    out = [{"arm": "sft", "lookalike_share": -1.0, "beta": 0.0, **safety_report(model, tok, test)}]
    no_lookalikes = None
    for share in shares:
        model, tok, data, _ = refusal_sft(seed=seed, steps=steps, lookalike_share=share, n_train=n_train,
                                          progress=False)
        out.append({"arm": "refusal_sft", "lookalike_share": share, "beta": 0.0,
                    **safety_report(model, tok, test)})
        if share == 0.0:
            no_lookalikes = model
    if no_lookalikes is None:
        raise ValueError("the DPO arms start from the share-0 model: put 0.0 among the shares")
    for beta in dpo_betas:
        policy = copy.deepcopy(no_lookalikes)
        safety_dpo(policy, no_lookalikes, tok, list(data["train"]), pairs="both", steps=dpo_steps, beta=beta,
                   lr=dpo_lr, seed=seed, progress=False)
        out.append({"arm": "dpo", "lookalike_share": 0.0, "beta": beta, **safety_report(policy, tok, test)})
    return out


@sweep("safety_rewards", chapter="19",
       description="One reward model on both kinds of HH pairs, or a helpfulness and a harmlessness model combined "
                   "with a weight, as best-of-n rerankers of candidates from a model that never refuses and one "
                   "that refuses look-alikes; gold-judged choices on the test split, and each model's pairwise "
                   "accuracy on the test split's pairs",
       settings={"sft_steps": 300, "rm_steps": 150, "n_each": 4, "weights": [0.0, 0.25, 0.5, 0.75, 1.0],
                 "n_train": 200, "n_eval": 360},
       smoke={"sft_steps": 3, "rm_steps": 2, "n_each": 1, "weights": [0.0, 1.0], "n_eval": 12}, seeds=5)
def safety_rewards(seed: int, sft_steps: int, rm_steps: int, n_each: int, weights: list[float], n_train: int,
                   n_eval: int) -> list[dict]:
    from course_utils.alignment.reward_model import preference_accuracy
    from course_utils.models import generate, load_model
    from course_utils.safety.methods import MAX_ANSWER_TOKENS, hh_reward_models, refusal_sft, rerank, summarise
    from course_utils.safety.requests import make_safety_data, preference_pairs

    test = list(make_safety_data(seed=seed, n_train=n_train)["test"])[:n_eval]
    prompts = [r["prompt"] for r in test for _ in range(n_each)]
    sft, tok = load_model("sft")
    refuser, _, _, _ = refusal_sft(seed=seed, steps=sft_steps, lookalike_share=0.0, n_train=n_train, progress=False)
    flat = {name: generate(m, tok, prompts, max_new_tokens=MAX_ANSWER_TOKENS, temperature=1.0, seed=seed)
            for name, m in (("sft", sft), ("refuser", refuser))}
    candidates, pool = _candidates_and_pool(test, flat["sft"], flat["refuser"], n_each)
    rms = hh_reward_models(seed=seed, n_train=n_train, steps=rm_steps, progress=False)
    test_pairs = preference_pairs(test, seed=seed)
    accuracy = {}
    for name, (model, rm_tok) in rms.items():
        for kind in ("helpfulness", "harmlessness"):
            rows = [p for p in test_pairs if p["kind"] == kind]
            if rows:
                accuracy[f"rm_{name}_{kind}_accuracy"] = preference_accuracy(model, rm_tok, rows)
    out = []
    for weight in [None, *weights]:
        chosen = rerank(test, candidates, rms, weight)
        out.append({"arm": "single" if weight is None else "combined", "weight": -1.0 if weight is None else weight,
                    **summarise(test, chosen), **pool, **accuracy})
    return out


@sweep("safety_cai", chapter="19",
       description="Constitutional AI against human labels: SL-CAI (critique and revise by a written constitution, "
                   "then SFT on the revisions) for two constitutions, and best-of-n rerankers from reward models on "
                   "simulated human labels, on AI labels from each constitution, and from a rubric; gold-judged on "
                   "the test split, with each label source's agreement with the gold policy",
       settings={"k": 32, "judge_steps": 200, "sft_steps": 300, "rm_steps": 150, "n_each": 4, "labeler_beta": 2.0,
                 "n_requests": 1800, "n_train": 200, "n_eval": 360},
       smoke={"k": 2, "judge_steps": 2, "sft_steps": 2, "rm_steps": 2, "n_each": 1, "n_requests": 24, "n_eval": 12},
       seeds=5)
def safety_cai(seed: int, k: int, judge_steps: int, sft_steps: int, rm_steps: int, n_each: int, labeler_beta: float,
               n_requests: int, n_train: int, n_eval: int) -> list[dict]:
    """``safety_cai``: Constitutional AI (Bai et al., 2022b) on the tiny world, against human labels.

    Each seed uses the first ``n_requests`` rows of its ``train`` split and the first ``n_eval`` of
    its ``test`` split (:func:`course_utils.safety.requests.make_safety_data`), and for each
    constitution of :data:`course_utils.safety.constitution.CONSTITUTIONS` trains a constitution
    model on ``k`` worked examples per principle
    (:func:`~course_utils.safety.constitution.train_constitution_model`). Rows:

    * ``sl_cai`` (one per constitution): the shipped SFT model's greedy answers to the training
      requests are critiqued and revised (:func:`~course_utils.safety.constitution.critique_and_revise`)
      and the shipped model is fine-tuned on the revisions; its report on the test split, and
      ``revised`` (share of training answers the revisions changed) and the gold report of the
      revised training answers (``train_`` keys);
    * ``labels`` (one per label source): each training request gets one pair, a temperature-1
      answer of the shipped model and one of the ``harm_only`` SL-CAI model; a simulated human
      (:class:`~course_utils.safety.constitution.SafetyLabeler`, ``labeler_beta``) and each
      constitution model (:func:`~course_utils.safety.constitution.ai_preferences`) label them.
      The row holds the agreement with the gold utility per request kind (``agree_<kind>``, over
      pairs of unequal utility, with their count ``n_<kind>``) and, since a reward model trained
      on these labels reranks the same test candidates as the rubric does, the report of the
      chosen answers;
    * ``rubric``: the rubric reward (:func:`~course_utils.safety.constitution.rubric_reward`) as
      the reranker, ties broken at random (seeded).

    The test candidates are ``n_each`` temperature-1 answers of each of the two models per test
    request; ``pool_refusal`` and ``pool_helpful`` say what they allow, as in ``safety_rewards``.
    """
    import random

    from course_utils.alignment.reward_model import score, train_reward_model
    from course_utils.models import generate, load_model
    from course_utils.safety import constitution as cai
    from course_utils.safety.methods import MAX_ANSWER_TOKENS, safety_report, summarise
    from course_utils.safety.requests import make_safety_data
    from course_utils.sft import run_sft
    from course_utils.training import TrainConfig, set_seed

    data = make_safety_data(seed=seed, n_train=n_train)
    train, test = list(data["train"])[:n_requests], list(data["test"])[:n_eval]
    prompts = [r["prompt"] for r in train]
    sft, tok = load_model("sft")
    answers = generate(sft, tok, prompts, max_new_tokens=MAX_ANSWER_TOKENS)
    out, judges, students = [], {}, {}
    for name in cai.CONSTITUTIONS:
        judges[name], _, _, _ = cai.train_constitution_model(train, answers, name, k, steps=judge_steps, seed=seed,
                                                             progress=False)
        revised = [h[-1] for h in cai.critique_and_revise(judges[name], tok, prompts, answers, name)]
        set_seed(seed)
        student, _ = load_model("sft")
        run_sft(student, tok, [{"prompt": p, "response": a} for p, a in zip(prompts, revised)],
                TrainConfig(steps=sft_steps, batch_size=32, lr=1e-3, warmup_steps=20, seed=seed,
                            desc=f"SL-CAI ({name})"), progress=False)
        students[name] = student
        on_train = {f"train_{key}": v for key, v in summarise(train, revised).items()}
        out.append({"arm": "sl_cai", "source": name, "revised": sum(a != r for a, r in zip(answers, revised)) / len(train),
                    **safety_report(student, tok, test), **on_train})

    def sample(model, requests, n):
        return generate(model, tok, [r["prompt"] for r in requests for _ in range(n)], max_new_tokens=MAX_ANSWER_TOKENS,
                        temperature=1.0, seed=seed)

    a, b = sample(sft, train, 1), sample(students["harm_only"], train, 1)
    labeler = cai.SafetyLabeler("human", labeler_beta, seed)
    choices = {"human": [labeler.prefers_a(r, x, y) for r, x, y in zip(train, a, b)]}
    for name in cai.CONSTITUTIONS:
        choices[f"ai_{name}"] = list(cai.ai_preferences(judges[name], tok, prompts, a, b, name) > 0.5)

    flat = {"sft": sample(sft, test, n_each), "student": sample(students["harm_only"], test, n_each)}
    candidates, pool = _candidates_and_pool(test, flat["sft"], flat["student"], n_each)
    test_prompts = [r["prompt"] for r, cs in zip(test, candidates) for _ in cs]
    flat_candidates = [x for cs in candidates for x in cs]

    def best(scores):
        rng, chosen, i = random.Random(f"safety-cai-ties-{seed}"), [], 0
        for cs in candidates:
            top = max(scores[i:i + len(cs)])
            chosen.append(cs[rng.choice([j for j in range(len(cs)) if scores[i + j] == top])])
            i += len(cs)
        return chosen

    for source, prefer_a in choices.items():
        rows = cai.preference_rows(train, a, b, prefer_a)
        agree = {f"agree_{key}" if not key.startswith("n_") else key: v
                 for key, v in cai.gold_agreement(train, rows).items()}
        rm, rm_tok, _ = train_reward_model(rows, TrainConfig(steps=rm_steps, batch_size=32, lr=3e-4, warmup_steps=10,
                                                             seed=seed, desc=f"reward model ({source})"),
                                           progress=False)
        chosen = best(score(rm, rm_tok, test_prompts, flat_candidates).tolist())
        out.append({"arm": "labels", "source": source, "pairs": len(rows), **agree, **summarise(test, chosen), **pool})
    rubric_scores = [cai.rubric_reward(r, x) for r, cs in zip(test, candidates) for x in cs]
    out.append({"arm": "rubric", "source": "rubric", **summarise(test, best(rubric_scores)), **pool})
    return out
