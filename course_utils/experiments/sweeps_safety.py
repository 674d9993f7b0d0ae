"""Chapter 19 over seeds: the helpful-and-harmless frontier of refusal SFT and DPO.

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
