"""What runs on a Ray worker: the engine's `train()` plus a relay of its events to the app host.

A remote task cannot write to the app host's disk, so every event goes to a small Relay actor
that the supervisor drains into the store. Imports only the engine and ray (no diskcache), so a
cluster node needs nothing beyond torch, torchvision and ray.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import ray


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


def train_remote(config: dict[str, Any], key: str, attempt: int, relay, cache_dir: str,
                 heartbeat_s: float, checkpoint_every_s: float) -> dict[str, Any]:
    """Train one run on this node; datasets and checkpoints live in the node's own `cache_dir`."""
    from trainers.core.config import RunConfig

    cfg = RunConfig.from_dict(config)
    cache_dir = os.path.expanduser(cache_dir)
    stop = threading.Event()
    done = threading.Event()

    def beat() -> None:  # the lease, relayed; and the cancel flag, learned
        while not done.wait(heartbeat_s):
            relay.put.remote(key, attempt, [{"type": "heartbeat", "time": time.time()}])
            try:
                if ray.get(relay.should_stop.remote(key, attempt), timeout=max(heartbeat_s, 5.0)):
                    stop.set()
            except Exception:  # a slow actor: ask again next beat
                pass

    last = [relay.put.remote(key, attempt, [{"type": "heartbeat", "time": time.time()}])]
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()

    def on_event(ev: dict) -> None:
        last[0] = relay.put.remote(key, attempt, [ev])

    try:
        from trainers.engine.train import train  # after the first heartbeat: importing torch takes a while

        result = train(cfg, device="auto", cache_dir=cache_dir, on_event=on_event, resume=True,
                       checkpoint_every_s=checkpoint_every_s, should_stop=stop.is_set)
    finally:
        done.set()
        # Calls from one caller to an actor run in order: once the last one is done, the relay
        # holds every event, so the supervisor drains the whole curve before it stores the result.
        ray.get(last[0])
    return result
