"""`python -m trainers bench`: training throughput of this trainer against the conventional
pipeline, side by side, on the same machine and the same network.

The conventional pipeline is what public CIFAR ResNet reproductions do (e.g. akamaster/
pytorch_resnet_cifar10, hysts/pytorch_image_classification): a torchvision-style dataset that
turns each HWC uint8 image into a PIL image and applies RandomCrop(32, padding=4),
RandomHorizontalFlip, ToTensor, Normalize; a DataLoader with shuffling and worker processes;
fp32 NCHW; eager; torch.optim.SGD with PyTorch's defaults; `loss.item()` every step for the log.

This trainer is `trainers.engine.fast.TrainStep`, the very step `train()` runs: uint8 data on the
device, crops/flips batched there, channels_last, one CUDA graph per iteration on a GPU, and on
the CPU the process settings `train()` makes (trainers/engine/cpu.py).

Each pipeline runs in a process of its own, started fresh, as each program would run: process-wide
settings (threads, the allocator) belong to the pipeline that makes them.

Both train the same network with the same SGD recipe on the same synthetic CIFAR-shaped data
(random uint8 images: speed does not depend on the pixels). Measurements alternate between the two
pipelines for `--rounds` rounds, so a machine whose load changes (other users) slows both; each
round drops its first steps (warm-up, and the batches the DataLoader prefetched meanwhile).
Warm-up (compilation, CUDA-graph capture) is timed and reported separately from steady state.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import torch
import torch.nn.functional as F

from ..core.config import RunConfig
from . import fast
from .augment import BatchSampler
from .cpu import cpu_model, keep_freed_memory
from .model import build_model, count_parameters
from .train import lr_at, resolve_device

SYNTHETIC_TRAIN_IMAGES = 50_000  # CIFAR-10's training set size
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def synthetic_cifar(n: int, num_classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n random uint8 (3, 32, 32) images and labels: CIFAR's shape and dtype, for speed only."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, num_classes, (n,), generator=g)
    return x, y


class TorchvisionStyleCIFAR(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10's storage and __getitem__: an (N, 32, 32, 3) uint8 array,
    each item made a PIL image and passed through the transforms."""

    def __init__(self, x_nchw: torch.Tensor, y: torch.Tensor, transform):
        self.data = x_nchw.permute(0, 2, 3, 1).contiguous().numpy()  # HWC, as torchvision keeps it
        self.targets = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.data[i])
        return self.transform(img), self.targets[i]


def conventional_transform(mean=CIFAR_MEAN, std=CIFAR_STD):
    import torchvision.transforms as T

    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])


# ----------------------------------------------------------------------------------------------
# the two pipelines, each as "run n steps, return seconds"
# ----------------------------------------------------------------------------------------------


