"""`python -m trainers.runs VERB`: the runs layer's verbs on their own (the supervisor starts
workers this way, so the job system does not depend on the engine CLI's wiring)."""

import argparse
import sys

from .verbs import add_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.runs")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    handlers = add_commands(sub)
    args = parser.parse_args(argv)
    return handlers[args.verb](args)


sys.exit(main())
