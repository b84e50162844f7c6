"""The runs layer's verbs for `python -m trainers` (and `python -m trainers.runs`).

`add_commands(subparsers)` adds: worker, supervise, sweep, status, results, cancel, export, import,
and returns {verb: handler(args) -> exit code}. The engine CLI dispatches those verbs here.

    python -m trainers sweep table2 --seeds 5 --schedule quick      # submit, show progress
    python -m trainers sweep mygrid --grid depth=20,56 --grid ordering=original,full_preact
    python -m trainers status                                       # every run, live
    python -m trainers results table2                               # median (n), min–max, paper
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from trainers.core.strict_json import dumps

Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")


def _cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-dir",
        default=os.environ.get("RESNET_EXPLORER_CACHE", "cache"),
        help="results store, datasets, checkpoints (default: ./cache or $RESNET_EXPLORER_CACHE)",
    )


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _status_line(rec: Mapping[str, Any]) -> str:
    from trainers.core.results import shown_status

    prog = f"{100 * (rec.get('progress') or 0):5.1f}%"
    te = rec.get("test_error")
    err = "" if te is None else f"{te:6.2f}%"
    extra = rec.get("error") or ""
    if rec["status"] == "running":
        extra = f"ETA {_fmt_eta(rec.get('eta_s'))} on {rec.get('device') or '?'}"
        if rec.get("cancel_requested"):
            extra += " (cancelling)"
    elif rec["status"] == "queued" and rec.get("last_failure"):
        extra = f"restart {rec['restarts']}: {rec['last_failure']}"
    return (
        f"{rec['key']}  {shown_status(rec):<9} {prog}  {rec.get('iteration') or 0:>6}/{rec.get('total') or 0:<6} "
        f"{err:>8}  seed {rec['config']['seed']}  {rec['label']}  {extra}"
    ).rstrip()


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import main

    return main(args)


def cmd_supervise(args: argparse.Namespace) -> int:
    from .supervisor import main

    return main(args)


def _watch(cache_dir: str, keys: list[str], name: str) -> int:
    """Print the sweep's progress until every run is finished. Ctrl-C leaves the runs running."""
    from .store import ACTIVE, Store
    from .sweeps import progress_counts

    tty = sys.stdout.isatty()
    last = ""
    try:
        with Store(cache_dir) as store:
            while True:
                recs = [r for r in (store.get(k) for k in keys) if r is not None]
                counts = progress_counts(recs)
                running = [r for r in recs if r["status"] == "running"]
                done = sum(v for k, v in counts.items() if k not in ACTIVE)
                line = f"{name}: {done}/{len(recs)} finished · " + ", ".join(
                    f"{v} {k}" for k, v in sorted(counts.items())
                )
                if running:
                    line += " · " + "; ".join(
                        f"{r['label']} s{r['config']['seed']} {100 * (r.get('progress') or 0):.0f}%"
                        for r in running[:2]
                    )
                if line != last:
                    print(("\r\033[K" if tty else "") + line, end="" if tty else "\n", flush=True)
                    last = line
                if done == len(recs):
                    print() if tty else None
                    return 0 if not counts.get("error") else 1
                time.sleep(2.0)
    except KeyboardInterrupt:
        print(f"\nthe runs go on in the background: python -m trainers status / results {name}")
        return 0


MAX_SEEDS = 100  # runs per config in one sweep


def _check_fields(assignments: dict, flag: str) -> None:
    """--set/--grid name real config fields; the seed is --seeds' job."""
    from trainers.core.config import CONFIG_FIELDS, ConfigError

    names = {f.name for f in CONFIG_FIELDS}
    for name, value in assignments.items():
        if name == "seed":
            raise ConfigError(f"{flag} seed: the seeds of a sweep are set with --seeds N (seeds 0..N-1)")
        if name not in names:
            raise ConfigError(f"{flag} {name}: no such config field (fields: {', '.join(sorted(names))})")
        if flag == "--grid" and not [v for v in value if v != ""]:
            raise ConfigError(f"--grid {name}: give at least one value (field=v1,v2)")


