"""`milannotations` command line: each subcommand lives in `milannotations.commands.<name>`.

A command module exposes `register(subparsers)` which adds its parser and
sets `func`; errors a user can act on (`MilanError`) print as one line and
exit non-zero, never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Callable, Sequence

from .errors import MilanError

COMMANDS = ("download", "build", "join", "push", "info", "exemplars", "synth")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2), like every other refusal.

    Subparsers inherit the class, so `milannotations build --bogus` is one line too.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: The common flags: the one name each has in every command of the suite, and its `args` attribute.
COMMON_FLAGS = {"output": "--output", "no_progress": "--no-progress", "device": "--device",
                "seed": "--seed", "limit": "--limit"}
#: Old spellings, still accepted (hidden from --help) so scripts keep working.
DEPRECATED_ALIASES = {"--out": "--output", "--folder": "--root", "--quiet": "--no-progress"}


def add_hidden_alias(parser, alias: str, dest: str, **kwargs) -> None:
    """`alias` sets the same `dest` as the flag it stands for, without showing in --help or
    overriding that flag's default."""
    parser.add_argument(alias, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def add_common_flags(parser: argparse.ArgumentParser, *, output: str | None = None,
                     output_default: Any = None, output_type: Callable = str, output_required: bool = False,
                     output_metavar: str = "DIR", output_aliases: Sequence[str] = ("--out",),
                     progress: bool = True, progress_aliases: Sequence[str] = (),
                     device: str | None = None, seed: str | None = None, seed_default: int = 0,
                     limit: str | None = None) -> argparse.ArgumentParser:
    """Add the flags every command spells the same way; each is added when its help text is given.

    `--output` (`args.output`; old spelling `--out` kept as a hidden alias),
    `--no-progress` (`args.no_progress`), `--device` (default cpu), `--seed` and
    `--limit`. Every console script's parser adds these through here, so the
    names cannot drift apart (tests/test_cli_flags.py checks).
    """
    if output is not None:
        # a required flag with aliases is a required group, so that an alias alone satisfies it
        where = parser.add_mutually_exclusive_group(required=True) if output_required and output_aliases else parser
        where.add_argument("--output", dest="output", default=output_default, type=output_type,
                           required=output_required and not output_aliases, metavar=output_metavar, help=output)
        for alias in output_aliases:
            add_hidden_alias(where, alias, "output", type=output_type, metavar=output_metavar)
    if progress:
        parser.add_argument("--no-progress", dest="no_progress", action="store_true",
                            help="no progress bars" if progress is True else progress)
        for alias in progress_aliases:
            add_hidden_alias(parser, alias, "no_progress", action="store_true")
    if device is not None:
        parser.add_argument("--device", dest="device", default="cpu", help=device or None)
    if seed is not None:
        parser.add_argument("--seed", dest="seed", type=int, default=seed_default, help=seed or None)
    if limit is not None:
        parser.add_argument("--limit", dest="limit", type=int, default=None, metavar="N", help=limit)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="milannotations",
                           description="The MILANNOTATIONS corpus: download, build, join, push, inspect; "
                                       "exemplars of your own network; the synthetic ground-truth corpus.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:  # every command ships with the package: a missing one is a packaging bug, raised
        importlib.import_module(f"milannotations.commands.{name}").register(sub)
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