class Conventional:
    """The usual recipe, step by step."""

    def __init__(self, cfg: RunConfig, dev: torch.device, x: torch.Tensor, y: torch.Tensor, workers: int):
        torch.manual_seed(cfg.seed)
        self.cfg, self.dev = cfg, dev
        self.model = build_model(cfg, num_classes=cfg.num_classes).to(dev)  # fp32, NCHW
        self.model.train()
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        dataset = TorchvisionStyleCIFAR(x, y, conventional_transform())
        self.loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            shuffle=True,
            num_workers=workers,
            drop_last=True,
            pin_memory=dev.type == "cuda",
            persistent_workers=workers > 0,
        )
        self.workers = workers
        self._it = iter(self.loader)
        self.iteration = 0

    def _next(self):
        try:
            return next(self._it)
        except StopIteration:  # a new epoch
            self._it = iter(self.loader)
            return next(self._it)

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = self._next()
            x, y = x.to(self.dev, non_blocking=True), y.to(self.dev, non_blocking=True)
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.cfg, self.iteration)
            out = self.model(x)
            loss = F.cross_entropy(out, y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            loss.item()  # the running-loss log of the usual loop (a host sync on a GPU)
            self.iteration += 1
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
        return time.perf_counter() - t0

    def close(self) -> None:
        del self._it, self.loader  # stops the persistent workers


class Ours:
    """This trainer's step (trainers.engine.fast.TrainStep), fed as train() feeds it."""

    def __init__(
        self,
        cfg: RunConfig,
        dev: torch.device,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        mode: str,
        channels_last: bool,
        packs: int = 1,
    ):
        self.cfg, self.dev, self.packs = cfg, dev, packs
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, num_classes=cfg.num_classes, packs=packs)
        model = model.to(dev, memory_format=torch.channels_last if channels_last else torch.preserve_format)  # type: ignore[call-overload]  # not in torch's stubs
        optimizer = fast.make_optimizer(model, cfg, dev)
        train_x, train_y = x.to(dev), y.to(dev)
        mean = torch.tensor(CIFAR_MEAN, device=dev)
        std = torch.tensor(CIFAR_STD, device=dev)
        self.step = fast.TrainStep(
            model,
            optimizer,
            train_x,
            train_y,
            mean,
            std,
            augment=cfg.augment,
            precision=cfg.precision,
            channels_last=channels_last,
            packs=packs,
            mode=mode,
        )
        self.samplers = []
        for k in range(packs):  # one sampler and generator per seed, as train() does for a pack
            g = torch.Generator().manual_seed(cfg.seed + k)
            self.samplers.append((BatchSampler(len(y), cfg.batch_size, g), g))
        self.iteration = 0

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step.set_lr(lr_at(self.cfg, self.iteration))
            draws = [fast.draw_batch(s, g, self.cfg.augment) for s, g in self.samplers]
            self.step(draws[0] if self.packs == 1 else fast.stack_draws(draws))
            self.iteration += 1
        self.step.take_metrics()  # train() reads its metrics once per log interval: one sync
        self.step.synchronize()
        return time.perf_counter() - t0

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------------------------
# each pipeline in its own process
# ----------------------------------------------------------------------------------------------


def _serve(conn, spec: dict[str, Any]) -> None:
    """A pipeline's process: build it as its program would, then run steps on request.

    Each pipeline gets a process of its own because process-wide settings are part of a pipeline:
    this trainer, like `train()`, tunes the CPU allocator (trainers/engine/cpu.py), which the usual recipe
    does not, and which cannot be undone within a process."""
    try:
        torch.set_num_threads(spec["threads"])
        cfg, dev = RunConfig.from_json(spec["config"]), torch.device(spec["device"])
        x, y = synthetic_cifar(spec["train_images"], cfg.num_classes)  # the same images in both
        allocator = "default"
        pipe: Conventional | Ours
        if spec["kind"] == "conventional":
            pipe = Conventional(cfg, dev, x, y, spec["workers"])
        else:
            if dev.type == "cpu":
                allocator = keep_freed_memory()  # as train() does
            pipe = Ours(cfg, dev, x, y, mode=spec["mode"], channels_last=spec["channels_last"], packs=spec["packs"])
        del x, y
        model = pipe.model if isinstance(pipe, Conventional) else pipe.step.model
        conn.send(
            (
                "ok",
                {
                    "parameters": count_parameters(model),
                    "allocator": allocator,
                    "first_steps": getattr(getattr(pipe, "step", None), "warmup", 0) + 1,
                },
            )
        )
        while True:
            command, steps = conn.recv()
            if command == "close":
                pipe.close()
                conn.send(("ok", None))
                return
            conn.send(("ok", pipe.run(steps)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        import traceback

        conn.send(("error", traceback.format_exc()))


class _Pipeline:
    """The parent's handle on one pipeline process."""

    def __init__(self, name: str, spec: dict[str, Any]):
        import multiprocessing as mp

        # spawn: a fresh interpreter with default settings (no state inherited from this one);
        # not daemonic, so the conventional pipeline may start its DataLoader workers
        ctx = mp.get_context("spawn")
        self.name = name
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, spec), name=f"bench-{name}")
        self.process.start()
        child.close()
        self.info = self._reply()

    def run(self, steps: int) -> float:
        """Seconds for `steps` iterations, measured inside the pipeline's process."""
        self.conn.send(("run", steps))
        return self._reply()

    def _reply(self):
        while not self.conn.poll(0.5):
            if not self.process.is_alive():
                raise RuntimeError(f"the {self.name} pipeline's process died (exit code {self.process.exitcode})")
        status, value = self.conn.recv()
        if status == "error":
            raise RuntimeError(f"the {self.name} pipeline failed:\n{value}")
        return value

    def close(self) -> None:
        try:
            if self.process.is_alive():
                self.conn.send(("close", 0))
                self._reply()
        except (RuntimeError, OSError, EOFError):
            pass
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# ----------------------------------------------------------------------------------------------
# measurement
# ----------------------------------------------------------------------------------------------


