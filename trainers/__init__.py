"""The training engine: configs, the paper's networks, data, the train loop. Imports only torch
and torchvision, so it runs on a bare GPU machine."""

from .config import ConfigError, RunConfig
from .model import build_model, count_parameters, describe, unit_specs
from .registry import BLOCKS, ORDERINGS, SHORTCUTS

__all__ = [
    "BLOCKS", "ORDERINGS", "SHORTCUTS", "ConfigError", "RunConfig",
    "build_model", "count_parameters", "describe", "train", "unit_specs",
]


def __getattr__(name):  # lazy: `import trainers` stays light for the UI
    if name == "train":
        from .train import train

        return train
    raise AttributeError(name)
