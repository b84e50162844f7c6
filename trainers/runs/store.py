"""The results store: one diskcache database per cache directory, JSON only, nothing ever evicted.

Layout of `cache_dir/store/` (keys are plain strings, values JSON):
  run:<key>          the run record (status, progress, attempt, result, ...), see docs/interfaces.md
  curve:<key>:<i>    chunk i of the run's curve (metrics and eval events, CURVE_CHUNK per chunk)
  index:active       keys of the queued and running runs (what the supervisor scans every tick)
  sweep:<name>       a named sweep: the keys it submitted

Why these settings:
  - eviction_policy="none": diskcache's default silently evicts past 1 GB; a result must never go.
  - SafeJSONDisk: values are JSON, and rows that would unpickle are refused, so a cache directory
    (copied from someone else, say) can never run code.
  - sqlite_synchronous=2 (FULL) and everything inside SQLite (no side files): a write that returned
    is on disk, so a final result survives a power cut.
  - every write from a worker carries its attempt number; the check and the write happen in one
    transaction, so an old attempt (a zombie worker) can never overwrite a newer one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from diskcache import Cache
from diskcache.core import DBNAME, MODE_BINARY, MODE_RAW, UNKNOWN, Disk

from trainers.core.records import CurvePoint, RunRecord, new_record
from trainers.core.results import ACTIVE, FINAL, RESULT_STATUSES, STATUSES  # noqa: F401 - the store's vocabulary
from trainers.core.strict_json import dumps as strict_dumps

CURVE_CHUNK = 256  # points per curve chunk: an append rewrites one small chunk, not the curve
_ACTIVE_INDEX = "index:active"


class SafeJSONDisk(Disk):
    """diskcache serialisation with JSON values and plain string keys, and no pickle anywhere.

    diskcache's own JSONDisk still unpickles a row marked MODE_PICKLE or a non-raw key; a tampered
    database could use that to run code. This class refuses such rows instead."""

    def __init__(self, directory, compress_level: int = 1, **kwargs):
        self.compress_level = compress_level
        super().__init__(directory, **kwargs)

    def put(self, key):
        if type(key) is not str:
            raise TypeError(f"store keys are strings, got {type(key).__name__}")
        return key, True

    def get(self, key, raw):
        if not raw or type(key) is not str:
            raise ValueError("refusing a non-string key in the store (possible tampering)")
        return key

    def store(self, value, read, key=UNKNOWN):
        if read:
            raise TypeError("the store keeps JSON values, not files")
        data = zlib.compress(strict_dumps(value).encode(), self.compress_level)
        return super().store(data, False, key=key)

    def fetch(self, mode, filename, value, read):
        if mode not in (MODE_RAW, MODE_BINARY) or read:
            raise ValueError(f"refusing a store row in mode {mode} (only JSON is ever written)")
        data = super().fetch(mode, filename, value, False)
        return json.loads(zlib.decompress(data).decode())


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable only by the user: results and logs are private.
    A folder we do not own, or on a read-only disk (a copy of someone's cache), is left as it is."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    make_private(path, 0o700)
    return path


def make_private(path: Path, mode: int) -> None:
    """chmod `path` to `mode` if we own it and it is not already so; never fails."""
    try:
        st = path.lstat()
        if st.st_uid == os.getuid() and (st.st_mode & 0o777) != mode and not path.is_symlink():
            os.chmod(path, mode)
    except OSError:
        pass


# --- full and read-only disks --------------------------------------------------------------------
LOW_SPACE_BYTES = 8 * 2**20  # below this much free space the cache's disk counts as full


class StoreUnavailable(OSError):
    """The store cannot be written (disk full, read-only disk or copy); reads still work."""


def is_disk_full(e: BaseException) -> bool:
    """ENOSPC or SQLite's "database or disk is full", anywhere in the exception's chain."""
    seen = 0
    cause: BaseException | None = e
    while cause is not None and seen < 10:
        e = cause
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(e)
        if any(s in text for s in ("No space left", "disk is full", "disk full", "Disk quota")):
            return True
        cause, seen = (e.__cause__ or e.__context__), seen + 1
    return False


def disk_state(cache_dir: str | Path) -> dict:
    """{"full": bool, "free_bytes": int | None, "message": str | None} of the cache's disk: a probe
    that writes nothing, so `status` and the app can say "disk full" within seconds."""
    path = Path(cache_dir).expanduser()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return {"full": False, "free_bytes": None, "message": None}
    full = free < LOW_SPACE_BYTES
    msg = f"disk full: {free / 2**20:.1f} MB free on {path}; runs wait and resume once space is back" if full else None
    return {"full": full, "free_bytes": free, "message": msg}


class _ReadOnlyCache:
    """The part of diskcache's Cache the Store reads with, on a plain read-only SQLite connection:
    opening a Cache writes its settings, which fails on a full or read-only disk. Values are
    decoded like SafeJSONDisk (JSON only, never pickle); every write raises StoreUnavailable."""

    def __init__(self, directory: Path, why: str):
        self.why = why
        db = directory / DBNAME
        if not db.exists():
            raise StoreUnavailable(f"no results store at {directory} and it cannot be created ({why})")
        last: Exception | None = None
        for query in ("mode=ro", "immutable=1"):  # immutable: no -shm needed (a read-only copy)
            try:
                self._con = sqlite3.connect(
                    f"{db.resolve().as_uri()}?{query}", uri=True, timeout=60, check_same_thread=False
                )
                self._con.execute("SELECT 1 FROM Cache LIMIT 1").fetchall()
                return
            except sqlite3.Error as e:
                last = e
        raise StoreUnavailable(f"cannot read the results store at {directory}: {last} ({why})")

    def get(self, key: str, default: Any = None) -> Any:
        row = self._con.execute("SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1", (key,)).fetchone()
        if row is None:
            return default
        mode, filename, value = row
        if mode != MODE_RAW or filename is not None:
            raise ValueError(f"refusing a store row in mode {mode} (only JSON is ever written)")
        return json.loads(zlib.decompress(bytes(value)).decode())

    def iterkeys(self) -> Iterator[str]:
        for (key,) in self._con.execute("SELECT key FROM Cache WHERE raw = 1 ORDER BY rowid").fetchall():
            if isinstance(key, str):
                yield key

    def _refuse(self, *_: Any, **__: Any):
        raise StoreUnavailable(f"the results store is read-only: {self.why}")

    set = add = delete = transact = _refuse

    def close(self) -> None:
        self._con.close()


def now() -> float:
    return time.time()


class StaleWrite(Exception):
    """Raised inside an update when the writer's attempt is not the record's: the write is dropped."""


class Store:
    """Run records, curves and sweeps of one cache directory. Safe to open from many processes and
    threads at once (SQLite WAL, busy timeout 60 s); every method returns plain JSON-able dicts."""

    def __init__(self, cache_dir: str | Path = "cache", *, size_limit: int | None = None, readonly: bool = False):
        """readonly: open for reading only and write nothing (status, results, export); a store
        that cannot be opened for writing (full or read-only disk) is opened so anyway, and
        `self.readonly` says why (every write then raises StoreUnavailable)."""
        self.cache_dir = Path(cache_dir).expanduser().resolve()
        self.path = self.cache_dir / "store"
        self.readonly: str | None = None
        self._size_limit = size_limit
        self._fallback = False  # read-only because the disk was: a later write tries again
        if readonly and (self.path / DBNAME).exists():
            self.readonly = "opened for reading"
            self._cache = _ReadOnlyCache(self.path, self.readonly)
            return
        try:
            self._cache = self._open(size_limit)
        except (OSError, sqlite3.Error) as e:
            # SQLite reports a full disk as "disk I/O error" when opening: ask the disk itself
            full = is_disk_full(e) or disk_state(self.cache_dir)["full"]
            self.readonly = ("disk full" if full else "read-only") + f" ({type(e).__name__}: {e})"
            self._cache = _ReadOnlyCache(self.path, self.readonly)
            self._fallback = True

    def writable(self) -> bool:
        """True if writes can go through; a store opened read-only because its disk was full or
        read-only tries to open for writing again (space may be back), else stays read-only."""
        if self._fallback:
            try:
                cache = self._open(self._size_limit)
            except (OSError, sqlite3.Error):
                return False
            self._cache.close()
            self._cache, self.readonly, self._fallback = cache, None, False
        return self.readonly is None

    def _open(self, size_limit: int | None) -> Cache:
        self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(self.cache_dir, 0o700)
        private_dir(self.path)
        opts: dict[str, Any] = {}
        if size_limit is not None:  # only tests set this: it shows that nothing is evicted anyway
            opts["size_limit"] = size_limit
        cache = Cache(
            str(self.path),
            disk=SafeJSONDisk,
            timeout=60,
            eviction_policy="none",
            cull_limit=0,
            sqlite_synchronous=2,  # FULL: a committed write is on disk
            disk_min_file_size=2**30,  # keep every value in SQLite: files beside it are not fsynced
            statistics=False,
            tag_index=False,
            **opts,
        )
        for f in self.path.iterdir():  # the database and its WAL: private like the folder
            if f.is_file():
                make_private(f, 0o600)
        return cache

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------------
    def get(self, key: str) -> RunRecord | None:
        return self._cache.get(f"run:{key}")

    def _record(self, key: str) -> dict[str, Any] | None:
        """The record as the plain JSON dict it is, for the store's own changes."""
        return self._cache.get(f"run:{key}")

    def list_runs(self, statuses: tuple[str, ...] | None = None) -> list[RunRecord]:
        """Every run record (oldest first), optionally only those with one of `statuses`."""
        runs = []
        for k in self._cache.iterkeys():
            if isinstance(k, str) and k.startswith("run:"):
                rec = self._cache.get(k)
                if rec is not None and (statuses is None or rec["status"] in statuses):
                    runs.append(rec)
        return sorted(runs, key=lambda r: (r["created_at"], r["key"]))

    def active(self) -> list[RunRecord]:
        """The queued and running runs, oldest first (the supervisor's work list)."""
        keys = self._cache.get(_ACTIVE_INDEX, [])
        recs = [r for r in (self.get(k) for k in keys) if r is not None and r["status"] in ACTIVE]
        return sorted(recs, key=lambda r: (r["created_at"], r["key"]))

    def owns(self, key: str, attempt: int) -> bool:
        """True while `attempt` is the run's current attempt and the run is still running: the
        fence of every file a worker writes (trainers.core.atomic)."""
        rec = self.get(key)
        return rec is not None and rec["status"] == "running" and rec["attempt"] == attempt

    def run_dir(self, key: str) -> Path:
        """The run's folder: checkpoint, result.json (the engine's `cache_dir/runs/KEY`)."""
        return self.cache_dir / "runs" / key

    def curve(self, key: str) -> list[CurvePoint]:
        """The run's metrics and eval events, in order."""
        rec = self.get(key)
        return [] if rec is None else self.curve_of(rec)

    # --- transactions ------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite write transaction (BEGIN IMMEDIATE): reads inside it see no concurrent write."""
        self.writable()  # if it stays read-only, transact() below raises StoreUnavailable
        with self._cache.transact(retry=True):
            yield

    def _put(self, rec: dict[str, Any]) -> None:
        rec["updated_at"] = now()
        self._cache.set(f"run:{rec['key']}", rec)
        self._index(rec["key"], rec["status"] in ACTIVE)

    def _index(self, key: str, active: bool) -> None:
        keys = self._cache.get(_ACTIVE_INDEX, [])
        if active and key not in keys:
            self._cache.set(_ACTIVE_INDEX, keys + [key])
        elif not active and key in keys:
            self._cache.set(_ACTIVE_INDEX, [k for k in keys if k != key])

    def _update(
        self,
        key: str,
        attempt: int | None,
        change: Callable[[dict[str, Any]], Any],
        statuses: tuple[str, ...] = ("running",),
    ) -> Any:
        """Apply `change(rec)` atomically if the record is at `attempt` and in one of `statuses`;
        returns change's value, or None when the write is stale (and dropped)."""
        with self.transaction():
            rec = self._record(key)
            if rec is None or rec["status"] not in statuses:
                return None
            if attempt is not None and rec["attempt"] != attempt:
                return None
            try:
                out = change(rec)
            except StaleWrite:
                return None
            self._put(rec)
            return True if out is None else out

    # --- submitting ----------------------------------------------------------------------------
    def create(self, config: dict[str, Any], label: str, key: str, backend: str = "local") -> tuple[RunRecord, bool]:
        """Claim `key` atomically: (new queued record, True), or (the existing record, False).

        A run that ended in error or was cancelled is queued again (it resumes from its checkpoint);
        a finished one is answered as it is; a queued or running one is joined."""
        with self.transaction():
            rec = self._record(key)
            if rec is None:
                new = new_record(key, config, label, backend, now())
                # Cache.add is atomic on its own; inside the transaction the index moves with it.
                if not self._cache.add(f"run:{key}", new):
                    return self._cache.get(f"run:{key}"), False
                self._index(key, True)
                return new, True
            if rec["status"] in ("error", "cancelled"):
                rec.update(
                    status="queued",
                    backend=backend,
                    error=None,
                    restarts=0,
                    queued_at=now(),
                    cancel_requested=False,
                    cancel_requested_at=None,
                    finished_at=None,
                )
                self._put(rec)
                return cast(RunRecord, rec), True
            return cast(RunRecord, rec), False

    def request_cancel(self, key: str) -> RunRecord | None:
        """Queued: cancelled at once. Running: flagged; the worker polls the flag, and the
        supervisor stops its process if it does not stop within the grace period."""
        with self.transaction():
            rec = self._record(key)
            if rec is None:
                return None
            if rec["status"] == "queued":
                rec.update(status="cancelled", finished_at=now(), error=None)
                self._put(rec)
            elif rec["status"] == "running" and not rec["cancel_requested"]:
                rec.update(cancel_requested=True, cancel_requested_at=now())
                self._put(rec)
            return cast(RunRecord, rec)

    def delete(self, key: str) -> bool:
        with self.transaction():
            rec = self._record(key)
            if rec is None:
                return False
            for i in range((rec.get("curve_len", 0) + CURVE_CHUNK - 1) // CURVE_CHUNK):
                self._cache.delete(f"curve:{key}:{i}")
            self._cache.delete(f"run:{key}")
            self._index(key, False)
            return True

    def set_tags(self, key: str, tags: Iterable[str]) -> RunRecord | None:
        """The user's labels of a run (any status; the explorer's Compare page). None: no such run."""
        with self.transaction():
            rec = self._record(key)
            if rec is None:
                return None
            rec["tags"] = sorted({str(t).strip() for t in tags if str(t).strip()})
            self._put(rec)
            return cast(RunRecord, rec)

    # --- the supervisor's writes ---------------------------------------------------------------
    def claim(self, key: str, backend: str, slot: str | None, lease_starts: bool = True) -> int | None:
        """queued -> running with attempt+1, which fences every write of an older attempt.
        Returns the new attempt, or None if the run is no longer queued."""

        def change(rec: dict[str, Any]) -> int:
            t = now()
            rec.update(
                status="running",
                attempt=rec["attempt"] + 1,
                backend=backend,
                slot=slot,
                started_at=t,
                heartbeat_at=t if lease_starts else None,
                pid=None,
                host=None,
                device=slot,
                eta_s=None,
                images_per_s=None,
            )
            return rec["attempt"]

        return self._update(key, None, change, statuses=("queued",))

    def set_worker(self, key: str, attempt: int, **fields: Any) -> bool:
        """Where the worker runs: pid, host, log path, device (JSON values only)."""
        return bool(self._update(key, attempt, lambda rec: rec.update(fields)))

    def worker_lost(self, key: str, attempt: int, reason: str, max_restarts: int) -> str | None:
        """The worker of `attempt` died: queue the run again (it resumes from its checkpoint), or
        after `max_restarts` restarts end it as error with the reason. Returns the new status."""

        def change(rec: dict[str, Any]) -> str:
            detail = reason + (f"; the worker said: {rec['worker_error']}" if rec.get("worker_error") else "")
            rec["worker_error"] = None
            if rec["cancel_requested"]:
                rec.update(status="cancelled", finished_at=now(), error=None)
            elif rec["restarts"] >= max_restarts:
                rec.update(
                    status="error", finished_at=now(), error=f"worker died {rec['restarts'] + 1} times; last: {detail}"
                )
            else:
                rec.update(
                    status="queued",
                    restarts=rec["restarts"] + 1,
                    queued_at=now(),
                    last_failure=detail,
                    pid=None,
                    slot=None,
                    eta_s=None,
                    images_per_s=None,
                )
            return rec["status"]

        return self._update(key, attempt, change)

    def release(self, key: str, attempt: int, reason: str) -> bool:
        """The worker stopped without finishing and without a fault (SIGTERM at shutdown): queue it
        again without counting a restart."""

        def change(rec: dict[str, Any]) -> None:
            if rec["cancel_requested"]:  # the stop was the cancel's SIGTERM after all
                rec.update(status="cancelled", finished_at=now())
            else:
                rec.update(
                    status="queued",
                    queued_at=now(),
                    last_failure=reason,
                    pid=None,
                    slot=None,
                    eta_s=None,
                    images_per_s=None,
                )

        return bool(self._update(key, attempt, change))

    def mark_cancelled(self, key: str, attempt: int) -> bool:
        return bool(self._update(key, attempt, lambda rec: rec.update(status="cancelled", finished_at=now())))

    # --- the worker's writes -------------------------------------------------------------------
    def heartbeat(self, key: str, attempt: int) -> dict:
        """Renew the lease. Returns {"ok": this attempt still owns the run, "cancel": requested}."""

        def change(rec: dict[str, Any]) -> dict:
            rec["heartbeat_at"] = now()
            return {"cancel": bool(rec["cancel_requested"])}

        out = self._update(key, attempt, change)
        return {"ok": out is not None, "cancel": bool(out and out["cancel"])}

    def apply_event(self, key: str, attempt: int, ev: Mapping[str, Any]) -> bool:
        """One engine event: update progress, append curve points. False = stale attempt, dropped."""

        def change(rec: dict[str, Any]) -> None:
            rec["heartbeat_at"] = now()
            kind = ev.get("type")
            if kind == "start":
                rec.update(
                    iteration=ev["iteration"],
                    total=ev["total"],
                    device=ev.get("device"),
                    device_name=ev.get("device_name"),
                    parameters=ev.get("parameters"),
                    dataset=ev.get("dataset"),
                    resumed_at=ev["iteration"] if ev.get("resumed") else None,
                    # kept across attempts, e.g. "checkpoint ... moved aside": the app shows them
                    notes=((rec.get("notes") or []) + [str(n)[:1000] for n in (ev.get("notes") or [])])[-10:],
                )
                rec["progress"] = ev["iteration"] / max(1, ev["total"])
                # Resumed (or restarted from scratch): points past the checkpoint are replayed.
                self._truncate_curve(rec, ev["iteration"])
            elif kind in ("metrics", "eval"):
                self._append_curve(rec, ev)
                rec["iteration"] = max(rec.get("iteration") or 0, ev["iteration"])
                rec["progress"] = rec["iteration"] / max(1, rec.get("total") or 1)
                if kind == "metrics":
                    rec.update(
                        eta_s=ev.get("eta_s"), images_per_s=ev.get("images_per_s"), train_loss=ev.get("train_loss")
                    )
                else:
                    rec["test_error"] = ev.get("test_error")
            elif kind == "checkpoint":
                rec["checkpoint_iteration"] = ev["iteration"]

        return bool(self._update(key, attempt, change))

    def note_failure(self, key: str, attempt: int, message: str) -> bool:
        """A retryable fault (CUDA out of memory, ...) the supervisor will report if it gives up."""
        return bool(self._update(key, attempt, lambda rec: rec.update(worker_error=message)))

    def finish(self, key: str, attempt: int, result: Mapping[str, Any]) -> bool:
        """The final result, written once and durably; its status becomes the run's."""
        status = result.get("status")
        if status not in RESULT_STATUSES:
            raise ValueError(f"result status {status!r} is not one of {RESULT_STATUSES}")

        def change(rec: dict[str, Any]) -> None:
            rec.update(
                status=status,
                result=result,
                finished_at=now(),
                eta_s=0.0,
                error=None,
                test_error=result.get("test_error"),
                train_loss=result.get("train_loss"),
                iteration=result.get("iterations", rec.get("iteration")),
            )
            if status in ("done", "fail"):
                rec["progress"] = 1.0

        return bool(self._update(key, attempt, change))

    def fail(self, key: str, attempt: int, message: str) -> bool:
        """The run cannot succeed (bad config, missing data, ...): error, with the message."""
        return bool(
            self._update(key, attempt, lambda rec: rec.update(status="error", error=message, finished_at=now()))
        )

    # --- curves ------------------------------------------------------------------------------
    def _append_curve(self, rec: dict[str, Any], point: Mapping[str, Any]) -> None:
        n = rec.get("curve_len", 0)
        name = f"curve:{rec['key']}:{n // CURVE_CHUNK}"
        chunk = self._cache.get(name, []) if n % CURVE_CHUNK else []
        self._cache.set(name, chunk + [point])
        rec["curve_len"] = n + 1

    def _truncate_curve(self, rec: dict[str, Any], iteration: int) -> None:
        key = rec["key"]
        n = rec.get("curve_len", 0)
        if n == 0:
            return
        points = self.curve_of(rec)
        keep = [p for p in points if p.get("iteration", 0) <= iteration]
        if len(keep) == len(points):
            return
        for i in range((n + CURVE_CHUNK - 1) // CURVE_CHUNK):
            self._cache.delete(f"curve:{key}:{i}")
        self._write_curve(key, keep)
        rec["curve_len"] = len(keep)

    def curve_of(self, rec: Mapping[str, Any]) -> list[CurvePoint]:
        n = rec.get("curve_len", 0)
        points: list[CurvePoint] = []
        for i in range((n + CURVE_CHUNK - 1) // CURVE_CHUNK):
            points += self._cache.get(f"curve:{rec['key']}:{i}", [])
        return points[:n]

    def _write_curve(self, key: str, points: Sequence[Any]) -> None:
        for i in range(0, len(points), CURVE_CHUNK):
            self._cache.set(f"curve:{key}:{i // CURVE_CHUNK}", points[i : i + CURVE_CHUNK])

    # --- import (used by trainers.runs.export) -------------------------------------------------
    def put_imported(self, rec: Mapping[str, Any], curve: Sequence[Mapping[str, Any]]) -> bool:
        """Store a validated, finished run from an export file unless the key is already here.
        Call inside `transaction()` to make a whole file all-or-nothing."""
        if self.get(rec["key"]) is not None:
            return False
        rec = dict(rec, curve_len=len(curve))
        self._write_curve(rec["key"], curve)
        self._cache.set(f"run:{rec['key']}", rec)
        return True

    # --- sweeps ------------------------------------------------------------------------------
    def save_sweep(self, name: str, keys: list[str], meta: dict | None = None) -> dict:
        """Remember which runs a named sweep submitted (re-running it adds to the same sweep)."""
        with self.transaction():
            sweep = self._cache.get(f"sweep:{name}") or {"name": name, "keys": [], "created_at": now()}
            sweep["keys"] = list(dict.fromkeys(sweep["keys"] + list(keys)))
            sweep.update(meta or {}, updated_at=now())
            self._cache.set(f"sweep:{name}", sweep)
            return sweep

    def get_sweep(self, name: str) -> dict | None:
        return self._cache.get(f"sweep:{name}")

    def list_sweeps(self) -> list[dict]:
        """Every saved sweep (presets run from the CLI, grids launched from the explorer)."""
        return [self._cache.get(k) for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith("sweep:")]


def hostname() -> str:
    return socket.gethostname()