def _rate(images: int, seconds: float) -> float:
    return images / max(seconds, 1e-9)


def bench(
    cfg: RunConfig,
    *,
    device: str | torch.device = "auto",
    steps: int | None = None,
    warmup_steps: int | None = None,
    rounds: int = 2,
    workers: int | None = None,
    mode: str = "auto",
    channels_last: bool | None = None,
    packs: int = 1,
    conventional: bool = True,
    train_images: int = SYNTHETIC_TRAIN_IMAGES,
    threads: int | None = None,
    log=None,
) -> dict[str, Any]:
    """Measure and return the figures that `python -m trainers bench` prints (its JSON line).

    Each pipeline runs in its own process (see `_serve`); only one computes at a time."""
    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    steps = steps or (200 if gpu else 20)
    warmup_steps = warmup_steps if warmup_steps is not None else (10 if gpu else 2)
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    threads = threads or torch.get_num_threads()
    step_mode = fast.resolve_mode(None if mode == "auto" else mode, dev)
    channels_last = fast.default_channels_last(dev) if channels_last is None else channels_last
    log = log or (lambda msg: None)
    b = cfg.batch_size
    spec = {
        "config": cfg.canonical_json(),
        "device": str(dev),
        "threads": threads,
        "workers": workers,
        "train_images": max(train_images, b),
        "mode": step_mode,
        "channels_last": channels_last,
    }

    def start(name: str, **kind) -> _Pipeline:
        return _Pipeline(name, {**spec, **kind})

    ours_rates: list[float] = []
    conv_rates: list[float] = []
    conv: _Pipeline | None = None
    ours = start("this trainer", kind="ours", packs=1)
    try:
        if conventional:
            conv = start("conventional", kind="conventional", packs=1)
        ours_warm, conv_warm = _alternate(
            ours, conv, ours_rates, conv_rates, steps * b, steps, warmup_steps, rounds, max(2, 2 * workers), log
        )
    finally:
        ours.close()
        if conv:
            conv.close()
    n_params = ours.info["parameters"]

    packed = None
    if packs > 1:
        packed = _bench_packed(
            start(f"{packs} packed seeds", kind="ours", packs=packs),
            cfg,
            packs,
            steps,
            warmup_steps,
            rounds,
            statistics.median(ours_rates),
            log,
        )

    ours_ips = statistics.median(ours_rates)
    result: dict[str, Any] = {
        "bench": "train-throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "network": cfg.label(),
        "depth": cfg.depth,
        "block": cfg.block,
        "ordering": cfg.ordering,
        "shortcut": cfg.shortcut,
        "parameters": n_params,
        "batch_size": b,
        "paper_iterations": cfg.iterations,
        **environment(dev, threads),
        "ours": _ours_result(cfg, dev, ours, ours_rates, ours_warm, steps, step_mode, channels_last),
        "conventional": None,
        "ratio": None,
        "packed": packed,
    }
    if conv:
        result["conventional"] = _conventional_result(cfg, dev, conv, conv_rates, conv_warm, steps, workers)
        result["ratio"] = ours_ips / result["conventional"]["images_per_s"]
    return result


