"""Configuration dataclasses as command-line options: one definition, two uses.

A config field made with `option(default, help, ...)` carries its option's help text (and
choices); `add_options(parser, Config)` adds `--field-name` for each such field with its
default shown once, and `from_args(Config, args)` builds the config back from the parsed
arguments. TrainConfig and SearchConfig are written this way, so their command-line options can
not drift from the dataclasses.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, field, fields
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def option(default: Any, help: str, choices: tuple | None = None,  # noqa: A002 (argparse's word)
           **metadata: Any) -> Any:
    """A dataclass field that is also a command-line option."""
    return field(default=default, metadata={"help": help, "choices": choices, **metadata})


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def _kind(f: Field) -> Callable[[str], Any]:
    base = str(f.type).split("|")[0].strip()
    return {"int": int, "float": float}.get(base, str)


def add_options(parser: argparse.ArgumentParser, cls: type,
                include: Callable[[Field], bool] = lambda f: True,
                defaults: dict[str, Any] | None = None) -> None:
    """Add one option per `option(...)` field of `cls` that `include` accepts.

    Booleans become --x/--no-x. An option left off the command line is absent from the parsed
    namespace (argparse.SUPPRESS), so `given(cls, args)` tells what the user typed; `defaults`
    overrides a field's default for this parser (pass the same to `from_args`).
    """
    for f in fields(cls):
        if "help" not in f.metadata or not include(f):
            continue
        default = (defaults or {}).get(f.name, f.default if f.default is not MISSING else None)
        help_text = f.metadata["help"]
        shown = "" if default is None or "default" in help_text else f" (default: {default})"
        if isinstance(default, bool):
            parser.add_argument(flag_of(f.name), action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text + shown)
            continue
        parser.add_argument(flag_of(f.name), type=_kind(f), default=argparse.SUPPRESS,
                            choices=f.metadata.get("choices"),
                            metavar=None if f.metadata.get("choices") else f.name.upper(),
                            help=help_text + shown)


def given(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The options of `cls` typed on the command line, with their values."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}


def from_args(cls: type[T], args: argparse.Namespace, defaults: dict[str, Any] | None = None,
              **extra: Any) -> T:
    """`cls` built from its defaults, then `defaults`, then the options typed, then `extra`."""
    return cls(**{**(defaults or {}), **given(cls, args), **extra})


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """--progress / --no-progress (default on): the progress bar, not the results."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show a progress bar; off, results and summaries still print "
                             "(default: on)")
