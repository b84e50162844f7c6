"""Train runs by the paper's CIFAR protocol. A plain function: configs in, events out, results back.

A run is a pack of one. `train(cfg)` trains one run; `train([cfg, ...])` trains K runs that differ
only in their seed as one grouped network (seed packing): every layer takes `packs=K`
(trainers/engine/layers.py), network k gets its own batches (its own `BatchSampler` and crop/flip
generator, seeded as in a standalone run) in input channels [3k, 3k+3), and the loss is the sum of
each network's mean cross-entropy. Nothing mixes networks and SGD is element-wise, so each network
follows its standalone run (up to the float rounding of grouped vs plain convolutions;
tests/test_packing.py). Why: at 32x32 one ResNet leaves a GPU mostly idle (docs/benchmarks.md).
What packs: trainers/core/pack_rules.py; the state-dict algebra: trainers/engine/pack_state.py.

Every run keeps its own key, events, checkpoint and result.json, in the same format alone or packed:
a packed run resumes alone, and K standalone checkpoints at one iteration resume packed. A run that
diverges, is cancelled or finds its folder fenced off (StaleWriter: another attempt owns it) leaves
the pack at its next log interval; the others are repacked and go on.

The whole dataset lives on the training device as uint8; batches are gathered, augmented (pad 4,
random crop, flip) and normalised there, so no DataLoader workers fight the training for cores.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, overload

import torch
import torch.nn.functional as F

from ..core.atomic import StaleWriter, atomic_write
from ..core.config import RunConfig
from ..core.errors import PackingError
from ..core.pack_rules import why_not_packable
from ..core.records import (
    CheckpointEvent,
    CurvePoint,
    EndEvent,
    EvalEvent,
    Event,
    MetricsEvent,
    Provenance,
    Result,
    StartEvent,
)
from . import checkpoint as ckpt
from . import fast, recipe
from .augment import BatchSampler, normalize
from .cpu import cpu_model, keep_freed_memory
from .data import load_dataset
from .model import build_model, count_parameters
from .pack_state import pack_optimizer_states, pack_state_dicts, unpack_optimizer_state, unpack_state_dict
from .provenance import code_version

EVAL_BATCH = 1000

OnEvent = Callable[[Event], None]
ShouldStop = Callable[[], bool]


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
    return datetime.now(UTC).isoformat(timespec="seconds")


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    x_u8: torch.Tensor,
    y: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    device: torch.device,
    precision: str,
    channels_last: bool,
    packs: int = 1,
) -> list[tuple[float, float]]:
    """(test error %, mean test loss) of each of the `packs` networks on the plain images (paper: no
    test-time augmentation); packed, every network sees the same images in its own channels. Sums
    are kept per network on the host, batch by batch, as one network's always were."""
    was_training = model.training
    model.eval()
    wrong, loss_sum = [0] * packs, [0.0] * packs
    for i in range(0, len(y), EVAL_BATCH):
        xb = normalize(x_u8[i : i + EVAL_BATCH], mean, std)
        yb = y[i : i + EVAL_BATCH]
        if packs > 1:
            xb = xb.repeat(1, packs, 1, 1)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(xb)
        out = out.float().view(len(yb), packs, -1)
        losses = torch.stack([F.cross_entropy(out[:, k], yb, reduction="sum") for k in range(packs)])
        wrongs = (out.argmax(2) != yb.view(-1, 1)).sum(0)
        for k, (loss, w) in enumerate(zip(losses.tolist(), wrongs.tolist())):
            loss_sum[k] += loss
            wrong[k] += w
    model.train(was_training)
    n = max(1, len(y))
    return [(100.0 * w / n, s / n) for w, s in zip(wrong, loss_sum)]


def checkpoint_error(
    cfg: RunConfig,
    *,
    split: str = "train",
    images: int = 10_000,
    device: str | torch.device = "auto",
    cache_dir: str | Path = "cache",
    run_dir: str | Path | None = None,
) -> dict[str, Any]:
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
    model = model.to(dev, memory_format=torch.channels_last if channels_last else torch.preserve_format)  # type: ignore[call-overload]  # not in torch's stubs
    [(error, loss)] = evaluate(
        model, x[:images].to(dev), y[:images].to(dev), mean, std, dev, cfg.precision, channels_last
    )
    return {
        "key": cfg.key,
        "split": split,
        "images": min(images, len(y)),
        "iteration": state["iteration"],
        "error": error,
        "loss": loss,
        "mode": "eval",
    }


