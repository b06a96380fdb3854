"""YAML arguments (architecture, search space, hardware, hardware space): one reader for all.

`load_mapping(path, what, expected)` returns the mapping a YAML (or JSON) file holds, and turns
every way a file can be wrong into a one-line `UserError` naming the file and what to
give instead: missing, a folder, unreadable, binary (a checkpoint, a lookup table, an image ...:
named when recognised), not UTF-8, empty, too large, malformed YAML, or a document that is
not a mapping. A named pipe or a device is read as a stream (`--arch <(cat arch.yaml)`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from nas.core.errors import UserError
from nas.core.paths import file_kind

MAX_YAML_BYTES = 16 * 2**20     # a configuration file; a larger one is some other file
# the first bytes of files people give by mistake, and what they are
BINARY_MAGIC = ((b"PK\x03\x04", "a zip archive, e.g. a PyTorch checkpoint"),
                (b"PAR1", "a Parquet file, e.g. a lookup table"),
                (b"\x93NUMPY", "a NumPy array"),
                (b"\x89PNG", "a PNG image"),
                (b"\x80", "a Python pickle, e.g. a search state"),
                (b"\x1f\x8b", "gzip data"))
GENERIC = "a YAML mapping (key: value lines)"


def _binary_kind(data: bytes) -> str | None:
    """What binary data is (by its first bytes), or None for text."""
    for magic, kind in BINARY_MAGIC:
        if data.startswith(magic):
            return kind
    if b"\x00" in data[:8192]:
        return "binary data"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data, not UTF-8 text"
    return None


def read_text_file(path: str | Path, what: str, expected: str = GENERIC) -> str:
    """The UTF-8 text of `path`, or a one-line UserError saying why it is not a text file."""
    path = Path(path)
    kind = file_kind(path)
    if kind is None:
        raise UserError(f"{what} file not found: {path}")
    if kind in ("a folder", "a socket"):
        raise UserError(f"{what} file {path} is {kind}, not a file")
    try:
        if stat.S_ISREG(os.stat(path).st_mode) and os.path.getsize(path) > MAX_YAML_BYTES:
            raise UserError(f"{what} file {path}: {os.path.getsize(path):,} bytes, too large "
                            f"for a YAML file; give {expected}")
        with open(path, "rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_YAML_BYTES:
        raise UserError(f"{what} file {path}: too large for a YAML file; give {expected}")
    binary = _binary_kind(data)
    if binary:
        raise UserError(f"{what} file {path}: not a YAML text file ({binary}); "
                        f"give {expected}")
    return data.decode("utf-8")


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "plain text" if " " in value.strip() or len(value) > 40 else f"the word {value!r}"
    return f"a {type(value).__name__}"


def load_mapping(path: str | Path, what: str, expected: str = GENERIC) -> dict[str, Any]:
    """The mapping in the YAML/JSON file `path`; for anything else a one-line UserError naming
    the file, what is wrong and what to give instead (`expected`)."""
    try:
        data = yaml.safe_load(read_text_file(path, what, expected))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None)
        raise UserError(f"{what} file {path}: malformed YAML{where}"
                        + (f": {problem}" if problem else "")) from None
    except RecursionError:
        raise UserError(f"{what} file {path}: YAML nested too deeply; "
                        f"give {expected}") from None
    if data is None:                    # nothing but blanks and comments
        raise UserError(f"{what} file {path} is empty; give {expected}")
    if not isinstance(data, dict):
        raise UserError(f"{what} file {path}: expected a mapping at the top level, found "
                        f"{_describe(data)}; give {expected}")
    return data
