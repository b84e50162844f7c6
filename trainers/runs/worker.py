"""One worker process = one attempt at K >= 1 claimed runs: `python -m trainers worker KEY
--attempts N`, or several runs that differ only in their seed, trained as one packed network:
`python -m trainers worker KEY1 KEY2 ... --attempts N1 N2 ...`.

The supervisor claims the runs (attempt N each), then starts this process in its own session with
CUDA_VISIBLE_DEVICES set. The worker trains through the engine (trainers/runs/attempt.py: the
wiring it shares with the Ray task), writing every event to the store with its run's attempt
number, and renews each run's lease from a background thread. If a record moves on to another
attempt (this worker was presumed dead), the store drops that run's writes, the fence drops its
files, and it stops at its next poll; the other runs of a pack go on.

Exit codes: 0 = final states were written (or the runs were no longer ours), 1 = an error was
written, 75 = a retryable fault (CUDA error, out of memory, full disk): the supervisor restarts.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from trainers.core.atomic import StaleWriter, clean_orphan_temps, set_fence
from trainers.core.records import Event, Result

from .attempt import PERMANENT, Claimed, Lease, is_retryable, train_claimed
from .settings import load_settings
from .store import Store, hostname, is_disk_full, make_private

log = logging.getLogger("trainers.worker")

EXIT_RETRY = 75  # EX_TEMPFAIL
__all__ = ["EXIT_RETRY", "PERMANENT", "Lease", "fence_run", "is_retryable", "main", "run_worker"]


def fence_run(store: Store, key: str, attempt: int) -> None:
    """Fence every file write into the run's folder (checkpoint, result) by this attempt: a stale
    worker, resumed after a newer attempt took over or the run finished, writes nothing."""
    folder = store.run_dir(key)
    set_fence(folder, lambda: store.owns(key, attempt))
    if folder.is_dir():
        make_private(folder, 0o700)
        clean_orphan_temps(folder)  # left by a killed attempt


def run_worker(
    keys: Sequence[str], cache_dir: str | Path, attempts: Sequence[int], device: str = "auto", progress: bool = False
) -> int:
    """Train these claimed runs here, as one pack. Each key keeps its own lease, events, cancel and
    result; a run that leaves the pack (cancelled, diverged, superseded) is settled at once and the
    others go on. Runs that are no longer ours at the start are skipped. Returns the exit code."""
    settings = load_settings(cache_dir)
    store = Store(cache_dir)
    runs, code = _ours(store, keys, attempts, settings.heartbeat_s)
    if not runs:
        return code
    terminated = threading.Event()  # SIGTERM: every run stops at its next poll, checkpointed
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    threads = None
    if device == "cpu":  # oversubscribed cores make every job slower, not faster
        threads = settings.cpu_threads or max(1, (os.cpu_count() or 1) // max(1, settings.cpu_jobs))
    try:
        train_claimed(
            runs,
            lambda run, result: _settle(store, run, result),
            device=device,
            cache_dir=store.cache_dir,
            checkpoint_every_s=settings.checkpoint_every_s,
            terminated=terminated,
            threads=threads,
            progress=progress,
        )
    except StaleWriter as e:
        log.warning("runs %s: one was superseded; stopped (%s)", [r.key for r in runs], e)
    except Exception as e:
        log.error("runs %s failed:\n%s", [r.key for r in runs], traceback.format_exc())
        return max(code, _record_failure(store, [r for r in runs if not r.settled], e))  # the others keep theirs
    finally:
        for r in runs:
            r.lease.stop()
    return code


def _ours(store: Store, keys: Sequence[str], attempts: Sequence[int], heartbeat_s: float) -> tuple[list[Claimed], int]:
    """The runs whose record still names this attempt, leased (first heartbeat sent) and fenced;
    exit code 1 if a config no longer validates (that run is failed)."""
    from trainers.core.config import RunConfig

    found: list[tuple[str, int, RunConfig]] = []
    code = 0
    for key, attempt in zip(keys, attempts):
        rec = store.get(key)
        if rec is None or rec["status"] != "running" or rec["attempt"] != attempt:
            log.warning(
                "run %s attempt %s is not ours to run (record: %s)",
                key,
                attempt,
                None if rec is None else (rec["status"], rec["attempt"]),
            )
            continue
        try:
            found.append((key, attempt, RunConfig.from_dict(rec["config"])))
        except Exception as e:
            store.fail(key, attempt, f"invalid config: {e}")
            code = 1
    packed_with = [k for k, _, _ in found] if len(found) > 1 else None
    runs = []
    for key, attempt, cfg in found:
        store.set_worker(key, attempt, pid=os.getpid(), host=hostname(), packed_with=packed_with)
        lease = Lease(_renewal(store, key, attempt), heartbeat_s)
        lease.beat()
        runs.append(Claimed(key, attempt, cfg, _writer(store, key, attempt), lease.start()))
        fence_run(store, key, attempt)
    return runs, code


def _renewal(store: Store, key: str, attempt: int):
    def renew() -> tuple[bool, bool]:
        state = store.heartbeat(key, attempt)
        return state["ok"], state["cancel"]

    return renew


def _writer(store: Store, key: str, attempt: int):
    def write(ev: Event) -> bool:
        return store.apply_event(key, attempt, ev)

    return write


def _settle(store: Store, run: Claimed, result: Result) -> None:
    """Write a run's outcome as soon as it leaves the pack, so a cancel ends at once."""
    key, attempt = run.key, run.attempt
    if result["status"] == "cancelled" and not run.lease.cancel:
        if run.lease.lost:
            log.warning("run %s attempt %d was superseded; stopped", key, attempt)
        else:  # stopped by SIGTERM (a shutdown, not the user): queue it again, it resumes later
            store.release(key, attempt, "worker was stopped by SIGTERM")
        return
    if not store.finish(key, attempt, result):
        log.warning("run %s attempt %d: result dropped, the run moved on", key, attempt)
    log.info("run %s attempt %d ended: %s, test error %s", key, attempt, result["status"], result.get("test_error"))


def _record_failure(store: Store, runs: list[Claimed], e: Exception) -> int:
    """Record what stopped these runs; returns the exit code."""
    message = str(e) if isinstance(e, PERMANENT) else f"{type(e).__name__}: {e}"
    if is_disk_full(e):  # not the runs' fault: they wait (queued) and resume once space is back
        for r in runs:
            try:
                store.release(r.key, r.attempt, f"disk full: {message}")
            except Exception:  # the store is on the full disk too: the supervisor tells it
                log.exception("could not record the full disk")
        return EXIT_RETRY
    retry = not isinstance(e, PERMANENT) and is_retryable(e)
    for r in runs:
        (store.note_failure if retry else store.fail)(r.key, r.attempt, message)
    return EXIT_RETRY if retry else 1


def main(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    keys, attempts = list(args.key), args.attempts
    if attempts is not None and len(attempts) != len(keys):
        print(f"{len(keys)} keys but {len(attempts)} attempts", file=sys.stderr)
        return 2
    if attempts is None:  # by hand: claim the queued runs and train them here, in the foreground
        pairs = []
        with Store(args.cache_dir) as store:
            for key in keys:
                attempt = store.claim(key, "local", "manual")
                if attempt is None:
                    rec = store.get(key)
                    print(f"run {key} is {'unknown' if rec is None else rec['status']}, not queued", file=sys.stderr)
                else:
                    pairs.append((key, attempt))
        if not pairs:
            return 1
        keys, attempts = [k for k, _ in pairs], [a for _, a in pairs]
    return run_worker(keys, args.cache_dir, attempts, device=args.device, progress=getattr(args, "progress", False))
