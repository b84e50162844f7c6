"""The UI's door to the engine: the few engine functions the pages show (dataset info, a folder's
layout, preparing a dataset, signal propagation at initialisation, the speed of the trainer's own
step, the devices torch sees). Each imports the engine when called, so opening a page loads no
torch; nothing else in `explorer/` imports `trainers.engine` (tests/test_layers.py checks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainers.core.config import RunConfig

from .app_settings import cache_dir


def dataset_info(spec: str, cache: str | None = None) -> dict:
    from trainers.engine.data import dataset_info as info

    return info(spec, cache or cache_dir())


def check_folder(spec: str) -> None:
    """The engine's layout check of a folder dataset (names only, nothing decoded); DataError says
    what is wrong."""
    from trainers.engine.data.folder import check_folder as check

    check(spec)


def load_dataset(spec: str, cache: str | None = None, progress: Callable[[str, float], None] | None = None) -> Any:
    from trainers.engine.data import load_dataset as load

    return load(spec, cache or cache_dir(), download=True, progress=progress)


def signal_propagation(cfg: RunConfig, *, batch: int = 16, seed: int = 0) -> dict:
    from trainers.engine.signal import signal_propagation as measure

    return measure(cfg, batch=batch, seed=seed)


def shortcut_product(cfg: RunConfig) -> dict:
    from trainers.engine.signal import shortcut_product as product

    return product(cfg)


def bench_speed(cfg: RunConfig, *, device: str = "auto", steps: int | None = None) -> dict[str, Any]:
    """Images/s of the trainer's own step (the step `train()` runs and `python -m trainers bench`
    times: CUDA graph, channels_last, weight decay) for `cfg`'s network, measured here in this
    process. Returns {"images_per_s", "device", "batch", "steps", "warmup_s", "mode", "basis"}."""
    from trainers.engine.bench import step_speed

    return step_speed(cfg, device=device, steps=steps)


def devices() -> dict[str, Any]:
    """What torch sees here: {"torch": version, "cpu_cores", "gpus": [{index, name, memory, capability}]}."""
    import os

    import torch

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append({"index": i, "name": p.name, "memory": p.total_memory, "capability": f"{p.major}.{p.minor}"})
    return {"torch": torch.__version__, "cpu_cores": os.cpu_count(), "gpus": gpus}
