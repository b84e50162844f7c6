"""Honest time estimates: what runs took on this machine, else the engine's own step timed here.

Two bases, best first:
1. Finished runs of the same shape (block, depth, batch, precision) on this host and device: their
   average training speed over the whole run (evaluations included) and their start-up time
   (dataset decoding, building the net), read from their curves. Not the last logged window,
   which swings with evaluations and other jobs.
2. The engine's benchmark step (`trainers.engine.bench.Ours`: the training step `train()` runs,
   with its optimiser, augmentation and, on CUDA, its graph), a few steps on random images.
The page shows which basis it used.
"""

from __future__ import annotations

import socket
import statistics
from collections.abc import Callable, Iterable, Mapping

from trainers.core.config import RunConfig

from . import engine_api

SHAPE_FIELDS = ("block", "depth", "batch_size", "precision")  # what decides the speed, near enough
EVAL_COST = 1 / 3  # a test image costs about a third of a training image (forward only)
DEFAULT_TEST = {"cifar10": 10_000, "cifar100": 10_000, "synthetic": 1_000}
STARTUP_S = 30.0  # no history: decoding CIFAR-10 the first time takes ~25 s here, then seconds
HISTORY_RUNS = 5  # the most recent finished runs of a shape that an estimate averages


def shape_key(config: Mapping) -> tuple:
    """Orderings and shortcut types of one depth and unit type cost about the same."""
    return tuple(config.get(f) for f in SHAPE_FIELDS)


def run_average(events: Iterable[Mapping], batch_size: int) -> tuple[float, float] | None:
    """(images/s over the run, seconds before the first iteration) from a finished run's curve."""
    pts = [
        (int(e["iteration"]), float(e["elapsed_s"]))
        for e in events
        if e.get("type") == "metrics" and isinstance(e.get("elapsed_s"), (int, float))
    ]
    if len(pts) < 2 or pts[-1][1] <= pts[0][1] or pts[-1][0] <= pts[0][0]:
        return None
    speed = (pts[-1][0] - pts[0][0]) * batch_size / (pts[-1][1] - pts[0][1])
    startup = max(0.0, pts[0][1] - pts[0][0] * batch_size / speed)
    return speed, startup


def _host_device(rec: Mapping) -> tuple[str, str]:
    prov = (rec.get("result") or {}).get("provenance") or {}
    device = str(prov.get("device") or rec.get("device") or "?")
    return str(prov.get("hostname") or ""), device.split(":")[0]


def speed_from_history(
    records: Iterable[Mapping], cfg: RunConfig, curve: Callable[[Mapping], list], host: str | None = None
) -> dict | None:
    """Median average speed (and start-up time) of the latest finished runs of `cfg`'s shape on
    this host, GPU runs preferred (the local backend trains on a GPU when there is one); None
    when there are none. `curve(record)` returns a record's events."""
    host = socket.gethostname() if host is None else host
    want = shape_key(cfg.to_dict())
    seen = [
        r
        for r in records
        if r.get("status") in ("done", "fail")
        and r.get("config")
        and shape_key(r["config"]) == want
        and _host_device(r)[0] in (host, "")
    ]
    if not seen:
        return None
    devices = {_host_device(r)[1] for r in seen}
    device = "cuda" if "cuda" in devices else sorted(devices)[0]
    seen = sorted(
        (r for r in seen if _host_device(r)[1] == device), key=lambda r: float(r.get("updated_at") or 0), reverse=True
    )
    measured = [
        m for m in (run_average(curve(r), int(r["config"].get("batch_size") or 128)) for r in seen[:HISTORY_RUNS]) if m
    ]
    if not measured:
        return None
    return {
        "images_per_s": statistics.median(m[0] for m in measured),
        "startup_s": statistics.median(m[1] for m in measured),
        "includes_eval": True,
        "device": device,
        "basis": f"average speed of the last {len(measured)} finished run(s) of this shape on this machine ({device})",
    }


def benchmark(cfg: RunConfig, batch: int = 128, steps: int = 3, device: str = "auto") -> dict:
    """Images/s of the engine's own training step (the one `python -m trainers bench` times:
    `engine_api.bench_speed`), on random CIFAR-shaped images."""
    sp = dict(engine_api.bench_speed(cfg.replace(batch_size=batch), device=device, steps=steps))
    sp.update(startup_s=STARTUP_S, includes_eval=False)
    return sp


def bench_batch(cfg: RunConfig) -> int:
    """The run's own batch (small batches understate the speed badly: on this 2-core CPU,
    ResNet-20 measured 207 images/s at batch 16 against 650 at 128); on a CPU, a smaller one for
    the very deep nets so that the measurement stays within a few seconds."""
    import torch

    if torch.cuda.is_available() or cfg.depth <= 164:
        return cfg.batch_size
    return max(4, min(cfg.batch_size, 16))


def run_seconds(
    cfg: RunConfig,
    images_per_s: float,
    test_size: int | None = None,
    *,
    startup_s: float = 0.0,
    includes_eval: bool = False,
) -> float:
    """Start-up + training images / speed, plus the periodic evaluations (forward only, ~1/3 the
    cost) unless the speed already includes them (a speed averaged over a finished run does)."""
    train_images = cfg.iterations * cfg.batch_size
    seconds = startup_s + train_images / max(images_per_s, 1e-9)
    if not includes_eval:
        n_test = cfg.test_size or test_size or DEFAULT_TEST.get(cfg.dataset, 10_000)
        evals = cfg.iterations // cfg.eval_every + 1
        seconds += EVAL_COST * evals * n_test / max(images_per_s, 1e-9)
    return seconds
