"""What runs on a Ray worker: one attempt at a run, wired as the local worker wires it
(trainers/runs/attempt.py: lease, events, stop flag, the engine's `train`), with a relay instead of
the store.

A remote task cannot write to the app host's disk, so every event goes to a small Relay actor
that the supervisor drains into the store. Imports only the core, the engine and ray (no
diskcache), so a cluster node needs nothing beyond torch, torchvision and ray.
"""

from __future__ import annotations

import os
import time
from typing import Any

import ray

from trainers.core.records import Event, HeartbeatEvent, Result


@ray.remote(num_cpus=0)
class Relay:
    """Event mailbox and cancel flags, shared by the supervisor and its remote runs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, dict]] = []
        self.cancelled: set[tuple[str, int]] = set()

    def put(self, key: str, attempt: int, events: list[dict]) -> None:
        self.events.extend((key, attempt, ev) for ev in events)

    def drain(self) -> list[tuple[str, int, dict]]:
        out, self.events = self.events, []
        return out

    def cancel(self, key: str, attempt: int) -> None:
        self.cancelled.add((key, attempt))

    def should_stop(self, key: str, attempt: int) -> bool:
        return (key, attempt) in self.cancelled

    def forget(self, key: str, attempt: int) -> None:
        self.cancelled.discard((key, attempt))


def train_remote(
    config: dict[str, Any],
    key: str,
    attempt: int,
    relay: Any,
    cache_dir: str,
    heartbeat_s: float,
    checkpoint_every_s: float,
) -> Result:
    """Train one run on this node; datasets and checkpoints live in the node's own `cache_dir`."""
    from trainers.core.config import RunConfig
    from trainers.runs.attempt import Claimed, Lease, train_claimed

    last: list[Any] = [None]  # the last call to the relay

    def write(ev: Event | HeartbeatEvent) -> bool:
        last[0] = relay.put.remote(key, attempt, [ev])
        return True  # the store fences stale attempts when the supervisor drains the relay

    def renew() -> tuple[bool, bool]:  # the lease, relayed; and the cancel flag, learned
        write(HeartbeatEvent(type="heartbeat", time=time.time()))
        try:
            return True, bool(ray.get(relay.should_stop.remote(key, attempt), timeout=max(heartbeat_s, 5.0)))
        except Exception:  # a slow actor: ask again next beat
            return True, False

    lease = Lease(renew, heartbeat_s)
    lease.beat()  # before the engine's import: importing torch takes a while
    run = Claimed(key, attempt, RunConfig.from_dict(config), write, lease.start())
    results: list[Result] = []
    try:
        train_claimed(
            [run],
            lambda _, result: results.append(result),
            device="auto",
            cache_dir=os.path.expanduser(cache_dir),
            checkpoint_every_s=checkpoint_every_s,
        )
    finally:
        lease.stop()
        # Calls from one caller to an actor run in order: once the last one is done, the relay
        # holds every event, so the supervisor drains the whole curve before it stores the result.
        ray.get(last[0])
    return results[0]
