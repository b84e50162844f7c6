"""ResNet v2 ablations: three layers, each importing only the ones below it.

    trainers/core/    torch-free: RunConfig (the run key), the variant registries as data, the
                      paper's tables (presets), result rules, record/event types, errors
    trainers/engine/  torch + torchvision: networks, data, the train loop, benchmarks
    trainers/runs/    the job layer: store, supervisor, workers, backends, sweeps, export;
                      uses the core, and the engine only inside a worker process

The public API is lazy, so `import trainers` (and the job layer, and the CLI's `status`) never
loads torch:

    from trainers import RunConfig, build_model, train
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "RunConfig": "trainers.core.config",
    "ConfigError": "trainers.core.config",
    "BLOCKS": "trainers.core.registry",
    "ORDERINGS": "trainers.core.registry",
    "SHORTCUTS": "trainers.core.registry",
    "build_model": "trainers.engine.model",
    "count_parameters": "trainers.engine.model",
    "describe": "trainers.engine.model",
    "unit_specs": "trainers.engine.model",
    "train": "trainers.engine.train",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
