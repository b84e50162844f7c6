"""One SGD iteration, from a batch's random draws to updated weights: the trainer's hot loop.

`draw_batch` takes an iteration's randomness on the host (batch indices from the run's
`BatchSampler`, crop offsets and flips from its generator, in the order the trainer has always
drawn them); `TrainStep` does everything else on the training device: gather the uint8 images,
pad-4 crop and flip, normalise, forward, cross-entropy, backward, SGD. The math is the paper's in
every mode; the modes differ only in how the kernels are launched:

- "eager": plain PyTorch, one Python call per kernel. The CPU path (fp32; channels_last where it
  measured faster, see docs/benchmarks.md).
- "graph": the whole iteration (data included) captured once as a CUDA graph and replayed with one
  launch. These nets are launch-bound at 32x32: ResNet-110 runs ~2,000 kernels of a few µs each
  per iteration, about what eager Python needs just to launch them. The first `warmup` calls of
  each batch shape run eagerly (they are real training steps: cuDNN picks its algorithms and the
  momentum buffers come to exist), then the next call captures and every later one replays.
- "compile": the model through torch.compile (Inductor fuses BN/ReLU/add chains), eager launches.
- "compile+graph": both: the compiled model inside the captured iteration.

Batch shapes: the trainer's `BatchSampler` drops the last partial batch by default, so training
batches are constant-shaped; a different shape (the kept last batch of each epoch with
`last_batch: keep`, a ragged batch from another sampler) gets its own warm-up and its own graph,
so it is handled, just not replayed until it recurs.

Precision: fp32 by default; bf16 is autocast (recorded with every result). Note that fp32
convolutions on NVIDIA GPUs use TF32 when cuDNN allows it (PyTorch's default, for the
conventional pipeline too); `precision_note()` says which.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .augment import crop_flip, crop_flip_params, normalize

STEP_MODES = ("eager", "graph", "compile", "compile+graph")
DRAW_ROWS = 4  # indices, dy, dx, flip


def resolve_mode(compile: bool | str | None, device: torch.device) -> str:
    """The step mode for `compile` on `device`: None = auto (CUDA graph on CUDA, eager on CPU),
    False = eager, True = the fastest for the device, or a mode name from STEP_MODES."""
    if isinstance(compile, str):
        if compile not in STEP_MODES:
            raise ValueError(f"unknown step mode {compile!r}; choose one of: {', '.join(STEP_MODES)}")
        if "graph" in compile and device.type != "cuda":
            raise ValueError(f"step mode {compile!r} needs a CUDA device, not {device.type}")
        return compile
    if compile is False:
        return "eager"
    if device.type == "cuda":
        # Auto = "graph": no compile time, and it removes the launch overhead that dominates here.
        return "compile+graph" if compile else "graph"
    return "compile" if compile else "eager"


def default_channels_last(device: torch.device) -> bool:
    """channels_last (NHWC) on CUDA (cuDNN's fast layout) and on the CPU (oneDNN's: measured faster
    for these nets on a 2-core EPYC, docs/benchmarks.md)."""
    return device.type in ("cuda", "cpu")


def precision_note(precision: str, device: torch.device) -> str:
    if precision == "bf16":
        return "bf16 autocast (fp32 weights, optimizer and loss)"
    if device.type == "cuda":
        tf32 = torch.backends.cudnn.allow_tf32
        return "fp32" + (" (cuDNN may use TF32 for convolutions: PyTorch's default)" if tf32 else " (no TF32)")
    return "fp32"


def make_optimizer(model: nn.Module, cfg, device: torch.device) -> torch.optim.SGD:
    """SGD, momentum 0.9, weight decay 1e-4 on every parameter (fb.resnet.torch; the gate biases
    b_g are spared if `cfg.gate_bias_decay` is False). Nesterov if `cfg.nesterov`. Fused on CUDA
    (one kernel for all parameters, and a device-tensor lr makes it graph-capturable); foreach on
    the CPU. Same update either way: v = μv + (g + λw); w -= lr·v."""
    from .shortcuts import Gate

    fused = device.type == "cuda"
    params: list = list(model.parameters())
    if not cfg.gate_bias_decay:
        spared = {id(m.bias) for m in model.modules() if isinstance(m, Gate)}
        params = [
            {"params": [p for p in params if id(p) not in spared]},
            {"params": [p for p in params if id(p) in spared], "weight_decay": 0.0},
        ]
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
        foreach=not fused,
        fused=fused,
    )


def draw_batch(sampler, generator: torch.Generator, augment: bool) -> torch.Tensor:
    """One iteration's randomness, (4, B) int64 on the host: batch indices, crop dy, crop dx, flip.

    Same draws, in the same order, as `augment_batch(train_x[sampler.next()], generator)`, so a
    run's batches and crops depend only on its seed, not on the step mode or the device."""
    idx = sampler.next()
    if augment:
        dy, dx, flip = crop_flip_params(len(idx), generator)
        return torch.stack([idx, dy.to(idx.dtype), dx.to(idx.dtype), flip.to(idx.dtype)])
    zeros = torch.zeros_like(idx)
    return torch.stack([idx, zeros, zeros, zeros])


