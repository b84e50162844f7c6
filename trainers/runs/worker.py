"""One worker process = one attempt at one run: `python -m trainers worker KEY --attempt N`,
or at several runs that differ only in their seed, trained as one packed network:
`python -m trainers worker KEY1 KEY2 ... --attempts N1 N2 ...` (`run_pack_worker`).

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

from trainers.core.errors import RunError
from trainers.core.records import Event
from trainers.core.atomic import StaleWriter, clean_orphan_temps, set_fence

from .settings import load_settings
from .store import Store, hostname, is_disk_full, make_private

log = logging.getLogger("trainers.worker")

EXIT_RETRY = 75  # EX_TEMPFAIL
# Faults of the run itself, not of the machine (ConfigError, DataError, CheckpointError):
# retrying cannot help, the message says why.
PERMANENT = (RunError,)


def is_retryable(e: BaseException) -> bool:
    text = str(e)
    return type(e).__name__ == "OutOfMemoryError" or "CUDA" in text or "out of memory" in text


def fence_run(store: Store, key: str, attempt: int) -> None:
    """Fence every file write into the run's folder (checkpoint, result) by this attempt: a stale
    worker, resumed after a newer attempt took over or the run finished, writes nothing."""
    folder = store.run_dir(key)
    set_fence(folder, lambda: store.owns(key, attempt))
    if folder.is_dir():
        make_private(folder, 0o700)
        clean_orphan_temps(folder)  # left by a killed attempt


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


def run_worker(key: str, cache_dir: str | Path, attempt: int, device: str = "auto", progress: bool = False) -> int:
    settings = load_settings(cache_dir)
    store = Store(cache_dir)
    rec = store.get(key)
    if rec is None or rec["status"] != "running" or rec["attempt"] != attempt:
        log.warning("run %s attempt %s is not ours to run (record: %s)", key, attempt,
                    None if rec is None else (rec["status"], rec["attempt"]))
        return 0
    from trainers.core.config import RunConfig  # the engine only now: an idle import stays light

    try:
        cfg = RunConfig.from_dict(rec["config"])
    except Exception as e:
        store.fail(key, attempt, f"invalid config: {e}")
        return 1
    store.set_worker(key, attempt, pid=os.getpid(), host=hostname())
    lease = Lease(store, key, attempt, settings.heartbeat_s)
    lease.beat()
    lease.start()
    fence_run(store, key, attempt)

    terminated = threading.Event()  # SIGTERM: stop at the next poll, checkpointed
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())

    def on_event(ev: Event) -> None:
        if not store.apply_event(key, attempt, ev):
            lease.lost = True

    def should_stop() -> bool:
        return lease.cancel or lease.lost or terminated.is_set()

    try:
        import torch

        from trainers.engine.train import train

        if device == "cpu":  # oversubscribed cores make every job slower, not faster
            torch.set_num_threads(settings.cpu_threads or max(1, (os.cpu_count() or 1) // max(1, settings.cpu_jobs)))

        log.info("attempt %d of %s (%s) on %s", attempt, key, cfg.label(), device)
        result = train(cfg, device=device, cache_dir=store.cache_dir, on_event=on_event, resume=True,
                       checkpoint_every_s=settings.checkpoint_every_s, should_stop=should_stop,
                       progress=progress)
    except StaleWriter as e:
        log.warning("run %s attempt %d was superseded; stopped (%s)", key, attempt, e)
        return 0
    except Exception as e:
        log.error("run %s attempt %d failed:\n%s", key, attempt, traceback.format_exc())
        message = str(e) if isinstance(e, PERMANENT) else f"{type(e).__name__}: {e}"
        if is_disk_full(e):  # not the run's fault: it waits (queued) and resumes once space is back
            try:
                store.release(key, attempt, f"disk full: {message}")
            except Exception:  # the store is on the full disk too: the supervisor tells it
                log.exception("could not record the full disk")
            return EXIT_RETRY
        if not isinstance(e, PERMANENT) and is_retryable(e):
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


def run_pack_worker(keys: list[str], cache_dir: str | Path, attempts: list[int], device: str = "auto") -> int:
    """Several claimed runs that differ only in their seed, trained as one packed network
    (`trainers.engine.packing.train_packed`). Each key keeps its own lease, events, cancel and result; a
    run that is cancelled leaves the pack at its next log interval and the others go on. If the
    runs cannot be packed after all (e.g. checkpoints at different iterations after a crash), they
    are trained one after the other, in this process."""
    settings = load_settings(cache_dir)
    store = Store(cache_dir)
    from trainers.core.config import RunConfig

    ours: list[tuple[str, int, RunConfig]] = []
    for key, attempt in zip(keys, attempts):
        rec = store.get(key)
        if rec is None or rec["status"] != "running" or rec["attempt"] != attempt:
            log.warning("run %s attempt %s is not ours to run (record: %s)", key, attempt,
                        None if rec is None else (rec["status"], rec["attempt"]))
            continue
        try:
            ours.append((key, attempt, RunConfig.from_dict(rec["config"])))
        except Exception as e:
            store.fail(key, attempt, f"invalid config: {e}")
    if len(ours) <= 1:
        code = 0
        for key, attempt, _ in ours:
            code = run_worker(key, cache_dir, attempt, device=device)
        return code

    keys = [k for k, _, _ in ours]
    leases = []
    for key, attempt, _ in ours:
        store.set_worker(key, attempt, pid=os.getpid(), host=hostname(), packed_with=keys)
        lease = Lease(store, key, attempt, settings.heartbeat_s)
        lease.beat()
        leases.append(lease.start())
        fence_run(store, key, attempt)

    terminated = threading.Event()  # SIGTERM: every run stops at the next poll, checkpointed
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    settled = [False] * len(ours)  # a final state was written (or the run was no longer ours)

    def settle(i: int, result: dict) -> None:
        """Write run i's outcome as soon as it leaves the pack, so a cancel ends at once."""
        if settled[i]:
            return
        settled[i] = True
        key, attempt, _ = ours[i]
        lease = leases[i]
        if result["status"] == "cancelled" and not lease.cancel:
            if lease.lost:
                log.warning("run %s attempt %d was superseded; stopped", key, attempt)
            else:  # stopped by SIGTERM (a shutdown, not the user): queue it again
                store.release(key, attempt, "worker was stopped by SIGTERM")
            return
        if not store.finish(key, attempt, result):
            log.warning("run %s attempt %d: result dropped, the run moved on", key, attempt)
        log.info("run %s attempt %d ended: %s, test error %s", key, attempt, result["status"],
                 result.get("test_error"))

    def on_event_for(i: int):
        key, attempt, _ = ours[i]

        def on_event(ev: Event) -> None:
            if not store.apply_event(key, attempt, ev):
                leases[i].lost = True
            if ev.get("type") == "end":
                settle(i, ev["result"])

        return on_event

    def should_stop_for(i: int):
        return lambda: leases[i].cancel or leases[i].lost or terminated.is_set()

    callbacks = [on_event_for(i) for i in range(len(ours))]
    stops = [should_stop_for(i) for i in range(len(ours))]
    cfgs = [c for _, _, c in ours]
    try:
        import torch

        from trainers.core.errors import PackingError
        from trainers.engine.packing import train_packed
        from trainers.engine.train import train

        if device == "cpu":
            torch.set_num_threads(settings.cpu_threads or max(1, (os.cpu_count() or 1) // max(1, settings.cpu_jobs)))
        log.info("attempts %s of %s (%s, seeds %s) packed on %s", [a for _, a, _ in ours], keys,
                 cfgs[0].label(), [c.seed for c in cfgs], device)
        common = dict(device=device, cache_dir=store.cache_dir, resume=True,
                      checkpoint_every_s=settings.checkpoint_every_s)
        try:
            results = train_packed(cfgs, on_event_per_run=callbacks, should_stop_per_run=stops, **common)
        except PackingError as e:
            log.warning("cannot train %s packed (%s); one after the other instead", keys, e)
            results = []
            for i, cfg in enumerate(cfgs):
                results.append(train(cfg, on_event=callbacks[i], should_stop=stops[i], **common))
                settle(i, results[-1])
        for i, result in enumerate(results):
            settle(i, result)  # normally done by its "end" event already
    except StaleWriter as e:
        log.warning("packed runs %s: one was superseded; stopped (%s)", keys, e)
        return 0
    except Exception as e:
        log.error("packed runs %s failed:\n%s", keys, traceback.format_exc())
        message = str(e) if isinstance(e, PERMANENT) else f"{type(e).__name__}: {e}"
        retry = not isinstance(e, PERMANENT) and is_retryable(e)
        for i, (key, attempt, _) in enumerate(ours):
            if not settled[i]:  # runs that already left the pack keep their result
                (store.note_failure if retry else store.fail)(key, attempt, message)
        return EXIT_RETRY if retry else 1
    finally:
        for lease in leases:
            lease.stop()
    return 0


def main(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    keys = list(args.key) if isinstance(args.key, (list, tuple)) else [args.key]
    attempts = getattr(args, "attempts", None)
    if attempts is None and args.attempt is not None:
        attempts = [args.attempt]
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
                    print(f"run {key} is {'unknown' if rec is None else rec['status']}, not queued",
                          file=sys.stderr)
                else:
                    pairs.append((key, attempt))
        if not pairs:
            return 1
        keys, attempts = [k for k, _ in pairs], [a for _, a in pairs]
    if len(keys) == 1:
        return run_worker(keys[0], args.cache_dir, attempts[0], device=args.device,
                          progress=getattr(args, "progress", False))
    return run_pack_worker(keys, args.cache_dir, attempts, device=args.device)
