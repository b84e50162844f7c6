"""The local job system for real: detached supervisor and workers training tiny CPU runs.

Each test sets short timings through TRAINERS_* variables (inherited by the supervisor and its
workers) and stops every process it caused at teardown, by pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainers.core.config import RunConfig
from trainers.runs import Store, cancel, ensure_supervisor, submit
from trainers.runs.supervisor import supervisor_pid

pytestmark = pytest.mark.slow  # trains, or starts workers and a supervisor

ROOT = Path(__file__).resolve().parents[1]
# Leases as measured (2026-11-29, 2 cores at load average ~20): a worker's first heartbeat comes
# 0.5-0.8 s after its start (before it imports the engine), its start event 13-17 s after, and
# heartbeats stay at most 1.5 s apart meanwhile. The lease (6 s) runs from the first heartbeat;
# the start timeout (60 s) only covers a worker that never beats at all.
FAST = {
    "TRAINERS_POLL_S": "0.2",
    "TRAINERS_HEARTBEAT_S": "0.3",
    "TRAINERS_LEASE_S": "6",
    "TRAINERS_START_TIMEOUT_S": "60",
    "TRAINERS_IDLE_EXIT_S": "3",
    "TRAINERS_CHECKPOINT_EVERY_S": "0.5",
    "TRAINERS_CANCEL_GRACE_S": "5",
    "TRAINERS_GPUS": "",
    "TRAINERS_CPU_JOBS": "1",
    "TRAINERS_CPU_THREADS": "1",
}


def tiny(**kw) -> RunConfig:
    base = dict(
        depth=8,
        dataset="synthetic",
        iterations=40,
        batch_size=32,
        train_size=256,
        test_size=128,
        log_every=5,
        eval_every=20,
        warmup_iterations=0,
    )
    return RunConfig(**{**base, **kw})


def wait_for(pred, timeout: float, what: str, every: float = 0.1):
    end = time.time() + timeout
    while time.time() < end:
        out = pred()
        if out:
            return out
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def finished(store: Store, key: str):
    rec = store.get(key)
    return rec if rec and rec["status"] not in ("queued", "running") else None


def _stop_everything(cache_dirs: list[Path]) -> None:
    for d in cache_dirs:
        if not (d / "store").exists():
            continue
        pid = supervisor_pid(d)
        if pid:
            os.kill(pid, signal.SIGKILL)
        with Store(d) as store:
            for rec in store.active():
                if rec.get("pid"):
                    try:
                        os.killpg(rec["pid"], signal.SIGKILL)
                    except ProcessLookupError:
                        pass


@pytest.fixture
def jobs(cache_dir, tmp_path, monkeypatch):
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    dirs = [cache_dir]
    yield dirs
    _stop_everything(dirs)


def test_simultaneous_submits_make_one_job(jobs, cache_dir):
    cfg = tiny()
    script = (
        "import sys, time, json\n"
        "from trainers.core.config import RunConfig\n"
        "from trainers.runs import submit\n"
        f"cfg = RunConfig.from_json({cfg.canonical_json()!r})\n"
        "t0 = float(sys.argv[2])\n"
        "while time.time() < t0: pass\n"
        "print(json.dumps(submit(cfg, sys.argv[1])['created_at']))\n"
    )
    start = time.time() + 5.0
    apps = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(cache_dir), str(start)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    created = {json.loads(p.communicate(timeout=120)[0]) for p in apps}
    assert len(created) == 1  # every app joined the same record
    store = Store(cache_dir)
    rec = wait_for(lambda: finished(store, cfg.key), 120, "the run to finish")
    assert rec["status"] in ("done", "fail") and rec["attempt"] == 1
    assert sorted(p.name for p in (cache_dir / "logs").glob(f"{cfg.key}.*.log")) == [f"{cfg.key}.1.log"]
    assert [p["iteration"] for p in store.curve(cfg.key) if p["type"] == "eval"] == [20, 40]
    # asked again: answered from the store at once, nothing is trained twice
    assert submit(cfg, cache_dir)["result"] == rec["result"]
    assert store.get(cfg.key)["attempt"] == 1


def test_runs_survive_the_app_and_the_supervisor_going_away(jobs, cache_dir):
    cfg = tiny(iterations=100)
    app = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\nfrom trainers.core.config import RunConfig\nfrom trainers.runs import submit\n"
            f"submit(RunConfig.from_json({cfg.canonical_json()!r}), sys.argv[1])\nos._exit(0)\n",
            str(cache_dir),
        ],
        cwd=ROOT,
        timeout=120,
    )
    assert app.returncode == 0  # the "app" is gone; its run is not
    store = Store(cache_dir)
    rec = wait_for(lambda: (r := store.get(cfg.key))["iteration"] >= 20 and r, 120, "training to start")
    os.kill(supervisor_pid(cache_dir), signal.SIGKILL)  # the supervisor dies too
    before = rec["iteration"]
    wait_for(lambda: store.get(cfg.key)["iteration"] > before + 10, 60, "training to go on unsupervised")
    assert ensure_supervisor(cache_dir, only_if_needed=True)  # the app comes back
    rec = wait_for(lambda: finished(store, cfg.key), 120, "the run to finish")
    assert rec["status"] in ("done", "fail")
    assert rec["attempt"] == 1  # adopted, not restarted


def test_hung_and_killed_workers_resume_to_the_same_result(jobs, cache_dir, tmp_path):
    cfg = tiny(iterations=160, eval_every=40)
    reference_dir = tmp_path / "reference"
    jobs.append(reference_dir)
    submit(cfg, reference_dir)  # the same run, never interrupted, in its own store
    submit(cfg, cache_dir)
    store = Store(cache_dir)

    # attempt 1 hangs (SIGSTOP: the process lives, the heartbeats stop): the lease decides
    rec = wait_for(lambda: (r := store.get(cfg.key))["checkpoint_iteration"] and r, 120, "a checkpoint")
    os.killpg(rec["pid"], signal.SIGSTOP)
    rec = wait_for(
        lambda: (r := store.get(cfg.key))["attempt"] == 2 and r.get("resumed_at") and r, 120, "attempt 2 to resume"
    )
    assert "no heartbeat" in rec["last_failure"]
    # attempt 2 is killed outright after its own checkpoint
    resumed = rec["resumed_at"]
    rec = wait_for(
        lambda: ((r := store.get(cfg.key))["checkpoint_iteration"] or 0) > resumed and r, 120, "attempt 2 to checkpoint"
    )
    assert rec["iteration"] < cfg.iterations, "the run finished before it could be killed"
    os.killpg(rec["pid"], signal.SIGKILL)

    rec = wait_for(lambda: finished(store, cfg.key), 180, "the run to finish")
    assert rec["attempt"] == 3 and rec["restarts"] == 2
    assert "exited" in rec["last_failure"]
    ref_store = Store(reference_dir)
    ref = wait_for(lambda: finished(ref_store, cfg.key), 180, "the reference run")
    assert ref["attempt"] == 1
    assert rec["status"] == ref["status"]
    assert rec["result"]["test_error"] == ref["result"]["test_error"]
    assert rec["result"]["train_loss"] == ref["result"]["train_loss"]
    assert rec["result"]["provenance"]["resumed"] is True
    curve, ref_curve = store.curve(cfg.key), ref_store.curve(cfg.key)

    def strip(c):
        return [{k: v for k, v in p.items() if k not in ("images_per_s", "elapsed_s", "eta_s")} for p in c]

    assert strip(curve) == strip(ref_curve)  # no replayed or missing points


def test_cancel_queued_and_running(jobs, cache_dir):
    long_run, waiting = tiny(iterations=5000, seed=1), tiny(iterations=5000, seed=2)
    submit(long_run, cache_dir)
    assert submit(waiting, cache_dir)["status"] == "queued"  # one CPU slot: it waits
    assert cancel(waiting.key, cache_dir)["status"] == "cancelled"
    store = Store(cache_dir)
    wait_for(lambda: store.get(long_run.key)["iteration"] >= 10, 120, "the long run to train")
    assert cancel(long_run.key, cache_dir)["cancel_requested"]
    rec = wait_for(lambda: finished(store, long_run.key), 30, "the cancel")
    assert rec["status"] == "cancelled" and rec["result"]["status"] == "cancelled"
    assert (cache_dir / "runs" / long_run.key / "checkpoint.pt").exists()
    assert store.get(waiting.key)["attempt"] == 0  # never started

    # submitted again, a cancelled run resumes from its checkpoint
    assert submit(long_run, cache_dir)["status"] == "queued"
    rec = wait_for(
        lambda: (r := store.get(long_run.key))["attempt"] == 2 and r.get("resumed_at") and r, 120, "the resumed run"
    )
    assert rec["resumed_at"] >= 10
    cancel(long_run.key, cache_dir)
    wait_for(lambda: finished(store, long_run.key), 30, "the second cancel")


def test_diverging_and_broken_runs_end_with_their_reason(jobs, cache_dir):
    diverging = tiny(lr=1e5, log_every=2)
    broken = tiny(dataset="folder:/nonexistent/cifar10-jpeg")
    submit(diverging, cache_dir)
    submit(broken, cache_dir)
    store = Store(cache_dir)
    rec = wait_for(lambda: finished(store, diverging.key), 120, "the diverging run")
    assert rec["status"] == "diverged" and rec["result"]["status"] == "diverged"
    assert store.curve(diverging.key), "the curve up to the divergence is kept"
    rec = wait_for(lambda: finished(store, broken.key), 120, "the broken run")
    assert rec["status"] == "error" and rec["attempt"] == 1  # not retried: it cannot succeed
    assert "nonexistent" in rec["error"] and "Traceback" not in rec["error"]
