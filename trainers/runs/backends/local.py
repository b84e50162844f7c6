"""Local backend: one detached worker process per pack of runs (one run, or seeds of one config), GPU slots from CUDA_VISIBLE_DEVICES.

Workers run in their own session (start_new_session=True), so they outlive the app and the
supervisor; a later supervisor adopts them from the store (pid, host, heartbeat). Death is decided
by the lease (no heartbeat for `lease_s`) or, quicker, by the exit of a process we can see.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from trainers.core.records import RunRecord

from ..settings import Settings
from ..store import Store, disk_state, hostname, now, private_dir

log = logging.getLogger("trainers.supervisor")


@dataclass(frozen=True)
class Slot:
    name: str  # "gpu0", "gpu0.1" (second job on GPU 0), "cpu0"
    visible: str  # CUDA_VISIBLE_DEVICES for the worker ("" hides every GPU)
    device: str  # what the worker passes to train(): "cuda" (its only visible GPU) or "cpu"


def detect_gpus(spec: str) -> list[str]:
    """GPUs to use, as CUDA_VISIBLE_DEVICES entries for the workers. "auto" asks without torch
    (the supervisor never imports the engine): the entries of our own CUDA_VISIBLE_DEVICES where
    it is set, else one per line of `nvidia-smi -L`; no driver (or a broken one) means none."""
    if spec.strip().lower() != "auto":
        return [g.strip() for g in spec.split(",") if g.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [g.strip() for g in visible.split(",") if g.strip()]
        # CUDA stops at the first invalid entry ("-1", "NoDevFiles": none at all)
        return list(itertools.takewhile(lambda g: not g.startswith("-") and g != "NoDevFiles", ids))
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):  # no driver, no tool, a hung driver: the CPU
        return []
    if out.returncode != 0:
        return []
    return [str(i) for i, _ in enumerate(ln for ln in out.stdout.splitlines() if ln.startswith("GPU "))]


def make_slots(settings: Settings) -> list[Slot]:
    gpus = detect_gpus(settings.gpus)
    if gpus:
        per = max(1, settings.jobs_per_gpu)
        return [Slot(f"gpu{g}" + (f".{j}" if j else ""), g, "cuda") for j in range(per) for g in gpus]
    return [Slot(f"cpu{j}", "", "cpu") for j in range(max(1, settings.cpu_jobs))]


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a detached child: ours, plus the repo on PYTHONPATH so `-m trainers`
    imports this checkout whatever the working directory."""
    env = dict(os.environ)
    root = str(repo_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def spawn_detached(args: list[str], log_path: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    private_dir(log_path.parent)
    with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "trainers.runs", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session and process group: survives the app, killpg-able
            env=child_env(extra_env),
            cwd=str(repo_root()),
            close_fds=True,
        )


def is_our_worker(pid: int | None, key: str) -> bool:
    """True if `pid` is alive and is a worker of `key` (guards kill against pid reuse)."""
    if not pid:  # none recorded: nothing to check (and 0 would be our own process group)
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (macOS): alive is the best we can know
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
    return b"worker" in cmdline and key.encode() in cmdline


def kill_worker(pid: int | None, key: str, sig: int) -> bool:
    """Signal the worker `pid` of `key`, and its process group if it leads one (what it started).

    The pid itself is always signalled: a worker started by hand, or by something that did not give
    it its own session, is not its group's leader, and a group kill alone silently misses it. The
    group is signalled only when the worker leads it, never a shell's group it merely belongs to.
    Nothing is sent unless `pid` is verifiably our worker (pid reuse). True if a signal was sent."""
    if not pid or not is_our_worker(pid, key):
        return False
    try:
        leads = os.getpgid(pid) == pid
    except (ProcessLookupError, PermissionError):
        return False
    sent = False
    if leads:
        try:
            os.killpg(pid, sig)
            sent = True
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.kill(pid, sig)
        sent = True
    except (ProcessLookupError, PermissionError):
        pass
    return sent


class LocalBackend:
    name = "local"

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self.slots = make_slots(settings)
        self.procs: dict[str, tuple[int, subprocess.Popen]] = {}  # key -> (attempt, process)
        self._signalled: dict[tuple[str, int], int] = {}  # (key, attempt) -> last signal sent
        log.info("local slots: %s", ", ".join(f"{s.name}({s.device})" for s in self.slots))

    def free_slots(self, running: list[RunRecord]) -> list[Slot]:
        taken = {r["slot"] for r in running if r["backend"] == self.name}
        return [s for s in self.slots if s.name not in taken]

    def start(self, recs: list[RunRecord], attempts: list[int], slot: Slot) -> None:
        """One worker for these claimed runs: one run, or several trained as one packed network.
        Every key keeps its own record and attempt; a shared process (`procs` maps each key to it)
        is seen dying by every key of its pack. The log is the first run's; the others link to it."""
        keys = [r["key"] for r in recs]
        logs = private_dir(self.store.cache_dir / "logs")
        log_path = logs / f"{keys[0]}.{attempts[0]}.log"
        proc = spawn_detached(
            [
                "worker",
                *keys,
                "--cache-dir",
                str(self.store.cache_dir),
                "--attempts",
                *map(str, attempts),
                "--device",
                slot.device,
            ],
            log_path,
            {"CUDA_VISIBLE_DEVICES": slot.visible},
        )
        packed_with = keys if len(keys) > 1 else None
        for key, attempt in zip(keys, attempts):
            if key != keys[0]:  # every run's log under its own name too
                link = logs / f"{key}.{attempt}.log"
                try:
                    link.unlink(missing_ok=True)
                    link.symlink_to(log_path.name)
                except OSError:
                    pass
            self.procs[key] = (attempt, proc)
            self.store.set_worker(
                key, attempt, pid=proc.pid, host=hostname(), log=str(log_path), packed_with=packed_with
            )
        log.info(
            "started %s (attempts %s) on %s (pid %d)", " ".join(keys), " ".join(map(str, attempts)), slot.name, proc.pid
        )

    def busy(self) -> bool:
        return any(p.poll() is None for _, p in self.procs.values())

    def poll(self, running: list[RunRecord]) -> None:
        """Detect dead workers and carry out cancel requests, for every local running run."""
        s = self.settings
        for rec in running:
            key, attempt = rec["key"], rec["attempt"]
            mine = self.procs.get(key)
            proc = mine[1] if mine and mine[0] == attempt else None
            if proc is not None:
                alive = proc.poll() is None
            elif rec.get("pid") and rec.get("host") == hostname():
                alive = is_our_worker(rec["pid"], key)  # adopted from an earlier supervisor
            else:
                alive = None  # not started yet, or elsewhere: the lease decides
            # The lease runs from the worker's first heartbeat: a process still importing under a
            # heavy load is slow, not dead (its exit, if it dies, is seen above at once).
            beat = rec.get("heartbeat_at")
            age = now() - (beat or rec["started_at"] or now())
            limit = s.lease_s if beat else max(s.lease_s, s.start_timeout_s)
            if alive is False:
                code = proc.returncode if proc is not None else "unknown"
                self._lost(rec, f"worker exited (code {code}) before finishing")
            elif age > limit:
                if alive or (rec.get("pid") and rec.get("host") == hostname()):
                    # hung or stopped (SIGSTOP): make sure it writes nothing more
                    kill_worker(rec["pid"], key, signal.SIGKILL)
                what = "no heartbeat" if beat else "no first heartbeat"
                self._lost(rec, f"{what} for {age:.0f} s (limit {limit:g} s)")
            elif rec.get("cancel_requested") and alive:
                self._enforce_cancel(rec)
        # reap finished children and forget them
        for key, (_attempt, proc) in list(self.procs.items()):
            if proc.poll() is not None:
                del self.procs[key]

    def _lost(self, rec: RunRecord, reason: str) -> None:
        disk = disk_state(self.store.cache_dir)
        if disk["full"]:  # it died of the full disk, not of itself: queue it, no restart counted
            if self.store.release(rec["key"], rec["attempt"], f"{disk['message']} ({reason})"):
                log.warning("run %s attempt %d: %s", rec["key"], rec["attempt"], disk["message"])
            return
        status = self.store.worker_lost(rec["key"], rec["attempt"], reason, self.settings.max_restarts)
        if status:
            log.warning("run %s attempt %d: %s -> %s", rec["key"], rec["attempt"], reason, status)

    def _enforce_cancel(self, rec: RunRecord) -> None:
        """The worker polls the cancel flag; if it has not stopped after the grace period it gets
        SIGTERM (it checkpoints and stops), then SIGKILL."""
        waited = now() - (rec["cancel_requested_at"] or now())
        grace = self.settings.cancel_grace_s
        ident = (rec["key"], rec["attempt"])
        if waited > 2 * grace and self._signalled.get(ident) != signal.SIGKILL:
            kill_worker(rec["pid"], rec["key"], signal.SIGKILL)
            self._signalled[ident] = signal.SIGKILL
            self.store.mark_cancelled(rec["key"], rec["attempt"])
            log.info("cancel %s: killed", rec["key"])
        elif waited > grace and ident not in self._signalled:
            kill_worker(rec["pid"], rec["key"], signal.SIGTERM)
            self._signalled[ident] = signal.SIGTERM
            log.info("cancel %s: SIGTERM", rec["key"])

    def close(self) -> None:
        pass  # workers are detached on purpose: they keep running; the next supervisor adopts them
