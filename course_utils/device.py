"""Where the course's code runs: one place that picks the device and the precision.

* device: CUDA if a GPU is visible, else Apple's MPS, else the CPU; the environment variable
  ``COURSE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) overrides the choice.
* precision: weights and optimizer state stay in float32; on a GPU that supports bfloat16
  the forward and backward passes run in bfloat16 under autocast (mixed precision), which
  halves activation memory and uses the tensor cores. Everywhere else nothing changes:
  float32, so the tiny world's results on a CPU stay bit-identical.

The training loop (:func:`training.train`, via Accelerate's ``mixed_precision``), generation
(:func:`models.generate`) and rollouts (:func:`rlhf.sample_rollout`) use these functions;
:func:`models.load_model` takes ``device="auto"`` to put a model there.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from collections.abc import Mapping

import torch

ENV_VAR = "COURSE_DEVICE"


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``name`` if given (or ``$COURSE_DEVICE``), else CUDA, MPS, CPU in that order.

    Raises ``ValueError`` naming the problem when the requested device is not available.
    """
    name = name if name is not None else os.environ.get(ENV_VAR) or "auto"
    if str(name) != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r} was requested but no CUDA GPU is visible to torch")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {str(name)!r} was requested but Apple's MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def supports_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix products fast: a CUDA GPU of the Ampere generation or later."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def compute_dtype(device: torch.device | None = None) -> torch.dtype:
    """The dtype of the forward/backward passes: bfloat16 where supported, else float32."""
    device = pick_device() if device is None else torch.device(device)
    return torch.bfloat16 if supports_bf16(device) else torch.float32


def mixed_precision(device: torch.device | None = None) -> str:
    """Accelerate's ``mixed_precision`` setting for ``device``: ``"bf16"`` or ``"no"``."""
    return "bf16" if compute_dtype(device) == torch.bfloat16 else "no"


def autocast(device: torch.device) -> AbstractContextManager:
    """Autocast to bfloat16 on a device that supports it; a no-op elsewhere (the CPU: float32)."""
    device = torch.device(device)
    if compute_dtype(device) == torch.bfloat16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def to_device(batch: Mapping[str, object], device: torch.device) -> dict[str, object]:
    """Move every tensor of a batch dict to ``device`` (other values pass through)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def describe(device: torch.device | None = None) -> str:
    """One line: the device, its name and memory where known, and the compute dtype."""
    device = pick_device() if device is None else torch.device(device)
    what = device.type
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        what = f"cuda ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    return f"{what}, compute dtype {str(compute_dtype(device)).removeprefix('torch.')}"
