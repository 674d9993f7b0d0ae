"""The course's completion-only SFT loss equals TRL SFTTrainer's loss on the same batch."""

import torch
from datasets import Dataset

from course_utils import world
from course_utils.models import load_model
from course_utils.sft import collate_sft, tokenize_chat


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
