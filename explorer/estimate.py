"""Honest time estimates: images per second measured on this machine, and the arithmetic.

Two bases, best first: the speed that finished runs of the same network reached here (their
records carry images/s and device), or a tiny benchmark of the network (the trainer's own step, as `python -m trainers bench` times it,
on random images). Either way the page shows which one it used.
"""

from __future__ import annotations

import statistics
from typing import Iterable, Mapping

from . import runs_api
from .runs_api import RunConfig

ARCH_FIELDS = ("ordering", "shortcut", "block", "depth", "downsample", "gate_width", "shortcut_bn",
               "batch_size", "precision")
EVAL_COST = 1 / 3  # a test image costs about a third of a training image (forward only)
DEFAULT_TEST = {"cifar10": 10_000, "cifar100": 10_000, "synthetic": 1_000}


def arch_key(config: Mapping) -> tuple:
    """What decides a run's speed: the network, the batch and the precision (not data or seed)."""
    return tuple(config.get(f) for f in ARCH_FIELDS)


def speed_from_history(records: Iterable[Mapping], cfg: RunConfig) -> dict | None:
    """Median images/s of finished runs with the same network here, or None."""
    key = arch_key(cfg.to_dict())
    seen = [r for r in records
            if r.get("status") in ("done", "fail") and r.get("images_per_s")
            and arch_key(r.get("config") or {}) == key]
    if not seen:
        return None
    devices = sorted({str(r.get("device") or "?") for r in seen})
    return {"images_per_s": statistics.median(float(r["images_per_s"]) for r in seen),
            "basis": f"median speed of {len(seen)} finished run(s) of this network on {', '.join(devices)}",
            "device": devices[0]}


def benchmark(cfg: RunConfig, batch: int = 32, steps: int = 2, device: str = "auto") -> dict:
    """Images/s of the trainer's own step (the one `python -m trainers bench` times) for `cfg`'s
    network at batch `batch`, on random images (`runs_api.bench_speed`)."""
    return runs_api.bench_speed(cfg.replace(batch_size=batch), device=device, steps=steps)


def bench_batch(cfg: RunConfig) -> int:
    """The run's own batch (small batches understate the speed badly: on this 2-core CPU,
    ResNet-20 measured 207 images/s at batch 16 against 650 at 128); on a CPU, a smaller one for
    the very deep nets so that the measurement stays within a few seconds."""
    import torch

    if torch.cuda.is_available() or cfg.depth <= 164:
        return cfg.batch_size
    return max(4, min(cfg.batch_size, 16))


def run_seconds(cfg: RunConfig, images_per_s: float, test_size: int | None = None) -> float:
    """Training images / speed, plus the periodic evaluations (forward only, ~1/3 the cost)."""
    train_images = cfg.iterations * cfg.batch_size
    n_test = cfg.test_size or test_size or DEFAULT_TEST.get(cfg.dataset, 10_000)
    evals = cfg.iterations // cfg.eval_every + 1
    return (train_images + EVAL_COST * evals * n_test) / max(images_per_s, 1e-9)
