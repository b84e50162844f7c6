"""`python -m trainers reference OUT.json`: train the teaching runs, most valuable first, and write
a reference pack (trainers/core/reference_packs.py) from the engine's own result files.

Runs train one after another in this process (the engine's `train`, checkpointed and resumable):
the pack is rewritten after every run, so a session that runs out of time keeps what finished.
A run whose result.json is already in the cache is packed again, not retrained: re-running the
command after a format change, or with `--merge` of another session's pack, costs nothing.
`--budget-s` stops before a run that the previous run's wall time says will not finish in time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..core import reference_packs as ref
from ..core.atomic import atomic_write, nonblocking_lock
from ..core.config import ConfigError, RunConfig


def _parse_set(items: list[str] | None) -> dict[str, Any]:
    from ..core.config import CONFIG_FIELDS

    types = {f.name: f.type for f in CONFIG_FIELDS}
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in types:
            raise ConfigError(f"--set wants FIELD=VALUE with a RunConfig field, got {item!r}")
        kind = types[name]
        try:
            out[name] = (
                value
                if kind == "str"
                else value.lower() in ("1", "true", "yes")
                if kind == "bool"
                else [float(x) for x in value.split(",")]
                if kind.startswith("tuple")
                else int(value)
                if kind == "int"
                else float(value)
            )
        except ValueError:
            article = "an" if kind[0] in "aeiou" else "a"
            raise ConfigError(f"--set {name}: {value!r} is not {article} {kind}") from None
    return out


def _read_result(run_dir: Path, key: str, until: int | None = None) -> dict[str, Any] | None:
    """The run's result.json if it is finished, or (with `until`) stopped at `until` or later."""
    path = run_dir / "result.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if doc.get("key") != key:
        return None
    if doc.get("status") in ("done", "fail", "diverged"):
        return doc
    partial_ok = until is not None and doc.get("status") == "cancelled" and int(doc.get("iterations") or 0) >= until
    return doc if partial_ok else None


