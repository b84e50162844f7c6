"""Ray backend: the same runs, trained on an existing Ray cluster; Ray schedules the GPUs.

The supervisor connects as a Ray driver (address from settings, else RAY_ADDRESS, else "auto"),
ships this checkout's `trainers` package (runtime_env py_modules) and submits one task per run.
Each task relays its events through a Relay actor; every tick the supervisor drains the relay
into the store (the events carry their attempt number, so the store's fencing applies), and
stores the task's result when it returns. Cancel: the relay's flag (the run checkpoints and
stops), then `ray.cancel(force=True)` after the grace period.

Limits, stated: a restarted run resumes from its checkpoint only if Ray places it on the node
that holds it (checkpoints stay on the node's disk); the tasks belong to the supervisor's driver,
so if the supervisor dies Ray stops them and the next supervisor restarts them (lease expiry).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from trainers.core.records import RunRecord

from ..attempt import PERMANENT, is_retryable
from ..settings import Settings
from ..store import Store, now

log = logging.getLogger("trainers.supervisor")

NAMESPACE = "resnet-v2-explorer"


def _token_auth_from_file() -> None:
    """Clusters started with token auth (Ray's default for `ray.init()` since 2.5x) expect drivers
    to send ~/.ray/auth_token, but a driver that only connects does not switch token mode on by
    itself. Do it when a token is there, before ray is imported (it reads the mode at import);
    an explicit RAY_AUTH_MODE wins."""
    if "RAY_AUTH_MODE" not in os.environ and (
        os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").exists()
    ):
        os.environ["RAY_AUTH_MODE"] = "token"


class RayBackend:
    name = "ray"

    def __init__(self, store: Store, settings: Settings):
        _token_auth_from_file()
        import ray

        from .ray_task import Relay, train_remote

        self.ray, self.store, self.settings = ray, store, settings
        address = settings.ray_address or "auto"
        runtime_env = {}
        if settings.ray_ship_code:
            import trainers

            runtime_env["py_modules"] = [str(Path(trainers.__file__).parent)]
        if not ray.is_initialized():
            ray.init(
                address=address,
                namespace=NAMESPACE,
                runtime_env=runtime_env or None,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        # one relay per cache directory, named so a restarted supervisor finds the same one
        tag = hashlib.sha256(str(store.cache_dir).encode()).hexdigest()[:12]
        relay = Relay.options(name=f"relay-{tag}", lifetime="detached", get_if_exists=True).remote()  # type: ignore[attr-defined]  # @ray.remote adds it
        self.relay = relay
        gpus = settings.ray_gpus_per_run
        if gpus < 0:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        self.task = ray.remote(train_remote).options(
            num_gpus=gpus, num_cpus=settings.ray_cpus_per_run, max_retries=0
        )  # we restart, not Ray
        self.refs: dict = {}  # ObjectRef -> (key, attempt)
        self._killed: set[tuple[str, int]] = set()
        log.info("ray backend: cluster %s, %s GPU per run", address, gpus)

    def busy(self) -> bool:
        return bool(self.refs)

    def start_queued(self, rec: RunRecord) -> None:
        # The lease starts with the first relayed heartbeat: a task waiting for a free GPU in
        # Ray's queue is not dead.
        attempt = self.store.claim(rec["key"], self.name, "ray", lease_starts=False)
        if attempt is None:
            return
        s = self.settings
        ref = self.task.remote(
            rec["config"], rec["key"], attempt, self.relay, s.ray_cache_dir, s.heartbeat_s, s.checkpoint_every_s
        )
        self.refs[ref] = (rec["key"], attempt)
        self.store.set_worker(rec["key"], attempt, device="ray (waiting for resources)")
        log.info("submitted %s attempt %d to ray", rec["key"], attempt)

    def drain(self) -> None:
        for key, attempt, ev in self.ray.get(self.relay.drain.remote()):
            if ev.get("type") == "heartbeat":
                self.store.heartbeat(key, attempt)
            elif ev.get("type") != "end":  # the result comes with the task's return value
                self.store.apply_event(key, attempt, ev)

    def poll(self, running: list[RunRecord]) -> None:
        ray = self.ray
        self.drain()
        if self.refs:
            ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
            if ready:
                self.drain()  # every event of a finished task is in the relay by now
            for ref in ready:
                self._finished(ref, *self.refs.pop(ref))
        mine = set(self.refs.values())
        for rec in running:
            ident = (rec["key"], rec["attempt"])
            if ident not in mine:
                # A task of an earlier supervisor: Ray stopped it with its driver. Its lease runs
                # out (or never started) and the run is restarted.
                hb = rec.get("heartbeat_at") or rec.get("started_at") or now()
                if now() - hb > self.settings.lease_s:
                    self.store.worker_lost(
                        *ident, "the Ray task was lost with its supervisor", self.settings.max_restarts
                    )
            elif rec.get("cancel_requested"):
                self._enforce_cancel(rec)

    def _finished(self, ref, key: str, attempt: int) -> None:
        ray = self.ray
        try:
            result = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            self.store.mark_cancelled(key, attempt)
            return
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None) or e
            name = type(cause).__name__
            message = str(cause) if isinstance(cause, PERMANENT) else f"{name}: {cause}"
            if not isinstance(cause, PERMANENT) and is_retryable(cause):
                self.store.note_failure(key, attempt, message)
                self.store.worker_lost(key, attempt, "a retryable fault on the Ray worker", self.settings.max_restarts)
            elif (key, attempt) in self._killed:
                self.store.mark_cancelled(key, attempt)
            else:
                self.store.fail(key, attempt, message)
            return
        except Exception as e:  # worker crashed, node died, object lost: restart it
            if (key, attempt) in self._killed:
                self.store.mark_cancelled(key, attempt)
            else:
                self.store.worker_lost(key, attempt, f"Ray: {type(e).__name__}: {e}", self.settings.max_restarts)
            return
        finally:
            self.relay.forget.remote(key, attempt)
        rec = self.store.get(key)
        if result["status"] == "cancelled" and rec is not None and not rec.get("cancel_requested"):
            self.store.release(key, attempt, "the Ray task was stopped")
        else:
            self.store.finish(key, attempt, result)

    def _enforce_cancel(self, rec: RunRecord) -> None:
        ident = (rec["key"], rec["attempt"])
        self.relay.cancel.remote(*ident)
        waited = now() - (rec["cancel_requested_at"] or now())
        if waited > self.settings.cancel_grace_s and ident not in self._killed:
            for ref, who in self.refs.items():
                if who == ident:
                    self.ray.cancel(ref, force=True)
                    self._killed.add(ident)
                    log.info("cancel %s: ray.cancel(force=True)", rec["key"])

    def close(self, idle: bool) -> None:
        try:
            if idle and not self.refs:
                self.ray.kill(self.relay)  # the detached relay would otherwise outlive us
            self.ray.shutdown()
        except Exception:
            log.exception("ray shutdown")
