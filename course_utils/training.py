"""The course's one training loop, reused by pretraining, SFT and the reward model.

:func:`train` minimises the mean of a loss over mini-batches with AdamW::

    for step in range(steps):
        batch = next mini-batch of `batch_size` examples  (a seeded shuffle per epoch)
        loss  = loss_fn(model, batch)                      (a scalar tensor)
        loss.backward(); clip gradient norm; optimizer.step(); scheduler.step(); zero_grad()

It is seeded (the same seed gives the same losses), shows a ``tqdm`` progress bar,
optionally a live loss plot in a notebook, raises a clear error on a NaN loss, saves
checkpoints atomically (write to a temporary folder, then rename) and resumes from them.
It runs through Hugging Face Accelerate, so the same code runs unchanged on a GPU or
under ``accelerate launch`` / ``torchrun`` with several processes: each process then
takes its share of every global batch and gradients are averaged across processes.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from course_utils.dashboard import RunDashboard
from course_utils.device import mixed_precision, pick_device
from course_utils.models import quiet_progress_bars


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def causal_lm_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean token cross-entropy of a causal LM: ``model(**batch).loss``.

    ``batch`` holds ``input_ids`` and ``labels`` of shape ``(B, T)`` (and optionally an
    ``attention_mask``); positions whose label is -100 do not count. The model shifts the
    labels itself, so position ``t`` predicts token ``t + 1``.
    """
    return model(**batch).loss


@dataclass
class TrainConfig:
    """Settings of :func:`train`. ``batch_size`` is the global batch over all processes."""
    steps: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # cosine decay from lr down to min_lr_ratio * lr
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    eval_every: int | None = None
    checkpoint_every: int | None = None
    desc: str = "training"
    # Batches of examples of similar length (less padding; see BatchSampler). Off by default:
    # the shipped models and the chapters' numbers were trained with random batches.
    group_by_length: bool = False


@dataclass
class TrainResult:
    """What :func:`train` returns: the loss ``history`` (one row per logged step) and timing."""
    history: list[dict] = field(default_factory=list)
    steps_done: int = 0
    seconds: float = 0.0
    examples_seen: int = 0

    @property
    def losses(self) -> list[float]:
        return [row["loss"] for row in self.history if "loss" in row]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine decay to ``min_lr_ratio * lr``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


