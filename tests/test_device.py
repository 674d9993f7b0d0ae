"""Device and precision choice, and the CPU results they must leave bit-identical."""

import json
from pathlib import Path

import pytest
import torch

from course_utils import device as dev

BASELINE = Path(__file__).parent / "data" / "cpu_baseline.json"


def test_order_is_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv(dev.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert dev.pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert dev.pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device() == torch.device("cuda")
    monkeypatch.setenv(dev.ENV_VAR, "cpu")  # the override wins
    assert dev.pick_device() == torch.device("cpu")


def test_bf16_only_on_a_gpu_that_supports_it(monkeypatch):
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert dev.compute_dtype(cpu) == torch.float32 and dev.mixed_precision(cpu) == "no"
    assert dev.compute_dtype(mps) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.compute_dtype(cuda) == torch.bfloat16 and dev.mixed_precision(cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a T4
    assert dev.compute_dtype(cuda) == torch.float32 and dev.mixed_precision(cuda) == "no"


def test_an_unavailable_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        dev.pick_device("cuda")
    monkeypatch.setenv(dev.ENV_VAR, "cuda:1")
    with pytest.raises(ValueError, match="cuda:1"):
        dev.pick_device()


def test_autocast_is_a_no_op_on_cpu():
    a = torch.randn(4, 4)
    with dev.autocast(torch.device("cpu")):
        assert (a @ a).dtype == torch.float32
    batch = dev.to_device({"x": a, "n": 3}, torch.device("cpu"))
    assert batch["n"] == 3 and batch["x"] is a


def test_cpu_losses_are_bit_identical_to_the_recorded_run(monkeypatch):
    """5 SFT steps and 3 DPO steps on the shipped models, against losses recorded before the change."""
    from course_utils.dpo import run_dpo
    from course_utils.models import load_model
    from course_utils.sft import run_sft
    from course_utils.training import TrainConfig
    monkeypatch.delenv(dev.ENV_VAR, raising=False)
    assert dev.pick_device() == torch.device("cpu"), "this check is about the CPU"
    recorded = json.loads(BASELINE.read_text())
    rows = [{"prompt": r["prompt"], "response": r["response"]} for r in recorded["masks"]]
    model, tok = load_model("base")
    sft = run_sft(model, tok, rows, TrainConfig(steps=5, batch_size=8, lr=1e-3, log_every=1, seed=3),
                  progress=False)
    assert sft.losses == recorded["sft_losses"]
    policy, tok = load_model("sft")
    ref, _ = load_model("sft")
    pairs = [{"prompt": r["prompt"], "chosen": r["response"], "rejected": rows[(i + 1) % len(rows)]["response"]}
             for i, r in enumerate(rows[:16])]
    dpo = run_dpo(policy, ref, tok, pairs, TrainConfig(steps=3, batch_size=8, lr=1e-4, log_every=1, seed=3),
                  progress=False)
    assert dpo.losses == recorded["dpo_losses"]