# ----------------------------------------------------------------------------------------------
# train: one function for K >= 1 runs
# ----------------------------------------------------------------------------------------------


@overload
def train(
    cfg: RunConfig,
    *,
    device: str | torch.device = ...,
    cache_dir: str | Path = ...,
    run_dir: str | Path | None = ...,
    on_event: OnEvent | None = ...,
    resume: bool = ...,
    checkpoint_every_s: float = ...,
    should_stop: ShouldStop | None = ...,
    progress: bool = ...,
    channels_last: bool | None = ...,
    compile: bool | str | None = ...,
    until: int | None = ...,
) -> Result: ...
@overload
def train(
    cfg: Sequence[RunConfig],
    *,
    device: str | torch.device = ...,
    cache_dir: str | Path = ...,
    run_dir: Sequence[str | Path] | None = ...,
    on_event: Sequence[OnEvent | None] | None = ...,
    resume: bool = ...,
    checkpoint_every_s: float = ...,
    should_stop: Sequence[ShouldStop | None] | None = ...,
    progress: bool = ...,
    channels_last: bool | None = ...,
    compile: bool | str | None = ...,
    until: int | None = ...,
) -> list[Result]: ...


def train(
    cfg: RunConfig | Sequence[RunConfig],
    *,
    device: str | torch.device = "auto",
    cache_dir: str | Path = "cache",
    run_dir: Any = None,
    on_event: Any = None,
    resume: bool = True,
    checkpoint_every_s: float = 60.0,
    should_stop: Any = None,
    progress: bool = False,
    channels_last: bool | None = None,
    compile: bool | str | None = None,
    until: int | None = None,
) -> Result | list[Result]:
    """Train `cfg` and return its result; or train a list of configs that differ only in their seed
    as one packed network and return their results, in order (then `run_dir`, `on_event` and
    `should_stop` are lists too, one entry per config). Events and the result: docs/interfaces.md.

    `run_dir` defaults to `cache_dir/runs/<key>`; it holds `checkpoint.pt` and `result.json`. With
    `resume` a run continues from its checkpoint; one that does not fit is set aside and the run
    starts over. `should_stop()` is polled every log interval: True = checkpoint, end "cancelled".

    `until`: stop after this iteration of the runs' own schedule (their lr steps unchanged), save a
    checkpoint and end "cancelled" with the curve so far; training again resumes there. The
    reference generator grows 64k-iteration runs this way, a few thousand iterations a session.

    `compile`: how the iteration is launched (trainers/engine/fast.py); None = auto: the whole
    iteration as one CUDA graph on CUDA, eager on the CPU. The math is the same in every mode.

    Raises PackingError if the configs cannot pack (they differ in more than the seed, or their
    checkpoints stand at different iterations), and StaleWriter once the other runs have ended if
    a run's folder was fenced off."""
    single = isinstance(cfg, RunConfig)
    configs = [cfg] if isinstance(cfg, RunConfig) else list(cfg)
    reason = why_not_packable(configs) if len(configs) != 1 else None  # one run always trains
    if reason:
        raise PackingError(f"cannot pack these runs: {reason}")
    dirs = [run_dir] if single else _each(run_dir, len(configs), "run_dir")
    pack = _Pack(
        configs,
        device=device,
        cache_dir=Path(cache_dir),
        run_dirs=[Path(d) if d is not None else Path(cache_dir) / "runs" / c.key for d, c in zip(dirs, configs)],
        on_events=[on_event] if single else _each(on_event, len(configs), "on_event"),
        stops=[should_stop] if single else _each(should_stop, len(configs), "should_stop"),
        channels_last=channels_last,
        compile=compile,
        progress=progress,
    )
    start = pack.restore(resume)
    pack.announce(start)
    stop_at = pack.cfg.iterations if until is None else min(pack.cfg.iterations, until)
    pack.end(pack.run(start, stop_at, checkpoint_every_s))
    stale = [r.stale for r in pack.runs if r.stale is not None]
    if stale:
        raise stale[0]
    results = [r.result for r in pack.runs if r.result is not None]
    return results[0] if single else results


T = TypeVar("T")


def _each(values: Sequence[T] | None, n: int, name: str) -> list[T | None]:
    if values is None:
        return [None] * n
    if len(values) != n:
        raise ValueError(f"{name} needs one entry per config ({n}), not {len(values)}")
    return list(values)


