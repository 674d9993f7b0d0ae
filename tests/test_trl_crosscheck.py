"""The course's completion-only SFT loss equals TRL SFTTrainer's loss on the same batch."""

import torch
from datasets import Dataset

from course_utils import world
from course_utils.models import load_model
from course_utils.sft import collate_sft, tokenize_chat


def _conversational(rows):
    """Rows with prompt/chosen/rejected strings -> TRL's conversational preference data set."""
    return Dataset.from_list([
        {"prompt": [{"role": "user", "content": r["prompt"]}],
         "chosen": [{"role": "assistant", "content": r["chosen"]}],
         "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])


def test_course_sft_loss_equals_trl_sfttrainer(tmp_path):
    from trl import SFTConfig, SFTTrainer

    model, tok = load_model("base")
    rows = list(world.per_task(world.make_instruction_data()["train"], 1)) + \
        [{"task": "x", "prompt": "Hi", "response": "Hello there, friend."}]
    messages = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
                for r in rows]
    config = SFTConfig(output_dir=str(tmp_path), assistant_only_loss=True, max_length=256,
                       bf16=False, gradient_checkpointing=False, use_cpu=True, report_to=[],
                       per_device_train_batch_size=len(rows), packing=False, padding_free=False,
                       dataset_num_proc=None, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=config, processing_class=tok,
                         train_dataset=Dataset.from_dict({"messages": messages}))
    features = [trainer.train_dataset[i] for i in range(len(rows))]
    trl_batch = trainer.data_collator(features)
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, {k: v for k, v in trl_batch.items()})
        ours = collate_sft([tokenize_chat(tok, r["prompt"], r["response"]) for r in rows], tok.pad_token_id)
        course_loss = model(**ours).loss
    # Same tokens and the same labelled positions, then the same number
    assert torch.equal(trl_batch["input_ids"], ours["input_ids"])
    assert torch.equal(trl_batch["labels"], ours["labels"])
    assert abs(trl_loss.item() - course_loss.item()) < 1e-5, (trl_loss.item(), course_loss.item())


def test_course_reward_loss_equals_trl_rewardtrainer(tmp_path):
    """Same model, same pairs: TRL's tokenization and collation give the course's batch, and the same loss."""
    from trl import RewardConfig, RewardTrainer

    from course_utils.alignment.reward_model import collate_preferences, reward_model_loss, tokenize_preferences

    model, tok = load_model("rm", kind="classifier")
    rows = [{"prompt": "Write a sentence about a dog.", "chosen": "The happy dog runs in the park.",
             "rejected": "The dog dog dog."},
            {"prompt": "Describe a cup in one sentence.", "chosen": "Mia has a lovely red cup.",
             "rejected": "The sad cup is bad and mean and very very long today."},
            {"prompt": "Tell me something about a fox.", "chosen": "A kind fox plays with Tom.",
             "rejected": "The fox."}]
    conversational = _conversational(rows)
    config = RewardConfig(output_dir=str(tmp_path), bf16=False, gradient_checkpointing=False, use_cpu=True,
                          report_to=[], per_device_train_batch_size=len(rows), max_length=256,
                          dataset_num_proc=None, disable_tqdm=True, center_rewards_coefficient=None)
    trainer = RewardTrainer(model=model, args=config, processing_class=tok, train_dataset=conversational)
    features = [trainer.train_dataset[i] for i in range(len(rows))]
    trl_batch = trainer.data_collator(features)
    ours = collate_preferences(tokenize_preferences(tok, rows), tok.pad_token_id)
    assert torch.equal(trl_batch["input_ids"], ours["input_ids"])
    assert torch.equal(trl_batch["attention_mask"], ours["attention_mask"])
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, dict(trl_batch))
        course_loss = reward_model_loss(model, ours)
    assert abs(trl_loss.item() - course_loss.item()) < 1e-5, (trl_loss.item(), course_loss.item())
    assert course_loss.item() > 0.01  # a real loss, not a degenerate zero


def test_course_dpo_loss_equals_trl_dpotrainer(tmp_path):
    """Same policy, reference and batch: the course's DPO loss equals DPOTrainer's (sigmoid loss)."""
    from trl import DPOConfig, DPOTrainer

    from course_utils.alignment.dpo import dpo_batch_loss, sequence_logps, tokenize_pairs

    policy, tok = load_model("sft")
    ref, _ = load_model("base")                      # a reference that differs from the policy
    rows = [{"prompt": "Write a sentence about a dog.", "chosen": "The happy dog runs in the park.",
             "rejected": "The dog dog dog."},
            {"prompt": "Describe a cup in one sentence.", "chosen": "Mia has a lovely red cup.",
             "rejected": "The sad cup is bad and mean."}]
    conversational = _conversational(rows)
    config = DPOConfig(output_dir=str(tmp_path), beta=0.5, bf16=False, gradient_checkpointing=False, use_cpu=True,
                       report_to=[], per_device_train_batch_size=len(rows), max_length=256,
                       dataset_num_proc=None, disable_tqdm=True)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=config, processing_class=tok,
                         train_dataset=conversational)
    features = [trainer.train_dataset[i] for i in range(len(rows))]
    trl_batch = trainer.data_collator(features)
    # TRL's completion is the course's response tokens plus the template's newline after EOS
    ours = tokenize_pairs(tok, rows)
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    for f, o in zip(features, ours):
        labelled = [t for t, lab in zip(o["chosen"]["input_ids"], o["chosen"]["labels"]) if lab != -100]
        assert list(f["chosen_ids"]) == labelled + newline
    # the course's loss on TRL's batch
    labels = trl_batch["input_ids"].masked_fill(trl_batch["completion_mask"] == 0, -100)
    batch = {"input_ids": trl_batch["input_ids"], "attention_mask": trl_batch["attention_mask"], "labels": labels}
    policy.eval()
    with torch.no_grad():
        ref_lp = sequence_logps(ref, batch)
        course = dpo_batch_loss(policy, {**batch, "ref_chosen": ref_lp[:2], "ref_rejected": ref_lp[2:]}, beta=0.5)
        trl_loss = trainer.compute_loss(policy, dict(trl_batch))
    assert abs(trl_loss.item() - course.item()) < 1e-5, (trl_loss.item(), course.item())
    assert abs(course.item() - 0.6931) > 1e-3           # policy != reference: a real margin


