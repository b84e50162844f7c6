"""Fault injection on the job system (issue #13): each case reproduces one fault and asserts the
promise that holds under it. Small and CPU-only; the full-disk and read-only-disk cases mount a
small tmpfs and skip (with the reason) where that needs a root we do not have."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import torch
from test_jobs import FAST, ROOT, tiny, wait_for  # noqa: I001 - a sibling test module

from trainers.core.atomic import StaleWriter, atomic_write, clean_orphan_temps, set_fence
from trainers.core.config import RunConfig
from trainers.runs import Store
from trainers.runs.backends.local import LocalBackend, kill_worker
from trainers.runs.settings import load_settings
from trainers.runs.store import StoreUnavailable, disk_state


def strict_loads(text: str):
    """What JavaScript's JSON.parse accepts: no NaN, no Infinity."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def claimed(store: Store, cfg: RunConfig, slot: str = "cpu0", lease_starts: bool = True) -> int:
    store.create(cfg.to_dict(), cfg.label(), cfg.key)
    return store.claim(cfg.key, "local", slot, lease_starts=lease_starts)


def fake_worker(key: str, *, own_group: bool = True) -> subprocess.Popen:
    """A process whose command line reads like a worker of `key` (what the backend verifies)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", "worker", key], start_new_session=own_group
    )


def set_fields(store: Store, key: str, **fields) -> None:
    with store.transaction():
        rec = store.get(key)
        rec.update(fields)
        store._cache.set(f"run:{key}", rec)


@pytest.fixture
def fast_env(monkeypatch):
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)


# --- 1. the lease starts at the worker's first heartbeat ------------------------------------------
def test_a_starting_worker_is_not_killed_before_its_first_heartbeat(cache_dir, monkeypatch):
    monkeypatch.setenv("TRAINERS_LEASE_S", "2")
    monkeypatch.setenv("TRAINERS_START_TIMEOUT_S", "600")
    store = Store(cache_dir)
    backend = LocalBackend(store, load_settings(cache_dir))
    cfg = tiny()
    attempt = claimed(store, cfg, lease_starts=False)
    proc = fake_worker(cfg.key)
    try:
        # started 30 s ago (a slow import under load), no heartbeat yet: slow, not dead
        store.set_worker(cfg.key, attempt, pid=proc.pid, host=__import__("socket").gethostname())
        set_fields(store, cfg.key, started_at=time.time() - 30)
        backend.poll(store.active())
        assert store.get(cfg.key)["status"] == "running" and proc.poll() is None
        # once it has beaten, the lease is the short one: silent for 30 s = dead, and killed
        set_fields(store, cfg.key, heartbeat_at=time.time() - 30)
        backend.poll(store.active())
        assert store.get(cfg.key)["status"] == "queued"
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()


def test_the_first_heartbeat_comes_before_the_engine_import(cache_dir, tmp_path):
    """A `torch` that never finishes importing: the worker has beaten all the same."""
    fake = tmp_path / "slow_torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import time\ntime.sleep(300)\n")
    store = Store(cache_dir)
    cfg = tiny()
    attempt = claimed(store, cfg, lease_starts=False)
    assert store.get(cfg.key)["heartbeat_at"] is None
    env = dict(os.environ, PYTHONPATH=f"{fake.parent}{os.pathsep}{ROOT}")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainers.runs",
            "worker",
            cfg.key,
            "--cache-dir",
            str(cache_dir),
            "--attempt",
            str(attempt),
            "--device",
            "cpu",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: store.get(cfg.key)["heartbeat_at"], 120, "the first heartbeat")
        assert proc.poll() is None  # still "importing torch"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- 2. fences on the run's files; kills that reach the worker ------------------------------------
def test_a_stale_attempt_cannot_overwrite_the_files_of_a_newer_one(cache_dir):
    store = Store(cache_dir)
    cfg = tiny()
    first = claimed(store, cfg)
    folder = store.run_dir(cfg.key)
    set_fence(folder, lambda: store.owns(cfg.key, first))
    try:
        atomic_write(folder / "checkpoint.pt", lambda f: f.write(b"attempt 1"))
        # attempt 1 is presumed dead (SIGSTOP past its lease); attempt 2 takes over and finishes
        assert store.worker_lost(cfg.key, first, "no heartbeat", 3) == "queued"
        second = store.claim(cfg.key, "local", "cpu0")
        (folder / "checkpoint.pt").write_bytes(b"attempt 2")
        with pytest.raises(StaleWriter):
            atomic_write(folder / "checkpoint.pt", lambda f: f.write(b"attempt 1, resumed"))
        assert store.finish(cfg.key, second, {"key": cfg.key, "status": "done", "test_error": 5.0})
        (folder / "result.json").write_text('{"status": "done"}')
        # even the finished attempt's own late writes are refused, and no temp file is left
        set_fence(folder, lambda: store.owns(cfg.key, second))
        with pytest.raises(StaleWriter):
            atomic_write(folder / "result.json", lambda f: f.write(b'{"status": "cancelled"}'))
        assert (folder / "checkpoint.pt").read_bytes() == b"attempt 2"
        assert json.loads((folder / "result.json").read_text())["status"] == "done"
        assert not [p for p in folder.iterdir() if ".tmp-" in p.name]
    finally:
        set_fence(folder, None)


@pytest.mark.slow
def test_a_stopped_worker_resumed_after_a_newer_attempt_finished_writes_nothing(cache_dir, fast_env):
    """The issue's case end to end: a real worker, SIGSTOPped mid-run; attempt 2 finishes; the
    stale worker is continued and must leave checkpoint.pt and result.json as attempt 2 left them."""
    store = Store(cache_dir)
    cfg = tiny(iterations=200_000, log_every=2, eval_every=200_000)  # cannot end however slow we are
    first = claimed(store, cfg, lease_starts=False)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainers.runs",
            "worker",
            cfg.key,
            "--cache-dir",
            str(cache_dir),
            "--attempt",
            str(first),
            "--device",
            "cpu",
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT), TRAINERS_CHECKPOINT_EVERY_S="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    folder = store.run_dir(cfg.key)
    try:
        wait_for(lambda: (folder / "checkpoint.pt").exists(), 180, "the first checkpoint")
        os.kill(proc.pid, signal.SIGSTOP)
        assert store.worker_lost(cfg.key, first, "no heartbeat", 3) == "queued", store.get(cfg.key)
        second = store.claim(cfg.key, "local", "cpu0")
        atomic_write(folder / "checkpoint.pt", lambda f: f.write(b"attempt 2"))
        atomic_write(folder / "result.json", lambda f: f.write(b'{"status": "done"}'))
        assert store.finish(cfg.key, second, {"key": cfg.key, "status": "done", "test_error": 6.64})
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(timeout=180) == 0  # it noticed it was superseded and stopped quietly
        assert (folder / "checkpoint.pt").read_bytes() == b"attempt 2"
        assert (folder / "result.json").read_bytes() == b'{"status": "done"}'
        rec = store.get(cfg.key)
        assert rec["status"] == "done" and rec["result"]["test_error"] == 6.64
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def test_a_kill_reaches_a_worker_that_does_not_lead_its_group():
    key = "0123456789abcdef"
    worker = fake_worker(key, own_group=False)  # in our group, like a worker started by hand
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        assert os.getpgid(worker.pid) != worker.pid
        assert kill_worker(worker.pid, key, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
        assert not kill_worker(stranger.pid, key, signal.SIGKILL)  # not our worker: pid reuse
        assert stranger.poll() is None
        os.kill(os.getpid(), 0)  # and our own group (pytest) was not signalled
    finally:
        worker.kill()
        stranger.kill()


# --- 3. full and read-only disks -------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (needs root; skipped with the reason elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the full-disk case needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 2**20)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_keeps_results_readable_says_so_and_resumes(small_disk, capsys, monkeypatch):
    from trainers.runs import supervisor, verbs

    cache = small_disk / "cache"
    store = Store(cache)
    done, waiting = tiny(seed=1), tiny(seed=2)
    a = claimed(store, done)
    store.finish(done.key, a, {"key": done.key, "status": "done", "test_error": 7.5})
    b = claimed(store, waiting)
    store.close()
    filler = fill(small_disk)
    assert disk_state(cache)["full"]

    # reading writes nothing: the store opens (read-only if it must), status answers and says why
    with Store(cache) as s:
        assert s.get(done.key)["result"]["test_error"] == 7.5
        assert s.readonly is None or s.readonly.startswith("disk full")
    monkeypatch.setattr(supervisor, "ensure_supervisor", lambda *a, **k: False)
    args = verbs.argparse.Namespace(cache_dir=str(cache), sweep=None, json=False)
    assert verbs.cmd_status(args) == 0
    out = capsys.readouterr().out
    assert "disk full" in out and done.key in out and "[disk full]" in out
    # a submit gets a clear error (or, where SQLite still has a free page, it simply works)
    try:
        with Store(cache) as s:
            s.create(tiny(seed=3).to_dict(), "x", tiny(seed=3).key)
    except (StoreUnavailable, OSError) as e:
        assert "disk full" in str(e) or "disk is full" in str(e)
    # the supervisor starts no worker while the disk is full
    sup = supervisor.Supervisor(cache)
    try:
        sup.tick()
    except OSError as e:
        assert "disk" in str(e)
    assert not sup.local.procs

    filler.unlink()
    assert not disk_state(cache)["full"]
    assert sup.store.writable() and sup.store.readonly is None  # the supervisor's store too
    with Store(cache) as s:
        assert s.readonly is None
        # the worker died of the full disk: queued again without counting a restart, result kept
        s.release(waiting.key, b, "disk full")
        rec = s.get(waiting.key)
        assert rec["status"] == "queued" and rec["restarts"] == 0
        assert s.get(done.key)["result"]["test_error"] == 7.5


def test_a_store_on_a_read_only_disk_opens_for_reading(small_disk):
    cache = small_disk / "cache"
    cfg = tiny()
    with Store(cache) as store:
        store.create(cfg.to_dict(), cfg.label(), cfg.key)
    os.chmod(cache, 0o755)  # as a copy would be: not private, and we must not chmod it
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only: {r.stderr.strip()}")
    with Store(cache) as store:
        assert store.readonly and store.get(cfg.key)["status"] == "queued"
        assert [r["key"] for r in store.list_runs()] == [cfg.key]
        with pytest.raises(StoreUnavailable, match="read-only"):
            store.create(tiny(seed=5).to_dict(), "x", tiny(seed=5).key)
    assert (cache.stat().st_mode & 0o777) == 0o755


def test_a_worker_that_hits_a_full_disk_waits_instead_of_failing(cache_dir, monkeypatch):
    from trainers.runs import worker

    store = Store(cache_dir)
    cfg = tiny()
    attempt = claimed(store, cfg)

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("trainers.engine.train.train", full)
    assert worker.run_worker([cfg.key], cache_dir, [attempt], device="cpu") == worker.EXIT_RETRY
    rec = store.get(cfg.key)
    assert rec["status"] == "queued" and rec["restarts"] == 0 and "disk full" in rec["last_failure"]


# --- 4. NaN and Infinity never reach JSON ----------------------------------------------------------
def test_non_finite_numbers_are_written_as_null_everywhere(cache_dir, tmp_path, capsys):
    from trainers.engine.train import _result_json
    from trainers.runs import verbs
    from trainers.runs.export import write_export

    store = Store(cache_dir)
    cfg = tiny()
    a = claimed(store, cfg)
    store.apply_event(cfg.key, a, {"type": "start", "iteration": 0, "total": 40})
    store.apply_event(
        cfg.key,
        a,
        {
            "type": "metrics",
            "iteration": 5,
            "epoch": 1.0,
            "train_loss": math.nan,
            "train_error": 90.0,
            "lr": 0.1,
            "images_per_s": math.inf,
            "elapsed_s": 1.0,
            "eta_s": math.inf,
        },
    )
    result = {
        "key": cfg.key,
        "status": "diverged",
        "test_error": None,
        "train_loss": math.nan,
        "iterations": 5,
        "config": cfg.to_dict(),
    }
    store.finish(cfg.key, a, result)
    assert store.get(cfg.key)["train_loss"] is None
    assert strict_loads(_result_json(result, [{"train_loss": -math.inf}]).decode())["curve"][0]["train_loss"] is None
    write_export(tmp_path / "e.json", store)
    write_export(tmp_path / "e.csv", store)
    assert strict_loads((tmp_path / "e.json").read_text())["runs"][0]["curve"][0]["train_loss"] is None
    csv_text = (tmp_path / "e.csv").read_text()
    assert "nan" not in csv_text.lower() and "inf" not in csv_text.lower().replace("info", "")
    store.close()
    ns = verbs.argparse.Namespace
    assert verbs.cmd_status(ns(cache_dir=str(cache_dir), sweep=None, json=True)) == 0
    assert strict_loads(capsys.readouterr().out)[0]["status"] == "diverged"
    with Store(cache_dir) as s:
        s.save_sweep("mine", [cfg.key])
    assert verbs.cmd_results(ns(cache_dir=str(cache_dir), name="mine", json=True)) == 0
    strict_loads(capsys.readouterr().out)


# --- 5. inputs refused with a clear message, exit code 2, no record -------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--iterations", "1000000000000"], "iterations must be between"),
        (["train", "--seed", str(2**64)], "seed must be between"),
        (["train", "--config-json", "[1]"], "must be a JSON object"),
        (["train", "--config-json", '{"nosuch": 1}'], "unknown config field"),
        (
            ["sweep", "mine", "--grid", "depth=20", "--set", "nosuch=1", "--no-wait"],
            "--set nosuch: no such config field",
        ),
        (["sweep", "mine", "--grid", "seed=3,4", "--no-wait"], "--seeds"),
        (["sweep", "table2", "--seeds", "0", "--no-wait"], "--seeds must be between 1"),
        (["sweep", "table2", "--seeds", "-3", "--no-wait"], "--seeds must be between 1"),
        (["sweep", "table2", "--set", "batch_size=100000", "--no-wait"], "batch_size must be between"),
    ],
)
def test_bad_inputs_are_refused_and_store_nothing(argv, message, tmp_path, capsys):
    from trainers.cli import main

    cache = tmp_path / "c"
    assert main([*argv, "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (cache / "store").exists()


def test_a_schedule_can_be_customised_with_set():
    from trainers.runs.sweeps import sweep_configs

    configs = sweep_configs("table2", 1, "smoke", {"iterations": 50})
    assert configs and all(c.iterations == 50 and c.train_size == 512 for c in configs)


# --- 6. checkpoints that parse but do not fit ------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("damage", ["shape", "missing"])
def test_a_checkpoint_that_does_not_fit_is_set_aside_and_the_note_reaches_the_record(damage, cache_dir):
    from trainers.engine.train import train

    cfg = tiny(iterations=4, log_every=2, eval_every=4, train_size=64, test_size=32)
    train(cfg, device="cpu", cache_dir=cache_dir)
    ckpt = cache_dir / "runs" / cfg.key / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    if damage == "shape":
        name = next(iter(state["model"]))
        state["model"][name] = torch.zeros(3)
    else:
        del state["optimizer"]
    torch.save(state, ckpt)

    store = Store(cache_dir)
    attempt = claimed(store, cfg)
    events = []

    def on_event(ev):
        events.append(ev)
        store.apply_event(cfg.key, attempt, ev)

    result = train(cfg, device="cpu", cache_dir=cache_dir, on_event=on_event)
    assert result["status"] in ("done", "fail") and result["iterations"] == 4
    assert not events[0]["resumed"] and "does not fit" in events[0]["notes"][0]
    assert any(p.name.startswith("checkpoint.unreadable-") for p in ckpt.parent.iterdir())
    assert "does not fit" in store.get(cfg.key)["notes"][0]


# --- 7. import bounds ------------------------------------------------------------------------------
def _export_doc(store: Store, cfg: RunConfig) -> dict:
    from trainers.runs.export import export_runs

    a = claimed(store, cfg)
    store.apply_event(cfg.key, a, {"type": "eval", "iteration": 4, "epoch": 1.0, "test_error": 50.0, "test_loss": 1.0})
    store.finish(
        cfg.key,
        a,
        {
            "key": cfg.key,
            "status": "fail",
            "test_error": 50.0,
            "iterations": 40,
            "config": cfg.to_dict(),
            "provenance": {"device": "cpu"},
        },
    )
    return json.loads(json.dumps(export_runs(store)))


def test_import_refuses_files_out_of_bounds_naming_the_field(cache_dir, tmp_path, monkeypatch):
    from trainers.runs import export
    from trainers.runs.export import ImportFileError, import_file

    doc = _export_doc(Store(tmp_path / "src"), tiny())
    dest = tmp_path / "dest"

    def attempt(content, message, name="x.json"):
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(ImportFileError, match=message):
            import_file(path, dest)

    def changed(edit):
        d = json.loads(json.dumps(doc))
        edit(d)
        return d

    attempt("[" * 200_000 + "]" * 200_000, "nested too deeply")
    attempt(json.dumps(doc).replace('"test_error": 50.0', '"test_error": NaN', 1), "NaN is not a number")
    attempt(
        changed(lambda d: d["runs"][0]["result"].update(test_error=1e308)),
        "result test_error must be a finite number in",
    )
    attempt(changed(lambda d: d["runs"][0]["result"].update(test_error=-1.0)), "result test_error")
    attempt(changed(lambda d: d["runs"][0]["curve"][0].update(iteration=10**40)), "curve point 0: iteration")
    attempt(changed(lambda d: d["runs"][0].update(error="x" * 20_000)), "error must be text of at most")
    attempt(changed(lambda d: d["runs"][0].update(evil=1)), "unknown field.*evil")
    attempt(changed(lambda d: d["runs"][0]["result"].update(payload={"a": 1})), "result: unknown field.*payload")
    attempt(
        changed(lambda d: d["runs"][0].update(curve=[{"type": "eval", "iteration": 1}] * (export.MAX_POINTS + 1))),
        "more than",
    )
    monkeypatch.setattr(export, "MAX_BYTES", 100)
    attempt(doc, "larger than")
    assert not (dest / "store").exists() or Store(dest).list_runs() == []


# --- 8. two `train`s of one config train it once -------------------------------------------------
@pytest.mark.slow
def test_a_second_train_of_a_running_config_follows_the_first(cache_dir):
    from trainers.runs.jobs import train_here

    store = Store(cache_dir)
    cfg = tiny()
    attempt = claimed(store, cfg)  # the first `train` (or the supervisor) holds it
    finisher = threading.Timer(
        1.0, lambda: store.finish(cfg.key, attempt, {"key": cfg.key, "status": "done", "test_error": 9.0})
    )
    finisher.start()
    out = io.StringIO()
    rec = train_here(cfg, cache_dir, "cpu", poll_s=0.2, out=out)
    finisher.join()
    assert rec["status"] == "done" and rec["attempt"] == attempt == 1  # nobody trained it a second time
    assert "waiting for it" in out.getvalue()


@pytest.mark.slow
def test_the_train_verb_goes_through_the_store(cache_dir, fast_env):
    cfg = tiny(iterations=10, train_size=64, test_size=32, log_every=5, eval_every=10)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers",
            "train",
            "--config-json",
            json.dumps(cfg.to_dict()),
            "--device",
            "cpu",
            "--threads",
            "1",
            "--cache-dir",
            str(cache_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert strict_loads(r.stdout.strip().splitlines()[-1])["key"] == cfg.key
    with Store(cache_dir) as store:
        rec = store.get(cfg.key)
    assert rec["status"] in ("done", "fail") and rec["attempt"] == 1 and rec["result"]["iterations"] == 10


@pytest.mark.slow
def test_the_engine_still_imports_without_the_runs_layer():
    code = (
        "import sys; sys.modules['diskcache'] = None; import trainers.engine.train, trainers.cli; "
        "assert 'trainers.runs.store' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300)


# --- 9. the watchdog --------------------------------------------------------------------------------
def test_status_restarts_a_dead_supervisor_when_runs_wait(cache_dir, fast_env, capsys):
    from trainers.runs import verbs
    from trainers.runs.supervisor import supervisor_alive, supervisor_pid

    cfg = tiny(dataset="folder:/nonexistent-dataset")  # its worker would fail at once: nothing trains
    with Store(cache_dir) as store:
        store.create(cfg.to_dict(), cfg.label(), cfg.key)
    assert not supervisor_alive(cache_dir)
    try:
        assert verbs.cmd_status(verbs.argparse.Namespace(cache_dir=str(cache_dir), sweep=None, json=False)) == 0
        assert "supervisor restarted" in capsys.readouterr().out
        wait_for(lambda: supervisor_pid(cache_dir), 120, "the restarted supervisor")
    finally:
        pid = supervisor_pid(cache_dir)
        if pid:
            os.kill(pid, signal.SIGKILL)


# --- 10. leftovers and exposure ----------------------------------------------------------------------
def test_orphan_temp_files_are_cleaned_and_run_files_are_private(cache_dir):
    from trainers.runs.supervisor import Supervisor

    Store(cache_dir).close()
    assert (cache_dir / "store").stat().st_mode & 0o777 == 0o700
    run = cache_dir / "runs" / "0123456789abcdef"
    atomic_write(run / "checkpoint.pt", lambda f: f.write(b"x"))
    assert (cache_dir / "runs").stat().st_mode & 0o777 == 0o700
    assert run.stat().st_mode & 0o777 == 0o700 and (run / "checkpoint.pt").stat().st_mode & 0o777 == 0o600
    old, fresh = run / ".checkpoint.pt.tmp-deadbeef", run / ".checkpoint.pt.tmp-0badf00d"
    old.write_bytes(b"torn")
    fresh.write_bytes(b"being written")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    os.chmod(run, 0o755)
    Supervisor(cache_dir).clean_leftovers()
    assert not old.exists() and fresh.exists() and run.stat().st_mode & 0o777 == 0o700
    assert clean_orphan_temps(run, older_than_s=0) == [fresh]


def test_a_huge_tar_member_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from trainers.engine.data import tarballs
    from trainers.engine.data.base import DataError

    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        blob = b"\0" * 5000
        info = tarfile.TarInfo("train/a/big.png")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    monkeypatch.setattr(tarballs, "MAX_IMAGE_BYTES", 4096)
    with pytest.raises(DataError, match="per image"):
        tarballs.read_tarball(archive, lambda *a: None)


def test_a_folder_dataset_does_not_follow_links_out_of_the_folder(tmp_path):
    from trainers.engine.data.base import DataError
    from trainers.engine.data.folder import _folder_tree

    root = tmp_path / "set"
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa.png").write_bytes(b"private")
    for split in ("train", "test"):
        (root / split / "a").mkdir(parents=True)
    (root / "train" / "b").symlink_to(secret)
    with pytest.raises(DataError, match="outside the dataset folder"):
        _folder_tree(root)


def test_streamlit_accepts_only_localhost_names():
    import tomllib

    from streamlit import config

    hosts = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["allowedHosts"]
    assert "server.allowedHosts" in config._config_options_template
    assert set(hosts) == {"localhost", "127.0.0.1", "::1"}
