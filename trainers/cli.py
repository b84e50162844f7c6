"""`python -m trainers VERB`: every RunConfig field is a `--field-name` flag.

Engine verbs live here (describe, train, bench); the runs layer adds its verbs (worker, supervise,
sweep, status, results, cancel, export, import) through `trainers.runs.verbs.add_commands`. Parsing
is torch-free: a verb imports the engine when it runs, so `status` answers without loading torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

from .core.config import CONFIG_FIELDS, RunConfig
from .core.errors import ConfigError, RunError
from .core.registry import BLOCKS, ORDERINGS, SHORTCUTS
from .core.results import shown_status
from .core.strict_json import dumps

CHOICES = {"ordering": list(ORDERINGS), "shortcut": list(SHORTCUTS), "block": list(BLOCKS)}


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--field-name` per RunConfig field; unset flags keep the paper's defaults."""
    g = parser.add_argument_group("run config (defaults: the paper's CIFAR protocol)")
    g.add_argument("--config-json", metavar="JSON", help="a whole config as JSON; flags override it")
    for f in CONFIG_FIELDS:
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_ = f"default: {default}"
        if f.type in ("bool", "bool | str"):  # "bool | str": unset = "auto"
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif f.type.startswith("tuple"):
            g.add_argument(flag, type=_floats, default=None, metavar="A,B", help=help_)
        else:
            kind = {"int": int, "float": float, "str": str}[str(f.type)]
            g.add_argument(flag, type=kind, default=None, choices=CHOICES.get(f.name), help=help_)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    base: dict[str, Any] = json.loads(args.config_json) if getattr(args, "config_json", None) else {}
    if not isinstance(base, dict):
        raise ConfigError(f"--config-json must be a JSON object of config fields, got {type(base).__name__}")
    for f in CONFIG_FIELDS:
        v = getattr(args, f.name, None)
        if v is not None:
            base[f.name] = v
    return RunConfig.from_dict(base)


def cmd_describe(args: argparse.Namespace) -> int:
    from .engine.model import describe

    print(json.dumps(describe(config_from_args(args)), ensure_ascii=False))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:  # the job system, where it is installed: the run is in `status`, and trained once
        from .runs.jobs import train_here
        from .runs.verbs import _disk_errors

        job_system = True
    except ImportError:  # the engine alone (a bare GPU machine without diskcache)
        job_system = False
    if job_system and not args.no_resume:
        rec = _disk_errors(
            lambda a: train_here(cfg, a.cache_dir, a.device, threads=a.threads, checkpoint_every_s=a.checkpoint_every_s)
        )(args)
        if isinstance(rec, int):  # 1: the disk is full or read-only: said so already
            return 1
        if rec is None:
            print(f"error: run {cfg.key} vanished from the store (deleted?)", file=sys.stderr)
            return 1
        result = rec.get("result") or {
            "key": cfg.key,
            "status": rec["status"],
            "test_error": None,
            "iterations": rec.get("iteration"),
            "wall_time_s": None,
        }
        if rec.get("error"):
            print(f"error: {rec['error']}", file=sys.stderr)
        print(_summary(result, shown_status(rec)))
        return 0 if rec["status"] in ("done", "fail", "cancelled") else 1

    import torch

    from .engine.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    result = train(
        cfg,
        device=args.device,
        cache_dir=args.cache_dir,
        resume=not args.no_resume,
        checkpoint_every_s=args.checkpoint_every_s,
        progress=True,
    )
    print(_summary(result, shown_status(result)))
    return 0 if result["status"] in ("done", "fail", "cancelled") else 1


