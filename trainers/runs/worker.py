"""One worker process = one attempt at one run: `python -m trainers worker KEY --attempt N`.

The supervisor claims the run (attempt N), then starts this process in its own session with
CUDA_VISIBLE_DEVICES set. The worker trains through the engine's `train()`, writing every event to
the store with its attempt number, and renews its lease from a background thread. If the record
moves on to another attempt (this worker was presumed dead), every write is dropped by the store
and the worker stops at its next poll.

Exit codes: 0 = a final state was written (or the run was no longer ours), 1 = error written,
75 = a retryable fault (CUDA error, out of memory): the supervisor restarts the run.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from .settings import load_settings
from .store import Store, hostname

log = logging.getLogger("trainers.worker")

EXIT_RETRY = 75  # EX_TEMPFAIL
# Faults of the run itself, not of the machine: retrying cannot help, the message says why.
PERMANENT = ("ConfigError", "DataError", "CheckpointError")


def is_retryable(e: BaseException) -> bool:
    text = str(e)
    return type(e).__name__ == "OutOfMemoryError" or "CUDA" in text or "out of memory" in text


class Lease:
    """Renews the run's heartbeat every `interval` s and learns of cancel requests."""

    def __init__(self, store: Store, key: str, attempt: int, interval: float):
        self.store, self.key, self.attempt, self.interval = store, key, attempt, interval
        self.cancel = False  # a cancel was requested
        self.lost = False  # the record belongs to another attempt now, or is gone
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> "Lease":
        self._thread.start()
        return self

    def beat(self) -> None:
        try:
            state = self.store.heartbeat(self.key, self.attempt)
        except Exception:  # a busy database: the next beat will do
            log.exception("heartbeat failed")
            return
        self.lost = self.lost or not state["ok"]
        self.cancel = self.cancel or state["cancel"]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_worker(key: str, cache_dir: str | Path, attempt: int, device: str = "auto") -> int:
    settings = load_settings(cache_dir)
    store = Store(cache_dir)
    rec = store.get(key)
    if rec is None or rec["status"] != "running" or rec["attempt"] != attempt:
        log.warning("run %s attempt %s is not ours to run (record: %s)", key, attempt,
                    None if rec is None else (rec["status"], rec["attempt"]))
        return 0
    from trainers.config import RunConfig  # the engine only now: an idle import stays light

    try:
        cfg = RunConfig.from_dict(rec["config"])
    except Exception as e:
        store.fail(key, attempt, f"invalid config: {e}")
        return 1
    store.set_worker(key, attempt, pid=os.getpid(), host=hostname())
    lease = Lease(store, key, attempt, settings.heartbeat_s)
    lease.beat()
    lease.start()

    terminated = threading.Event()  # SIGTERM: stop at the next poll, checkpointed
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())

    def on_event(ev: dict) -> None:
        if not store.apply_event(key, attempt, ev):
            lease.lost = True

    def should_stop() -> bool:
        return lease.cancel or lease.lost or terminated.is_set()

    try:
        import torch

        from trainers.train import train

        if device == "cpu":  # oversubscribed cores make every job slower, not faster
            torch.set_num_threads(settings.cpu_threads or max(1, (os.cpu_count() or 1) // max(1, settings.cpu_jobs)))

        log.info("attempt %d of %s (%s) on %s", attempt, key, cfg.label(), device)
        result = train(cfg, device=device, cache_dir=store.cache_dir, on_event=on_event, resume=True,
                       checkpoint_every_s=settings.checkpoint_every_s, should_stop=should_stop)
    except Exception as e:
        log.error("run %s attempt %d failed:\n%s", key, attempt, traceback.format_exc())
        message = str(e) if type(e).__name__ in PERMANENT else f"{type(e).__name__}: {e}"
        if type(e).__name__ not in PERMANENT and is_retryable(e):
            store.note_failure(key, attempt, message)
            return EXIT_RETRY
        store.fail(key, attempt, message)
        return 1
    finally:
        lease.stop()

    if result["status"] == "cancelled" and not lease.cancel:
        if lease.lost:
            log.warning("run %s attempt %d was superseded; stopped", key, attempt)
            return 0
        # Stopped by SIGTERM (a shutdown, not the user): queue it again, it resumes later.
        store.release(key, attempt, "worker was stopped by SIGTERM")
        return 0
    if not store.finish(key, attempt, result):
        log.warning("run %s attempt %d: result dropped, the run moved on", key, attempt)
    log.info("run %s attempt %d ended: %s, test error %s", key, attempt, result["status"],
             result.get("test_error"))
    return 0


def main(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    attempt = args.attempt
    if attempt is None:  # by hand: claim the queued run and train it here, in the foreground
        with Store(args.cache_dir) as store:
            attempt = store.claim(args.key, "local", "manual")
            if attempt is None:
                rec = store.get(args.key)
                print(f"run {args.key} is {'unknown' if rec is None else rec['status']}, not queued",
                      file=sys.stderr)
                return 1
    return run_worker(args.key, args.cache_dir, attempt, device=args.device)