def test_course_grpo_advantages_equal_trl_grpotrainer(tmp_path):
    """TRL's GRPOTrainer scores a batch of groups; the course's group_advantages of the same rewards agree."""
    from trl import GRPOConfig, GRPOTrainer

    from course_utils.alignment.grpo import group_advantages

    policy, tok = load_model("sft")
    seen = []

    def reward(completions, **kwargs):               # a verifiable reward: the length parity, to vary within groups
        r = [float(len(c[0]["content"]) % 2) if isinstance(c, list) else float(len(c) % 2) for c in completions]
        seen.extend(r)
        return r

    prompts = [[{"role": "user", "content": p}] for p in
               ["Write a sentence about a dog.", "Tell me something about a cup.", "What is 3 plus 4?"]]
    config = GRPOConfig(output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=12,
                        max_completion_length=12, bf16=False, gradient_checkpointing=False, use_cpu=True,
                        report_to=[], disable_tqdm=True, temperature=1.0, beta=0.0)
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=config, processing_class=tok,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]))
    torch.manual_seed(0)
    inputs = [{"prompt": p} for p in prompts for _ in range(4)]
    out = trainer._generate_and_score_completions(inputs)
    rewards = torch.tensor(seen[-12:])
    assert 0 < rewards.sum() < 12                     # some groups have spread
    assert torch.allclose(out["advantages"].view(-1), group_advantages(rewards, 4), atol=1e-6)


def test_rlvr_batch_scored_by_the_verifier_gives_trl_grpotrainers_advantages_and_loss(tmp_path):
    """Chapter 17's RLVR on TRL: GRPOTrainer samples groups from the shipped reasoning start and scores
    them with the course verifier as its reward function; the course's advantages of those rewards
    and the course's GRPO loss (the default token aggregation, TRL's "bnpo") on that very batch
    equal TRL's."""
    from trl import GRPOConfig, GRPOTrainer

    from course_utils.alignment.grpo import group_advantages, grpo_loss
    from course_utils.alignment.rlhf import response_logits, token_logp
    from course_utils.reasoning.tasks import make_reasoning_data
    from course_utils.reasoning.verifier import correctness_reward

    policy, tok = load_model("reasoning")
    test = list(make_reasoning_data(seed=0, n_train=50, n_test=40, n_longer=2)["test"])
    length = lambda p: len(tok(tok.apply_chat_template([{"role": "user", "content": p["prompt"]}], tokenize=False,
                                                       add_generation_prompt=True), add_special_tokens=False)["input_ids"])
    problems = [p for p in test if length(p) == length(test[0])][:3]     # one prompt length: no padding, so
    assert len(problems) == 3                                            # position ids cannot differ
    by_prompt = {p["prompt"]: p for p in problems}
    seen = []

    def verifier(prompts, completions, **kwargs):    # TRL's reward-function signature
        text = lambda x: x[-1]["content"] if isinstance(x, list) else x
        r = [correctness_reward(text(c), by_prompt[text(p)]) for p, c in zip(prompts, completions)]
        seen.extend(r)
        return r

    config = GRPOConfig(output_dir=str(tmp_path), num_generations=8, per_device_train_batch_size=24,
                        max_completion_length=77, bf16=False, gradient_checkpointing=False, use_cpu=True,
                        report_to=[], disable_tqdm=True, temperature=1.0, beta=0.0, loss_type="bnpo")
    prompts = [[{"role": "user", "content": p["prompt"]}] for p in problems]
    trainer = GRPOTrainer(model=policy, reward_funcs=[verifier], args=config, processing_class=tok,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]))
    torch.manual_seed(0)
    out = trainer._generate_and_score_completions([{"prompt": p} for p in prompts for _ in range(8)])
    rewards = torch.tensor(seen[-24:])
    assert 0 < rewards.sum() < 24                     # the start gets some right and some wrong
    adv = group_advantages(rewards, 8)
    assert torch.allclose(out["advantages"].view(-1), adv, atol=1e-6)
    P = out["prompt_ids"].shape[1]
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], 1)
    attention = torch.cat([out["prompt_mask"], out["completion_mask"]], 1)
    batch = {"input_ids": ids, "attention_mask": attention,
             "position_ids": (attention.cumsum(1) - 1).clamp(min=0), "prompt_len": P}
    mask = out["completion_mask"].float()
    policy.eval()
    with torch.no_grad():
        new = token_logp(response_logits(policy, batch), out["completion_ids"])
        old = new + 0.1 * torch.randn(new.shape, generator=torch.Generator().manual_seed(1))   # ratios != 1
        trl_loss = trainer._compute_loss(policy, {**out, "old_per_token_logps": old, "ref_per_token_logps": new,
                                                  "num_items_in_batch": mask.sum()})
        course = grpo_loss(new, old, new, adv.unsqueeze(1).expand_as(mask), mask, beta=0.0, loss_type="bnpo")
    assert abs(trl_loss.item() - course.item()) < 1e-5, (trl_loss.item(), course.item())
