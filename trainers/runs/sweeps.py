"""Sweeps: many runs under one name (a paper table × seeds, or a user grid), and their results table.

Submitting a sweep again is safe: every run dedupes by key, so finished runs are answered from the
store and only missing ones are trained. The results table groups runs by their config without the
seed and reports what the paper reports: the median of n runs (the paper: n = 5), with min–max.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainers.core.config import ConfigError, RunConfig
from trainers.core.presets import PRESETS, paper_row, preset_configs
from trainers.core.records import RunRecord
from trainers.core.results import number_text, result_rows, shown_status

from .jobs import submit
from .store import Store


def parse_value(text: str) -> Any:
    """A --set / --grid value: JSON where it parses (numbers, true/false, lists), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: Iterable[str], many: bool = False) -> dict[str, Any]:
    """["depth=20", "lr=0.05"] -> {"depth": 20, "lr": 0.05}; with many=True values are lists
    ("depth=20,56" -> [20, 56])."""
    out: dict[str, Any] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise ConfigError(f"expected field=value, got {item!r}")
        field = field.strip().replace("-", "_")
        out[field] = [parse_value(v) for v in value.split(",")] if many else parse_value(value)
    return out


def grid_configs(base: RunConfig, axes: dict[str, list[Any]], seeds: int | Iterable[int] = 1) -> list[RunConfig]:
    """Every combination of `axes` (field -> values) on top of `base`, × seeds, seed-major."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    names = list(axes)
    combos = list(itertools.product(*(axes[n] for n in names)))
    return [base.replace(**dict(zip(names, combo)), seed=seed) for seed in seed_list for combo in combos]


def sweep_configs(
    name: str,
    seeds: int | Iterable[int] = 5,
    schedule: str = "paper",
    overrides: dict[str, Any] | None = None,
    grid: dict[str, list[Any]] | None = None,
    base: RunConfig | None = None,
) -> list[RunConfig]:
    """A preset (name in PRESETS) with overrides, or a user grid (any other name) over `base`."""
    overrides = overrides or {}
    if name in PRESETS:
        if grid:
            raise ConfigError(f"{name} is a paper preset; a --grid needs a name of its own")
        try:
            return preset_configs(name, seeds, schedule, **overrides)
        except KeyError as e:
            raise ConfigError(str(e.args[0])) from None
    if not grid:
        raise ConfigError(
            f"unknown preset {name!r} (presets: {', '.join(PRESETS)}); "
            "a sweep of your own needs at least one --grid field=v1,v2"
        )
    from trainers.core.presets import SCHEDULES

    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    base = (base or RunConfig()).replace(**{**SCHEDULES[schedule], **overrides})  # the user's values win
    return grid_configs(base, grid, seeds)


def submit_sweep(
    name: str,
    configs: list[RunConfig],
    cache_dir: str | Path = "cache",
    backend: str = "local",
    meta: dict | None = None,
) -> list[RunRecord]:
    """Submit every config (deduped by key) and remember them under `name`."""
    records = [submit(cfg, cache_dir, backend, start_supervisor=False) for cfg in configs]
    with Store(cache_dir) as store:
        store.save_sweep(name, [c.key for c in configs], meta)
    if any(r["status"] in ("queued", "running") for r in records):
        from .supervisor import ensure_supervisor

        ensure_supervisor(cache_dir)
    return records


def sweep_runs(store: Store, name: str) -> list[RunRecord]:
    """The runs of a sweep: those it submitted, or for a preset never submitted here, every stored
    run that matches one of the preset's rows (e.g. runs submitted one by one from the UI)."""
    sweep = store.get_sweep(name)
    if sweep is not None:
        return [r for r in (store.get(k) for k in sweep["keys"]) if r is not None]
    if name in PRESETS:
        rows = PRESETS[name].rows
        return [rec for rec in store.list_runs() if paper_row(RunConfig.from_dict(rec["config"]), rows) is not None]
    raise KeyError(f"no sweep named {name!r} in this cache (presets: {', '.join(PRESETS)})")


def progress_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many runs are in each status, as shown (`shown_status`: "fail" only where the paper's
    word applies, old records read through the same rule)."""
    counts: dict[str, int] = {}
    for r in records:
        s = shown_status(r)
        counts[s] = counts.get(s, 0) + 1
    return counts


# --- the results table: the rows come from trainers.core.results (the UI shows the same) ---------
def results_table(records: Sequence[Mapping[str, Any]], preset: str | None = None) -> list[dict[str, Any]]:
    """One row per config without its seed: n finished, median, min, max, the paper's number and
    the difference (`trainers.core.results.result_rows`). `preset` names the rows to label with
    first (Table 2's "original" rather than Table 1's, same number)."""
    return result_rows(records, preset=preset)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table for the CLI (no pandas needed)."""
    head = ["row", "schedule", "ours (n)", "min–max", "paper", "diff", "runs"]
    lines = []
    for r in rows:
        ours = f"{r['ours']} ({r['n']})"
        span = f"{number_text(r['min'])}–{number_text(r['max'])}" if r["n"] else ""
        paper = "" if r["paper"] is None else (r["paper"] if r["paper"] == "fail" else f"{r['paper']:.2f}")
        if paper and not r["comparable"]:
            paper += "*"
        states = ", ".join(f"{v} {k}" for k, v in sorted(r["statuses"].items()))
        label = (f"{r['table']}: " if r["table"] else "") + r["label"]
        lines.append([label, r["schedule"], ours, span, paper, r["versus"], states])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = [" | ".join(str(x).ljust(w) for x, w in zip(head, widths))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in lines]
    if any(not r["comparable"] and r["paper"] is not None for r in rows):
        out.append("* a JPEG copy of the dataset: indicative, not directly comparable with the paper")
    return "\n".join(out)