@dataclass
class _Run:
    """One run of a pack: its config and folder, its listeners, its batches and its curve so far."""

    cfg: RunConfig
    run_dir: Path
    on_event: OnEvent | None
    should_stop: ShouldStop | None
    generator: torch.Generator  # batch order and augmentation, seeded as a standalone run
    sampler: BatchSampler
    history: list[CurvePoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resumed: bool = False
    last_eval: tuple[float, float] | None = None
    train_loss: float = math.nan
    leaving: str | None = None  # the status it leaves the pack with: diverged, cancelled, done, stale
    result: Result | None = None
    stale: StaleWriter | None = None  # its folder was fenced off: another attempt owns the run

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"


class _Networks:
    """The live runs' networks as one packed model (`packs=K`; K=1 is a plain network), its optimizer
    and its step, built from K standalone state dicts (and optimizer states, when resumed)."""

    def __init__(self, pack: _Pack, model_sds: list[dict], opt_sds: list[dict] | None):
        cfg, dev = pack.cfg, pack.dev
        self.packs = len(model_sds)
        model = build_model(cfg, num_classes=pack.num_classes, packs=self.packs)
        model.load_state_dict(pack_state_dicts(model_sds))
        self.model = model.to(dev, memory_format=torch.channels_last if pack.channels_last else torch.preserve_format)  # type: ignore[call-overload]  # not in torch's stubs
        # SGD with momentum 0.9 and weight decay 1e-4 on every parameter (fb.resnet.torch)
        self.optimizer = fast.make_optimizer(self.model, cfg, dev)
        if opt_sds is not None:
            self.optimizer.load_state_dict(pack_optimizer_states(opt_sds))
        self.step = fast.TrainStep(
            self.model,
            self.optimizer,
            pack.train_x,
            pack.train_y,
            pack.mean,
            pack.std,
            augment=cfg.augment,
            precision=cfg.precision,
            channels_last=pack.channels_last,
            packs=self.packs,
            mode=pack.mode,
            crop_padding=cfg.crop_padding,
            cudnn_benchmark=not cfg.deterministic,
        )

    def unpacked(self) -> tuple[list[dict], list[dict]]:
        """Each network's model and optimizer state dicts, on the CPU (a checkpoint's format)."""
        sd = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        opt = self.optimizer.state_dict()
        opt = {
            "state": {
                i: {n: (t.detach().cpu() if isinstance(t, torch.Tensor) else t) for n, t in e.items()}
                for i, e in opt["state"].items()
            },
            "param_groups": opt["param_groups"],
        }
        return unpack_state_dict(sd, self.packs), unpack_optimizer_state(opt, self.packs)


class _Pack:
    """The runs of one `train` call and what they share: the device, the data on it, the step mode,
    the clocks, and the live runs' networks (`nets`)."""

    def __init__(
        self,
        configs: list[RunConfig],
        *,
        device: str | torch.device,
        cache_dir: Path,
        run_dirs: list[Path],
        on_events: list[OnEvent | None],
        stops: list[ShouldStop | None],
        channels_last: bool | None,
        compile: bool | str | None,
        progress: bool,
    ):
        self.started_wall, self.started_at = time.time(), _now()
        code_version()  # cached from now on: the provenance names the code that starts the run
        self.dev = dev = resolve_device(device)
        # channels_last: faster convolutions on CUDA and, since the zero-pad shortcut keeps the layout,
        # on the CPU too (oneDNN; 1.2x for ResNet-110 on 2 cores, docs/benchmarks.md)
        self.channels_last = fast.default_channels_last(dev) if channels_last is None else channels_last
        if dev.type == "cpu":
            keep_freed_memory()  # no page faults on every iteration's activations (trainers/engine/cpu.py)
        self.cfg = cfg = configs[0]  # the shared recipe (seeds aside)
        self.packed = len(configs) > 1  # packed runs say so in their events and provenance
        self.progress = progress

        # Data first: a missing or corrupt dataset fails before any model is built (DataError).
        data = load_dataset(cfg.dataset, cache_dir).subset(cfg.train_size, cfg.test_size)
        self.dataset, self.num_classes = data.label, len(data.classes)
        self.train_x, self.train_y = data.train_x.to(dev), data.train_y.to(dev)
        self.test_x, self.test_y = data.test_x.to(dev), data.test_y.to(dev)
        self.mean, self.std = recipe.input_stats(cfg, data, dev)  # per channel (default) or per-pixel mean
        recipe.set_numerics(cfg, dev)  # TF32 and cuDNN algorithms, as the config asks (CUDA only)
        self.mode = fast.resolve_mode(compile, dev)
        with torch.device("meta"):  # one network's parameter count (shapes only)
            self.parameters = count_parameters(build_model(cfg, num_classes=self.num_classes))
        self.runs: list[_Run] = []
        for c, run_dir, on_event, stop in zip(configs, run_dirs, on_events, stops):
            gen = torch.Generator().manual_seed(c.seed)
            self.runs.append(_Run(c, run_dir, on_event, stop, gen, recipe.batch_sampler(c, len(self.train_y), gen)))
        self.live = list(self.runs)
        self.epoch_len = self.runs[0].sampler.batches_per_epoch  # cfg.last_batch decides the last one

    # --- the start: checkpoints or fresh seeds --------------------------------------------------
    def restore(self, resume: bool) -> int:
        """Build the networks from each run's checkpoint, or from each seed's fresh init; returns
        the iteration they start at."""
        states = self._read_checkpoints(resume)
        if all(s is None for s in states):
            sds = []
            for r in self.runs:  # init from the seed on the CPU, then move: the same net on any device
                torch.manual_seed(r.cfg.seed)
                sds.append(build_model(r.cfg, num_classes=self.num_classes).state_dict())
            self.nets = _Networks(self, sds, None)
            torch.manual_seed(self.cfg.seed)  # the global RNG drives the dropout shortcut
            return 0
        found = [s for s in states if s is not None]
        for r, s in zip(self.runs, found):
            r.sampler.load_state_dict(s["sampler"])
            r.history, r.resumed = list(s["history"]), True
        self.nets = _Networks(self, [s["model"] for s in found], [s["optimizer"] for s in found])
        ckpt.set_rng_state(found[0]["rng"], self.dev)
        return int(found[0]["iteration"])

    def _read_checkpoints(self, resume: bool) -> list[dict[str, Any] | None]:
        """Each run's checkpoint, or None (train from scratch). One that cannot be read or does not
        fit is set aside with a note and its run starts over, unless that would leave the pack at
        different iterations: then PackingError, and nothing is moved."""
        states: list[dict[str, Any] | None] = []
        misfits: dict[int, ckpt.CheckpointError] = {}
        for i, r in enumerate(self.runs):
            try:
                state = ckpt.load(r.ckpt_path, r.cfg.key) if resume else None
                if state is not None:  # parses, but does it fit? (right key, wrong shapes: unreadable too)
                    with torch.device("meta"):  # shapes only
                        net = build_model(r.cfg, num_classes=self.num_classes)
                    optimizer = fast.make_optimizer(net, r.cfg, torch.device("cpu"))
                    ckpt.check_fits(state, net, optimizer, r.sampler, r.cfg.iterations)
            except ckpt.CheckpointError as e:
                state, misfits[i] = None, e
            states.append(state)
        if len({s["iteration"] if s is not None else None for s in states}) > 1:
            at = {r.cfg.key: (s["iteration"] if s is not None else None) for r, s in zip(self.runs, states)}
            raise PackingError(
                f"cannot pack runs whose checkpoints are at different iterations {at}; train them one by one"
            )
        for i, err in misfits.items():  # keep the file for inspection and train from scratch: nothing is deleted
            r = self.runs[i]
            aside = r.ckpt_path.with_name(f"checkpoint.unreadable-{int(time.time())}.pt")
            r.ckpt_path.rename(aside)
            r.notes.append(f"{err}; moved aside to {aside.name}, starting from iteration 0")
        return states

    def announce(self, start: int) -> None:
        cfg, dev = self.cfg, self.dev
        for r in self.runs:
            ev = StartEvent(
                type="start",
                iteration=start,
                total=cfg.iterations,
                device=str(dev),
                device_name=device_name(dev),
                precision=cfg.precision,
                parameters=self.parameters,
                dataset=self.dataset,
                resumed=r.resumed,
                channels_last=self.channels_last,
                step_mode=self.mode,
                notes=r.notes,
            )
            if self.packed:
                ev["packed"] = len(self.runs)
            self.emit(r, ev)

    def emit(self, r: _Run, ev: Event) -> None:
        if ev["type"] == "metrics" or ev["type"] == "eval":
            r.history.append(ev)
        if r.on_event is not None:
            r.on_event(ev)
        if self.progress:
            _print_progress(ev, r.cfg)

    # --- the loop --------------------------------------------------------------------------------
    def run(self, start: int, stop_at: int, checkpoint_every_s: float) -> int:
        """Train the live runs from iteration `start` to `stop_at`; runs that diverge, are cancelled
        or go stale leave on the way. Returns the iteration reached."""
        cfg = self.cfg
        self.nets.model.train()
        seen, it = 0, start
        last_ckpt = time.time()
        window_t, window_images = time.perf_counter(), 0
        while it < stop_at and self.live:
            lr = lr_at(cfg, it)
            self.nets.step.set_lr(lr)
            draws = [fast.draw_batch(r.sampler, r.generator, cfg.augment) for r in self.live]
            batch = fast.stack_draws(draws)
            self.nets.step(batch)  # gather, augment, SGD: on the device
            it += 1
            seen += batch.shape[-1]  # a kept last partial batch is smaller (last_batch: keep)
            window_images += batch.shape[-1]

            if it % cfg.log_every == 0 or it == stop_at:
                loss_sums, wrong_sums = self.nets.step.take_metrics()  # the one host sync per log interval
                now = time.perf_counter()
                images_per_s = window_images / max(now - window_t, 1e-9)  # per run
                window_t, window_images = now, 0
                self._log(it, lr, [s / seen for s in loss_sums], [100.0 * w / seen for w in wrong_sums], images_per_s)
                seen = 0
            if it % cfg.eval_every == 0 or it == stop_at:
                self._evaluate(it)
            if it % cfg.log_every == 0 and it < cfg.iterations:
                stopping = [r for r in self.live if not r.leaving and r.should_stop is not None and r.should_stop()]
                self.save_checkpoints(it, stopping)
                for r in stopping:
                    r.leaving = r.leaving or "cancelled"
                if time.time() - last_ckpt >= checkpoint_every_s:
                    self.save_checkpoints(it, [r for r in self.live if not r.leaving])
                    last_ckpt = time.time()
            self._retire(it)
        return it

    def _log(self, it: int, lr: float, losses: list[float], errors: list[float], images_per_s: float) -> None:
        cfg = self.cfg
        for r, loss, error in zip(self.live, losses, errors):
            r.train_loss = loss
            ev = MetricsEvent(
                type="metrics",
                iteration=it,
                epoch=it / self.epoch_len,
                train_loss=loss,
                train_error=error,
                lr=lr,
                images_per_s=images_per_s,
                elapsed_s=time.time() - self.started_wall,
                eta_s=(cfg.iterations - it) * cfg.batch_size / max(images_per_s, 1e-9),
            )
            if self.packed:
                ev["aggregate_images_per_s"] = images_per_s * len(self.live)
            self.emit(r, ev)
            if not math.isfinite(loss):
                r.leaving = "diverged"  # stop cleanly: no eval, no checkpoint, the curve so far is kept

    def _test_all(self) -> list[tuple[float, float]]:
        """(test error %, test loss) of every network still in the pack, on the whole test set."""
        return evaluate(
            self.nets.model,
            self.test_x,
            self.test_y,
            self.mean,
            self.std,
            self.dev,
            self.cfg.precision,
            self.channels_last,
            self.nets.packs,
        )

    def _evaluate(self, it: int) -> None:
        staying = [j for j, r in enumerate(self.live) if not r.leaving]
        if not staying:
            return
        evals = self._test_all()
        for j in staying:
            r = self.live[j]
            r.last_eval = evals[j]
            self.emit(
                r,
                EvalEvent(
                    type="eval", iteration=it, epoch=it / self.epoch_len, test_error=evals[j][0], test_loss=evals[j][1]
                ),
            )

    def save_checkpoints(self, it: int, which: list[_Run]) -> None:
        """Each of these live runs at iteration `it`, as a standalone checkpoint in its own folder.
        A run whose folder is fenced off (StaleWriter) leaves the pack, the others go on."""
        if not which:
            return
        sds, opts = self.nets.unpacked()
        for r in which:
            j = self.live.index(r)
            try:
                ckpt.save(
                    r.ckpt_path,
                    {
                        "key": r.cfg.key,
                        "config": r.cfg.to_dict(),
                        "iteration": it,
                        "history": r.history,
                        "model": sds[j],
                        "optimizer": opts[j],
                        "sampler": r.sampler.state_dict(),
                        "rng": ckpt.rng_state(self.dev),
                    },
                )
            except StaleWriter as e:
                r.stale, r.leaving = e, "stale"
                continue
            self.emit(r, CheckpointEvent(type="checkpoint", iteration=it, path=str(r.ckpt_path)))

    def _retire(self, it: int) -> None:
        """Finish the runs that leave at `it`; repack the others."""
        keep = [j for j, r in enumerate(self.live) if not r.leaving]
        if len(keep) == len(self.live):
            return
        sds, opts = self.nets.unpacked() if keep else ([], [])
        for r in self.live:
            if r.leaving:
                self._finish(r, r.leaving, it)
        self.live = [self.live[j] for j in keep]
        if keep:
            self.nets = _Networks(self, [sds[j] for j in keep], [opts[j] for j in keep])

    # --- the end ---------------------------------------------------------------------------------
    def end(self, it: int) -> None:
        """The runs still in the pack reached the end of the loop: evaluate them if they resumed at
        their end, checkpoint them, and finish them: done (or "fail", core/results.py) at the end of
        the schedule, or "cancelled" (resumable) at `until`."""
        if not self.live:
            return
        if any(r.last_eval is None for r in self.live):  # resumed from the final (or the `until`) checkpoint
            evals = self._test_all()
            for r, e in zip(self.live, evals):
                r.last_eval = r.last_eval or e
        self.save_checkpoints(it, list(self.live))  # the final weights, for later analysis
        for r in self.live:
            r.leaving = r.leaving or ("done" if it >= self.cfg.iterations else "cancelled")
        self._retire(it)

    def _finish(self, r: _Run, status: str, it: int) -> None:
        """Write the run's result.json and send its end event (a stale run gets neither)."""
        if status == "stale":
            return
        cfg, dev = r.cfg, self.dev
        test_error = r.last_eval[0] if r.last_eval else None
        # the paper's "fail" is decided where results are shown (core/results.py shown_status)
        prov = Provenance(
            code_version=code_version(),
            torch=torch.__version__,
            python=sys.version.split()[0],
            device=str(dev),
            device_name=device_name(dev),
            precision=cfg.precision,
            channels_last=self.channels_last,
            step_mode=self.mode,
            dataset=self.dataset,
            hostname=socket.gethostname(),
            started_at=self.started_at,
            finished_at=_now(),
            resumed=r.resumed,
            pid=os.getpid(),
            recipe=recipe.provenance(cfg, dev),
        )
        if self.packed:
            prov["packed"], prov["packed_with"] = len(self.runs), [x.cfg.key for x in self.runs]
        result = Result(
            key=cfg.key,
            status=status,
            test_error=test_error,
            test_loss=r.last_eval[1] if r.last_eval else None,
            iterations=it,
            epochs=it / self.epoch_len,
            train_loss=r.train_loss,
            wall_time_s=time.time() - self.started_wall,
            parameters=self.parameters,
            config=cfg.to_dict(),
            provenance=prov,
        )
        try:
            atomic_write(r.run_dir / "result.json", lambda f: f.write(_result_json(result, r.history)))
        except StaleWriter as e:
            r.stale = e
            return
        r.result = result
        self.emit(r, EndEvent(type="end", status=status, result=result))


def _result_json(result: Result, history: list[CurvePoint]) -> bytes:
    from ..core.strict_json import dumps  # NaN/Infinity (a diverged run) as null

    return dumps({**result, "curve": history}, indent=1).encode()


def _print_progress(ev: Event, cfg: RunConfig) -> None:
    if ev["type"] == "start":
        msg = (
            f"{cfg.label()} [{cfg.key}] on {ev['device_name']}, {ev['parameters']:,} parameters, "
            f"{ev['dataset']}"
            + (f", resumed at iteration {ev['iteration']}" if ev["resumed"] else "")
            + "".join(f"\nnote: {n}" for n in ev["notes"])
        )
    elif ev["type"] == "metrics":
        msg = (
            f"it {ev['iteration']:>6}/{cfg.iterations}  loss {ev['train_loss']:.4f}  "
            f"train err {ev['train_error']:5.2f}%  lr {ev['lr']:.4g}  "
            f"{ev['images_per_s']:,.0f} img/s  ETA {ev['eta_s'] / 60:.1f} min"
        )
    elif ev["type"] == "eval":
        msg = f"it {ev['iteration']:>6}  test error {ev['test_error']:.2f}%"
    elif ev["type"] == "end":
        te = ev["result"]["test_error"]
        msg = f"{ev['status']}: test error {'n/a' if te is None else f'{te:.2f}%'}"
    else:
        return
    print(msg, file=sys.stderr, flush=True)
