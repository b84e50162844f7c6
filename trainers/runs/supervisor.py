"""The supervisor: one process per cache directory (held by an flock on `supervisor.lock`) that
turns queued runs into workers and keeps them honest.

Every tick (`poll_s`) it
  1. asks each backend to check its running runs: dead or silent workers are restarted from their
     checkpoint (attempt+1, at most `max_restarts` times, then error), cancel requests enforced;
  2. claims queued runs (oldest first) for free slots and starts their workers; runs that differ
     only in their seed may share one worker as one packed network (`pack_seeds`, `pack_group`),
     each key still claimed, leased, restarted and cancelled on its own.
It exits by itself after `idle_exit_s` with nothing queued or running; `ensure_supervisor()` starts
a new one when work arrives. Workers are detached, so stopping the supervisor stops no training.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from trainers.core import pack_rules
from trainers.core.config import RunConfig
from trainers.core.records import RunRecord

from .backends.local import LocalBackend, spawn_detached
from .settings import Settings, load_settings
from .store import Store, disk_state, is_disk_full, now

if TYPE_CHECKING:
    from .backends.ray_backend import RayBackend

log = logging.getLogger("trainers.supervisor")
RAY_RETRY_S = 60.0  # after a failed connection, Ray runs fail at once for this long
DISK_RETRY_S = 60.0  # a run stopped by a full disk is tried again after this long (not counted)


class RayUnavailable(RuntimeError):
    pass


def lock_path(cache_dir: str | Path) -> Path:
    return Path(cache_dir).expanduser().resolve() / "supervisor.lock"


def try_lock(cache_dir: str | Path) -> IO | None:
    """The supervisor lock, or None if another process holds it. The lock dies with its process,
    so a killed supervisor never blocks the next one (unlike a pid file)."""
    path = lock_path(cache_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    f = open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")  # not inheritable
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def supervisor_alive(cache_dir: str | Path) -> bool:
    if not lock_path(cache_dir).exists():
        return False  # a status query creates nothing
    f = try_lock(cache_dir)
    if f is None:
        return True
    f.close()  # closing releases the probe's lock
    return False


def supervisor_pid(cache_dir: str | Path) -> int | None:
    """The pid of the live supervisor (written into the lock file), or None."""
    if not supervisor_alive(cache_dir):
        return None
    try:
        return int(lock_path(cache_dir).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _claim_lock_file(lock: IO) -> None:
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()


def ensure_supervisor(cache_dir: str | Path = "cache", *, only_if_needed: bool = False) -> bool:
    """Start a detached supervisor for `cache_dir` unless one is alive. True if one was started.

    only_if_needed: start it only when runs are queued or running (e.g. when the app starts)."""
    cache_dir = Path(cache_dir).expanduser().resolve()
    if supervisor_alive(cache_dir):
        return False
    if only_if_needed:
        with Store(cache_dir) as store:
            if not store.active():
                return False
    spawn_detached(["supervise", "--cache-dir", str(cache_dir)], cache_dir / "logs" / "supervisor.log")
    return True


class Supervisor:
    def __init__(self, cache_dir: str | Path, settings: Settings | None = None):
        self.cache_dir = Path(cache_dir).expanduser().resolve()
        self.settings = settings or load_settings(self.cache_dir)
        self.store = Store(self.cache_dir)
        self.local = LocalBackend(self.store, self.settings)
        self._ray: RayBackend | None = None  # created on the first Ray run: ray stays an optional install
        self._ray_error: tuple[float, str] | None = None
        self._stopping = False

    # --- backends ----------------------------------------------------------------------------
    def ray(self) -> RayBackend:
        if self._ray is None:
            # a cluster that just refused us is not asked again for a while: connecting takes
            # ~20 s of retries, and local runs must not wait that long for their supervisor
            if self._ray_error and now() - self._ray_error[0] < RAY_RETRY_S:
                raise RayUnavailable(self._ray_error[1])
            from .backends.ray_backend import RayBackend

            self._ray = RayBackend(self.store, self.settings)
        return self._ray

    def tick(self) -> None:
        if not self.store.writable():  # opened on a full disk: wait until space is back
            raise OSError(28, f"the results store is not writable: {self.store.readonly}")
        active = self.store.active()
        running = [r for r in active if r["status"] == "running"]
        self.local.poll([r for r in running if r["backend"] == "local"])
        ray_running = [r for r in running if r["backend"] == "ray"]
        if ray_running or self._ray is not None:
            self._ray_step(lambda b: b.poll(ray_running), ray_running)

        active = self.store.active()  # polling may have queued runs again
        running = [r for r in active if r["status"] == "running"]
        free = self.local.free_slots(running)
        disk = disk_state(self.cache_dir)
        if disk["full"]:  # a worker started now would die at its first checkpoint: wait
            if free and any(r["status"] == "queued" for r in active):
                log.warning("%s", disk["message"])
            free = []
        queued_local = [r for r in active if r["status"] == "queued" and r["backend"] == "local"]
        taken: set[str] = set()  # claimed in this tick (as part of a pack)
        for rec in active:
            if rec["status"] != "queued" or rec["key"] in taken:
                continue
            if (rec.get("last_failure") or "").startswith("disk full") and now() - (
                rec.get("queued_at") or 0
            ) < DISK_RETRY_S:
                continue  # its checkpoint did not fit on the disk a moment ago: not again at once
            if rec["backend"] == "ray":
                self._ray_step(lambda b, rec=rec: b.start_queued(rec), [rec])
            elif free:
                slot = free.pop(0)
                group = self.pack_group(rec, [r for r in queued_local if r["key"] not in taken], slot)
                taken.update(r["key"] for r in group)
                self._start_local(group, slot)

    def pack_group(self, rec: RunRecord, queued: list[RunRecord], slot) -> list[RunRecord]:
        """`rec` and the queued local runs one worker trains with it as one packed network: same
        family (everything but the seed), checkpoints at the same iteration, at most `max_packs`,
        and only where `pack_seeds` allows it ("auto": where `pack_rules.should_pack` says faster).
        Plain rules (trainers/core/pack_rules.py): the supervisor never imports the engine."""
        mode = self.settings.pack_seeds.strip().lower()
        if mode not in ("auto", "always") or self.settings.max_packs < 2:
            return [rec]
        if mode == "auto" and slot.device != "cuda":
            return [rec]  # packing measured slower on the CPU
        try:
            cfg = RunConfig.from_dict(rec["config"])
            family = pack_rules.family(cfg)
            group, cfgs = [rec], [cfg]
            for other in queued:
                if len(group) >= self.settings.max_packs:
                    break
                if other["key"] == rec["key"] or other.get("checkpoint_iteration") != rec.get("checkpoint_iteration"):
                    continue
                try:
                    c = RunConfig.from_dict(other["config"])
                except Exception:
                    continue
                if pack_rules.family(c) == family and pack_rules.why_not_packable(cfgs + [c]) is None:
                    group.append(other)
                    cfgs.append(c)
            if len(group) < 2 or pack_rules.why_not_packable(cfgs) is not None:
                return [rec]
            if mode == "auto" and not pack_rules.should_pack(slot.device, cfgs):
                return [rec]
            return group
        except Exception:  # a config that no longer validates: the worker reports it, run by run
            log.exception("could not plan a pack for %s", rec["key"])
            return [rec]

    def _start_local(self, recs: list[RunRecord], slot) -> None:
        claimed = []
        for rec in recs:
            attempt = self.store.claim(rec["key"], "local", slot.name, lease_starts=False)
            if attempt is not None:  # else: cancelled (or claimed) since we read it
                claimed.append((rec, attempt))
        if not claimed:
            return
        try:
            self.local.start([r for r, _ in claimed], [a for _, a in claimed], slot)
        except OSError as e:
            for rec, attempt in claimed:
                self.store.worker_lost(
                    rec["key"], attempt, f"could not start the worker: {e}", self.settings.max_restarts
                )

    def _ray_step(self, action, recs: list[RunRecord]) -> None:
        """Run a Ray action; if Ray is missing or the cluster unreachable, fail those runs with a
        message instead of taking the supervisor (and every local run) down."""
        try:
            action(self.ray())
        except Exception as e:
            msg = str(e) if isinstance(e, RayUnavailable) else f"Ray backend unavailable: {type(e).__name__}: {e}"
            if isinstance(e, ModuleNotFoundError):
                msg += " (install it with: pip install -r requirements-ray.txt)"
            log.error(msg)
            self._ray = None
            self._ray_error = (now(), msg)
            for rec in recs:
                if rec["status"] == "queued":
                    attempt = self.store.claim(rec["key"], "ray", None)
                    if attempt is not None:
                        self.store.fail(rec["key"], attempt, msg)
                elif now() - (rec.get("heartbeat_at") or rec["started_at"] or now()) > self.settings.lease_s:
                    self.store.worker_lost(rec["key"], rec["attempt"], msg, self.settings.max_restarts)

    def busy(self) -> bool:
        return bool(self.store.active()) or self.local.busy() or (self._ray is not None and self._ray.busy())

    # --- main loop ---------------------------------------------------------------------------
    def serve(self, idle_exit_s: float | None = None) -> int:
        lock = try_lock(self.cache_dir)
        if lock is None:
            log.info("another supervisor holds %s; exiting", lock_path(self.cache_dir))
            return 0
        _claim_lock_file(lock)
        self.clean_leftovers()
        idle_exit_s = self.settings.idle_exit_s if idle_exit_s is None else idle_exit_s
        signal.signal(signal.SIGTERM, self._on_sigterm)
        log.info("supervisor %d for %s (idle exit after %g s)", os.getpid(), self.cache_dir, idle_exit_s)
        idle_since: float | None = None
        last_full_log = 0.0
        try:
            while not self._stopping:
                try:
                    self.tick()
                except Exception as e:  # one bad record must not stop the scheduling of the rest
                    if is_disk_full(e):  # once a minute, not a traceback every tick
                        if now() - last_full_log > 60:
                            log.warning("disk full: %s; waiting for space", e)
                            last_full_log = now()
                    else:
                        log.exception("tick failed")
                if self.busy():
                    idle_since = None
                else:
                    idle_since = idle_since or now()
                    if now() - idle_since >= idle_exit_s:
                        # Release, then look once more: a submit that found the lock held just
                        # before we released it has written its run first, so we see it here.
                        lock.close()
                        lock = None
                        if not self.store.active():
                            break
                        lock = try_lock(self.cache_dir)
                        if lock is None:
                            break  # a new supervisor took over
                        _claim_lock_file(lock)
                        idle_since = None
                time.sleep(self.settings.poll_s)
        finally:
            if self._ray is not None:
                self._ray.close(idle=not self.store.active())
            if lock is not None:
                lock.close()
            log.info("supervisor %d exits", os.getpid())
        return 0

    def clean_leftovers(self) -> None:
        """Temp files of checkpoint and dataset writes that a kill interrupted (older than a
        minute: none is being written), and folders made private (0700) where we own them."""
        from trainers.core.atomic import clean_orphan_temps

        from .store import make_private

        folders = [self.cache_dir / "data"]
        runs = self.cache_dir / "runs"
        if runs.is_dir():
            make_private(runs, 0o700)
            folders += [d for d in runs.iterdir() if d.is_dir() and not d.is_symlink()]
        for folder in folders:
            if folder.parent == runs:
                make_private(folder, 0o700)
            for p in clean_orphan_temps(folder):
                log.info("removed %s, left by an interrupted write", p)

    def _on_sigterm(self, *_) -> None:
        self._stopping = True  # workers keep running; the next supervisor adopts them


def main(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings(args.cache_dir)
    return Supervisor(args.cache_dir, settings).serve(idle_exit_s=args.idle_exit_s)
