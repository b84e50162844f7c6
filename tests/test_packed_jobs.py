"""Seed packing in the job system: queued runs that differ only in their seed, trained by one local
worker as one packed network (the engine's `train` given a list of configs).

On this CPU packing is slower, so `pack_seeds="auto"` packs nothing here; the end-to-end tests force
it with TRAINERS_PACK_SEEDS=always. Timings as in tests/test_jobs.py (short leases, tiny runs).
"""

from __future__ import annotations

import os
import signal

import pytest
from test_jobs import FAST, _stop_everything, finished, wait_for

from trainers.core.config import RunConfig
from trainers.runs import Store, cancel, ensure_supervisor, submit
from trainers.runs.settings import load_settings
from trainers.runs.supervisor import Supervisor


def tiny(**kw) -> RunConfig:
    base = dict(
        depth=8,
        dataset="synthetic",
        iterations=20,
        batch_size=32,
        train_size=512,
        test_size=256,
        log_every=5,
        eval_every=10,
        warmup_iterations=0,
    )
    return RunConfig(**{**base, **kw})


# --- which queued runs the supervisor packs (no process is started) --------------------------------


class Recorder:
    def __init__(self):
        self.calls = []

    def start(self, recs, attempts, slot):
        self.calls.append(([r["key"] for r in recs], list(attempts)))


def planned(cache_dir, configs, **settings) -> list:
    for c in configs:
        submit(c, cache_dir, start_supervisor=False)
    sup = Supervisor(cache_dir, load_settings(cache_dir, gpus="", cpu_jobs=1, **settings))
    rec = Recorder()
    sup.local.start = rec.start
    sup.tick()
    return rec.calls


def test_auto_packs_nothing_on_the_cpu(cache_dir):
    a, b = tiny(seed=1), tiny(seed=2)
    assert planned(cache_dir, [a, b], pack_seeds="auto") == [([a.key], [1])]
    assert Store(cache_dir).get(b.key)["status"] == "queued"  # waits for the one CPU slot


def test_auto_asks_should_pack_for_a_gpu_slot(cache_dir, monkeypatch):
    """On a GPU slot "auto" packs where `packing.should_pack` says faster (faked: no GPU here)."""
    import trainers.core.pack_rules as packing
    from trainers.runs.backends.local import Slot

    asked = []
    monkeypatch.setattr(packing, "should_pack", lambda device, cfgs: asked.append((device, len(cfgs))) or True)
    a, b = tiny(seed=1), tiny(seed=2)
    for c in (a, b):
        submit(c, cache_dir, start_supervisor=False)
    sup = Supervisor(cache_dir, load_settings(cache_dir, gpus="", pack_seeds="auto"))
    recs = sup.store.active()
    assert [r["key"] for r in sup.pack_group(recs[0], recs, Slot("gpu0", "0", "cuda"))] == [a.key, b.key]
    assert asked == [("cuda", 2)]


def test_never_packs_nothing(cache_dir):
    a, b = tiny(seed=1), tiny(seed=2)
    assert planned(cache_dir, [a, b], pack_seeds="never") == [([a.key], [1])]


def test_always_packs_seeds_of_one_family_only(cache_dir):
    a, b, c, other = tiny(seed=1), tiny(seed=2), tiny(seed=3), tiny(seed=4, depth=14)
    calls = planned(cache_dir, [a, other, b, c], pack_seeds="always", max_packs=2)
    assert calls == [([a.key, b.key], [1, 1])]  # max_packs; another depth is another family
    store = Store(cache_dir)
    assert [store.get(k)["status"] for k in (a.key, b.key, c.key, other.key)] == [
        "running",
        "running",
        "queued",
        "queued",
    ]


def test_dropout_shortcut_is_not_packed(cache_dir):
    a, b = tiny(seed=1, shortcut="dropout"), tiny(seed=2, shortcut="dropout")
    assert planned(cache_dir, [a, b], pack_seeds="always") == [([a.key], [1])]


# --- the real thing: one detached worker trains both seeds -----------------------------------------


@pytest.fixture
def packed_jobs(cache_dir, monkeypatch):
    for k, v in {**FAST, "TRAINERS_PACK_SEEDS": "always"}.items():
        monkeypatch.setenv(k, v)
    dirs = [cache_dir]
    yield dirs
    _stop_everything(dirs)


def _submit_together(cache_dir, configs) -> Store:
    for c in configs:  # queued before the supervisor's first tick, so it sees both
        submit(c, cache_dir, start_supervisor=False)
    assert ensure_supervisor(cache_dir)
    return Store(cache_dir)


def evals(store, key) -> list[int]:
    return [p["iteration"] for p in store.curve(key) if p["type"] == "eval"]