def _segments(resume_dir: Path | None, key: str) -> list[dict[str, Any]]:
    if resume_dir is None:
        return []
    try:
        return list(json.loads((resume_dir / f"{key}.json").read_text())["segments"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _restore_checkpoint(resume_dir: Path | None, run_dir: Path, key: str) -> None:
    """A partial run's checkpoint from an earlier session (kept in the repository) into the cache,
    unless the cache already holds this run's checkpoint."""
    if resume_dir is None:
        return
    src, dst = resume_dir / f"{key}.pt", run_dir / "checkpoint.pt"
    if src.exists() and not dst.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        atomic_write(dst, lambda f: f.write(data))


def _record_segment(
    resume_dir: Path, run_dir: Path, result: Mapping[str, Any], threads: int | None, process_from: int | None = None
) -> None:
    """Append the stretch of training that just ended to the run's segments in `resume_dir`, and
    keep its checkpoint there while the run is partial (a finished run needs none).

    `process_from`: the iteration this process started at. It is later than `from` when an earlier
    process was stopped mid-stretch (a session's end) and this one went on from the cache's periodic
    checkpoint: `wall_time_s` then covers process_from..to only, the rest is in the raw log."""
    key, prov = result["key"], result["provenance"]
    segs = _segments(resume_dir, key)
    start = int(segs[-1]["to"]) if segs else 0
    segs.append(
        {
            "from": start,
            "process_from": start if process_from is None else process_from,
            "to": int(result["iterations"]),
            "wall_time_s": float(result["wall_time_s"]),
            "started_at": prov["started_at"],
            "finished_at": prov["finished_at"],
            "device_name": prov["device_name"],
            "code_version": prov["code_version"],
            "threads": threads,
            "step_mode": prov.get("step_mode"),
            "precision": prov.get("precision"),
        }
    )
    if result["status"] == "cancelled":
        _keep_checkpoint(resume_dir, run_dir, key, segs)
        return
    resume_dir.mkdir(parents=True, exist_ok=True)
    doc = json.dumps({"key": key, "segments": segs}, indent=1).encode()
    atomic_write(resume_dir / f"{key}.json", lambda f: f.write(doc))
    (resume_dir / f"{key}.pt").unlink(missing_ok=True)


def _keep_checkpoint(resume_dir: Path, run_dir: Path, key: str, segments: list[dict[str, Any]]) -> None:
    """Copy a partial run's checkpoint and its training segments into `resume_dir`: a later session
    (a fresh clone, an empty cache) continues the run from there, never from iteration 0."""
    resume_dir.mkdir(parents=True, exist_ok=True)
    data = (run_dir / "checkpoint.pt").read_bytes()
    atomic_write(resume_dir / f"{key}.pt", lambda f: f.write(data))
    doc = json.dumps({"key": key, "segments": segments}, indent=1).encode()
    atomic_write(resume_dir / f"{key}.json", lambda f: f.write(doc))


def _extra_provenance(device: torch.device, threads: int, precision: str) -> dict[str, Any]:
    from . import fast

    cuda = device.type == "cuda"
    return {
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "tf32": bool(torch.backends.cudnn.allow_tf32) if cuda else None,
        "threads": None if cuda else threads,
        "generator": "python -m trainers reference",
        "precision_note": fast.precision_note(precision, device),
    }


def _train_one(
    cfg: RunConfig, run_dir: Path, dev: torch.device, cache_dir: Path, until: int | None, resume_dir: Path | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Train (or grow) one run, unless another process holds it; record its segment and its
    reference provenance beside the engine's result. Returns (result, extra provenance), or None
    when nothing is to be packed."""
    from .train import train

    # one process trains a run at a time: two generators given the same run (an overlapping --pick)
    # would otherwise write one checkpoint and result from two processes
    with nonblocking_lock(run_dir / "generator.lock") as mine:
        if not mine:
            print(
                f"reference: {cfg.label()} ({cfg.key}) is being trained by another process; skipped",
                file=sys.stderr,
                flush=True,
            )
            return None
        _restore_checkpoint(resume_dir, run_dir, cfg.key)
        starts: list[int] = []  # the iteration this process starts at (a checkpoint's)

        def on_event(ev: Mapping[str, Any]) -> None:
            if ev["type"] == "start":
                starts.append(int(ev["iteration"]))

        result = train(cfg, device=dev, cache_dir=cache_dir, progress=True, until=until, on_event=on_event)
    done = _read_result(run_dir, cfg.key, until)
    if done is None:
        print(f"reference: {cfg.key} ended without a result (cancelled?); not packed", file=sys.stderr)
        return None
    extra = _extra_provenance(dev, torch.get_num_threads(), cfg.precision)
    if resume_dir is not None:
        _record_segment(resume_dir, run_dir, result, extra["threads"], starts[0] if starts else None)
    # kept beside the engine's result: a later repack (--pack-only, --merge) keeps it too
    sidecar = json.dumps(extra).encode()
    atomic_write(run_dir / "reference-provenance.json", lambda f: f.write(sidecar))
    return done, extra


def generate(
    configs: list[RunConfig],
    out: Path,
    *,
    device: str = "auto",
    cache_dir: str | Path = "cache",
    budget_s: float | None = None,
    merge: list[Path] | None = None,
    threads: int | None = None,
    note: str = "",
    train_missing: bool = True,
    until: int | None = None,
    resume_dir: Path | None = None,
) -> dict[str, Any]:
    from .provenance import code_version
    from .train import resolve_device

    code_version()  # cached from now on: the commit that starts the runs, not the one at their end
    dev = resolve_device(device)
    if threads and dev.type == "cpu":
        torch.set_num_threads(threads)
    base = [ref.read_pack(p) for p in (merge or []) if Path(p).exists()]
    if out.exists():
        base.append(ref.read_pack(out))
    started = time.time()
    last_wall = 0.0
    entries: list[dict[str, Any]] = []

    def write() -> dict[str, Any]:
        pack = ref.merge_packs(ref.new_pack(entries, note), *base)
        text = ref.dumps(pack)
        ref.parse_pack(text, out.name)  # never write a pack this code would refuse to read
        atomic_write(out, lambda f: f.write(text.encode()))
        return pack

    for i, cfg in enumerate(configs):
        run_dir = Path(cache_dir) / "runs" / cfg.key
        done = _read_result(run_dir, cfg.key, until)
        if done is None and not train_missing:
            print(
                f"reference: [{i + 1}/{len(configs)}] {cfg.label()} ({cfg.key}) not trained; skipped",
                file=sys.stderr,
                flush=True,
            )
            continue
        if done is None:
            left = None if budget_s is None else budget_s - (time.time() - started)
            if left is not None and left < last_wall:
                print(
                    f"reference: stopping before {cfg.label()}: {left:.0f} s left, the last run took {last_wall:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                break
            print(
                f"reference: [{i + 1}/{len(configs)}] training {cfg.label()} ({cfg.key})", file=sys.stderr, flush=True
            )
            trained = _train_one(cfg, run_dir, dev, Path(cache_dir), until, resume_dir)
            if trained is None:
                continue
            done, extra = trained
            last_wall = float(done["wall_time_s"])
        else:
            print(
                f"reference: [{i + 1}/{len(configs)}] {cfg.label()} ({cfg.key}) already trained; packing it",
                file=sys.stderr,
                flush=True,
            )
            try:
                extra = json.loads((run_dir / "reference-provenance.json").read_text())
            except (OSError, ValueError):
                extra = {"generator": "python -m trainers reference"}  # trained by `train`/a sweep
        segs = _segments(resume_dir, cfg.key)
        if segs and int(segs[-1]["to"]) == int(done["iterations"]):  # grown across sessions: its whole story
            extra = {**extra, "segments": segs, "wall_time_s": sum(float(x["wall_time_s"]) for x in segs)}
        entries.append(ref.entry_from_result(done, done.get("curve", []), extra))
        pack = write()
        print(f"reference: wrote {out} ({len(pack['runs'])} runs)", file=sys.stderr, flush=True)
    return write()


def report(pack: dict[str, Any], until: int | None = None) -> dict[str, Any] | None:
    """The campaign group's runs against the identity seeds' spread (core/separation.py), cut at
    iteration `until` if given: the numbers explorer/reference/README.md quotes."""
    from ..core.separation import compare, verdict_text

    group = ref.campaign_group(pack)
    if group is None:
        return None

    def cut(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [p for p in curve if until is None or int(p["iteration"]) <= until]

    series = group["series"]
    base = group["baseline"]
    result = compare(
        [cut(r["curve"]) for r in series[base]],
        {n: [cut(r["curve"]) for r in rs] for n, rs in series.items() if n != base},
    )
    return {
        **result,
        "baseline_seeds": result["baseline"],
        "baseline": base,
        "depth": group["depth"],
        "dataset": group["dataset"],
        "trained": {r["key"]: r["result"]["iterations"] for r in group["runs"]},
        "text": verdict_text(result, base),
    }


def cmd_reference(args) -> int:
    if args.report:
        try:
            out = report(ref.read_pack(args.out), args.until)
        except ref.PackError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if out is None:
            print(
                f"error: {args.out} holds no campaign group (the identity shortcut with two seeds on the "
                "paper's schedule)",
                file=sys.stderr,
            )
            return 2
        print(json.dumps(out, indent=1))
        return 0
    overrides = _parse_set(args.set)
    configs = ref.plan_configs(args.runs, schedule=args.schedule, plan=args.plan, **overrides)
    if args.pick:
        try:
            configs = [configs[int(i) - 1] for i in args.pick.split(",")]
        except (ValueError, IndexError):
            raise ConfigError(
                f"--pick wants 1-based positions in the plan (1..{len(configs)}), got {args.pick!r}"
            ) from None
    if args.dry_run:
        for cfg in configs:
            print(json.dumps({"key": cfg.key, "label": cfg.label(), "iterations": cfg.iterations}))
        return 0
    try:
        pack = generate(
            configs,
            Path(args.out),
            device=args.device,
            cache_dir=args.cache_dir,
            budget_s=args.budget_s,
            merge=[Path(p) for p in args.merge],
            threads=args.threads,
            note=args.note,
            train_missing=not args.pack_only,
            until=args.until,
            resume_dir=(Path(args.resume_dir) if args.resume_dir else ref.PACK_DIR / "resume" if args.until else None),
        )
    except ref.PackError as e:  # a pack to merge with is unreadable: say which, change nothing
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"pack": args.out, "runs": len(pack["runs"])}))
    return 0
