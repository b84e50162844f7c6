"""Seed packing: K runs that differ only in their seed, trained as one grouped network.

Every layer takes `packs=K` (trainers/engine/layers.py): channels are concatenated, convolutions grouped
K ways, BN per network, one `Head` per network. Network k gets its own batch (its own
`BatchSampler` and crop/flip generator, seeded as in a standalone run) in channels [3k, 3k+3) of
the input, and the loss is the sum over networks of each one's mean cross-entropy. Nothing mixes
networks, and SGD's update is element-wise, so each network follows exactly its standalone run
(up to float rounding of grouped vs plain convolutions; tests/test_packing.py checks it).

Why: at 32x32 with 16-64 channels one ResNet leaves a GPU mostly idle; K of them in one set of
kernels costs far less than K times one (docs/benchmarks.md). On a 2-core CPU there is no idle
hardware to fill, so `should_pack` says no there (the rules: trainers/core/packing.py, which the
supervisor reads without importing torch).

Checkpoints and results are per run, in `train()`'s format, under each run's own key: a packed run
can be resumed alone by `train()`, and K standalone checkpoints at the same iteration resume packed.

Not packable: a stochastic shortcut such as dropout (its masks come from the global RNG in a
different order than in a standalone run: same distribution, not the same run), and configs that
differ in anything but the seed.
"""

from __future__ import annotations

import copy
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from . import fast
from ..core.atomic import atomic_write
from .augment import BatchSampler, normalize
from ..core.config import RunConfig
from ..core.errors import PackingError
from ..core.packing import why_not_packable
from .cpu import keep_freed_memory
from .data import load_dataset
from .model import build_model, count_parameters
from .provenance import code_version
from . import recipe
from .train import (EVAL_BATCH, Event, _now, _print_progress, _result_json,
                    device_name, lr_at, resolve_device)


# ----------------------------------------------------------------------------------------------
# state dicts: every packed tensor is its K networks' tensors concatenated along dim 0
# ----------------------------------------------------------------------------------------------


