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
    from course_utils.safety.gold import judge
    from course_utils.safety.methods import MAX_ANSWER_TOKENS, hh_reward_models, refusal_sft, rerank, summarise
    from course_utils.safety.requests import make_safety_data, preference_pairs

    test = list(make_safety_data(seed=seed, n_train=n_train)["test"])[:n_eval]
    prompts = [r["prompt"] for r in test for _ in range(n_each)]
    sft, tok = load_model("sft")
    refuser, _, _, _ = refusal_sft(seed=seed, steps=sft_steps, lookalike_share=0.0, n_train=n_train, progress=False)
    flat = {name: generate(m, tok, prompts, max_new_tokens=MAX_ANSWER_TOKENS, temperature=1.0, seed=seed)
            for name, m in (("sft", sft), ("refuser", refuser))}
    candidates = [flat["sft"][i * n_each:(i + 1) * n_each] + flat["refuser"][i * n_each:(i + 1) * n_each]
                  for i in range(len(test))]
    labels = [[judge(r, a).label for a in cs] for r, cs in zip(test, candidates)]
    pool = {"pool_refusal": sum("proper_refusal" in ls for r, ls in zip(test, labels) if r["kind"] == "harmful")
            / max(1, sum(r["kind"] == "harmful" for r in test)),
            "pool_helpful": sum("compliance" in ls for r, ls in zip(test, labels) if r["kind"] != "harmful")
            / max(1, sum(r["kind"] != "harmful" for r in test))}
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