def _summary(result: Mapping[str, Any], status: str) -> str:
    """train's last line: the status as shown (the paper's "fail" decided by core.results)."""
    return dumps(
        {
            k: status if k == "status" else result.get(k)
            for k in ("key", "status", "test_error", "iterations", "wall_time_s")
        }
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from .engine import fast
    from .engine.bench import SYNTHETIC_TRAIN_IMAGES, bench, report_text

    if args.mode not in ("auto", *fast.STEP_MODES):
        print(
            f"error: unknown --mode {args.mode!r}; choose one of: auto, {', '.join(fast.STEP_MODES)}", file=sys.stderr
        )
        return 2
    cfg = config_from_args(args)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.variants:
        return _bench_variants(cfg, args, log)
    r = bench(
        cfg,
        device=args.device,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        rounds=args.rounds,
        workers=args.workers,
        mode=args.mode,
        channels_last=args.channels_last,
        packs=args.packs,
        conventional=not args.skip_conventional,
        train_images=args.train_images or SYNTHETIC_TRAIN_IMAGES,
        threads=args.threads,
        log=log,
    )
    print(report_text(r))
    line = json.dumps(r)
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(line + "\n")
    print(line, flush=True)
    return 0


def _bench_variants(cfg, args: argparse.Namespace, log) -> int:
    from .engine import bench_variants as bv

    names = bv.DEFAULT_VARIANTS if args.variants == "all" else tuple(n.strip() for n in args.variants.split(","))
    if args.device not in ("auto", "cpu"):
        print("error: --variants measures the CPU; leave --device out or say cpu", file=sys.stderr)
        return 2
    try:
        r = bv.run_variants(
            cfg,
            names,
            threads=args.threads,
            steps=args.steps or 10,
            warmup_steps=args.warmup_steps or 2,
            rounds=args.rounds,
            workers=args.workers or 2,
            train_images=args.train_images or bv.SYNTHETIC_TRAIN_IMAGES,
            log=log,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(bv.report_text(r))
    line = json.dumps(r)
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(line + "\n")
    print(line, flush=True)
    return 0


def add_reference(sub) -> None:
    from .core import reference_packs as ref
    from .core.presets import SCHEDULES

    p = sub.add_parser(
        "reference",
        help="train the teaching runs (most valuable first) into a reference pack",
        description="Train the teaching runs, most valuable first, into a reference pack "
        "(trainers/engine/reference_generator.py); packs from several sessions merge.",
    )
    p.add_argument("out", help="the pack to write (merged with what it already holds)")
    p.add_argument("--schedule", default="short", choices=list(SCHEDULES))
    p.add_argument(
        "--plan",
        default="teaching",
        choices=list(ref.PLANS),
        help="teaching: the teaching runs; campaign110: issue #17's ResNet-110 runs (use --schedule paper)",
    )
    p.add_argument("--runs", type=int, default=None, help="the first N runs of the plan")
    p.add_argument(
        "--until",
        type=int,
        default=None,
        metavar="N",
        help="train each run up to iteration N of its schedule and pack it as 'N of TOTAL'; "
        "running again with a larger N resumes it (checkpoints kept in --resume-dir)",
    )
    p.add_argument(
        "--resume-dir",
        default=None,
        metavar="DIR",
        help="where partial runs keep their checkpoints between sessions "
        "(default with --until: explorer/reference/resume)",
    )
    p.add_argument("--pick", metavar="I,J", help="only these 1-based positions of the plan (e.g. one per process)")
    p.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="override a config field of every run, e.g. depth=20 or dataset=folder:PATH",
    )
    p.add_argument("--budget-s", type=float, default=None, help="do not start a run that would end after this")
    p.add_argument("--merge", action="append", default=[], help="another pack to merge in (repeatable)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--cache-dir", default=os.environ.get("RESNET_EXPLORER_CACHE", "cache"))
    p.add_argument("--note", default="", help="a line about this session, kept in the pack")
    p.add_argument("--pack-only", action="store_true", help="pack the runs already trained in the cache; train none")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their keys; train nothing")
    p.add_argument(
        "--report",
        action="store_true",
        help="train nothing: print how the pack's campaign runs compare with the identity seeds' spread "
        "(trainers/core/separation.py), at the last iteration all reached or at --until",
    )


def cmd_reference(args: argparse.Namespace) -> int:
    from .engine.reference_generator import cmd_reference as run

    return run(args)


def add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="training throughput: this trainer vs the conventional pipeline",
        description="Training throughput of this trainer against the conventional pipeline, "
        "side by side, on the same machine and network (trainers/engine/bench.py).",
    )
    add_config_arguments(p)
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default)")
    p.add_argument("--steps", type=int, default=None, help="timed iterations per round (default: 20 CPU, 200 GPU)")
    p.add_argument("--warmup-steps", type=int, default=None, help="untimed first iterations (default: 2 CPU, 10 GPU)")
    p.add_argument("--rounds", type=int, default=2, help="alternating measurement rounds; the median is reported")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers of the conventional pipeline (default: min(4, cores))",
    )
    p.add_argument(
        "--mode", default="auto", help="this trainer's step mode: auto, eager, graph, compile, compile+graph"
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="this trainer's memory layout (default: channels_last)",
    )
    p.add_argument("--packs", type=int, default=1, help="also measure K seeds packed vs one at a time")
    p.add_argument("--skip-conventional", action="store_true")
    p.add_argument(
        "--variants",
        nargs="?",
        const="all",
        default=None,
        metavar="A,B",
        help="CPU: measure this trainer's variants side by side (fp32/bf16, NCHW/channels_last, "
        "eager/compile, one run on all threads vs 2 runs of 1 thread) against the conventional "
        "recipe (trainers/engine/bench_variants.py); no value = all",
    )
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    p.add_argument("--train-images", type=int, default=None, help="synthetic training set size (default: 50,000)")
    p.add_argument("--json-out", help="also append the JSON line to this file")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = argparse.ArgumentParser(prog="python -m trainers", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {}

    p = sub.add_parser("describe", help="print one JSON line: key, parameters, units, structure")
    add_config_arguments(p)
    handlers["describe"] = cmd_describe

    p = sub.add_parser("train", help="train one run in the foreground")
    add_config_arguments(p)
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default)")
    p.add_argument("--cache-dir", default=os.environ.get("RESNET_EXPLORER_CACHE", "cache"))
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    p.add_argument("--checkpoint-every-s", type=float, default=60.0)
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="ignore an existing checkpoint of this run (trains outside the job system)",
    )
    handlers["train"] = cmd_train

    add_bench(sub)
    handlers["bench"] = cmd_bench
    add_reference(sub)
    handlers["reference"] = cmd_reference
    try:
        from .runs.verbs import add_commands
    except ModuleNotFoundError as e:  # an engine-only copy (a bare GPU machine without diskcache is fine:
        if not (e.name or "").startswith("trainers"):  # the runs layer imports it lazily)
            raise
    else:
        handlers.update(add_commands(sub))
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.verb](args)
    except RunError as e:  # ConfigError, DataError, CheckpointError: what to change, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:
        print(f"error: --config-json is not valid JSON: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # e.g. no CUDA on this machine: a message (subclasses: a bug, traceback)
        if type(e) is not RuntimeError:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
