"""`milannotations` command line: each subcommand lives in `milannotations.commands.<name>`.

A command module exposes `register(subparsers)` which adds its parser and
sets `func`; errors a user can act on (`MilanError`) print as one line and
exit non-zero, never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import MilanError

COMMANDS = ("download", "build", "join", "push", "info", "exemplars", "synth")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2), like every other refusal.

    Subparsers inherit the class, so `milannotations build --bogus` is one line too.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="milannotations",
                           description="The MILANNOTATIONS corpus: download, build, join, push, inspect; "
                                       "exemplars of your own network; the synthetic ground-truth corpus.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"milannotations.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"milannotations.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def run(argv: list[str] | None, parser: argparse.ArgumentParser) -> int:
    """Parse and dispatch; shared by every console script of the suite."""
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MilanError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return run(argv, build_parser())


if __name__ == "__main__":
    sys.exit(main())
