"""Chapters 03-04 over seeds: masking the prompt in SFT (03), and replay at equal SFT steps (04).

``sft_masking`` records two validation losses per arm: on the response tokens, and on the
prompt tokens (every token the masked arm ignores), so that whether an arm learned the
prompts is measured, not assumed.

Every arm starts from the shipped base model, so a seed changes only the order in which the
training examples are drawn (and, for replay, which pretraining documents are mixed in).
"""

from __future__ import annotations

from course_utils.experiments import sweep

PROMPT_WEIGHT = 0.1  # the third arm of sft_masking: prompt tokens labelled, each counting 0.1


def _weighted_examples(tokenizer, rows, prompt_weight: float) -> list[dict]:
    """Every token labelled; response tokens weigh 1, prompt tokens ``prompt_weight``."""
    from course_utils.sft import tokenize_chat

    out = []
    for r in rows:
        masked = tokenize_chat(tokenizer, r["prompt"], r["response"], mask_prompt=True)
        full = tokenize_chat(tokenizer, r["prompt"], r["response"], mask_prompt=False)
        weights = [1.0 if m != -100 else prompt_weight for m in masked["labels"]]
        out.append({**full, "weights": weights})
    return out


def prompt_only_examples(tokenizer, rows) -> list[dict]:
    """Every token labelled except the response's: the tokens the masked arm never trains on.

    Their mean loss on validation rows measures how well an arm learned to predict prompts.
    """
    from course_utils.sft import tokenize_chat

    out = []
    for r in rows:
        masked = tokenize_chat(tokenizer, r["prompt"], r["response"], mask_prompt=True)
        full = tokenize_chat(tokenizer, r["prompt"], r["response"], mask_prompt=False)
        out.append({"input_ids": full["input_ids"],
                    "labels": [f if m == -100 else -100 for f, m in zip(full["labels"], masked["labels"])]})
    return out


def _collate_weighted(examples: list[dict], pad_token_id: int) -> dict:
    import torch

    from course_utils.sft import collate_sft

    batch = collate_sft([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples], pad_token_id)
    w = torch.zeros(batch["labels"].shape)
    for i, e in enumerate(examples):
        w[i, :len(e["weights"])] = torch.tensor(e["weights"])
    batch["weights"] = w
    return batch


def weighted_loss(model, batch) -> "torch.Tensor":
    """Token cross-entropy with a weight per token: sum(w * nll) / sum(w) over labelled tokens."""
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    tgt = batch["labels"][:, 1:]
    w = batch["weights"][:, 1:] * (tgt != -100)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.clamp(min=0).reshape(-1),
                          reduction="none").view_as(tgt)
    return (nll * w).sum() / w.sum()


@sweep("sft_masking", chapter="03",
       description="SFT with the prompt masked, every token labelled, and prompt tokens labelled at weight 0.1",
       settings={"steps": 200, "batch_size": 32, "n_eval": 40},
       smoke={"steps": 10, "n_eval": 4}, seeds=3)
def sft_masking(seed: int, steps: int, batch_size: int, n_eval: int) -> list[dict]:
    import torch

    from course_utils import world
    from course_utils.evaluation.tasks import exact_match
    from course_utils.models import load_model
    from course_utils.sft import collate_sft, run_sft, tokenize_chat
    from course_utils.training import TrainConfig, set_seed, train

    data = world.make_instruction_data()
    probe = world.per_task(data["test"], n_eval)
    val_rows = world.per_task(data["validation"], 20)
    rows = []
    for arm in ("masked", "unmasked", f"prompt weight {PROMPT_WEIGHT}"):
        set_seed(seed)
        model, tokenizer = load_model("base")
        val_batch = collate_sft([tokenize_chat(tokenizer, r["prompt"], r["response"]) for r in val_rows],
                                tokenizer.pad_token_id)
        val_prompt_batch = collate_sft(prompt_only_examples(tokenizer, val_rows), tokenizer.pad_token_id)
        config = TrainConfig(steps=steps, batch_size=batch_size, lr=1e-3, warmup_steps=min(30, steps // 2),
                             log_every=25, seed=seed)
        if arm.startswith("prompt weight"):
            pad = tokenizer.pad_token_id
            train(model, _weighted_examples(tokenizer, data["train"], PROMPT_WEIGHT),
                  lambda b: _collate_weighted(b, pad), config, loss_fn=weighted_loss, progress=False)
        else:
            run_sft(model, tokenizer, data["train"], config, mask_prompt=(arm == "masked"), progress=False)
        with torch.no_grad():
            val_loss = model(**val_batch).loss.item()
            val_prompt_loss = model(**val_prompt_batch).loss.item()
        scores = exact_match(model, tokenizer, probe)
        rows.append({"arm": arm, "val_response_loss": val_loss, "val_prompt_loss": val_prompt_loss,
                     "exact_match": scores["mean"],
                     **{f"em_{t}": scores[t] for t in world.TASKS}})
    return rows


@sweep("sft_replay", chapter="04",
       description="SFT with and without replay of pretraining documents, at the same number of steps",
       settings={"steps": 400, "batch_size": 32, "replay_docs": 3000, "n_eval": 40},
       smoke={"steps": 10, "n_eval": 4, "replay_docs": 100}, seeds=3)
def sft_replay(seed: int, steps: int, batch_size: int, replay_docs: int, n_eval: int) -> list[dict]:
    from course_utils import world
    from course_utils.evaluation.tasks import exact_match
    from course_utils.models import load_model
    from course_utils.sft import run_sft
    from course_utils.training import TrainConfig, set_seed

    data = world.make_instruction_data()
    probe = world.per_task(data["test"], n_eval)
    held = world.per_task(data["test_heldout_words"], n_eval)
    rows = []
    for arm in ("no replay", "replay"):
        set_seed(seed)
        model, tokenizer = load_model("base")
        docs = world.make_corpus(replay_docs, seed=seed, split="replay") if arm == "replay" else []
        config = TrainConfig(steps=steps, batch_size=batch_size, lr=1e-3, warmup_steps=min(30, steps // 2),
                             log_every=20, seed=seed)
        run_sft(model, tokenizer, data["train"], config, replay=docs, progress=False)
        test, heldout = exact_match(model, tokenizer, probe), exact_match(model, tokenizer, held)
        rows.append({"arm": arm, "exact_match": test["mean"], **{f"em_{t}": test[t] for t in world.TASKS},
                     "heldout_mean": heldout["mean"], **{f"heldout_{t}": heldout[t] for t in heldout if t != "mean"}})
    return rows