def cmd_sweep(args: argparse.Namespace) -> int:
    from trainers.core.config import ConfigError

    from .sweeps import parse_assignments, submit_sweep, sweep_configs

    try:
        if not 1 <= args.seeds <= MAX_SEEDS:
            raise ConfigError(f"--seeds must be between 1 and {MAX_SEEDS}, got {args.seeds}")
        overrides = parse_assignments(args.set or [])
        grid = parse_assignments(args.grid or [], many=True)
        _check_fields(overrides, "--set")
        _check_fields(grid, "--grid")
        # --set on a schedule: the schedule first, then the user's values (--schedule smoke --set
        # iterations=50 trains 50 iterations with the rest of smoke)
        configs = sweep_configs(args.name, args.seeds, args.schedule, overrides, grid)
    except (ConfigError, TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    meta = {"schedule": args.schedule, "seeds": args.seeds, "overrides": overrides, "grid": grid}
    records = submit_sweep(args.name, configs, args.cache_dir, args.backend, meta)
    fresh = sum(1 for r in records if r["status"] == "queued")
    print(
        f"{args.name}: {len(configs)} runs ({len(configs) // max(1, args.seeds)} configs × {args.seeds} seeds, "
        f"schedule {args.schedule}, backend {args.backend}); {fresh} queued, "
        f"{len(records) - fresh} already known"
    )
    if args.no_wait:
        return 0
    return _watch(args.cache_dir, [c.key for c in configs], args.name)


def cmd_status(args: argparse.Namespace) -> int:
    from .store import ACTIVE, Store, disk_state
    from .supervisor import ensure_supervisor, supervisor_alive
    from .sweeps import sweep_runs

    if not os.path.exists(os.path.join(args.cache_dir, "store")):
        recs, any_active = [], False  # a status query creates nothing
    else:
        with Store(args.cache_dir, readonly=True) as store:  # reading writes nothing (a full disk)
            recs = sweep_runs(store, args.sweep) if args.sweep else store.list_runs()
            any_active = bool(store.active())
    # the watchdog: runs waiting but no supervisor (it died with its worker): start one
    restarted = any_active and not supervisor_alive(args.cache_dir) and _try_ensure(ensure_supervisor, args.cache_dir)
    if args.json:
        print(dumps(recs))
        return 0
    alive = supervisor_alive(args.cache_dir) or restarted
    active = [r for r in recs if r["status"] in ACTIVE]
    print(
        f"{len(recs)} runs, {len(active)} queued or running; supervisor "
        f"{'restarted' if restarted else 'running' if alive else 'not running'}"
    )
    disk = disk_state(args.cache_dir)
    if disk["full"]:
        print(disk["message"])
    for rec in recs:
        line = _status_line(rec)
        if disk["full"] and rec["status"] in ACTIVE:
            line += "  [disk full]"
        print(line)
    return 0


def _try_ensure(ensure, cache_dir: str) -> bool:
    try:
        return ensure(cache_dir)
    except OSError:  # a full or read-only disk: nothing can run anyway; status still answers
        return False


def cmd_results(args: argparse.Namespace) -> int:
    from .store import Store
    from .sweeps import format_table, results_table, sweep_runs

    with Store(args.cache_dir, readonly=True) as store:
        try:
            recs = sweep_runs(store, args.name)
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 2
    rows = results_table(recs, preset=args.name)
    if not rows and not args.json:
        with Store(args.cache_dir) as store:
            names = sorted(sw["name"] for sw in store.list_sweeps() if sw)
        print(
            f"no run matches {args.name!r} in this cache yet. `python -m trainers status` shows what is queued "
            f"or running; sweeps in this cache: {', '.join(names) or 'none'} (grids launched from the "
            "explorer are remembered under the name shown beside its Launch button)"
        )
        return 0
    if getattr(args, "csv", None):
        from trainers.core.results import to_csv

        with open(args.csv, "w", newline="") as f:
            f.write(to_csv(rows))
    if args.json:
        print(dumps(rows))
    elif not getattr(args, "csv", None):
        print(format_table(rows))
        print(
            "test error %, our median of n finished runs; 'fail' = above 20% after the paper's full "
            "schedule (its convention); shorter runs show their number beside their schedule"
        )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from .jobs import cancel
    from .store import ACTIVE, Store
    from .sweeps import sweep_runs

    keys = list(args.keys)
    with Store(args.cache_dir) as store:
        if args.sweep:
            keys += [r["key"] for r in sweep_runs(store, args.sweep) if r["status"] in ACTIVE]
        if args.all:
            keys += [r["key"] for r in store.active()]
    if not keys:
        print("nothing to cancel", file=sys.stderr)
        return 1
    code = 0
    for key in dict.fromkeys(keys):
        rec = cancel(key, args.cache_dir)
        if rec is None:
            print(f"{key}: no such run", file=sys.stderr)
            code = 1
        else:
            print(f"{key}: {'cancelling' if rec['status'] == 'running' else rec['status']}")
    return code


def cmd_export(args: argparse.Namespace) -> int:
    from .export import write_export
    from .store import Store
    from .sweeps import sweep_runs

    with Store(args.cache_dir, readonly=True) as store:
        keys = list(args.key) or None
        if args.sweep:
            keys = (keys or []) + [r["key"] for r in sweep_runs(store, args.sweep)]
        n = write_export(args.file, store, keys, args.format)
    print(f"exported {n} finished runs to {args.file}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .export import ImportFileError, import_file

    try:
        report = import_file(args.file, args.cache_dir)
    except ImportFileError as e:
        print(f"error: {e}\nnothing was imported", file=sys.stderr)
        return 2
    print(f"imported {len(report['imported'])} runs; skipped {len(report['skipped'])}")
    for key, why in report["skipped"]:
        print(f"  {key}: {why}")
    return 0


def add_commands(sub) -> dict[str, Handler]:
    from trainers.core.presets import PRESETS, SCHEDULES

    p = sub.add_parser("worker", help="(internal) train one claimed run, or several packed; started by the supervisor")
    p.add_argument("key", nargs="+", help="one run; several (same config but the seed) train as one packed network")
    _cache_arg(p)
    p.add_argument(
        "--attempts",
        "--attempt",
        type=int,
        nargs="+",
        default=None,
        help="the attempts the supervisor claimed, one per key; without them the queued runs "
        "are claimed and trained here in the foreground",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--progress", action="store_true", help="print progress to stderr (the train verb)")

    p = sub.add_parser("supervise", help="run the job supervisor in the foreground (normally automatic)")
    _cache_arg(p)
    p.add_argument("--idle-exit-s", type=float, default=None, help="exit after this long idle (default: settings)")

    p = sub.add_parser(
        "sweep",
        help="submit a paper table (or a grid) × seeds and show progress",
        description=f"presets: {', '.join(PRESETS)}; any other NAME with --grid is a grid of your own",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--seeds", type=int, default=5, help="runs per config (default 5: the paper's median of 5)")
    p.add_argument("--schedule", default="paper", choices=list(SCHEDULES))
    p.add_argument("--backend", default="local", choices=["local", "ray"])
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field (repeatable)")
    p.add_argument("--grid", action="append", metavar="FIELD=V1,V2", help="vary a field (repeatable)")
    p.add_argument("--no-wait", action="store_true", help="submit and return")
    _cache_arg(p)

    p = sub.add_parser("status", help="list runs with status and progress")
    p.add_argument("--sweep", help="only the runs of this sweep")
    p.add_argument("--json", action="store_true")
    _cache_arg(p)

    p = sub.add_parser("results", help="a sweep's table: our median (n), min–max, the paper, the difference")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.add_argument("--csv", metavar="FILE", help="write the table as CSV (the Compare page's columns)")
    _cache_arg(p)

    p = sub.add_parser("cancel", help="cancel runs (queued: at once; running: checkpointed, resumable)")
    p.add_argument("keys", nargs="*")
    p.add_argument("--sweep")
    p.add_argument("--all", action="store_true", help="every queued and running run")
    _cache_arg(p)

    p = sub.add_parser("export", help="write finished runs (config, result, curve) to JSON or CSV")
    p.add_argument("file")
    p.add_argument("--key", action="append", default=[])
    p.add_argument("--sweep")
    p.add_argument("--format", choices=["json", "csv"], help="default: from the file suffix")
    _cache_arg(p)

    p = sub.add_parser("import", help="import runs from an export file (validated; never pickle)")
    p.add_argument("file")
    _cache_arg(p)

    handlers = {
        "worker": cmd_worker,
        "supervise": cmd_supervise,
        "sweep": cmd_sweep,
        "status": cmd_status,
        "results": cmd_results,
        "cancel": cmd_cancel,
        "export": cmd_export,
        "import": cmd_import,
    }
    return {verb: _disk_errors(h) for verb, h in handlers.items()}


def _disk_errors(handler: Callable[[argparse.Namespace], T]) -> Callable[[argparse.Namespace], T | int]:
    """A full or read-only disk is a message and exit code 1, not a traceback; nothing stored is lost."""

    def run(args: argparse.Namespace) -> T | int:
        import sqlite3

        from .store import StoreUnavailable, is_disk_full

        try:
            return handler(args)
        except (StoreUnavailable, OSError, sqlite3.OperationalError) as e:
            if not (isinstance(e, StoreUnavailable) or is_disk_full(e)):
                raise
            what = "disk full" if is_disk_full(e) else "cannot write"
            print(
                f"error: {what}: {e}\nnothing stored was lost; free some space (or use a writable "
                f"--cache-dir) and run it again",
                file=sys.stderr,
            )
            return 1

    return run
