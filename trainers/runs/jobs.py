"""Submitting and cancelling runs: the whole API the UI and the CLI need to start work."""

from __future__ import annotations

from pathlib import Path

from trainers.core.config import ConfigError, RunConfig

from .store import Store
from .supervisor import ensure_supervisor

BACKENDS = ("local", "ray")


def submit(cfg: RunConfig, cache_dir: str | Path = "cache", backend: str = "local", *,
           start_supervisor: bool = True) -> dict:
    """Queue `cfg` unless its key is known: a finished run is answered from the store at once, a
    queued or running one is joined, one that ended in error or was cancelled is queued again
    (resuming from its checkpoint). Two simultaneous submits of one config make exactly one job.

    Returns the run record; `record["status"]` says which case it was."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    with Store(cache_dir) as store:
        rec, _created = store.create(cfg.to_dict(), cfg.label(), cfg.key, backend)
    if start_supervisor and rec["status"] in ("queued", "running"):
        ensure_supervisor(cache_dir)
    return rec


def cancel(key: str, cache_dir: str | Path = "cache") -> dict | None:
    """Cancel a run: a queued one at once, a running one within a few seconds (it checkpoints, so
    submitting it again resumes it). Returns the record, or None for an unknown key."""
    with Store(cache_dir) as store:
        rec = store.request_cancel(key)
    if rec is not None and rec["status"] == "running":
        ensure_supervisor(cache_dir)  # someone must enforce the cancel if the worker is stuck
    return rec