class BatchSampler:
    """Deterministic mini-batches: a fresh seeded permutation of the data set every epoch.

    ``indices(step)`` gives the global batch of step ``step`` without replaying earlier
    steps, which is what makes resuming exact.

    With ``lengths`` (one per example), each epoch's permutation is grouped by length, as
    ``train_sampling_strategy="group_by_length"`` does in the Hugging Face Trainer: the
    permutation is cut into groups of ``group_batches`` batches, each group is sorted by
    length, cut into batches, and the order of all the epoch's batches is shuffled. Every
    example is still seen once per epoch, but a batch pads to a length close to its
    examples' own, so less compute goes to padding.
    """

    def __init__(self, n: int, batch_size: int, seed: int,
                 lengths: Sequence[int] | None = None, group_batches: int = 50):
        if n == 0:
            raise ValueError("the training data set is empty")
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"{len(lengths)} lengths for {n} examples")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.lengths, self.group_batches = lengths, group_batches
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
            if self.lengths is not None:
                perm = self._grouped(perm, g)
            self._perms = {epoch: perm}
        return self._perms[epoch]

    def _grouped(self, perm: list[int], g: torch.Generator) -> list[int]:
        # 1. sort each group of `group_batches` batches by length
        size = self.batch_size * self.group_batches
        ordered = []
        for start in range(0, self.n, size):
            ordered += sorted(perm[start:start + size], key=lambda i: self.lengths[i])
        # 2. cut into batches, 3. shuffle the order of the batches
        batches = [ordered[start:start + self.batch_size] for start in range(0, self.n, self.batch_size)]
        shuffled = []
        for b in torch.randperm(len(batches), generator=g).tolist():
            shuffled += batches[b]
        return shuffled

    def indices(self, step: int) -> list[int]:
        start = step * self.batch_size
        return [self._perm(pos // self.n)[pos % self.n] for pos in range(start, start + self.batch_size)]


# ---------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------
STATE_FILE = "trainer_state.pt"


def atomic_save_dir(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Fill a temporary folder with ``write(tmp)``, then swap it in place of ``path``.

    Readers see either the old complete folder or the new complete one, never a mixture:
    a crash while writing leaves the old checkpoint untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a checkpoint is for everyone to read
    try:
        write(tmp)
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _drop_load_time_keys(config_file: Path) -> None:
    """Remove keys transformers records about *how* a tokenizer was loaded (not what it is)."""
    if config_file.exists():
        cfg = json.loads(config_file.read_text())
        for key in ("is_local", "local_files_only"):
            cfg.pop(key, None)
        config_file.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def save_checkpoint(path: str | os.PathLike, model, tokenizer=None, optimizer=None,
                    step: int = 0, history: Sequence[dict] = (),
                    config: TrainConfig | None = None,
                    extra_files: dict[str, str] | None = None) -> Path:
    """Save model (safetensors), tokenizer and training state to ``path`` atomically.

    ``extra_files`` maps file names to text written into the same folder (e.g. a report).
    """
    def write(tmp: Path) -> None:
        with quiet_progress_bars():
            model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
            _drop_load_time_keys(tmp / "tokenizer_config.json")
        if optimizer is not None:
            torch.save({"optimizer": optimizer.state_dict(), "step": step}, tmp / STATE_FILE)
        (tmp / "history.json").write_text(json.dumps(
            {"step": step, "history": list(history),
             "config": asdict(config) if config else None}, indent=1))
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return atomic_save_dir(path, write)


def load_training_state(path: str | os.PathLike, model, optimizer) -> tuple[int, list[dict]]:
    """Restore model weights and optimizer state from a checkpoint; return ``(step, history)``."""
    from safetensors.torch import load_file
    path = Path(path)
    weights = load_file(path / "model.safetensors")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    real_missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to embeddings
    if real_missing or unexpected:
        raise RuntimeError(f"{path}: checkpoint does not fit the model "
                           f"(missing {real_missing[:3]}, unexpected {unexpected[:3]})")
    state = torch.load(path / STATE_FILE, weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    history = json.loads((path / "history.json").read_text())["history"]
    return int(state["step"]), history


# ---------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------
def train(model: torch.nn.Module, data: Sequence, collate: Callable[[list], dict],
          config: TrainConfig, loss_fn: Callable = causal_lm_loss,
          eval_fn: Callable[[torch.nn.Module], dict] | None = None,
          checkpoint_dir: str | os.PathLike | None = None, tokenizer=None,
          live_plot: bool = False, progress: bool = True,
          accelerator: Accelerator | None = None, dashboard: RunDashboard | None = None) -> TrainResult:
    """Train ``model`` on ``data`` and return the loss history.

    Args:
        data: any indexable sequence of examples (a list, a ``datasets.Dataset``).
        collate: turns a list of examples into a batch dict of tensors.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``; default :func:`causal_lm_loss`.
            It may also return ``(loss, metrics)``, a dict of floats (e.g. DPO's implicit
            rewards) that is averaged over the logged steps like the loss.
        eval_fn: called every ``config.eval_every`` steps (and at the end) on the bare
            model; the dict it returns is added to the history.
        checkpoint_dir: if given, a checkpoint is saved there every ``checkpoint_every``
            steps and at the end; if it already holds one, training resumes from it.
        live_plot: draw the run's :class:`~course_utils.dashboard.RunDashboard` live in the notebook.
        dashboard: a dashboard to log every row to (its live plot, JSONL log and warnings);
            by default one is made when ``live_plot`` is set. Rows hold ``step``, ``loss``,
            ``lr``, ``grad_norm`` (before clipping, at the logged step) and the loss's metrics.
        accelerator: by default one on :func:`device.pick_device`'s device, with bfloat16
            mixed precision where :func:`device.mixed_precision` says so (never on a CPU).
    """
    if accelerator is None:  # the device of course_utils.device; bf16 autocast where supported
        device = pick_device()
        accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=mixed_precision(device))
    set_seed(config.seed)
    lengths = None
    if config.group_by_length:  # the padded width of each example alone, from the collate itself
        lengths = [collate([data[i]])["input_ids"].shape[-1] for i in range(len(data))]
    sampler = BatchSampler(len(data), config.batch_size, config.seed, lengths=lengths)
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by {world} processes")
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    start, history = 0, []
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    if ckpt is not None and (ckpt / STATE_FILE).exists():
        start, history = load_training_state(ckpt, model, optimizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    if dashboard is None and live_plot and accelerator.is_main_process:
        dashboard = RunDashboard(title=config.desc, live=True)
    result = TrainResult(history=history, steps_done=start)
    # mininterval: at most two redraws a second; a notebook's message channel drops messages
    # (including the one that says a cell has finished) when a long cell floods it
    bar = tqdm(range(start, config.steps), desc=config.desc, initial=start, total=config.steps,
               mininterval=0.5,
               disable=not (progress and accelerator.is_main_process), leave=True)
    t0 = time.perf_counter()
    running, n_running, extras = 0.0, 0, {}
    for step in bar:
        idx = sampler.indices(step)[rank::world]
        batch = {k: v.to(accelerator.device) for k, v in collate([data[i] for i in idx]).items()}
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        loss = loss_fn(model, batch)
        if isinstance(loss, tuple):  # (loss, metrics)
            loss, metrics = loss
            for k, v in metrics.items():
                extras[k] = extras.get(k, 0.0) + float(v)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss is {loss.item()} at step {step}: training diverged. "
                f"Try a lower learning rate (now {config.lr}) or check the batch for empty labels.")
        accelerator.backward(loss)
        last = step + 1 == config.steps
        logging = (step + 1) % config.log_every == 0 or last
        grad_norm = None
        if config.grad_clip:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        elif logging:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        logged = accelerator.reduce(loss.detach(), reduction="mean") if world > 1 else loss.detach()
        running += logged.item()  # the mean over processes, so every rank logs the same
        n_running += 1
        result.examples_seen += config.batch_size
        if logging:
            row = {"step": step + 1, "loss": running / n_running, "lr": lr_at(step, config)}
            if grad_norm is not None:
                row["grad_norm"] = float(grad_norm)
            row.update({k: v / n_running for k, v in extras.items()})
            running, n_running, extras = 0.0, 0, {}
            if eval_fn is not None and (last or (config.eval_every and (step + 1) % config.eval_every == 0)):
                model.eval()
                row.update(eval_fn(accelerator.unwrap_model(model)))
                model.train()
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            if dashboard is not None:
                dashboard.log(row)
        if ckpt is not None and (last or (config.checkpoint_every and (step + 1) % config.checkpoint_every == 0)):
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_checkpoint(ckpt, accelerator.unwrap_model(model), tokenizer, optimizer,
                                step + 1, history, config)
    bar.close()
    if dashboard is not None:
        dashboard.close()
    model.eval()
    result.steps_done = config.steps
    result.seconds = time.perf_counter() - t0
    return result
