"""Crash-safe file writes, shared by checkpoints, results and the decoded-dataset cache.

Fences: a worker registers, for its run's folder, a check "is my attempt still the run's?"
(`set_fence`). Every `atomic_write` into that folder then renames its file into place only while
holding the folder's lock (`.write.lock`, an flock) and only if the check passes, so a stale worker
(stopped past its lease, resumed after a newer attempt took over or finished) cannot overwrite the
newer attempt's checkpoint or result. The lock dies with its holder, so a killed worker blocks no one.
Without a registered fence (the engine on its own) writes are not checked.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_FENCES: dict[Path, Callable[[], bool]] = {}
_FENCE_GUARD = threading.Lock()
TMP_MARK = ".tmp-"  # temp files are ".NAME.tmp-XXXXXXXX" beside NAME


class StaleWriter(RuntimeError):
    """This process's attempt no longer owns the run: its file write was dropped."""


def set_fence(folder: str | Path, check: Callable[[], bool] | None) -> None:
    """Guard every atomic write into `folder` by `check()` (None removes the guard)."""
    folder = Path(folder).resolve()
    with _FENCE_GUARD:
        if check is None:
            _FENCES.pop(folder, None)
        else:
            _FENCES[folder] = check


def fence_of(folder: Path) -> Callable[[], bool] | None:
    with _FENCE_GUARD:
        return _FENCES.get(folder.resolve()) if _FENCES else None


def mkdir_private(folder: Path) -> None:
    """Create `folder` and its missing parents 0700 (results are private); existing ones keep theirs."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """An exclusive flock on `folder/.write.lock` (created 0600)."""
    fd = os.open(Path(folder) / ".write.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def nonblocking_lock(path: str | Path) -> Iterator[bool]:
    """An exclusive, non-blocking flock on `path` (created 0600, its folder 0700): yields True while
    this process holds it, False (at once) when another process does. It dies with its process."""
    path = Path(path)
    mkdir_private(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: int = 0o600) -> None:
    """Write through a temp file in the same folder, fsync it, rename over `path`, fsync the folder:
    readers and a crash at any moment see the old file or the new one, never a torn one.
    Files are private (0600). Raises StaleWriter (and writes nothing) if the folder's fence says
    this writer's attempt is no longer the run's."""
    path = Path(path)
    mkdir_private(path.parent)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")
    fence = fence_of(path.parent)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with open(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if fence is None:
            os.replace(tmp, path)
        else:
            with folder_lock(path.parent):
                if not fence():
                    raise StaleWriter(f"{path.name} not written: this attempt no longer owns the run")
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def clean_orphan_temps(folder: str | Path, older_than_s: float = 60.0) -> list[Path]:
    """Delete temp files of `atomic_write`s that a kill interrupted (not ones being written now:
    only those older than `older_than_s`). Returns what was removed."""
    removed: list[Path] = []
    cutoff = time.time() - older_than_s
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        if p.name.startswith(".") and TMP_MARK in p.name and not p.is_symlink():
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed.append(p)
            except OSError:
                pass
    return removed
