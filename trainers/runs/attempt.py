"""One attempt at K >= 1 claimed runs, trained in this process: the wiring that the local worker
(trainers/runs/worker.py) and the Ray task (backends/ray_task.py) share.

Each run has its own lease (a thread renews it and learns of a cancel request, or that a newer
attempt owns the run now), its own event sink and its own stop flag. The runs train through the
engine's `train` as one pack (a pack of one is a run); if their checkpoints cannot be packed, one
after the other. The engine is imported only once training starts: the caller has already sent
every run's first heartbeat, so the lease of a worker slowly importing torch has begun. No diskcache
and no torch at import: a Ray node needs nothing but the engine and ray.

Exceptions: `PERMANENT` faults are the run's own (bad config, data, checkpoint): never retried.
`is_retryable` ones (CUDA errors, out of memory) are the machine's: the run is restarted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainers.core.atomic import StaleWriter
from trainers.core.config import RunConfig
from trainers.core.errors import PackingError, RunError
from trainers.core.records import Event, Result

log = logging.getLogger("trainers.worker")

# Faults of the run itself, not of the machine (ConfigError, DataError, CheckpointError):
# retrying cannot help, the message says why.
PERMANENT = (RunError,)


def is_retryable(e: BaseException) -> bool:
    text = str(e)
    return type(e).__name__ == "OutOfMemoryError" or "CUDA" in text or "out of memory" in text


class Lease:
    """Renews one run's lease every `interval` s from a background thread. `renew()` returns
    (the attempt still owns the run, a cancel was requested); both answers stick."""

    def __init__(self, renew: Callable[[], tuple[bool, bool]], interval: float):
        self.renew, self.interval = renew, interval
        self.cancel = False  # a cancel was requested
        self.lost = False  # the record belongs to another attempt now, or is gone
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> Lease:
        self._thread.start()
        return self

    def beat(self) -> None:
        try:
            ok, cancel = self.renew()
        except Exception:  # a busy database, a slow actor: the next beat will do
            log.exception("heartbeat failed")
            return
        self.lost = self.lost or not ok
        self.cancel = self.cancel or cancel

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Claimed:
    """One claimed run of the attempt: where its events go (`write` returns False when they are
    refused: a stale attempt) and its lease."""

    key: str
    attempt: int
    cfg: RunConfig
    write: Callable[[Event], bool]
    lease: Lease
    settled: bool = False  # its outcome was handed to `settle`


def train_claimed(
    runs: list[Claimed],
    settle: Callable[[Claimed, Result], None],
    *,
    device: str,
    cache_dir: str | Path,
    checkpoint_every_s: float,
    terminated: threading.Event | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> None:
    """Train the runs (they differ only in their seed) as one pack; `settle(run, result)` as each
    ends, at its end event, so a run cancelled out of a pack is settled at once. A run stops at its
    next log interval, checkpointed, when it is cancelled, lost, or `terminated` is set (SIGTERM).

    Raises StaleWriter, once the others have ended, if a run's folder was fenced off (a newer
    attempt owns it: nobody settles it); any other exception of the engine as it comes, for the
    caller to record on the runs not settled yet."""

    def on_event_for(run: Claimed) -> Callable[[Event], None]:
        def on_event(ev: Event) -> None:
            if not run.write(ev):
                run.lease.lost = True
            if ev["type"] == "end":
                done(run, ev["result"])

        return on_event

    def should_stop_for(run: Claimed) -> Callable[[], bool]:
        return lambda: run.lease.cancel or run.lease.lost or (terminated is not None and terminated.is_set())

    def done(run: Claimed, result: Result) -> None:
        if not run.settled:
            run.settled = True
            settle(run, result)

    import torch  # the engine only now: the first heartbeats are out

    from trainers.engine.train import train

    if threads:
        torch.set_num_threads(threads)
    log.info(
        "attempts %s of %s (%s, seeds %s) on %s",
        [r.attempt for r in runs],
        [r.key for r in runs],
        runs[0].cfg.label(),
        [r.cfg.seed for r in runs],
        device,
    )
    try:
        results = train(
            [r.cfg for r in runs],
            on_event=[on_event_for(r) for r in runs],
            should_stop=[should_stop_for(r) for r in runs],
            device=device,
            cache_dir=cache_dir,
            checkpoint_every_s=checkpoint_every_s,
            progress=progress,
        )
    except PackingError as e:  # e.g. checkpoints at different iterations after a crash
        log.warning("cannot train %s packed (%s); one after the other instead", [r.key for r in runs], e)
        stale: StaleWriter | None = None
        for r in runs:
            try:
                done(
                    r,
                    train(
                        r.cfg,
                        on_event=on_event_for(r),
                        should_stop=should_stop_for(r),
                        device=device,
                        cache_dir=cache_dir,
                        checkpoint_every_s=checkpoint_every_s,
                        progress=progress,
                    ),
                )
            except StaleWriter as s:  # that run is someone else's now; the others go on
                stale = stale or s
        if stale is not None:
            raise stale from None
        return
    for r, result in zip(runs, results):
        done(r, result)  # normally done by its end event already