def pack_state_dicts(state_dicts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One packed state dict from K standalone ones (same architecture).

    Conv weights (grouped: (K·out, in/groups, k, k)), BN parameters and statistics, the head's
    weight and bias all concatenate along dim 0; scalars (BN's num_batches_tracked) must agree."""
    if not state_dicts:
        raise PackingError("nothing to pack")
    keys = list(state_dicts[0])
    for sd in state_dicts[1:]:
        if list(sd) != keys:
            raise PackingError("state dicts of different architectures cannot be packed")
    packed = {}
    for k in keys:
        ts = [sd[k] for sd in state_dicts]
        if ts[0].dim() == 0:
            if any(not torch.equal(t, ts[0]) for t in ts[1:]):
                raise PackingError(f"{k} differs between the networks ({[t.item() for t in ts]})")
            packed[k] = ts[0].clone()
        else:
            packed[k] = torch.cat(ts, dim=0)
    return packed


def unpack_state_dict(state_dict: dict[str, torch.Tensor], packs: int) -> list[dict[str, torch.Tensor]]:
    """K standalone state dicts from a packed one (the inverse of `pack_state_dicts`)."""
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(packs)]
    for k, t in state_dict.items():
        if t.dim() == 0:
            parts = [t] * packs
        else:
            if t.shape[0] % packs:
                raise PackingError(f"{k} has {t.shape[0]} rows, not a multiple of {packs} networks")
            parts = t.chunk(packs, dim=0)
        for sd, p in zip(out, parts):
            sd[k] = p.detach().clone()
    return out


def _plain_groups(groups: list[dict]) -> list[dict]:
    # a CUDA-graph step keeps lr as a device tensor; a checkpoint stores a plain number
    return [{**g, "lr": float(g["lr"])} for g in copy.deepcopy(groups)]


def pack_optimizer_states(states: Sequence[dict]) -> dict:
    """One packed SGD state dict from K standalone ones: momentum buffers concatenate like the
    parameters they belong to (the packed network lists its parameters in the same order)."""
    first = states[0]
    packed: dict[int, dict] = {}
    for i in first["state"]:
        entry = {}
        for name, t in first["state"][i].items():
            ts = [s["state"][i][name] for s in states]
            entry[name] = torch.cat(ts, dim=0) if isinstance(t, torch.Tensor) and t.dim() else t
        packed[i] = entry
    return {"state": packed, "param_groups": _plain_groups(first["param_groups"])}


def unpack_optimizer_state(state: dict, packs: int) -> list[dict]:
    out = [{"state": {}, "param_groups": _plain_groups(state["param_groups"])} for _ in range(packs)]
    for i, entry in state["state"].items():
        for o in out:
            o["state"][i] = {}
        for name, t in entry.items():
            parts = t.chunk(packs, dim=0) if isinstance(t, torch.Tensor) and t.dim() else [t] * packs
            for o, p in zip(out, parts):
                o["state"][i][name] = p.detach().clone() if isinstance(p, torch.Tensor) else p
    return out


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_packed(model, x_u8, y, mean, std, device: torch.device, precision: str,
                    channels_last: bool, packs: int) -> list[tuple[float, float]]:
    """(test error %, mean test loss) per network on the plain test images: each network gets the
    same images in its own channels."""
    was_training = model.training
    model.eval()
    wrong = torch.zeros(packs, device=device)
    loss_sum = torch.zeros(packs, device=device)
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
        target = yb.view(-1, 1).expand(-1, packs)
        loss_sum += F.cross_entropy(out.permute(0, 2, 1), target, reduction="none").sum(0)
        wrong += (out.argmax(2) != target).sum(0)
    model.train(was_training)
    n = max(1, len(y))
    return [(100.0 * w / n, s / n) for w, s in zip(wrong.tolist(), loss_sum.tolist())]


# ----------------------------------------------------------------------------------------------
# the packed train loop
# ----------------------------------------------------------------------------------------------


@dataclass
class _Run:
    cfg: RunConfig
    run_dir: Path
    on_event: Callable[[Event], None] | None
    should_stop: Callable[[], bool] | None
    generator: torch.Generator
    sampler: BatchSampler
    history: list = field(default_factory=list)
    resumed: bool = False
    last_eval: tuple[float, float] | None = None
    train_loss: float = float("nan")

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"


class _Pack:
    """The live networks as one packed model, its optimizer and its step."""

    def __init__(self, cfg: RunConfig, num_classes: int, model_sds: list[dict], opt_sds: list[dict] | None,
                 dev: torch.device, channels_last: bool, mode: str, data: tuple):
        self.packs = len(model_sds)
        model = build_model(cfg, num_classes=num_classes, packs=self.packs)
        model.load_state_dict(pack_state_dicts(model_sds))
        self.model = model.to(dev, memory_format=torch.channels_last if channels_last else torch.preserve_format)
        self.optimizer = fast.make_optimizer(self.model, cfg, dev)
        if opt_sds is not None:
            self.optimizer.load_state_dict(pack_optimizer_states(opt_sds))
        train_x, train_y, mean, std = data
        self.step = fast.TrainStep(self.model, self.optimizer, train_x, train_y, mean, std,
                                   augment=cfg.augment, precision=cfg.precision, channels_last=channels_last,
                                   packs=self.packs, mode=mode, crop_padding=cfg.crop_padding,
                                   cudnn_benchmark=not cfg.deterministic)

    def unpacked(self) -> tuple[list[dict], list[dict]]:
        sd = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        opt = self.optimizer.state_dict()
        opt = {"state": {i: {n: (t.detach().cpu() if isinstance(t, torch.Tensor) else t) for n, t in e.items()}
                         for i, e in opt["state"].items()},
               "param_groups": opt["param_groups"]}
        return unpack_state_dict(sd, self.packs), unpack_optimizer_state(opt, self.packs)


def train_packed(
    configs: Sequence[RunConfig],
    *,
    device: str | torch.device = "auto",
    cache_dir: str | Path = "cache",
    run_dirs: Sequence[str | Path] | None = None,
    on_event_per_run: Sequence[Callable[[Event], None] | None] | None = None,
    resume: bool = True,
    checkpoint_every_s: float = 60.0,
    should_stop_per_run: Sequence[Callable[[], bool] | None] | None = None,
    progress: bool = False,
    channels_last: bool | None = None,
    compile: bool | str | None = None,
) -> list[dict[str, Any]]:
    """Train K configs that differ only in their seed as one packed network.

    Returns K results of the same form as `train()`'s, in order, and gives each run the same
    events, checkpoints and result.json that `train()` would. A run that diverges or is cancelled
    leaves the pack (the rest are repacked and go on)."""
    configs = list(configs)
    reason = why_not_packable(configs)
    if reason:
        raise PackingError(f"cannot pack these runs: {reason}")
    started_wall, started_at = time.time(), _now()
    code_version()  # cached from now on: the provenance names the code that starts the run
    dev = resolve_device(device)
    channels_last = fast.default_channels_last(dev) if channels_last is None else channels_last
    mode = fast.resolve_mode(compile, dev)
    if dev.type == "cpu":
        keep_freed_memory()  # as train() does (trainers/engine/cpu.py)
    cfg = configs[0]  # the shared recipe (seeds aside)
    n = len(configs)

    data = load_dataset(cfg.dataset, cache_dir).subset(cfg.train_size, cfg.test_size)
    train_x, train_y = data.train_x.to(dev), data.train_y.to(dev)
    test_x, test_y = data.test_x.to(dev), data.test_y.to(dev)
    mean, std = recipe.input_stats(cfg, data, dev)  # as train() does
    recipe.set_numerics(cfg, dev)
    num_classes = len(data.classes)

    callbacks = list(on_event_per_run) if on_event_per_run is not None else [None] * n
    stops = list(should_stop_per_run) if should_stop_per_run is not None else [None] * n
    if len(callbacks) != n or len(stops) != n or (run_dirs is not None and len(run_dirs) != n):
        raise ValueError("on_event_per_run, should_stop_per_run and run_dirs need one entry per config")
    runs: list[_Run] = []
    for k, c in enumerate(configs):
        gen = torch.Generator().manual_seed(c.seed)  # batch order and augmentation, as in train()
        run_dir = Path(run_dirs[k]) if run_dirs is not None else Path(cache_dir) / "runs" / c.key
        runs.append(_Run(c, run_dir, callbacks[k], stops[k], gen, recipe.batch_sampler(c, len(train_y), gen)))

    try:
        states = [ckpt.load(r.ckpt_path, r.cfg.key) if resume else None for r in runs]
        for r, s in zip(runs, states):
            if s is not None:
                with torch.device("meta"):  # shapes only
                    net = build_model(r.cfg, num_classes=num_classes)
                ckpt.check_fits(s, net, torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
                                r.sampler, r.cfg.iterations)
    except ckpt.CheckpointError as e:  # train() sets an unreadable checkpoint aside, run by run
        raise PackingError(f"cannot pack: {e}") from None
    if all(s is None for s in states):
        start_iter, opt_sds = 0, None
        model_sds = []
        for r in runs:  # init from each seed on the CPU, exactly as a standalone run
            torch.manual_seed(r.cfg.seed)
            model_sds.append(build_model(r.cfg, num_classes=num_classes).state_dict())
    elif all(s is not None for s in states) and len({s["iteration"] for s in states}) == 1:
        start_iter = states[0]["iteration"]
        model_sds = [s["model"] for s in states]
        opt_sds = [s["optimizer"] for s in states]
        for r, s in zip(runs, states):
            r.sampler.load_state_dict(s["sampler"])
            r.history, r.resumed = list(s["history"]), True
        ckpt.set_rng_state(states[0]["rng"], dev)
    else:
        at = {r.cfg.key: (s["iteration"] if s else None) for r, s in zip(runs, states)}
        raise PackingError(f"cannot pack runs whose checkpoints are at different iterations {at}; "
                           f"train them one by one")
    with torch.device("meta"):  # one network's parameter count, as train() reports it
        n_params = count_parameters(build_model(cfg, num_classes=num_classes))
    data_t = (train_x, train_y, mean, std)
    pack = _Pack(cfg, num_classes, model_sds, opt_sds, dev, channels_last, mode, data_t)
    del model_sds, opt_sds, states
    live = list(runs)
    results: dict[int, dict] = {}

    def emit(r: _Run, ev: Event) -> None:
        if ev["type"] in ("metrics", "eval"):
            r.history.append(ev)
        if r.on_event is not None:
            r.on_event(ev)
        if progress:
            _print_progress(ev, r.cfg)

    def save_checkpoints(iteration: int, which: list[_Run]) -> None:
        sds, opts = pack.unpacked()
        for r in which:
            j = live.index(r)
            ckpt.save(r.ckpt_path, {
                "key": r.cfg.key, "config": r.cfg.to_dict(), "iteration": iteration, "history": r.history,
                "model": sds[j], "optimizer": opts[j], "sampler": r.sampler.state_dict(),
                "rng": ckpt.rng_state(dev),
            })
            emit(r, {"type": "checkpoint", "iteration": iteration, "path": str(r.ckpt_path)})

    def finish(r: _Run, status: str, iteration: int) -> None:
        test_error = r.last_eval[0] if r.last_eval else None  # "fail" is decided where shown
        result = {
            "key": r.cfg.key, "status": status, "test_error": test_error,
            "test_loss": r.last_eval[1] if r.last_eval else None,
            "iterations": iteration, "epochs": iteration / epoch_len, "train_loss": r.train_loss,
            "wall_time_s": time.time() - started_wall, "parameters": n_params, "config": r.cfg.to_dict(),
            "provenance": {
                "code_version": code_version(), "torch": torch.__version__, "python": sys.version.split()[0],
                "device": str(dev), "device_name": device_name(dev), "precision": cfg.precision,
                "channels_last": channels_last, "step_mode": mode, "dataset": data.label,
                "hostname": socket.gethostname(), "started_at": started_at, "finished_at": _now(),
                "resumed": r.resumed, "pid": os.getpid(),
                "packed": n, "packed_with": [c.key for c in configs], "recipe": recipe.provenance(cfg, dev),
            },
        }
        atomic_write(r.run_dir / "result.json", lambda f: f.write(_result_json(result, r.history)))
        emit(r, {"type": "end", "status": status, "result": result})
        results[runs.index(r)] = result

    def retire(leaving: dict[int, str], iteration: int) -> None:
        """Finish the runs at these positions of `live`, repack the others."""
        nonlocal pack
        if not leaving:
            return
        keep = [j for j in range(len(live)) if j not in leaving]
        sds, opts = pack.unpacked() if keep else ([], [])
        for j, status in sorted(leaving.items()):
            finish(live[j], status, iteration)
        live[:] = [live[j] for j in keep]
        if keep:
            pack = _Pack(cfg, num_classes, [sds[j] for j in keep], [opts[j] for j in keep], dev,
                         channels_last, mode, data_t)

    epoch_len = runs[0].sampler.batches_per_epoch
    for r in runs:
        emit(r, {"type": "start", "iteration": start_iter, "total": cfg.iterations, "device": str(dev),
                 "device_name": device_name(dev), "precision": cfg.precision, "parameters": n_params,
                 "dataset": data.label, "resumed": r.resumed, "channels_last": channels_last,
                 "step_mode": mode, "notes": [], "packed": n})

    pack.model.train()
    seen, it = 0, start_iter
    last_ckpt = time.time()
    window_t, window_images = time.perf_counter(), 0
    while it < cfg.iterations and live:
        lr = lr_at(cfg, it)
        pack.step.set_lr(lr)
        draws = fast.stack_draws([fast.draw_batch(r.sampler, r.generator, cfg.augment) for r in live])
        pack.step(draws)
        it += 1
        seen += draws.shape[-1]  # a kept last partial batch is smaller (last_batch: keep)
        window_images += draws.shape[-1]
        leaving: dict[int, str] = {}

        if it % cfg.log_every == 0 or it == cfg.iterations:
            loss_sums, wrong_sums = pack.step.take_metrics()  # one host sync per log interval
            now = time.perf_counter()
            images_per_s = window_images / max(now - window_t, 1e-9)  # per run
            window_t, window_images = now, 0
            for j, r in enumerate(live):
                r.train_loss = loss_sums[j] / seen
                emit(r, {"type": "metrics", "iteration": it, "epoch": it / epoch_len,
                         "train_loss": r.train_loss, "train_error": 100.0 * wrong_sums[j] / seen, "lr": lr,
                         "images_per_s": images_per_s, "aggregate_images_per_s": images_per_s * len(live),
                         "elapsed_s": time.time() - started_wall,
                         "eta_s": (cfg.iterations - it) * cfg.batch_size / max(images_per_s, 1e-9)})
                if not math.isfinite(r.train_loss):
                    leaving[j] = "diverged"  # stops cleanly, as train() does: no eval, no checkpoint
            seen = 0
        if it % cfg.eval_every == 0 or it == cfg.iterations:
            evals = evaluate_packed(pack.model, test_x, test_y, mean, std, dev, cfg.precision,
                                    channels_last, pack.packs)
            for j, r in enumerate(live):
                if j not in leaving:
                    r.last_eval = evals[j]
                    emit(r, {"type": "eval", "iteration": it, "epoch": it / epoch_len,
                             "test_error": evals[j][0], "test_loss": evals[j][1]})
        if it % cfg.log_every == 0 and it < cfg.iterations:
            stopping = [j for j, r in enumerate(live)
                        if j not in leaving and r.should_stop is not None and r.should_stop()]
            if stopping:
                save_checkpoints(it, [live[j] for j in stopping])
                leaving.update({j: "cancelled" for j in stopping})
            if time.time() - last_ckpt >= checkpoint_every_s:
                save_checkpoints(it, [r for j, r in enumerate(live) if j not in leaving])
                last_ckpt = time.time()
        retire(leaving, it)

    if live:
        if any(r.last_eval is None for r in live):  # resumed from the final checkpoints
            evals = evaluate_packed(pack.model, test_x, test_y, mean, std, dev, cfg.precision,
                                    channels_last, pack.packs)
            for r, e in zip(live, evals):
                r.last_eval = r.last_eval or e
        save_checkpoints(it, list(live))  # the final weights, for later analysis
        for r in list(live):
            finish(r, "done", it)
    return [results[k] for k in range(n)]