class TrainStep:
    """`step(draws)` makes one SGD update of `model` on the batch that `draws` names.

    draws: (4, B) for one network, or (K, 4, B) for K seeds packed into one grouped network
    (`packs=K`, see trainers/engine/pack_state.py): network k sees its own batch in its own channels, and
    the loss is the sum over networks of each network's mean cross-entropy, so each one's gradient
    is exactly its standalone gradient. Training loss and error accumulate on the device (no host
    sync per step); `take_metrics()` reads and resets them."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        *,
        augment: bool,
        precision: str = "fp32",
        channels_last: bool = False,
        packs: int = 1,
        mode: str = "eager",
        warmup: int = 3,
        crop_padding: str = "zero",
        cudnn_benchmark: bool = True,
    ):
        self.device = train_x.device
        if mode not in STEP_MODES:
            raise ValueError(f"unknown step mode {mode!r}")
        if "graph" in mode and self.device.type != "cuda":
            raise ValueError(f"step mode {mode!r} needs CUDA")
        self.model, self.optimizer = model, optimizer
        self.train_x, self.train_y = train_x, train_y
        # device tensors: normalize() inside a graph capture must not copy from the host
        # (channel means, or a per-pixel mean image: normalize() takes either)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        self.augment, self.precision, self.channels_last = augment, precision, channels_last
        # "mean": pad with the mean colour, i.e. normalise first and pad with zeros (fb.resnet.torch)
        self.normalize_first = crop_padding == "mean"
        self.packs, self.mode, self.warmup = packs, mode, warmup
        self.forward = torch.compile(model, dynamic=False) if "compile" in mode else model
        self.loss_sum = torch.zeros(packs, device=self.device)
        self.wrong_sum = torch.zeros(packs, device=self.device)
        self.warmup_s = 0.0  # wall time of the calls before steady state (compile, capture)
        self._graphs: dict[tuple[int, ...], _Captured] = {}
        self._calls: dict[tuple[int, ...], int] = {}
        self._lr_value: float | None = None
        if self.device.type == "cuda":
            # Fixed shapes: let cuDNN time its algorithms once per shape (as the usual recipe does),
            # unless the run asked for deterministic algorithms (RunConfig.deterministic).
            torch.backends.cudnn.benchmark = cudnn_benchmark
        # fused/foreach are how the update is launched, not what it computes: a checkpoint from
        # another device may carry the other choice, so set this device's.
        fused = self.device.type == "cuda"
        lr0 = float(optimizer.param_groups[0]["lr"])
        for group in optimizer.param_groups:
            group.update(lr=lr0, fused=fused, foreach=not fused)
        if "graph" in mode:
            # A device-tensor lr read by the fused SGD kernel: changing it needs no re-capture.
            self._lr = torch.tensor(lr0, dtype=torch.float32, device=self.device)
            for group in optimizer.param_groups:
                group["lr"] = self._lr
            self._side = torch.cuda.Stream(self.device)

    # --- the step ------------------------------------------------------------------------------
    def set_lr(self, lr: float) -> None:
        if lr == self._lr_value:
            return
        self._lr_value = lr
        if "graph" in self.mode:
            self._lr.fill_(lr)
        else:
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def __call__(self, draws: torch.Tensor) -> None:
        draws = draws.view(-1, DRAW_ROWS, draws.shape[-1])
        if draws.shape[0] != self.packs:
            raise ValueError(f"draws for {draws.shape[0]} networks, this step trains {self.packs}")
        shape = tuple(draws.shape)
        if shape in self._graphs:
            self._graphs[shape].replay(draws)
            return
        t0 = time.perf_counter()
        calls = self._calls.get(shape, 0)
        self._calls[shape] = calls + 1
        if self.device.type == "cuda":
            draws = draws.pin_memory().to(self.device, non_blocking=True)  # no host sync
        if "graph" not in self.mode:
            self.optimizer.zero_grad(set_to_none=True)
            self._body(draws.to(self.device))
            if calls < self.warmup:
                self._sync()
                self.warmup_s += time.perf_counter() - t0
            return
        if calls < self.warmup:
            # Warm-up on a side stream, as the CUDA-graph docs ask: cuDNN/cuBLAS set-up happens here.
            self._side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self._side):
                self.optimizer.zero_grad(set_to_none=True)
                self._body(draws)
            torch.cuda.current_stream(self.device).wait_stream(self._side)
        else:
            captured = _Captured(self, shape)
            self._graphs[shape] = captured
            captured.static_draws.copy_(draws)
            captured.graph.replay()  # capturing recorded the iteration; this runs it
        self._sync()
        self.warmup_s += time.perf_counter() - t0

    def _body(self, draws: torch.Tensor) -> None:
        """Gather → crop/flip → normalise → forward → loss → backward → SGD, on the device."""
        k, _, b = draws.shape
        idx = draws[:, 0].reshape(-1)
        x = self.train_x[idx]  # uint8 (K·B, 3, 32, 32)
        y = self.train_y[idx].view(k, b)
        if self.normalize_first:  # then the crop's zero padding is the mean colour
            x = normalize(x, self.mean, self.std)
        if self.augment:  # pad 4, random 32x32 crop, random horizontal flip (paper)
            x = crop_flip(x, draws[:, 1].reshape(-1), draws[:, 2].reshape(-1), draws[:, 3].reshape(-1).bool())
        if not self.normalize_first:
            x = normalize(x, self.mean, self.std)
        if k > 1:  # network j's images go to channels [3j, 3j+3)
            x = x.view(k, b, *x.shape[1:]).transpose(0, 1).reshape(b, k * x.shape[1], *x.shape[2:])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            self.device.type,
            dtype=torch.bfloat16,
            enabled=self.precision == "bf16",
            cache_enabled="graph" not in self.mode,
        ):
            out = self.forward(x)
        out = out.float()
        if k == 1:
            losses = F.cross_entropy(out, y[0]).view(1)  # exactly train()'s loss
            wrong = (out.detach().argmax(1) != y[0]).sum().view(1)
        else:  # out (B, K, C): each network's mean cross-entropy, summed over networks
            losses = F.cross_entropy(out.permute(0, 2, 1), y.t(), reduction="none").mean(0)
            wrong = (out.detach().argmax(2) != y.t()).sum(0)
        losses.sum().backward()
        self.optimizer.step()
        self.loss_sum += losses.detach() * b
        self.wrong_sum += wrong

    def take_metrics(self) -> tuple[list[float], list[float]]:
        """(summed loss, summed wrong) per network since the last call: one host sync."""
        both = torch.stack([self.loss_sum, self.wrong_sum.float()]).tolist()
        self.loss_sum.zero_(), self.wrong_sum.zero_()
        return both[0], both[1]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def synchronize(self) -> None:
        """Wait for every queued step (for timing)."""
        self._sync()


class _Captured:
    """One captured iteration for one batch shape: static draws in, everything else in-graph."""

    def __init__(self, step: TrainStep, shape: tuple[int, ...]):
        self.static_draws = torch.zeros(shape, dtype=torch.int64, device=step.device)
        step.optimizer.zero_grad(set_to_none=True)  # grads are then allocated in the graph's pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            step._body(self.static_draws)

    def replay(self, draws: torch.Tensor) -> None:
        # pinned + non_blocking: the copy is queued behind the previous replay, no host sync
        self.static_draws.copy_(draws.pin_memory(), non_blocking=True)
        self.graph.replay()


def stack_draws(per_network: Sequence[torch.Tensor]) -> torch.Tensor:
    """(K, 4, B) from K networks' (4, B) draws."""
    return torch.stack(list(per_network))
