"""The `nas` command line: one argparse parser, one module per group of subcommands.

Each module in COMMAND_MODULES has `register(subparsers)`, which adds its subcommands and sets
`func` on them. Modules import heavy libraries (torch, datasets) inside `func`, never at the top,
so `nas --help` stays fast and torch-free. Bad input raises `UserError`: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nas import __version__
from nas.core.errors import UserError

COMMAND_MODULES = [
    "nas.cli.hardware",
    "nas.cli.supernet",
    "nas.cli.search",
    "nas.cli.verify",
    "nas.cli.report",
    "nas.cli.calibrate",
]


class Parser(argparse.ArgumentParser):
    """argparse's parser with the one-line error rule: a bad command line prints one line
    (`nas COMMAND: error: ...`, pointing at --help) and exits with code 2; --help is unchanged."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} "
                     f"(see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nas",
        description="Hardware-aware neural architecture search for transformers: train an "
                    "elastic supernet, simulate accelerators, build lookup tables, search for "
                    "the perplexity/EDP Pareto front.",
    )
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:                 # e.g. `nas simulate ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130

