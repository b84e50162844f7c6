"""The UI's one door to the runs layer and the paper presets (docs/interfaces.md).

The pages read run records and curves here and submit configs here; nothing in the UI touches a
tensor of a run. Finished curves are cached by (key, updated_at), so a finished run is read from
disk once per change, and live runs are re-read on every refresh.
"""

from __future__ import annotations

import os
from typing import Iterable

import streamlit as st

from trainers.core.config import RunConfig

from .settings import cache_dir


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


def list_runs() -> list[dict]:
    runs = store().list_runs()
    return sorted(runs, key=lambda r: float(r.get("created_at") or 0), reverse=True)


def get(key: str) -> dict | None:
    return store().get(key)


@st.cache_data(show_spinner=False, max_entries=512)
def _finished_curve(path: str, key: str, updated_at) -> list[dict]:
    return _store(path).curve(key)


def curve(record: dict) -> list[dict]:
    """The record's metrics/eval events; cached once the run has finished."""
    if record.get("status") in ("queued", "running"):
        return store().curve(record["key"])
    return _finished_curve(cache_dir(), record["key"], record.get("updated_at"))


def submit_all(cfgs: Iterable[RunConfig], backend: str = "local") -> list[dict]:
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
