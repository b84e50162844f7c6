"""Train one run by the paper's CIFAR protocol. A plain function: config in, events out, result back.

The whole dataset lives on the training device as uint8; batches are gathered, augmented (pad 4,
random crop, flip) and normalised there, so no DataLoader workers fight the training for cores.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from . import fast, recipe
from ..core.atomic import atomic_write
from .augment import normalize
from ..core.config import RunConfig
from .cpu import cpu_model, keep_freed_memory
from .data import load_dataset
from .model import build_model, count_parameters
from .provenance import code_version

EVAL_BATCH = 1000

Event = dict[str, Any]


def lr_at(cfg: RunConfig, iteration: int) -> float:
    """lr of the update made at `iteration` (0-based): warm-up at 0.01 for 400 iterations, then
    0.1, /10 at each milestone (32k, 48k of 64k; fractions scale with shorter runs). The warm-up
    is capped at half the first milestone so that a short run still trains at full lr for a while
    (a departure from the paper only for runs shorter than 800 iterations)."""
    milestones = cfg.milestone_iterations()
    warmup = min(cfg.warmup_iterations, (milestones[0] if milestones else cfg.iterations) // 2)
    if iteration < warmup:
        return cfg.warmup_lr
    return cfg.lr * 0.1 ** sum(iteration >= m for m in milestones)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu")
    return d


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU ({cpu_model()}, {threads} thread{'s' if threads != 1 else ''})"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@torch.no_grad()
def evaluate(model, x_u8, y, mean, std, device, precision: str, channels_last: bool) -> tuple[float, float]:
    """(test error %, mean test loss) on the plain images (paper: no test-time augmentation)."""
    was_training = model.training
    model.eval()
    wrong, loss_sum = 0, 0.0
    for i in range(0, len(y), EVAL_BATCH):
        xb = normalize(x_u8[i : i + EVAL_BATCH], mean, std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(xb)
        yb = y[i : i + EVAL_BATCH]
        loss_sum += F.cross_entropy(out.float(), yb, reduction="sum").item()
        wrong += (out.argmax(1) != yb).sum().item()
    model.train(was_training)
    n = max(1, len(y))
    return 100.0 * wrong / n, loss_sum / n


def checkpoint_error(cfg: RunConfig, *, split: str = "train", images: int = 10_000,
                     device: str | torch.device = "auto", cache_dir: str | Path = "cache",
                     run_dir: str | Path | None = None) -> dict[str, Any]:
    """Error % of a run's last checkpoint in eval mode (BN running statistics) on the first
    `images` plain images of `split`. On the training images this checks the BN/eval path: it
    should be near the training error logged in train mode, not far above it."""
    dev = resolve_device(device)
    run_dir = Path(run_dir) if run_dir is not None else Path(cache_dir) / "runs" / cfg.key
    state = ckpt.load(run_dir / "checkpoint.pt", cfg.key)
    if state is None:
        raise FileNotFoundError(f"no checkpoint for run {cfg.key} in {run_dir}")
    data = load_dataset(cfg.dataset, cache_dir).subset(cfg.train_size, cfg.test_size)
    x, y = (data.train_x, data.train_y) if split == "train" else (data.test_x, data.test_y)
    mean, std = recipe.input_stats(cfg, data, dev)  # the run's own normalisation
    recipe.set_numerics(cfg, dev)
    model = build_model(cfg, num_classes=len(data.classes))
    model.load_state_dict(state["model"])
    channels_last = fast.default_channels_last(dev)
    model = model.to(dev, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    error, loss = evaluate(model, x[:images].to(dev), y[:images].to(dev), mean, std, dev, cfg.precision,
                           channels_last)
    return {"key": cfg.key, "split": split, "images": min(images, len(y)), "iteration": state["iteration"],
            "error": error, "loss": loss, "mode": "eval"}


def train(
    cfg: RunConfig,
    *,
    device: str | torch.device = "auto",
    cache_dir: str | Path = "cache",
    run_dir: str | Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    resume: bool = True,
    checkpoint_every_s: float = 60.0,
    should_stop: Callable[[], bool] | None = None,
    progress: bool = False,
    channels_last: bool | None = None,
    compile: bool | str | None = None,
    until: int | None = None,
) -> dict[str, Any]:
    """Train `cfg` and return its result (see docs/interfaces.md for events and the result).

    `until`: stop after this iteration of the run's own schedule (its lr steps unchanged), save a
    checkpoint and return status "cancelled" with the curve so far; training it again resumes there.
    The reference generator grows 64k-iteration runs this way, a few thousand iterations a session.

    `compile`: how the iteration is launched (trainers/engine/fast.py); None = auto: the whole iteration
    as one CUDA graph on CUDA, eager on the CPU. The math is the same in every mode."""
    started_wall = time.time()
    started_at = _now()
    code_version()  # cached from now on: the provenance names the code that starts the run
    dev = resolve_device(device)
    run_dir = Path(run_dir) if run_dir is not None else Path(cache_dir) / "runs" / cfg.key
    ckpt_path = run_dir / "checkpoint.pt"
    # channels_last: faster convolutions on CUDA and, since the zero-pad shortcut keeps the layout,
    # on the CPU too (oneDNN; 1.2x for ResNet-110 on 2 cores, docs/benchmarks.md)
    channels_last = fast.default_channels_last(dev) if channels_last is None else channels_last
    if dev.type == "cpu":
        keep_freed_memory()  # no page faults on every iteration's activations (trainers/engine/cpu.py)

    # Data first: a missing or corrupt dataset fails before any model is built (DataError).
    data = load_dataset(cfg.dataset, cache_dir).subset(cfg.train_size, cfg.test_size)
    train_x, train_y = data.train_x.to(dev), data.train_y.to(dev)
    test_x, test_y = data.test_x.to(dev), data.test_y.to(dev)
    mean, std = recipe.input_stats(cfg, data, dev)  # per channel (default) or per-pixel mean
    recipe.set_numerics(cfg, dev)  # TF32 and cuDNN algorithms, as the config asks (CUDA only)

    # Init from the seed on the CPU, then move: the same seed gives the same net on any device.
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, num_classes=len(data.classes))
    model = model.to(dev, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    # SGD with momentum 0.9 and weight decay 1e-4 on every parameter (fb.resnet.torch)
    optimizer = fast.make_optimizer(model, cfg, dev)
    data_gen = torch.Generator().manual_seed(cfg.seed)  # batch order and augmentation
    sampler = recipe.batch_sampler(cfg, len(train_y), data_gen)  # last partial batch: cfg.last_batch

    start_iter, history, resumed = 0, [], False
    notes: list[str] = []
    try:
        state = ckpt.load(ckpt_path, cfg.key) if resume else None
        if state is not None:  # parses, but does it fit? (right key, wrong shapes: unreadable too)
            ckpt.check_fits(state, model, optimizer, sampler, cfg.iterations)
    except ckpt.CheckpointError as e:
        # keep the unreadable file for inspection and train from scratch: nothing is deleted
        aside = ckpt_path.with_name(f"checkpoint.unreadable-{int(time.time())}.pt")
        ckpt_path.rename(aside)
        notes.append(f"{e}; moved aside to {aside.name}, starting from iteration 0")
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        ckpt.set_rng_state(state["rng"], dev)
        start_iter, history, resumed = state["iteration"], list(state["history"]), True
    else:
        torch.manual_seed(cfg.seed)  # the global RNG drives the dropout shortcut

    mode = fast.resolve_mode(compile, dev)
    step = fast.TrainStep(model, optimizer, train_x, train_y, mean, std, augment=cfg.augment,
                          precision=cfg.precision, channels_last=channels_last, mode=mode,
                          crop_padding=cfg.crop_padding, cudnn_benchmark=not cfg.deterministic)

    def emit(ev: Event) -> None:
        if ev["type"] in ("metrics", "eval"):
            history.append(ev)
        if on_event is not None:
            on_event(ev)
        if progress:
            _print_progress(ev, cfg)

    n_params = count_parameters(model)
    epoch_len = sampler.batches_per_epoch
    emit({"type": "start", "iteration": start_iter, "total": cfg.iterations, "device": str(dev),
          "device_name": device_name(dev), "precision": cfg.precision, "parameters": n_params,
          "dataset": data.label, "resumed": resumed, "channels_last": channels_last, "step_mode": mode,
          "notes": notes})

    def save_checkpoint(iteration: int) -> None:
        ckpt.save(ckpt_path, {
            "key": cfg.key, "config": cfg.to_dict(), "iteration": iteration, "history": history,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "sampler": sampler.state_dict(), "rng": ckpt.rng_state(dev),
        })
        emit({"type": "checkpoint", "iteration": iteration, "path": str(ckpt_path)})

    model.train()
    status = "done"
    seen = 0
    last_ckpt = time.time()
    window_t, window_images = time.perf_counter(), 0
    images_per_s = 0.0
    it = start_iter
    last_eval: tuple[float, float] | None = None
    train_loss = float("nan")
    stop_at = cfg.iterations if until is None else min(cfg.iterations, until)
    while it < stop_at:
        lr = lr_at(cfg, it)
        step.set_lr(lr)
        draws = fast.draw_batch(sampler, data_gen, cfg.augment)
        step(draws)  # gather, augment, SGD: on the device
        it += 1
        seen += draws.shape[-1]  # a kept last partial batch is smaller (last_batch: keep)
        window_images += draws.shape[-1]

        if it % cfg.log_every == 0 or it == stop_at:
            loss_sums, wrong_sums = step.take_metrics()  # the one host sync per log interval
            train_loss = loss_sums[0] / seen
            train_error = 100.0 * wrong_sums[0] / seen
            now = time.perf_counter()
            images_per_s = window_images / max(now - window_t, 1e-9)
            window_t, window_images = now, 0
            seen = 0
            emit({"type": "metrics", "iteration": it, "epoch": it / epoch_len, "train_loss": train_loss,
                  "train_error": train_error, "lr": lr, "images_per_s": images_per_s,
                  "elapsed_s": time.time() - started_wall,
                  "eta_s": (cfg.iterations - it) * cfg.batch_size / max(images_per_s, 1e-9)})
            if not math.isfinite(train_loss):
                status = "diverged"  # stop cleanly: the curve so far is kept in the result
                break
        if it % cfg.eval_every == 0 or it == stop_at:
            last_eval = evaluate(model, test_x, test_y, mean, std, dev, cfg.precision, channels_last)
            emit({"type": "eval", "iteration": it, "epoch": it / epoch_len,
                  "test_error": last_eval[0], "test_loss": last_eval[1]})
        if it % cfg.log_every == 0 and it < cfg.iterations:
            if should_stop is not None and should_stop():
                save_checkpoint(it)
                status = "cancelled"
                break
            if time.time() - last_ckpt >= checkpoint_every_s:
                save_checkpoint(it)
                last_ckpt = time.time()

    if last_eval is None and status == "done":  # resumed from the final (or the `until`) checkpoint
        last_eval = evaluate(model, test_x, test_y, mean, std, dev, cfg.precision, channels_last)
    test_error = last_eval[0] if last_eval else None
    if status == "done" and it < cfg.iterations:  # stopped at `until`: resumable, not finished
        save_checkpoint(it)
        status = "cancelled"
    if status == "done":  # the paper's "fail" is decided where results are shown (core/results.py)
        save_checkpoint(it)  # the final weights, for later analysis
    result = {
        "key": cfg.key, "status": status, "test_error": test_error,
        "test_loss": last_eval[1] if last_eval else None,
        "iterations": it, "epochs": it / epoch_len, "train_loss": train_loss,
        "wall_time_s": time.time() - started_wall, "parameters": n_params,
        "config": cfg.to_dict(),
        "provenance": {
            "code_version": code_version(), "torch": torch.__version__, "python": sys.version.split()[0],
            "device": str(dev), "device_name": device_name(dev), "precision": cfg.precision,
            "channels_last": channels_last, "step_mode": mode, "dataset": data.label, "hostname": socket.gethostname(),
            "started_at": started_at, "finished_at": _now(), "resumed": resumed, "pid": os.getpid(),
            "recipe": recipe.provenance(cfg, dev),
        },
    }
    atomic_write(run_dir / "result.json", lambda f: f.write(_result_json(result, history)))
    emit({"type": "end", "status": status, "result": result})
    return result


def _result_json(result: dict, history: list) -> bytes:
    from ..core.strict_json import dumps  # NaN/Infinity (a diverged run) as null

    return dumps({**result, "curve": history}, indent=1).encode()


def _print_progress(ev: Event, cfg: RunConfig) -> None:
    t = ev["type"]
    if t == "start":
        msg = (f"{cfg.label()} [{cfg.key}] on {ev['device_name']}, {ev['parameters']:,} parameters, "
               f"{ev['dataset']}" + (f", resumed at iteration {ev['iteration']}" if ev["resumed"] else "")
               + "".join(f"\nnote: {n}" for n in ev["notes"]))
    elif t == "metrics":
        msg = (f"it {ev['iteration']:>6}/{cfg.iterations}  loss {ev['train_loss']:.4f}  "
               f"train err {ev['train_error']:5.2f}%  lr {ev['lr']:.4g}  "
               f"{ev['images_per_s']:,.0f} img/s  ETA {ev['eta_s'] / 60:.1f} min")
    elif t == "eval":
        msg = f"it {ev['iteration']:>6}  test error {ev['test_error']:.2f}%"
    elif t == "end":
        te = ev["result"]["test_error"]
        msg = f"{ev['status']}: test error {'n/a' if te is None else f'{te:.2f}%'}"
    else:
        return
    print(msg, file=sys.stderr, flush=True)
