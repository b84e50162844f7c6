"""The results store: dedupe, attempt fencing, no eviction, JSON only, private, durable settings."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainers.core.config import RunConfig
from trainers.runs.store import CURVE_CHUNK, Store

ROOT = Path(__file__).resolve().parents[1]
CFG = RunConfig(depth=8, dataset="synthetic", iterations=40, train_size=256, test_size=128)


def _create(store: Store, cfg: RunConfig = CFG):
    return store.create(cfg.to_dict(), cfg.label(), cfg.key)


def _result(cfg: RunConfig, status: str = "done", test_error: float = 12.5) -> dict:
    return {
        "key": cfg.key,
        "status": status,
        "test_error": test_error,
        "iterations": cfg.iterations,
        "config": cfg.to_dict(),
        "provenance": {"device": "cpu"},
    }


def test_create_dedupes_and_requeues_only_errors_and_cancels(cache_dir):
    store = Store(cache_dir)
    rec, created = _create(store)
    assert created and rec["status"] == "queued" and rec["attempt"] == 0
    again, created = _create(store)
    assert not created and again["created_at"] == rec["created_at"]
    assert [r["key"] for r in store.active()] == [CFG.key]

    attempt = store.claim(CFG.key, "local", "cpu0")
    assert store.finish(CFG.key, attempt, _result(CFG))
    done, created = _create(store)
    assert not created and done["status"] == "done" and store.active() == []

    other = CFG.replace(seed=1)
    _create(store, other)
    assert store.request_cancel(other.key)["status"] == "cancelled"
    requeued, created = _create(store, other)
    assert created and requeued["status"] == "queued"


@pytest.mark.slow
def test_simultaneous_creates_from_many_processes_make_one_record(cache_dir):
    script = (
        "import sys, time, json\n"
        "from trainers.core.config import RunConfig\n"
        "from trainers.runs.store import Store\n"
        f"cfg = RunConfig.from_json({CFG.canonical_json()!r})\n"
        "store = Store(sys.argv[1])\n"
        "t0 = float(sys.argv[2])\n"
        "while time.time() < t0: pass\n"
        "rec, created = store.create(cfg.to_dict(), cfg.label(), cfg.key)\n"
        "print(json.dumps({'created': created, 'created_at': rec['created_at']}))\n"
    )
    start = time.time() + 4.0  # every process imported and waiting when the moment comes
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(cache_dir), str(start)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(5)
    ]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sum(o["created"] for o in outs) == 1
    assert len({o["created_at"] for o in outs}) == 1
    assert len(Store(cache_dir).list_runs()) == 1


def test_stale_attempts_are_ignored(cache_dir):
    store = Store(cache_dir)
    _create(store)
    a1 = store.claim(CFG.key, "local", "cpu0")
    assert store.apply_event(CFG.key, a1, {"type": "metrics", "iteration": 5, "train_loss": 2.0})
    assert store.worker_lost(CFG.key, a1, "killed", max_restarts=3) == "queued"
    # the zombie of attempt 1 keeps writing while the run waits for a slot: dropped
    assert not store.apply_event(CFG.key, a1, {"type": "metrics", "iteration": 10, "train_loss": 9.0})
    a2 = store.claim(CFG.key, "local", "cpu0")
    assert a2 == a1 + 1
    assert not store.heartbeat(CFG.key, a1)["ok"]
    assert not store.finish(CFG.key, a1, _result(CFG, test_error=99.0))
    assert store.finish(CFG.key, a2, _result(CFG, test_error=12.5))
    assert not store.finish(CFG.key, a2, _result(CFG, test_error=50.0))  # written once
    rec = store.get(CFG.key)
    assert rec["status"] == "done" and rec["result"]["test_error"] == 12.5 and rec["attempt"] == 2
    assert [p["iteration"] for p in store.curve(CFG.key)] == [5]


def test_restarts_are_bounded(cache_dir):
    store = Store(cache_dir)
    _create(store)
    statuses = []
    for _ in range(3):
        a = store.claim(CFG.key, "local", "cpu0")
        store.note_failure(CFG.key, a, "CUDA error: out of memory")
        statuses.append(store.worker_lost(CFG.key, a, "worker exited (code 75)", max_restarts=2))
    assert statuses == ["queued", "queued", "error"]
    rec = store.get(CFG.key)
    assert "3 times" in rec["error"] and "out of memory" in rec["error"]
    assert store.active() == []


def test_resumed_start_drops_replayed_points(cache_dir):
    store = Store(cache_dir)
    _create(store)
    a1 = store.claim(CFG.key, "local", "cpu0")
    n = CURVE_CHUNK + 10  # crosses a chunk boundary
    for i in range(1, n + 1):
        store.apply_event(CFG.key, a1, {"type": "metrics", "iteration": i, "train_loss": 1.0})
    store.worker_lost(CFG.key, a1, "killed", max_restarts=3)
    a2 = store.claim(CFG.key, "local", "cpu0")
    store.apply_event(CFG.key, a2, {"type": "start", "iteration": 100, "total": 400, "resumed": True})
    assert [p["iteration"] for p in store.curve(CFG.key)] == list(range(1, 101))
    store.apply_event(CFG.key, a2, {"type": "eval", "iteration": 101, "test_error": 30.0})
    rec = store.get(CFG.key)
    assert rec["curve_len"] == 101 and rec["test_error"] == 30.0 and rec["resumed_at"] == 100
    assert rec["progress"] == pytest.approx(101 / 400)


@pytest.mark.slow
def test_nothing_is_evicted_past_the_size_limit(cache_dir):
    store = Store(cache_dir, size_limit=4096)  # diskcache would evict past this with its default policy
    keys = []
    for seed in range(20):
        cfg = CFG.replace(seed=seed)
        _create(store, cfg)
        a = store.claim(cfg.key, "local", "cpu0")
        for i in range(80):
            store.apply_event(
                cfg.key,
                a,
                {"type": "metrics", "iteration": i, "train_loss": 1.0 / (i + 1), "note": os.urandom(48).hex()},
            )
        store.finish(cfg.key, a, _result(cfg, test_error=float(seed)))
        keys.append(cfg.key)
    assert store._cache.volume() > 10 * 4096
    store.close()
    reopened = Store(cache_dir)
    for seed, key in enumerate(keys):
        assert reopened.get(key)["result"]["test_error"] == seed
        assert len(reopened.curve(key)) == 80


def test_store_is_private_json_and_refuses_pickle(cache_dir, tmp_path):
    store = Store(cache_dir)
    _create(store)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o700
    settings = dict(sqlite3.connect(store.path / "cache.db").execute("SELECT key, value FROM Settings"))
    assert settings["eviction_policy"] == "none" and settings["sqlite_synchronous"] == 2
    store.close()

    # A tampered row that would unpickle (and so run code) is refused, and the code never runs.
    marker = tmp_path / "pwned"
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    db = sqlite3.connect(store.path / "cache.db")
    db.execute("UPDATE Cache SET mode = 4, value = ? WHERE key = ?", (payload, f"run:{CFG.key}"))
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="refusing"):
        Store(cache_dir).get(CFG.key)
    assert not marker.exists()