@pytest.mark.slow
def test_two_seeds_train_in_one_worker(packed_jobs, cache_dir):
    cfgs = [tiny(seed=1), tiny(seed=2)]
    keys = [c.key for c in cfgs]
    store = _submit_together(cache_dir, cfgs)
    recs = [wait_for(lambda k=k: finished(store, k), 90, f"run {k}") for k in keys]
    for rec in recs:
        assert rec["status"] in ("done", "fail") and rec["attempt"] == 1
        assert rec["packed_with"] == keys
        prov = rec["result"]["provenance"]
        assert prov["packed"] == 2 and prov["packed_with"] == keys
        assert evals(store, rec["key"]) == [10, 20]
    assert len({r["result"]["provenance"]["pid"] for r in recs}) == 1  # one process trained both
    assert recs[0]["pid"] == recs[1]["pid"]
    assert recs[0]["result"]["test_error"] is not None and recs[1]["result"]["test_error"] is not None
    assert sorted(p.name for p in (cache_dir / "logs").glob("*.log")) == sorted(
        ["supervisor.log"] + [f"{k}.1.log" for k in keys]
    )


@pytest.mark.slow
def test_killed_packed_worker_resumes_both(packed_jobs, cache_dir):
    cfgs = [tiny(seed=1, iterations=120, eval_every=40), tiny(seed=2, iterations=120, eval_every=40)]
    keys = [c.key for c in cfgs]
    store = _submit_together(cache_dir, cfgs)

    def checkpointed():
        recs = [store.get(k) for k in keys]
        return all(r["status"] == "running" and r["checkpoint_iteration"] for r in recs) and recs

    recs = wait_for(checkpointed, 90, "both runs to checkpoint")
    assert recs[0]["pid"] == recs[1]["pid"] and recs[0]["packed_with"] == keys
    assert all(r["iteration"] < 120 for r in recs), "the runs finished before they could be killed"
    os.killpg(recs[0]["pid"], signal.SIGKILL)

    recs = [wait_for(lambda k=k: finished(store, k), 120, f"run {k} to finish") for k in keys]
    for rec in recs:
        assert rec["status"] in ("done", "fail"), rec
        assert rec["attempt"] == 2 and rec["restarts"] == 1 and "exited" in rec["last_failure"]
        assert rec["result"]["provenance"]["resumed"] is True
        assert rec["result"]["iterations"] == 120
        assert evals(store, rec["key"]) == [40, 80, 120]  # no replayed or missing points
        its = [p["iteration"] for p in store.curve(rec["key"]) if p["type"] == "metrics"]
        assert its == sorted(set(its)) and its[-1] == 120


@pytest.mark.slow
def test_cancel_one_run_of_a_pack(packed_jobs, cache_dir):
    a, b = tiny(seed=1, iterations=100, eval_every=50), tiny(seed=2, iterations=100, eval_every=50)
    store = _submit_together(cache_dir, [a, b])
    wait_for(lambda: all(store.get(k)["iteration"] >= 5 for k in (a.key, b.key)), 90, "the pack to train")
    assert cancel(a.key, cache_dir)["cancel_requested"]
    rec = wait_for(lambda: finished(store, a.key), 30, "the cancel")
    assert rec["status"] == "cancelled" and rec["result"]["status"] == "cancelled"
    assert (cache_dir / "runs" / a.key / "checkpoint.pt").exists()
    assert store.get(b.key)["status"] == "running"  # the other run left in the pack goes on
    rec = wait_for(lambda: finished(store, b.key), 90, "the other run")
    assert rec["status"] in ("done", "fail") and rec["attempt"] == 1 and rec["result"]["iterations"] == 100


@pytest.mark.slow
def test_unpackable_checkpoints_train_one_after_the_other(cache_dir, monkeypatch):
    """Checkpoints at different iterations cannot be packed: the worker trains the runs in turn."""
    from trainers.engine.train import train
    from trainers.runs.worker import run_worker

    monkeypatch.setenv("TRAINERS_HEARTBEAT_S", "0.3")
    a, b = tiny(seed=1), tiny(seed=2)
    calls = iter(range(100))
    assert train(a, device="cpu", cache_dir=cache_dir, should_stop=lambda: next(calls) >= 0)["status"] == "cancelled"
    store = Store(cache_dir)
    attempts = []
    for c in (a, b):
        submit(c, cache_dir, start_supervisor=False)
        attempts.append(store.claim(c.key, "local", "cpu0"))
    old = signal.getsignal(signal.SIGTERM)
    try:
        assert run_worker([a.key, b.key], cache_dir, attempts, device="cpu") == 0
    finally:
        signal.signal(signal.SIGTERM, old)
    for c in (a, b):
        rec = store.get(c.key)
        assert rec["status"] in ("done", "fail") and rec["result"]["iterations"] == 20
        assert "packed" not in rec["result"]["provenance"]
    assert store.get(a.key)["result"]["provenance"]["resumed"] is True
