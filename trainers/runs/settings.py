"""Settings of the runs layer: defaults < `cache_dir/settings.json` < environment variables.

Every field can be set by an environment variable `TRAINERS_<FIELD>` (e.g. TRAINERS_LEASE_S=5);
the Ray address also by Ray's own RAY_ADDRESS. The supervisor passes its environment on to the
workers it starts, so one variable set where the app or the CLI runs reaches the whole job system.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    # --- local backend -----------------------------------------------------------------------
    gpus: str = "auto"  # "auto" = every GPU torch sees; or "0,1"; "" = none (CPU only)
    jobs_per_gpu: int = 1  # >1 packs small runs on one GPU (each worker still gets the whole card)
    cpu_jobs: int = 1  # concurrent CPU jobs when there is no GPU: one, or they fight for the cores
    cpu_threads: int = 0  # torch threads of a CPU worker; 0 = the cores divided by cpu_jobs
    # Seed packing: queued runs that differ only in their seed trained by one worker as one packed
    # network (trainers/engine/pack_state.py). "auto" = where packing is faster (`pack_rules.should_pack`:
    # on a GPU, not on the CPU); "never"; "always" = whatever is packable (tests, users who know better).
    pack_seeds: str = "auto"
    max_packs: int = 8  # at most this many runs in one pack
    # --- the life of a worker ----------------------------------------------------------------
    heartbeat_s: float = 2.0  # a worker writes a heartbeat this often, from a background thread
    lease_s: float = 30.0  # no heartbeat for this long = the worker is dead (hung GPU, kill -9, ...)
    # The lease starts at the worker's first heartbeat, which it sends before importing the engine;
    # a started process that has not beaten within this long (a machine swapping to death) is dead.
    start_timeout_s: float = 120.0
    max_restarts: int = 3  # a run whose worker dies is resumed this many times, then ends as error
    checkpoint_every_s: float = 60.0  # what a restart can lose, at most
    cancel_grace_s: float = 15.0  # after a cancel request: SIGTERM after this, SIGKILL after 2x
    # --- the supervisor ----------------------------------------------------------------------
    poll_s: float = 1.0  # scheduling tick
    idle_exit_s: float = 60.0  # the supervisor exits after this long with nothing queued or running
    # --- ray backend -------------------------------------------------------------------------
    ray_address: str = ""  # "" = RAY_ADDRESS, else "auto" (a cluster started on this host)
    ray_gpus_per_run: float = -1.0  # -1 = 1 if the cluster has GPUs, else 0
    ray_cpus_per_run: float = 1.0
    # where remote workers keep datasets and checkpoints, on their own node (expanded there)
    ray_cache_dir: str = "~/.cache/resnet-v2-explorer"
    ray_ship_code: bool = True  # send this checkout's `trainers` package to the cluster (py_modules)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, kind: str, raw: Any) -> Any:
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ValueError(f"setting {name} must be {kind}, got {raw!r}") from None


def settings_path(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "settings.json"


def load_settings(cache_dir: str | Path = "cache", **overrides: Any) -> Settings:
    values: dict[str, Any] = {}
    path = settings_path(cache_dir)
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        if isinstance(saved, dict):
            values.update(saved)
    for f in fields(Settings):
        env = os.environ.get(f"TRAINERS_{f.name.upper()}")
        if env is not None:
            values[f.name] = env
    if not values.get("ray_address") and os.environ.get("RAY_ADDRESS"):
        values["ray_address"] = os.environ["RAY_ADDRESS"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name: f.type for f in fields(Settings)}
    clean = {k: _coerce(k, str(known[k]), v) for k, v in values.items() if k in known}
    return replace(Settings(), **clean)
