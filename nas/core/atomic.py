"""File helpers: atomic writes (a temporary file beside the target, renamed over it only on
success) and one-line errors for a path that is missing, a folder, or not writable.

The file gets the permissions of any file the user creates (0666 less the umask), not the
0600 of a temporary file. A target that is a folder, or a place that can not be written, is a
one-line `UserError`, and nothing is left behind.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nas.core.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def existing_file(path: str | Path, what: str, hint: str = "") -> Path:
    """`path` if it is a file, else a UserError saying it is a folder or missing (+ `hint`)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise UserError(f"{what} not found: {path}{hint}")
    return path


def writable_target(path: str | Path, what: str = "output") -> Path:
    """`path` if a file can be written there (its folder is created), else UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name")
    blocking = next((p for p in path.parents if p.is_file()), None)
    if blocking is not None:
        raise UserError(f"cannot write {what} {path}: {blocking} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder for {what} {path}: "
                        f"{exc.strerror or exc}") from None
    return path


@contextmanager
def atomic_path(path: str | Path, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path to write; rename it to `path` on success, delete it on error.

    The temporary name keeps the target's suffix, so writers that infer a format from it
    (matplotlib, torch) behave as with the target itself.
    """
    path = writable_target(path, what)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                   suffix=f".tmp{path.suffix}")
    except OSError as exc:
        raise UserError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, what: str = "output") -> None:
    with atomic_path(path, what) as tmp, tmp.open("w", newline="") as f:
        f.write(text)
