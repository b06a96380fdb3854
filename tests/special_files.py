"""Special files for the tests of outputs and bad inputs: devices, named pipes, read-only
folders. Shared by test_atomic.py, test_runlock.py, test_bad_inputs.py and
experiments/reliability/bad_inputs.py.

Run as root, a program that renames over /dev/full or /dev/null breaks the machine: the tests
therefore use private device nodes (mknod in their own folder, same major and minor numbers)
where they can, and the system's only where they cannot be harmed (as another user).
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DEVICES = {"null": (1, 3), "full": (1, 7)}
# ext4, btrfs, xfs: the immutable flag, which refuses new files in a folder even to root
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def device(folder: Path, name: str) -> Path | None:
    """A character device like /dev/<name> ('null' or 'full'): a private node in `folder` when
    this process may make one (root), else the system's when writing it can harm nothing (not
    root); None when neither."""
    path = folder / name
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(*DEVICES[name]))
        return path
    except OSError:
        pass
    system = Path("/dev") / name
    if os.geteuid() != 0 and system.exists() and stat.S_ISCHR(system.stat().st_mode):
        return system
    return None


def file_type(path: Path) -> tuple[str, int]:
    """('chr', rdev), ('fifo', 0), ('file', 0) ...: what must not change about a special file."""
    mode = os.lstat(path).st_mode
    kinds = {stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo",
             stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "link",
             stat.S_IFSOCK: "socket"}
    kind = kinds.get(stat.S_IFMT(mode), "?")
    return kind, os.lstat(path).st_rdev if kind in ("chr", "blk") else 0


def _set_immutable(folder: Path, on: bool) -> bool:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        flags[0] = flags[0] | FS_IMMUTABLE_FL if on else flags[0] & ~FS_IMMUTABLE_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags, True)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _refuses_new_files(folder: Path) -> bool:
    probe = folder / ".probe-write"
    try:
        probe.touch()
    except OSError:
        return True
    probe.unlink()
    return False


def make_read_only(folder: Path) -> bool:
    """Make `folder` refuse new files (mode 0555; for root, which ignores the mode, the
    immutable flag); False when this system allows neither. Undo with `make_writable`."""
    folder.chmod(0o555)
    if _refuses_new_files(folder):
        return True
    return _set_immutable(folder, True) and _refuses_new_files(folder)


def make_writable(folder: Path) -> None:
    _set_immutable(folder, False)
    folder.chmod(0o755)


@contextmanager
def feeding(fifo: Path, data: bytes) -> Iterator[None]:
    """Write `data` into the named pipe `fifo` whenever a reader opens it, until the block
    ends (a program under test that never opens it does not hang the test)."""
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:          # ENXIO: no reader yet
                if exc.errno != errno.ENXIO:
                    return
                stop.wait(0.01)
                continue
            os.set_blocking(fd, True)
            try:
                os.write(fd, data)
            except OSError:
                pass
            os.close(fd)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


@contextmanager
def draining(fifo: Path) -> Iterator[list[bytes]]:
    """Read the named pipe `fifo` once in a thread (what a writer wrote is appended to the
    list yielded), so a program writing it does not block; a reader no writer came to is
    released when the block ends."""
    received: list[bytes] = []

    def drain() -> None:
        with open(fifo, "rb") as f:
            received.append(f.read())

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        if thread.is_alive():
            try:                            # a writer of our own lets the reader finish
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(5)
