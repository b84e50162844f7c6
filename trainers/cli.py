"""`python -m trainers VERB`: every RunConfig field is a `--field-name` flag.

Engine verbs live here (describe, train, bench); the runs layer adds its verbs (worker, supervise,
sweep, status, results, cancel, export, import) through `trainers.runs.cli.add_commands`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import MISSING
from typing import Any, Callable

from .core.config import CONFIG_FIELDS, ConfigError, RunConfig
from .core.registry import BLOCKS, ORDERINGS, SHORTCUTS

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
        if f.type == "bool":
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif f.type.startswith("tuple"):
            g.add_argument(flag, type=_floats, default=None, metavar="A,B", help=help_)
        else:
            kind = {"int": int, "float": float, "str": str}[f.type]
            g.add_argument(flag, type=kind, default=None, choices=CHOICES.get(f.name), help=help_)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    base: dict[str, Any] = json.loads(args.config_json) if getattr(args, "config_json", None) else {}
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
    import torch

    from .engine.train import train

    cfg = config_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = train(cfg, device=args.device, cache_dir=args.cache_dir, resume=not args.no_resume,
                   checkpoint_every_s=args.checkpoint_every_s, progress=True)
    print(json.dumps({k: result[k] for k in ("key", "status", "test_error", "iterations", "wall_time_s")}))
    return 0 if result["status"] in ("done", "fail", "cancelled") else 1


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
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint of this run")
    handlers["train"] = cmd_train

    for extra in ("trainers.engine.bench", "trainers.engine.reference", "trainers.runs.cli"):
        try:
            module = __import__(extra, fromlist=["add_commands"])
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("trainers"):
                continue  # that part of the engine is not present in this copy
            raise
        handlers.update(module.add_commands(sub))
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.verb](args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:
        print(f"error: --config-json is not valid JSON: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # DataError, CheckpointError, no CUDA: a message, not a traceback
        if type(e).__name__ in ("DataError", "CheckpointError", "RuntimeError"):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
