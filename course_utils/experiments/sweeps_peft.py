"""Chapter 05's PEFT ladder: soft prompt, LoRA and full fine-tuning over learning rates and seeds.

Seed 0 trains every method at every learning rate of ``grid`` and scores each on the
validation split; the learning rate with the best validation exact match is each method's
*chosen* one. Every other seed trains each method at its chosen learning rate only. All
runs score exact match on the same test probe (``n_test`` examples per task), the probe
chapter 05 uses. Seeds change the data order and the initialisation (the soft prompt's
sampled vocabulary rows, LoRA's A matrices); the base model and the probe are fixed.
"""

from __future__ import annotations

import time
import warnings

from course_utils.experiments import sweep

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GRID = {"soft prompt": [0.003, 0.03, 0.3], "LoRA": [0.001, 0.003, 0.01], "full FT": [0.0003, 0.001, 0.003]}
_DATA: dict = {}
_CHOSEN: dict = {}


def _data():
    from course_utils import world
    if "data" not in _DATA:
        _DATA["data"] = world.make_instruction_data()
    return _DATA["data"]


def train_one(method: str, lr: float, seed: int, steps: int, batch_size: int, n_test: int, n_val: int,
              timing: bool = True) -> dict:
    """Train one rung of the ladder from the shipped base model; exact match on validation and test.

    ``timing`` adds the training wall time (``train_seconds``), which no re-run reproduces
    exactly; the smoke run leaves it out.
    """
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    from course_utils import world
    from course_utils.evaluation.tasks import exact_match
    from course_utils.models import load_model
    from course_utils.sft import run_sft
    from course_utils.training import TrainConfig, set_seed

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    warnings.filterwarnings("ignore", message="Position ids are not supported")
    data = _data()
    model, tokenizer = load_model("base")
    set_seed(seed)
    if method == "soft prompt":
        model = get_peft_model(model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=16,
                                                         prompt_tuning_init="SAMPLE_VOCAB"))
    elif method == "LoRA":
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                 target_modules=LORA_TARGETS))
    elif method != "full FT":
        raise ValueError(f"unknown method {method!r}")
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10),
                         log_every=max(1, steps // 10), seed=seed, desc=method)
    t0 = time.perf_counter()
    result = run_sft(model, tokenizer, data["train"], config, progress=False)
    seconds = time.perf_counter() - t0
    val = exact_match(model, tokenizer, list(world.per_task(data["validation"], n_val)))
    test = exact_match(model, tokenizer, list(world.per_task(data["test"], n_test)))
    row = {"method": method, "lr": lr, "val_exact_match": val["mean"], "exact_match": test["mean"],
           **{f"em_{t}": test[t] for t in world.TASKS}, "final_loss": result.history[-1]["loss"]}
    if timing:
        row["train_seconds"] = seconds
    return row


def chosen_lrs(rows: list[dict]) -> dict[str, float]:
    """Each method's learning rate with the best validation exact match (ties: the smaller lr)."""
    best: dict[str, tuple] = {}
    for r in rows:
        key = (r["val_exact_match"], -r["lr"])
        if r["method"] not in best or key > best[r["method"]][0]:
            best[r["method"]] = (key, r["lr"])
    return {m: lr for m, (_, lr) in best.items()}


@sweep("peft_ladder", chapter="05",
       description="soft prompt / LoRA r=8 / full fine-tuning at an equal step budget: a learning-rate grid "
                   "at seed 0 (chosen on validation), then every seed at each method's chosen rate",
       settings={"steps": 100, "batch_size": 32, "n_test": 40, "n_val": 20, "grid": GRID, "timing": True},
       smoke={"steps": 6, "n_test": 2, "n_val": 2, "timing": False,
              "grid": {"soft prompt": [0.3], "LoRA": [0.003], "full FT": [0.001]}},
       seeds=3)
def peft_ladder(seed: int, steps: int, batch_size: int, n_test: int, n_val: int, grid: dict,
                timing: bool = True) -> list[dict]:
    key = repr((steps, batch_size, n_test, n_val, sorted((m, tuple(v)) for m, v in grid.items())))
    if seed == 0 or key not in _CHOSEN:
        grid_rows = [{**train_one(m, lr, 0, steps, batch_size, n_test, n_val, timing), "role": "grid"}
                     for m, lrs in grid.items() for lr in lrs]
        _CHOSEN[key] = chosen_lrs(grid_rows)
        if seed == 0:
            return [{**r, "chosen": int(r["lr"] == _CHOSEN[key][r["method"]])} for r in grid_rows]
    return [{**train_one(m, lr, seed, steps, batch_size, n_test, n_val, timing), "role": "seed", "chosen": 1}
            for m, lr in _CHOSEN[key].items()]
