"""From the user's choices to a list of configs, and what the store already knows about them.

Pure functions (no Streamlit, no store access): the Design page gathers choices and records,
these turn them into RunConfigs and a plan table."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from trainers.core.config import ConfigError, RunConfig
from trainers.core.registry import BLOCKS, SHORTCUTS
from trainers.core.results import dataset_short, shown_status

DEPTH_N = (1, 2, 3, 5, 7, 9, 18)  # units per stage offered (n = 18: the paper's 110 / 164)


def depth_choices(block: str) -> list[int]:
    """Valid depths for a unit type: 6n+2 basic, 9n+2 bottleneck, 3n+2 single (plus 1001, 1202)."""
    per = 3 * BLOCKS[block].layers_per_unit
    extra = {"basic": [1202], "bottleneck": [1001], "single": []}[block]
    return [per * n + 2 for n in DEPTH_N] + extra


def parse_values(text: str, name: str, bounds: tuple[float, float] | None = None) -> list[float]:
    """'0, 0.5' -> [0.0, 0.5]. ConfigError with the field's name when a value is not a number or
    lies outside `bounds` (the engine's, `trainers.core.config.PARAM_BOUNDS`)."""
    values = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise ConfigError(
                f"{name}: {part!r} is not a number; write numbers separated by commas, e.g. 0, 0.5"
            ) from None
        if bounds and not bounds[0] <= values[-1] <= bounds[1]:
            raise ConfigError(f"{name}: {part} is outside the accepted range {bounds[0]:g} to {bounds[1]:g}")
    if not values:
        raise ConfigError(f"{name}: give at least one value, e.g. 0.5")
    return list(dict.fromkeys(values))


def grid_templates(
    orderings: Sequence[str],
    shortcuts: Sequence[str],
    params: Mapping[str, Mapping[str, Sequence]],
    block: str,
    depth: int,
    extra: Mapping | None = None,
) -> list[dict]:
    """orderings × shortcuts × each shortcut's parameter values -> RunConfig field dicts.

    `params[shortcut][field]` is a list of values to sweep for that shortcut only."""
    out = []
    for ordering in orderings:
        for shortcut in shortcuts:
            sweep = {k: list(v) for k, v in (params.get(shortcut) or {}).items() if k in SHORTCUTS[shortcut].params}
            names = list(sweep)
            for combo in itertools.product(*(sweep[n] for n in names)):
                out.append(
                    {
                        "ordering": ordering,
                        "shortcut": shortcut,
                        "block": block,
                        "depth": depth,
                        **dict(zip(names, combo)),
                        **(extra or {}),
                    }
                )
    return out


def make_configs(
    templates: Iterable[Mapping], *, seeds: int, schedule: Mapping, overrides: Mapping | None = None
) -> list[RunConfig]:
    """template < schedule < overrides (dataset, sizes, ...) < seed; duplicates dropped.

    Seed-major, like `trainers.core.presets.preset_configs`: every row's seed 0 first."""
    configs, seen = [], set()
    templates = list(templates)
    for seed in range(seeds):
        for t in templates:
            cfg = RunConfig.from_dict({**t, **schedule, **(overrides or {}), "seed": seed})
            if cfg.key not in seen:
                seen.add(cfg.key)
                configs.append(cfg)
    return configs


def plan_state(record: Mapping | None) -> str:
    """What submitting would do: new, cached (already done), joined (queued/running), requeued."""
    if record is None:
        return "new"
    status = record.get("status")
    if status in ("done", "fail", "diverged"):
        return "cached"
    if status in ("queued", "running"):
        return status
    return "resume"  # error / cancelled: submitting queues it again, from its checkpoint


def plan_frame(configs: Sequence[RunConfig], records: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per planned run: what it is, and what submitting it would do."""
    rows = []
    for cfg in configs:
        found = records.get(cfg.key)
        state = plan_state(found)
        rec: Mapping = found or {}
        detail = ""
        if state == "cached":
            err = (rec.get("result") or {}).get("test_error")
            shown = shown_status(rec)
            detail = f"{shown}, {err:.2f}% test error" if isinstance(err, (int, float)) else shown
        elif state == "running":
            detail = f"{100 * float(rec.get('progress') or 0):.0f}% done"
        elif state == "resume":
            detail = f"was {rec.get('status')}: resumes from its checkpoint"
        rows.append(
            {
                "run": cfg.label(),
                "dataset": dataset_short(cfg.dataset),
                "iterations": cfg.iterations,
                "seed": cfg.seed,
                "state": state,
                "detail": detail,
                "key": cfg.key,
            }
        )
    return pd.DataFrame(rows, columns=["run", "dataset", "iterations", "seed", "state", "detail", "key"])
