"""The UI's door to the job layer (docs/interfaces.md): the verbs on runs, and nothing else.

Read: `list_runs`, `active_runs`, `get`, `curve`, `reference_pack` (the shipped, read-only runs).
Write: `submit_all`, `save_sweep`, `cancel`, `delete`, `tag`. The supervisor: `wake_supervisor`,
`watchdog`, `supervisor_alive`, `runs_settings`, `disk_full_message`. No other module of
`explorer/` imports `trainers.runs` (tests/test_layers.py checks); the torch-free core
(`trainers.core`: config, registries, layouts, result rules, presets) the pages import directly, and
the engine functions they show go through `explorer/engine_api.py`. The job layer is imported when
first used and never loads torch. Finished curves are cached by (key, updated_at), so a finished run
is read from disk once per change; live runs are re-read on every refresh.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import streamlit as st

from trainers.core.config import RunConfig
from trainers.core.records import CurvePoint, RunRecord

from .app_settings import cache_dir


class RunsUnavailable(ImportError):
    """trainers.runs is missing or broken."""


def _runs() -> Any:
    try:
        import trainers.runs as runs
    except Exception as e:  # noqa: BLE001 - any failure to import is "not available"
        raise RunsUnavailable(f"trainers.runs could not be imported: {e}") from e
    return runs


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Any:
    return _runs().Store(path)


def _here() -> Any:
    return _store(cache_dir())


# --- read ----------------------------------------------------------------------------------------


def list_runs() -> list[RunRecord]:
    """Every run record, newest first (and a supervisor started if runs wait without one)."""
    watchdog()
    runs = _here().list_runs()
    return sorted(runs, key=lambda r: float(r.get("created_at") or 0), reverse=True)


def active_runs() -> list[RunRecord]:
    """The queued and running runs, newest first, from the store's small index (no full scan)."""
    return sorted(_here().active(), key=lambda r: float(r.get("created_at") or 0), reverse=True)


def get(key: str) -> RunRecord | None:
    return _here().get(key)


@st.cache_data(show_spinner=False, max_entries=512)
def _finished_curve(path: str, key: str, updated_at: Any) -> list[CurvePoint]:
    return _store(path).curve(key)


def curve(record: Mapping[str, Any]) -> list[CurvePoint]:
    """The record's metrics/eval events; cached once the run has finished."""
    if record.get("status") in ("queued", "running"):
        return _here().curve(record["key"])
    return _finished_curve(cache_dir(), record["key"], record.get("updated_at"))


@st.cache_data(show_spinner=False)
def _reference_pack(directory: str | None) -> tuple[dict, list[str]]:
    from trainers.core import reference_packs

    return reference_packs.load_shipped(directory or reference_packs.PACK_DIR)


def reference_pack() -> tuple[dict, list[str]]:
    """The shipped reference runs (explorer/reference/*.json or $RESNET_EXPLORER_REFERENCE),
    validated and read-only, and the problems of unreadable packs. They never enter the store, so
    they cannot shadow a user's run. Pure helpers on a pack: trainers.core.reference_packs (torch-free)."""
    return _reference_pack(os.environ.get("RESNET_EXPLORER_REFERENCE"))


# --- write ---------------------------------------------------------------------------------------


def submit_all(cfgs: Iterable[RunConfig], backend: str = "local") -> list[RunRecord]:
    runs = _runs()
    return [runs.submit(cfg, cache_dir=cache_dir(), backend=backend) for cfg in cfgs]


def save_sweep(name: str, keys: Sequence[str]) -> None:
    """Remember these runs under `name` (`python -m trainers results NAME` tabulates them)."""
    _here().save_sweep(name, list(keys), {"source": "explorer"})


def cancel(key: str) -> None:
    _runs().cancel(key, cache_dir())


def delete(key: str) -> None:
    """Delete a finished run (record, curve and files)."""
    _here().delete(key)


def tag(key: str, tags: Iterable[str]) -> None:
    _here().set_tags(key, list(tags))


# --- the supervisor ------------------------------------------------------------------------------

_WATCHDOG_S = 10.0  # how often a page that lists runs checks that a supervisor is alive
_last_watch = [0.0]


def watchdog() -> None:
    """Runs queued or running but no supervisor alive (it died with its worker, say): start one.
    At most every few seconds per server; a flock probe when one is alive."""
    if time.monotonic() - _last_watch[0] < _WATCHDOG_S:
        return
    _last_watch[0] = time.monotonic()
    try:
        _runs().ensure_supervisor(cache_dir(), only_if_needed=True)
    except Exception:  # noqa: BLE001 - the pages show the runs' own errors
        pass


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


def supervisor_alive() -> bool:
    from trainers.runs.supervisor import supervisor_alive as alive

    return alive(cache_dir())


def runs_settings() -> Any:
    """The job settings of this cache (cache/settings.json, then TRAINERS_* variables)."""
    return _runs().load_settings(cache_dir())


def disk_full_message() -> str | None:
    """ "disk full: ..." while the cache's disk has no space left (a probe that writes nothing)."""
    try:
        from trainers.runs.store import disk_state
    except Exception:  # noqa: BLE001
        return None
    return disk_state(cache_dir())["message"]
