"""`python -m trainers bench --variants`: which way of running this trainer is fastest on this
machine, every variant measured side by side in one run (docs/benchmarks.md, "CPU variants").

Variants (names for `--variants`):

- `conventional`: the usual recipe (bench.Conventional: DataLoader, PIL transforms, NCHW, fp32),
  the baseline every ratio is taken against;
- `fp32-nchw`, `fp32`: this trainer's step, eager, NCHW vs channels_last;
- `bf16-nchw`, `bf16`: the same under bf16 autocast (fp32 weights, optimizer and loss; fast only on
  CPUs with AVX-512 bf16 or AMX, which `bf16_support()` reports);
- `compile`, `bf16-compile`: channels_last through torch.compile (Inductor's C++ kernels on the CPU);
- `2x1`, `bf16-2x1`: two runs at once, one thread each, against the single-run variants' one run
  on all threads: the aggregate is what a generator training several runs gets.

Each variant runs in a process of its own (bench._Pipeline), started fresh. Rounds alternate over
the variants so that a machine whose load changes slows them all alike; warm-up (compilation
included) is timed apart from the steady state. Only one variant computes at a time, except the
two processes of a `2x1` variant, which compute together.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import torch

from ..core.config import RunConfig
from .bench import SYNTHETIC_TRAIN_IMAGES, _Pipeline, _rate, environment


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "ours" | "conventional"
    precision: str = "fp32"
    channels_last: bool = True
    mode: str = "eager"
    processes: int = 1  # >1: that many runs at once, `threads // processes` threads each

    def describe(self) -> str:
        if self.kind == "conventional":
            return "conventional recipe (DataLoader, PIL transforms, NCHW, eager, fp32)"
        layout = "channels_last" if self.channels_last else "NCHW"
        runs = f", {self.processes} runs at once" if self.processes > 1 else ""
        return f"this trainer, {self.mode}, {layout}, {self.precision}{runs}"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("conventional", "conventional", channels_last=False),
        Variant("fp32-nchw", "ours", channels_last=False),
        Variant("fp32", "ours"),
        Variant("bf16-nchw", "ours", precision="bf16", channels_last=False),
        Variant("bf16", "ours", precision="bf16"),
        Variant("compile", "ours", mode="compile"),
        Variant("bf16-compile", "ours", precision="bf16", mode="compile"),
        Variant("2x1", "ours", processes=2),
        Variant("bf16-2x1", "ours", precision="bf16", processes=2),
    )
}
DEFAULT_VARIANTS = tuple(VARIANTS)


def bf16_support() -> dict[str, Any]:
    """What the CPU offers bf16 autocast: oneDNN's own check, and the /proc/cpuinfo flags."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = None
    return {"onednn_bf16": onednn, "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags}


def run_variants(
    cfg: RunConfig,
    names: tuple[str, ...] = DEFAULT_VARIANTS,
    *,
    threads: int = 2,
    steps: int = 10,
    warmup_steps: int = 2,
    rounds: int = 2,
    workers: int = 2,
    train_images: int = SYNTHETIC_TRAIN_IMAGES,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure `names` on the CPU for `cfg`'s network; return the JSON the CLI prints."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose from: {', '.join(VARIANTS)}")
    log = log or (lambda msg: None)
    b = cfg.batch_size
    pipes: dict[str, list[_Pipeline]] = {}
    warm: dict[str, float] = {}
    rates: dict[str, list[float]] = {n: [] for n in names}
    try:
        for name in names:
            v = VARIANTS[name]
            per = max(1, threads // v.processes)
            spec = {
                "config": replace(cfg, precision=v.precision).canonical_json(),
                "device": "cpu",
                "threads": per,
                "workers": workers,
                "train_images": max(train_images, b),
                "mode": v.mode,
                "channels_last": v.channels_last,
                "kind": v.kind,
                "packs": 1,
            }
            pipes[name] = [_Pipeline(f"{name}#{i}", spec) for i in range(v.processes)]
            t0 = time.perf_counter()
            _together(pipes[name], warmup_steps)  # compile happens here
            warm[name] = time.perf_counter() - t0
            log(f"{name}: started, warm-up {warm[name]:.1f} s")
        for r in range(rounds):
            for name in names:
                _together(pipes[name], 2 if VARIANTS[name].kind == "ours" else 2 * workers)  # drain / settle
                seconds = _together(pipes[name], steps)
                rates[name].append(sum(_rate(steps * b, s) for s in seconds))
                log(f"round {r + 1}/{rounds}: {name} {rates[name][-1]:,.0f} img/s")
    finally:
        for group in pipes.values():
            for p in group:
                p.close()
    base = statistics.median(rates["conventional"]) if "conventional" in names else None
    rows = []
    for name in names:
        ips = statistics.median(rates[name])
        v = VARIANTS[name]
        rows.append(
            {
                "variant": name,
                "description": v.describe(),
                "precision": v.precision,
                "channels_last": v.channels_last,
                "mode": v.mode,
                "processes": v.processes,
                "threads_per_process": max(1, threads // v.processes),
                "images_per_s": ips,
                "rounds": rates[name],
                "warmup_s": warm[name],
                "vs_conventional": ips / base if base else None,
                "paper_run_h": cfg.iterations * b * v.processes / ips / 3600,
            }
        )
    return {
        "bench": "cpu-variants",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "network": cfg.label(),
        "depth": cfg.depth,
        "batch_size": b,
        "steps": steps,
        "rounds": rounds,
        **environment(torch.device("cpu"), threads),
        "bf16_support": bf16_support(),
        "variants": rows,
    }


def _together(group: list[_Pipeline], steps: int) -> list[float]:
    """Run `steps` in every process of `group` at once; each one's own seconds."""
    for p in group:
        p.conn.send(("run", steps))
    return [p._reply() for p in group]


def report_text(r: dict[str, Any]) -> str:
    lines = [
        f"{r['network']}, batch {r['batch_size']}, on {r['device_name']} ({r['cpu_cores']} cores), "
        f"torch {r['torch']}; bf16: {r['bf16_support']}",
        f"  {'variant':<14}{'img/s':>9}{'x conv.':>9}{'warm-up':>10}  how",
    ]
    for row in r["variants"]:
        ratio = f"{row['vs_conventional']:.2f}x" if row["vs_conventional"] else "-"
        lines.append(
            f"  {row['variant']:<14}{row['images_per_s']:>9,.0f}{ratio:>9}{row['warmup_s']:>9.1f}s  "
            f"{row['description']}, {row['threads_per_process']} thread(s) each"
        )
    return "\n".join(lines)
