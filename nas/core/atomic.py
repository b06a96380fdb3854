"""Atomic writes: a temporary file beside the target, renamed over it only on success.

A reader never sees a half-written file, and a crash leaves the old file in place. The file
gets the permissions of any file the user creates (0666 less the umask), not the 0600 of a
temporary file; a symbolic link is written through (the file it names is replaced, the link
stays). A device, a named pipe or /dev/stdout (`nas.core.paths.writes_in_place`) is never
renamed over: the writer fills a temporary file, which is then copied into it (/dev/stdout:
after what the program printed). A write that fails for want of space, permission or a
working disk is a one-line `UserError` naming the target, and nothing is left behind.

Temporary files name their writer's process (`nas.core.paths.TEMP_FILE`); those a killed
writer left are removed by the next write of the same target and by `remove_stale_temp_files`
(which `nas.core.runlock.run_lock` runs on the folder it locks).
"""

from __future__ import annotations

import errno
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nas.core.errors import UserError
from nas.core.paths import (TEMP_FILE, existing_file, own_descriptor, prepare_target,
                            temp_path, writable_target, writes_in_place)

__all__ = ["atomic_path", "atomic_write_text", "remove_stale_temp_files", "existing_file",
           "writable_target"]

# errors of the disk or the target, not of the program: a one-line UserError
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO,
                errno.EACCES, errno.EPERM}
# temporary names of earlier versions (tempfile.mkstemp's 8 random characters, no process):
# removed once older than LEGACY_TEMP_AGE_S, when no writer can still be at work on them
_LEGACY_TEMP = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp(\.[^./]*)?")
LEGACY_TEMP_AGE_S = 3600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def _write_errors(path: Path, what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise UserError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def _copy_into(src: Path, path: Path) -> None:
    """Write the bytes of `src` into `path` as it is; into the descriptor itself when `path`
    is one of this process's (/dev/stdout), after what was printed to it."""
    fd = own_descriptor(path)
    if fd is not None:
        sys.stdout.flush()
        sys.stderr.flush()
    out = fd if fd is not None else os.open(path, os.O_WRONLY | os.O_CLOEXEC)  # a pipe waits
    try:
        with open(src, "rb") as f:
            while chunk := f.read(2**20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
    finally:
        if fd is None:
            os.close(out)


@contextmanager
def _in_place(path: Path, what: str) -> Iterator[Path]:
    """Yield a temporary file in the system's temporary folder and copy it into `path` on
    success: the writer gets a regular file with the target's suffix (matplotlib reads the
    format from it, torch and pyarrow seek in it, pyarrow deletes it when a write fails), and
    the device or pipe is only ever opened and written."""
    folder = Path(tempfile.gettempdir())
    remove_stale_temp_files(folder, path.name)
    tmp = _new_temp(folder / path.name, what, path)
    try:
        with _write_errors(path, what):
            yield tmp
            _copy_into(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _new_temp(target: Path, what: str, path: Path) -> Path:
    tmp = temp_path(target)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise UserError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    return tmp


@contextmanager
def atomic_path(path: str | Path, what: str = "output") -> Iterator[Path]:
    """Yield the path to write: a temporary file renamed to `path` on success (deleted on
    error), or `path` itself when it is written in place (a device, a pipe, /dev/stdout)."""
    path = prepare_target(path, what)
    if writes_in_place(path):
        with _in_place(path, what) as tmp:
            yield tmp
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    remove_stale_temp_files(target.parent, target.name)
    tmp = _new_temp(target, what, path)
    try:
        with _write_errors(path, what):
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, what: str = "output") -> None:
    with atomic_path(path, what) as tmp, tmp.open("w", newline="") as f:
        f.write(text)


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                 # another user's process
        return True
    return True


def _stale(entry: os.DirEntry, target: str | None, now: float) -> bool:
    if match := TEMP_FILE.fullmatch(entry.name):
        return target in (None, match["target"]) and not pid_alive(int(match["pid"]))
    match = _LEGACY_TEMP.fullmatch(entry.name)
    if not match or target not in (None, match["target"]):
        return False
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_TEMP_AGE_S
    except OSError:
        return False


def remove_stale_temp_files(folder: str | Path, target: str | None = None,
                            recursive: bool = False) -> list[Path]:
    """Remove the temporary files in `folder` that writers killed on this machine left behind
    (of `target` only, when given; in subfolders too with `recursive`); returns them."""
    removed, now = [], time.time()
    folders = [Path(folder)]
    while folders:
        try:
            entries = list(os.scandir(folders.pop()))
        except OSError:                     # missing or unreadable: nothing of ours to remove
            continue
        for entry in entries:
            if recursive and entry.is_dir(follow_symlinks=False):
                folders.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False) and _stale(entry, target, now):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed
