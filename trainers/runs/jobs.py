"""Submitting and cancelling runs: the whole API the UI and the CLI need to start work."""

from __future__ import annotations

from pathlib import Path

from trainers.core.config import ConfigError, RunConfig
from trainers.core.records import RunRecord

from .store import Store
from .supervisor import ensure_supervisor

BACKENDS = ("local", "ray")


def submit(
    cfg: RunConfig, cache_dir: str | Path = "cache", backend: str = "local", *, start_supervisor: bool = True
) -> RunRecord:
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


def cancel(key: str, cache_dir: str | Path = "cache") -> RunRecord | None:
    """Cancel a run: a queued one at once, a running one within a few seconds (it checkpoints, so
    submitting it again resumes it). Returns the record, or None for an unknown key."""
    with Store(cache_dir) as store:
        rec = store.request_cancel(key)
    if rec is not None and rec["status"] == "running":
        ensure_supervisor(cache_dir)  # someone must enforce the cancel if the worker is stuck
    return rec


def train_here(
    cfg: RunConfig,
    cache_dir: str | Path = "cache",
    device: str = "auto",
    *,
    threads: int | None = None,
    checkpoint_every_s: float | None = None,
    poll_s: float = 2.0,
    out=None,
) -> RunRecord | None:
    """`python -m trainers train`: the run goes through the store like any submit (so it shows in
    `status` and the app, and two of them at once train it once), then is trained here, in the
    foreground, by a worker process (lease, attempt fence, restart by the supervisor if it dies).

    A run already queued or running elsewhere is followed until it ends instead; a finished one is
    answered from the store. Ctrl-C cancels the run (checkpointed: training it again resumes it).
    Returns the final record."""
    import subprocess
    import sys
    import time

    from .backends.local import child_env
    from .store import FINAL
    from .supervisor import ensure_supervisor

    out = out or sys.stderr
    with Store(cache_dir) as store:
        created, _ = store.create(cfg.to_dict(), cfg.label(), cfg.key, "local")
        attempt = store.claim(cfg.key, "local", "cli", lease_starts=False) if created["status"] == "queued" else None
        cache = store.cache_dir
    if attempt is not None:
        env = {}
        if threads:
            env["TRAINERS_CPU_THREADS"] = str(threads)
        if checkpoint_every_s is not None:
            env["TRAINERS_CHECKPOINT_EVERY_S"] = str(checkpoint_every_s)
        # Its own session: Ctrl-C reaches only us, and we stop it through the store, checkpointed.
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainers.runs",
                "worker",
                cfg.key,
                "--cache-dir",
                str(cache),
                "--attempt",
                str(attempt),
                "--device",
                device,
                "--progress",
            ],
            stdin=subprocess.DEVNULL,
            env=child_env(env),
            start_new_session=True,
        )
        with Store(cache) as store:
            store.set_worker(cfg.key, attempt, pid=proc.pid, host=__import__("socket").gethostname())
        while True:
            try:
                proc.wait()
                break
            except KeyboardInterrupt:
                print("\ncancelling (it checkpoints first; train it again to resume)", file=out, flush=True)
                cancel(cfg.key, cache)
        with Store(cache) as store:
            rec = store.get(cfg.key)
        if rec is not None and rec["status"] in FINAL:
            return rec
    # Someone else trains it (another `train`, the supervisor): follow it to the end.
    last = None
    try:
        while True:
            with Store(cache, readonly=True) as store:
                rec = store.get(cfg.key)
            if rec is None or rec["status"] in FINAL:
                return rec
            line = (
                f"run {cfg.key} is {rec['status']} elsewhere (pid {rec.get('pid')}): "
                f"{100 * (rec.get('progress') or 0):.0f}%; waiting for it"
            )
            if line != last:
                print(line, file=out, flush=True)
                last = line
            ensure_supervisor(cache, only_if_needed=True)  # if that worker died, it is restarted
            time.sleep(poll_s)
    except KeyboardInterrupt:
        print("\nstopped waiting; the run goes on: python -m trainers status", file=out)
        with Store(cache, readonly=True) as store:
            return store.get(cfg.key)
