"""Run one application's subcommands in-process, without the top-level command's error handling."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def run_subcommand(register: Callable, argv: list[str]) -> int:
    """Build a parser holding only the subcommands ``register`` adds, parse ``argv`` and run its handler."""
    parser = argparse.ArgumentParser(prog="imreward")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)
