"""The training loop: it learns, it is reproducible, it checkpoints atomically and resumes exactly."""
import math

import pytest
import torch

from course_utils import world
from course_utils.models import new_tiny_model
from course_utils.pretrain import collate_blocks, pack_documents, validation_loss
from course_utils.sft import IGNORE_INDEX, collate_sft, run_sft, tokenize_chat
from course_utils.tokenizer import train_tokenizer
from course_utils.training import BatchSampler, TrainConfig, lr_at, train


@pytest.fixture(scope="module")
def tiny():
    docs = world.make_corpus(3000, seed=1)
    tok = train_tokenizer(docs)
    return tok, pack_documents(tok, docs, block_size=64)


def small_model(tok):
    return new_tiny_model(tok, seed=0, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


def run(tok, blocks, steps, **kw):
    cfg = TrainConfig(steps=steps, batch_size=8, lr=3e-3, log_every=5, seed=0)
    model = small_model(tok)
    return model, train(model, blocks, collate_blocks, cfg, progress=False, **kw)


def test_short_pretraining_lowers_the_loss(tiny):
    tok, blocks = tiny
    model = small_model(tok)
    before = validation_loss(model, blocks[:32])
    cfg = TrainConfig(steps=60, batch_size=8, lr=3e-3, log_every=10, seed=0)
    result = train(model, blocks, collate_blocks, cfg, progress=False)
    after = validation_loss(model, blocks[:32])
    assert after < before - 1.0, (before, after)
    assert result.losses[-1] < result.losses[0]


def test_same_seed_gives_identical_losses(tiny):
    tok, blocks = tiny
    _, a = run(tok, blocks, 15)
    _, b = run(tok, blocks, 15)
    assert a.losses == b.losses


def test_checkpoint_resume_is_exact(tiny, tmp_path):
    tok, blocks = tiny
    _, straight = run(tok, blocks, 20)
    ckpt = tmp_path / "ckpt"
    cfg = TrainConfig(steps=20, batch_size=8, lr=3e-3, log_every=5, checkpoint_every=5, seed=0)
    calls = []

    def crashing_loss(model, batch):  # the machine "dies" during step 13
        calls.append(1)
        if len(calls) == 13:
            raise KeyboardInterrupt
        return model(**batch).loss

    with pytest.raises(KeyboardInterrupt):
        train(small_model(tok), blocks, collate_blocks, cfg, loss_fn=crashing_loss,
              checkpoint_dir=ckpt, tokenizer=tok, progress=False)
    assert (ckpt / "model.safetensors").exists() and (ckpt / "trainer_state.pt").exists()
    # a new process builds a fresh model and resumes from the step-10 checkpoint
    resumed = train(small_model(tok), blocks, collate_blocks, cfg, checkpoint_dir=ckpt,
                    tokenizer=tok, progress=False)
    assert [round(x, 5) for x in resumed.losses] == [round(x, 5) for x in straight.losses]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_failed_checkpoint_write_keeps_the_old_one(tiny, tmp_path):
    from course_utils.training import atomic_save_dir
    target = tmp_path / "ckpt"
    atomic_save_dir(target, lambda d: (d / "a.txt").write_text("old"))

    def broken(d):
        (d / "a.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_save_dir(target, broken)
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_nan_loss_is_reported(tiny):
    tok, blocks = tiny

    def nan_loss(model, batch):
        return model(**batch).loss * float("nan")

    with pytest.raises(FloatingPointError, match="loss is nan at step 0"):
        run(tok, blocks, 3, loss_fn=nan_loss)


def test_empty_data_set_is_reported(tiny):
    tok, _ = tiny
    with pytest.raises(ValueError, match="empty"):
        train(small_model(tok), [], collate_blocks, TrainConfig(steps=1), progress=False)


def test_batches_cover_each_epoch_once():
    s = BatchSampler(10, 4, seed=0)
    first_epoch = s.indices(0) + s.indices(1) + s.indices(2)[:2]
    assert sorted(first_epoch) == list(range(10))
    assert BatchSampler(10, 4, seed=0).indices(7) == s.indices(7)


def test_length_grouped_batches_cover_each_epoch_once_with_less_padding():
    lengths = [int(x) for x in torch.randint(4, 60, (960,), generator=torch.Generator().manual_seed(1))]
    plain, grouped = BatchSampler(960, 16, seed=0), BatchSampler(960, 16, seed=0, lengths=lengths)
    for epoch in range(2):
        steps = range(epoch * 60, epoch * 60 + 60)
        assert sorted(i for t in steps for i in grouped.indices(t)) == list(range(960))

    def padding(sampler):
        batches = [[lengths[i] for i in sampler.indices(t)] for t in range(60)]
        return 1 - sum(map(sum, batches)) / sum(max(b) * len(b) for b in batches)
    assert padding(plain) > 0.35 and padding(grouped) < 0.05
    assert BatchSampler(960, 16, seed=0, lengths=lengths).indices(77) == grouped.indices(77)
    # batch order is shuffled, not sorted from short to long
    widths = [max(lengths[i] for i in grouped.indices(t)) for t in range(60)]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)
    with pytest.raises(ValueError, match="3 lengths for 960 examples"):
        BatchSampler(960, 16, seed=0, lengths=[1, 2, 3])


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.1, abs=1e-3)
    assert all(lr_at(i, cfg) >= lr_at(i + 1, cfg) for i in range(10, 99))


def test_sft_masks_the_prompt_and_pads(tiny):
    from course_utils.models import load_tokenizer
    tok = load_tokenizer("base")
    ex = tokenize_chat(tok, "What is 2 plus 3?", "5")
    answer = [t for t, l in zip(ex["input_ids"], ex["labels"]) if l != IGNORE_INDEX]
    assert tok.decode(answer) == " 5" + tok.eos_token  # the template starts each message with a space
    unmasked = tokenize_chat(tok, "What is 2 plus 3?", "5", mask_prompt=False)
    assert unmasked["labels"] == unmasked["input_ids"]
    batch = collate_sft([ex, tokenize_chat(tok, "Reverse the words: dog cat", "cat dog")], tok.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    row = batch["attention_mask"][0]
    assert row.sum() == len(ex["input_ids"])
    assert (batch["labels"][0][row == 0] == IGNORE_INDEX).all()


def test_sft_loss_falls():
    from course_utils.models import load_model
    model, tok = load_model("base")
    rows = world.make_instruction_data(n_train=40, n_test=5, n_open_train=0)["train"]
    result = run_sft(model, tok, rows, TrainConfig(steps=20, batch_size=16, lr=2e-3, log_every=5),
                     progress=False)
    assert result.losses[-1] < 0.6 * result.losses[0]
    assert all(math.isfinite(x) for x in result.losses)


def test_replay_documents_are_fully_labelled_and_optional():
    from course_utils.models import load_model
    from course_utils.sft import IGNORE_INDEX, tokenize_documents
    _, tok = load_model("base")
    assert tokenize_documents(tok, []) == []
    [ex] = tokenize_documents(tok, ["7 plus 5 is 12."])
    eos = tok.eos_token_id
    assert ex["input_ids"][0] == eos and ex["input_ids"][-1] == eos
    assert ex["labels"][0] == IGNORE_INDEX and ex["labels"][1:] == ex["input_ids"][1:]
