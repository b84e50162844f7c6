"""Which runs may train as one packed network (trainers/engine/pack_state.py), as plain rules.

The supervisor plans packs with these without importing the engine (torch): a pack is runs of one
family (everything but the seed), distinct seeds, and a shortcut that draws nothing from the
global RNG while training (`Shortcut.stochastic`). Packing pays only on a GPU: on a 2-core CPU a
grouped convolution does the arithmetic of K plain ones with no idle cores to fill
(docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import RunConfig
from .registry import SHORTCUTS


def family(cfg: RunConfig) -> str:
    """Everything about a run but its seed."""
    return cfg.replace(seed=0).key


def why_not_packable(configs: Sequence[RunConfig]) -> str | None:
    """None if these configs can train as one packed network, else the reason."""
    if not configs:
        return "no configs"
    if len({family(c) for c in configs}) > 1:
        return "the configs differ in more than their seed"
    seeds = [c.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        return f"seeds repeat ({seeds}): those would be the same run twice"
    shortcut = SHORTCUTS[configs[0].shortcut]
    if shortcut.stochastic:
        return (
            f"the {shortcut.title} draws from the global RNG while training: packed, a seed "
            "would not repeat its standalone run exactly"
        )
    return None


def should_pack(device_type: str, configs: Sequence[RunConfig]) -> bool:
    """Pack where it is faster: on a GPU ("cuda"), never on the CPU."""
    return device_type == "cuda" and len(configs) > 1 and why_not_packable(configs) is None
