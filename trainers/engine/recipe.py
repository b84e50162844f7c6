"""The recipe choices the paper is silent on, applied to one run and recorded with its result.

RunConfig holds the choices (nesterov, gate_bias_decay, normalization, crop_padding, bn_batch,
last_batch, allow_tf32, deterministic; their defaults and sources are documented there and in
docs/fidelity.md). This module turns them into what the train loops need: the input statistics,
the batch order, the process's TF32 and cuDNN flags, and the provenance entry that says what
actually ran (bn_batch is applied by build_model, crop_padding by the step).
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.config import RunConfig
from .augment import BatchSampler


def input_stats(cfg: RunConfig, data, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) to normalise images with: (1, 3, 1, 1) each for "channel", a (1, 3, H, W) mean
    image and unit std for "pixel_mean" (first ResNet paper). From the run's own training images."""
    if cfg.normalization == "pixel_mean":
        x = data.train_x
        mean = x.sum(0, dtype=torch.int64).double() / max(1, len(x)) / 255  # exact, no float copy
        return (mean.float().unsqueeze(0).to(device), torch.ones(1, x.shape[1], 1, 1, device=device))
    return (
        torch.tensor(data.mean, device=device).view(1, 3, 1, 1),
        torch.tensor(data.std, device=device).view(1, 3, 1, 1),
    )


def batch_sampler(cfg: RunConfig, n: int, generator: torch.Generator) -> BatchSampler:
    """The run's batch order over its n training images: the last partial batch of each epoch
    dropped (default) or kept (`last_batch: keep`, fb.resnet.torch's data loader)."""
    return BatchSampler(n, cfg.batch_size, generator, drop_last=cfg.last_batch == "drop")


def set_numerics(cfg: RunConfig, device: torch.device) -> None:
    """TF32 and cuDNN algorithm choice for this process (only CUDA reads them). Set per run, not
    at import: a worker trains one config at a time."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.allow_tf32 = cfg.allow_tf32
    torch.backends.cudnn.deterministic = cfg.deterministic
    torch.backends.cudnn.benchmark = not cfg.deterministic


def provenance(cfg: RunConfig, device: torch.device) -> dict[str, Any]:
    """What ran, for the result's provenance: the recipe choices and the numerics really in force."""
    cuda = device.type == "cuda"
    return {
        "nesterov": cfg.nesterov,
        "gate_bias_decay": cfg.gate_bias_decay,
        "normalization": cfg.normalization,
        "crop_padding": cfg.crop_padding,
        "bn_batch": cfg.bn_batch or cfg.batch_size,  # images per BN statistic in training
        "last_batch": cfg.last_batch,
        # TF32 is used only by fp32 convolutions on a CUDA device with cuDNN allowing it
        "tf32_convolutions": bool(cuda and cfg.precision == "fp32" and torch.backends.cudnn.allow_tf32),
        "tf32_matmul": bool(cuda and cfg.precision == "fp32" and torch.backends.cuda.matmul.allow_tf32),
        "cudnn_benchmark": bool(cuda and torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(cuda and torch.backends.cudnn.deterministic),
    }