def _alternate(
    ours: _Pipeline,
    conv: _Pipeline | None,
    ours_rates: list[float],
    conv_rates: list[float],
    images: int,
    steps: int,
    warmup_steps: int,
    rounds: int,
    drain: int,
    log,
) -> tuple[float, float | None]:
    """Warm both pipelines up, then time them in alternating rounds (appending images/s to the
    rate lists); returns the warm-up times. `drain`: the batches the DataLoader prefetched while
    the other pipeline ran, dropped before its round."""
    # First-time costs, reported apart from steady state: compile, graph capture, worker start.
    # TrainStep warms up `warmup` eager calls, then captures: one more call reaches steady state.
    ours_warm = ours.run(max(warmup_steps, ours.info["first_steps"]))
    conv_warm = conv.run(warmup_steps) if conv else None
    log(f"warm-up: this trainer {ours_warm:.1f} s" + (f", conventional {conv_warm:.1f} s" if conv else ""))
    for r in range(rounds):
        if conv:
            conv.run(drain)
            conv_rates.append(_rate(images, conv.run(steps)))
        ours.run(2)
        ours_rates.append(_rate(images, ours.run(steps)))
        log(
            f"round {r + 1}/{rounds}: this trainer {ours_rates[-1]:,.0f} img/s"
            + (f", conventional {conv_rates[-1]:,.0f} img/s" if conv else "")
        )
    return ours_warm, conv_warm


def _bench_packed(
    pk: _Pipeline, cfg: RunConfig, packs: int, steps: int, warmup_steps: int, rounds: int, single: float, log
) -> dict[str, Any]:
    """`packs` seeds as one packed network, timed as `bench` times one: aggregate images/s."""
    b = cfg.batch_size
    try:
        pk_warm = pk.run(max(warmup_steps, pk.info["first_steps"]))
        pk_rates = []
        for _ in range(rounds):
            pk.run(2)
            pk_rates.append(_rate(steps * b * packs, pk.run(steps)))
    finally:
        pk.close()
    agg = statistics.median(pk_rates)
    log(f"{packs} seeds packed: {agg:,.0f} img/s aggregate vs {single:,.0f} one at a time ({agg / single:.2f}x)")
    return {
        "packs": packs,
        "aggregate_images_per_s": agg,
        "rounds": pk_rates,
        "warmup_s": pk_warm,
        "sequential_images_per_s": single,
        "speedup_vs_sequential": agg / single,
        "paper_runs_h": cfg.iterations * b * packs / agg / 3600,
    }


def _ours_result(
    cfg: RunConfig,
    dev: torch.device,
    ours: _Pipeline,
    rates: list[float],
    warmup_s: float,
    steps: int,
    step_mode: str,
    channels_last: bool,
) -> dict[str, Any]:
    ips = statistics.median(rates)
    return {
        "images_per_s": ips,
        "rounds": rates,
        "warmup_s": warmup_s,
        "steps": steps,
        "mode": step_mode,
        "channels_last": channels_last,
        "precision": cfg.precision,
        "precision_note": fast.precision_note(cfg.precision, dev),
        "allocator": ours.info["allocator"],
        "paper_run_h": (cfg.iterations * cfg.batch_size / ips + warmup_s) / 3600,
    }


def _conventional_result(
    cfg: RunConfig,
    dev: torch.device,
    conv: _Pipeline,
    rates: list[float],
    warmup_s: float | None,
    steps: int,
    workers: int,
) -> dict[str, Any]:
    ips = statistics.median(rates)
    return {
        "images_per_s": ips,
        "rounds": rates,
        "warmup_s": warmup_s,
        "steps": steps,
        "workers": workers,
        "precision": "fp32",
        "precision_note": fast.precision_note("fp32", dev),
        "allocator": conv.info["allocator"],
        "paper_run_h": cfg.iterations * cfg.batch_size / ips / 3600,
    }


