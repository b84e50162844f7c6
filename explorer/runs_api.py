"""The UI's one door to `trainers` (docs/interfaces.md): no other module of `explorer/` imports it
(tests/test_layers.py checks).

Through here the pages read run records and curves, submit configs, and use the torch-free core
(the config, the variant registries, unit layouts, the result rules). The few engine functions the
UI shows (dataset info, signal propagation at initialisation, the speed of the trainer's own step)
are imported when called, so opening a page loads no torch. Finished curves are cached by
(key, updated_at), so a finished run is read from disk once per change; live runs are re-read on
every refresh.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

import streamlit as st

from trainers.core import reference as reference_rules  # pure helpers on a reference pack
from trainers.core import separation  # does a difference exceed the seed spread (pure)
from trainers.core.config import PARAM_BOUNDS, RunConfig
from trainers.core.errors import ConfigError, DataError, RunError
from trainers.core.layout import Op, UnitSpec, unit_specs
from trainers.core.paths import folder_path
from trainers.core.records import CurvePoint, RunRecord
from trainers.core.registry import BLOCKS, ORDERINGS, PARAMS, SHORTCUTS, mean_gate
from trainers.core.results import (FAIL_THRESHOLD, FINISHED, dataset_short, group_key, group_label, number_text,
                                   result_rows, shown_status)

from .settings import cache_dir

__all__ = ["BLOCKS", "ORDERINGS", "PARAM_BOUNDS", "PARAMS", "SHORTCUTS", "FAIL_THRESHOLD", "FINISHED", "ConfigError", "DataError",
           "CurvePoint", "Op", "RunConfig", "RunError", "RunRecord", "UnitSpec", "bench_speed", "cancel", "check_folder", "curve", "dataset_info",
           "dataset_short", "devices", "folder_path", "get", "group_key", "group_label", "list_runs",
           "load_dataset", "mean_gate", "number_text", "presets", "reference", "reference_pack", "reference_rules", "separation",
           "result_rows", "runs_settings",
           "shortcut_product", "shown_status", "signal_propagation", "store", "submit_all", "supervisor_alive", "unit_specs",
           "wake_supervisor"]


class RunsUnavailable(ImportError):
    """trainers.runs or trainers.core.presets is missing or broken."""


def _runs():
    try:
        import trainers.runs as runs
    except Exception as e:  # noqa: BLE001 - any failure to import is "not available"
        raise RunsUnavailable(f"trainers.runs could not be imported: {e}") from e
    return runs


def presets():
    try:
        import trainers.core.presets as p
    except Exception as e:  # noqa: BLE001
        raise RunsUnavailable(f"trainers.core.presets could not be imported: {e}") from e
    return p


@st.cache_resource(show_spinner=False)
def _store(path: str):
    return _runs().Store(path)


def store():
    return _store(cache_dir())


def list_runs() -> list[RunRecord]:
    watchdog()
    runs = store().list_runs()
    return sorted(runs, key=lambda r: float(r.get("created_at") or 0), reverse=True)


def get(key: str) -> RunRecord | None:
    return store().get(key)


@st.cache_data(show_spinner=False, max_entries=512)
def _finished_curve(path: str, key: str, updated_at) -> list[CurvePoint]:
    return _store(path).curve(key)


def curve(record: RunRecord) -> list[CurvePoint]:
    """The record's metrics/eval events; cached once the run has finished."""
    if record.get("status") in ("queued", "running"):
        return store().curve(record["key"])
    return _finished_curve(cache_dir(), record["key"], record.get("updated_at"))


def submit_all(cfgs: Iterable[RunConfig], backend: str = "local") -> list[RunRecord]:
    runs = _runs()
    return [runs.submit(cfg, cache_dir=cache_dir(), backend=backend) for cfg in cfgs]


def cancel(key: str) -> None:
    _runs().cancel(key, cache_dir())


def reference(config: dict):
    """The paper's row for a run's config (seed and schedule ignored), or None."""
    try:
        return presets().paper_reference(RunConfig.from_dict(config))
    except RunsUnavailable:
        raise
    except Exception:  # noqa: BLE001 - an old record whose config no longer validates
        return None


_WATCHDOG_S = 10.0  # how often a page that lists runs checks that a supervisor is alive
_last_watch = [0.0]


def watchdog() -> None:
    """Runs queued or running but no supervisor alive (it died with its worker, say): start one.
    At most every few seconds per server; a flock probe when one is alive."""
    import time

    if time.monotonic() - _last_watch[0] < _WATCHDOG_S:
        return
    _last_watch[0] = time.monotonic()
    try:
        _runs().ensure_supervisor(cache_dir(), only_if_needed=True)
    except Exception:  # noqa: BLE001 - the pages show the runs' own errors
        pass


def disk_full_message() -> str | None:
    """"disk full: ..." while the cache's disk has no space left (a probe that writes nothing)."""
    try:
        from trainers.runs.store import disk_state
    except Exception:  # noqa: BLE001
        return None
    return disk_state(cache_dir())["message"]


@st.cache_data(show_spinner=False)
def _reference_pack(directory: str | None) -> tuple[dict, list[str]]:
    from trainers.core import reference

    return reference.load_shipped(directory or reference.PACK_DIR)


def reference_pack() -> tuple[dict, list[str]]:
    """The shipped reference runs (explorer/reference/*.json or $RESNET_EXPLORER_REFERENCE),
    validated and read-only, and the problems of unreadable packs. They never enter the store, so
    they cannot shadow a user's run. Pure helpers on a pack: trainers.core.reference (torch-free)."""
    return _reference_pack(os.environ.get("RESNET_EXPLORER_REFERENCE"))


def wake_supervisor() -> None:
    """Once per browser session: if runs wait in the queue but no supervisor is alive (the machine
    was restarted, say), start one. Errors are left to the pages that show the runs."""
    if st.session_state.get("_supervisor_checked"):
        return
    st.session_state["_supervisor_checked"] = True
    try:
        _runs().ensure_supervisor(cache_dir(), only_if_needed=True)
    except Exception:  # noqa: BLE001
        pass


# --- the job layer's state (Data & system page) --------------------------------------------------

def runs_settings():
    """The job settings of this cache (cache/settings.json, then TRAINERS_* variables)."""
    return _runs().load_settings(cache_dir())


def supervisor_alive() -> bool:
    from trainers.runs.supervisor import supervisor_alive as alive

    return alive(cache_dir())


# --- engine functions the UI shows (imported when called: they load torch) -----------------------

def dataset_info(spec: str, cache: str | None = None) -> dict:
    from trainers.engine.data import dataset_info as info

    return info(spec, cache or cache_dir())


def check_folder(spec: str) -> None:
    """The engine's layout check of a folder dataset (names only, nothing decoded); DataError says
    what is wrong."""
    from trainers.engine.data.folder import check_folder as check

    check(spec)


def load_dataset(spec: str, cache: str | None = None, progress: Callable[[str, float], None] | None = None):
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
