"""The Ray backend against a real local Ray head (one CPU) that this module starts and stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray")

from test_jobs import FAST, finished, tiny, wait_for  # noqa: E402

from trainers.runs import Store, cancel, submit  # noqa: E402
from trainers.runs.supervisor import supervisor_pid  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HEAD = """
import sys, ray
ctx = ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
print(ctx.address_info["gcs_address"], flush=True)
sys.stdin.read()  # until the test closes our stdin
ray.shutdown()
"""


@pytest.fixture(scope="module")
def ray_head():
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        address = head.stdout.readline().strip()
        if not address:
            pytest.skip("a local Ray head did not start")
        yield address
    finally:
        head.stdin.close()  # the head shuts its cluster down
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


@pytest.fixture
def ray_env(ray_head, cache_dir, tmp_path, monkeypatch):
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("TRAINERS_RAY_ADDRESS", ray_head)
    monkeypatch.setenv("TRAINERS_RAY_CACHE_DIR", str(tmp_path / "node-cache"))
    monkeypatch.setenv("TRAINERS_CANCEL_GRACE_S", "3")
    yield cache_dir
    pid = supervisor_pid(cache_dir)
    if pid:
        os.kill(pid, signal.SIGTERM)  # Ray stops the supervisor's tasks with it


def test_ray_run_relays_curve_and_result(ray_env):
    cache_dir = ray_env
    cfg = tiny(iterations=40)
    assert submit(cfg, cache_dir, backend="ray")["status"] == "queued"
    store = Store(cache_dir)
    rec = wait_for(lambda: finished(store, cfg.key), 240, "the Ray run")
    assert rec["status"] in ("done", "fail"), rec["error"]
    assert rec["backend"] == "ray" and rec["attempt"] == 1
    curve = store.curve(cfg.key)
    assert [p["iteration"] for p in curve if p["type"] == "metrics"] == list(range(5, 41, 5))
    assert [p["iteration"] for p in curve if p["type"] == "eval"] == [20, 40]
    assert rec["result"]["test_error"] == curve[-1]["test_error"]
    # the remote task kept its checkpoint on the node's disk, not in the app host's cache
    assert not (cache_dir / "runs").exists()
    assert submit(cfg, cache_dir, backend="ray")["status"] == rec["status"]  # deduped


def test_ray_cancel(ray_env):
    cache_dir = ray_env
    cfg = tiny(iterations=20_000, seed=3)
    submit(cfg, cache_dir, backend="ray")
    store = Store(cache_dir)
    rec = wait_for(
        lambda: store.get(cfg.key)["iteration"] >= 10 or finished(store, cfg.key) or None, 240, "the Ray run to train"
    )
    assert store.get(cfg.key)["status"] == "running", store.get(cfg.key)["error"]
    t0 = time.time()
    cancel(cfg.key, cache_dir)
    rec = wait_for(lambda: finished(store, cfg.key), 60, "the cancel")
    assert rec["status"] == "cancelled" and rec["iteration"] < cfg.iterations
    assert time.time() - t0 < 60