def environment(dev: torch.device, threads: int) -> dict[str, Any]:
    import torchvision

    env: dict[str, Any] = {
        "device": str(dev),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": sys.version.split()[0],
        "threads": threads,
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
    }
    if dev.type == "cuda":
        env.update(
            device_name=torch.cuda.get_device_name(dev), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version()
        )
    else:
        env.update(device_name=f"CPU ({cpu_model()}, {threads} threads)")
    return env


# ----------------------------------------------------------------------------------------------
# one network's speed, in this process (the Design page's estimate: engine_api.bench_speed)
# ----------------------------------------------------------------------------------------------


def step_speed(
    cfg: RunConfig, *, device: str | torch.device = "auto", steps: int | None = None, warmup_steps: int | None = None
) -> dict[str, Any]:
    """Images/s of this trainer's step (`Ours`: the step `train()` runs and `bench` times) for
    `cfg`'s network, measured here in this process on a few batches of synthetic images.

    Warm-up (the CUDA graph's capture, first allocations) is timed apart from the steady state,
    as in `bench`; the global RNG is left as it was."""
    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    steps = steps or (50 if gpu else 3)
    warmup_steps = warmup_steps if warmup_steps is not None else (10 if gpu else 1)
    mode = fast.resolve_mode(None, dev)
    with torch.random.fork_rng(devices=[dev] if gpu else []):
        x, y = synthetic_cifar(4 * cfg.batch_size, cfg.num_classes)
        ours = Ours(cfg, dev, x, y, mode=mode, channels_last=fast.default_channels_last(dev))
        warm = ours.run(max(warmup_steps, getattr(ours.step, "warmup", 0) + 1))
        seconds = ours.run(steps)
    name = torch.cuda.get_device_name(dev) if gpu else f"cpu ({torch.get_num_threads()} threads)"
    return {
        "images_per_s": _rate(steps * cfg.batch_size, seconds),
        "device": name,
        "batch": cfg.batch_size,
        "steps": steps,
        "warmup_s": warm,
        "mode": mode,
        "basis": f"the trainer's own step here: {steps} steps of batch {cfg.batch_size} on {name} ({mode})",
    }


def report_text(r: dict[str, Any]) -> str:
    o, c = r["ours"], r["conventional"]
    lines = [
        f"{r['network']} ({r['parameters']:,} parameters), batch {r['batch_size']}, on {r['device_name']}",
        f"torch {r['torch']}, torchvision {r['torchvision']}, python {r['python']}"
        + (f", CUDA {r['cuda']}, cuDNN {r['cudnn']}" if r.get("cuda") else ""),
    ]
    if c:
        lines.append(
            f"  conventional  {c['images_per_s']:>10,.0f} img/s   paper run {c['paper_run_h']:6.2f} h   "
            f"(DataLoader {c['workers']} workers, PIL transforms, NCHW, eager, {c['precision_note']})"
        )
    lines.append(
        f"  this trainer  {o['images_per_s']:>10,.0f} img/s   paper run {o['paper_run_h']:6.2f} h   "
        f"({o['mode']}, {'channels_last' if o['channels_last'] else 'NCHW'}, {o['precision_note']}"
        + (f", {o['allocator']}" if o.get("allocator", "default") != "default" else "")
        + f"; warm-up {o['warmup_s']:.1f} s)"
    )
    if r["ratio"] is not None:
        lines.append(f"  ratio         {r['ratio']:.2f}x")
    p = r.get("packed")
    if p:
        lines.append(
            f"  {p['packs']} seeds packed {p['aggregate_images_per_s']:,.0f} img/s aggregate, "
            f"{p['speedup_vs_sequential']:.2f}x one-at-a-time; {p['packs']} paper runs "
            f"{p['paper_runs_h']:.2f} h"
        )
    return "\n".join(lines)
