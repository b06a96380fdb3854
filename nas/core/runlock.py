"""One run at a time in a run folder: `with run_lock(folder, command): ...`.

Two runs writing one folder (two searches into one --out) would each write their files over
the other's, and one's results would be lost without a word. A run therefore locks its folder
while it writes it: the lock is `fcntl.flock` on FOLDER/.nas.lock, a file holding the
holder's process id, machine, start time and command. A second run into the folder fails at
once with one line naming the running one. The kernel releases the lock when its holder ends,
however it ends (`kill -9` included), so a lock left by a dead run is simply taken over; the
file is removed when a run ends normally. Taking the lock also removes the temporary files
killed writers left in the folder (nas.core.atomic.remove_stale_temp_files). Folders the lock
created and the run left empty (a run that failed before writing anything) are removed when it
ends, so a failed run leaves the disk as it was.

Locking a folder this process already holds is a no-op (a quickstart's stages, a verify's
runs). A child process started with fork shares its parent's lock, so it must not lock the
same folder again; spawned children, and those of the fork server (nas.core.workers), do not
inherit it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from nas.core.atomic import pid_alive, remove_stale_temp_files
from nas.core.errors import UserError
from nas.core.paths import check_output_dir

LOCK_FILE = ".nas.lock"
_HELD: dict[str, int] = {}          # folders this process holds -> nesting depth


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run folder (the lock file's content)."""

    pid: int
    host: str
    started: str                    # local time, to the second
    command: str

    def describe(self) -> str:
        return f"`{self.command}` (pid {self.pid} on {self.host}, started {self.started})"


def this_command() -> str:
    """The command line of this process, as `nas ...` when it is the nas command."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if name in ("__main__.py", "-m"):
        name = "nas"
    return shlex.join([name] + sys.argv[1:])


def _read_holder(fd: int) -> LockHolder | None:
    """The holder written in the lock file; None while the holder has not written it yet (the
    file is empty, or still names the dead run it took the lock over from)."""
    for _ in range(20):                 # it writes right after taking the lock
        try:
            data = json.loads(os.pread(fd, 65536, 0) or b"null")
            holder = LockHolder(int(data["pid"]), str(data["host"]), str(data["started"]),
                                " ".join(str(data["command"]).split()))
            if holder.host != socket.gethostname() or pid_alive(holder.pid):
                return holder
        except (ValueError, TypeError, KeyError, OSError):
            pass
        time.sleep(0.025)
    return None


def _acquire(folder: Path, command: str) -> int:
    """An open descriptor of FOLDER/LOCK_FILE holding the lock; UserError when another
    process holds it."""
    path = folder / LOCK_FILE
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise UserError(f"cannot lock {folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise UserError(f"{folder} is in use by another run: "
                            f"{holder.describe() if holder else 'a process starting up'}; "
                            f"wait for it to end or choose another folder") from None
        except OSError as exc:          # a file system without locks (some NFS mounts)
            print(f"nas: note: cannot lock {folder} ({exc.strerror or exc}): a second run "
                  f"into it would not be noticed", file=sys.stderr)
        try:                            # a holder ending just now may have removed the file
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            holder = LockHolder(os.getpid(), socket.gethostname(),
                                time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(command.split()))
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(asdict(holder)) + "\n").encode(), 0)
            return fd
        os.close(fd)
    raise UserError(f"cannot lock {folder}: its lock file keeps changing")


@contextmanager
def run_lock(folder: str | Path, command: str | None = None,
             what: str = "--out") -> Iterator[Path]:
    """Hold `folder` (created if needed) for this run: a one-line UserError at once when
    another live run holds it; released (and its lock file removed) on exit."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    check_output_dir(folder, what)
    created = _make_folder(folder, what)
    try:
        fd = _acquire(folder, command or this_command())
    except UserError:
        _remove_empty(created)
        raise
    _HELD[key] = 1
    try:
        remove_stale_temp_files(folder, recursive=True)
        yield folder
    finally:
        del _HELD[key]
        try:
            os.unlink(folder / LOCK_FILE)   # while still held: no one can hold this file now
        except OSError:
            pass
        os.close(fd)
        _remove_empty(created)


def _make_folder(folder: Path, what: str) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {what} {folder}: {exc.strerror or exc}") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that are still empty."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:                     # not empty, or gone: leave it
            return
