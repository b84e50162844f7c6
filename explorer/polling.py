"""Cheap reads for the views that redraw themselves every couple of seconds (the sidebar's job
badge, the Live page), and the app's share of the CPU while a job trains beside it.

Reading every record means walking every key of the store (curve chunks included), so the full
list is cached for a few seconds and dropped at once when this app changes something (submit,
cancel, delete, tag); the active runs come from the store's small index of queued/running keys.
Nothing here imports the engine (torch), so a page that only polls never loads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import streamlit as st

from explorer import runs_api
from explorer.app_settings import REFRESH_S, cache_dir
from trainers.core.records import RunRecord

LIST_TTL_S = 3 * REFRESH_S  # how stale "N runs in the cache" and the finished list may be


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False, max_entries=8)
def _all_runs(path: str) -> list[RunRecord]:
    return runs_api.list_runs()


def all_runs() -> list[RunRecord]:
    """Every run record, newest first, at most LIST_TTL_S old."""
    return _all_runs(cache_dir())


def active_runs() -> list[RunRecord]:
    """The queued and running runs, newest first, read now (the store's index, not a full scan)."""
    return runs_api.active_runs()


def changed() -> None:
    """This app changed the store: the next read is fresh."""
    _all_runs.clear()


def cpu_job_running(records: Sequence[Mapping[str, Any]] | None = None) -> bool:
    """Does a local run train on this machine's CPU right now?"""
    recs = active_runs() if records is None else records
    return any(
        r.get("status") == "running"
        and r.get("backend", "local") == "local"
        and str(r.get("device") or "cpu").startswith("cpu")
        for r in recs
    )


@contextmanager
def app_threads():
    """The app's own torch work (Learn's signal plot, the speed benchmark) on one thread while a
    local job trains on the CPU: two processes with two threads each on two cores starve each
    other (ResNet-110's signal plot: 35.5 s with 2 threads against 4.0 s with 1 beside a run).
    Yields the number of threads used."""
    import torch

    try:
        busy = cpu_job_running()
    except Exception:  # noqa: BLE001 - no store: nothing trains
        busy = False
    before = torch.get_num_threads()
    if not busy or before <= 1:
        yield before
        return
    torch.set_num_threads(1)
    try:
        yield 1
    finally:
        torch.set_num_threads(before)
