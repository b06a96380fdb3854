"""Paths from the command line: inputs that must be files, and outputs checked before any work.

Outputs follow one rule (`writes_in_place`). A path that exists and is not a regular file (a
character or block device such as /dev/null, /dev/full or a terminal, a named pipe), and
/dev/stdout, /dev/fd/N or /proc/self/fd/N whatever they point to, is written in place: opened
and written, never renamed over or deleted. A folder or a socket is refused. Any other path is
written atomically (nas.core.atomic), through a symbolic link to the file it names.

`check_output_file` and `check_output_dir` run before the expensive work of a command and
create nothing: a command whose output fails them leaves the disk as it was. Every error is a
one-line `UserError`.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from nas.core.errors import UserError

# /proc/<pid>/fd: the folder /dev/stdout, /dev/fd/N and /proc/self/fd/N lead to
_FD_FOLDER = re.compile(r"/proc/[^/]+/fd")
# a temporary file of ours: .<target name>.nas-<pid>-<random>.tmp<target suffix>
TEMP_FILE = re.compile(r"\.(?P<target>.+)\.nas-(?P<pid>\d+)-[0-9a-f]+\.tmp(\.[^./]*)?")
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a file"))


def file_kind(path: str | Path) -> str | None:
    """'a file', 'a folder', 'a named pipe', 'a character device' ... (links followed); None
    when nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "a special file")


def temp_path(target: Path) -> Path:
    """A fresh temporary name beside `target` that names its writer's process (TEMP_FILE), so
    a later run can tell a file left by a killed writer from one being written. It keeps the
    target's suffix, so writers that infer a format from it (matplotlib) work unchanged."""
    return target.with_name(f".{target.name}.nas-{os.getpid()}-{secrets.token_hex(4)}"
                            f".tmp{target.suffix}")


def _descriptor_link(path: Path) -> str | None:
    """The /proc/<pid>/fd/N that `path` is or links through (/dev/stdout ...), else None."""
    p = os.path.abspath(path)
    for _ in range(40):                                  # the kernel's own limit on links
        folder = os.path.realpath(os.path.dirname(p))
        if _FD_FOLDER.fullmatch(folder):
            return os.path.join(folder, os.path.basename(p))
        if not os.path.islink(p):
            return None
        p = os.path.normpath(os.path.join(os.path.dirname(p), os.readlink(p)))
    return None


def own_descriptor(path: str | Path) -> int | None:
    """N when `path` is this process's descriptor N (/dev/stdout: 1), else None."""
    link = _descriptor_link(Path(path))
    if link is None or os.path.dirname(link) != f"/proc/{os.getpid()}/fd":
        return None
    name = os.path.basename(link)
    return int(name) if name.isdigit() else None


def writes_in_place(path: str | Path) -> bool:
    """Whether an output at `path` is opened and written as it is (see the module docstring)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        return True
    return stat.S_ISREG(mode) and _descriptor_link(Path(path)) is not None


def existing_file(path: str | Path, what: str, hint: str = "") -> Path:
    """`path` if it is a readable regular file, else a UserError saying what is there instead
    (+ `hint` when nothing is)."""
    path = Path(path)
    kind = file_kind(path)
    if kind is None:
        raise UserError(f"{what} not found: {path}{hint}")
    if kind != "a file":
        raise UserError(f"{what} {path} is {kind}, not a file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{what} {path}: permission denied")
    return path


def _probe(folder: Path, what: str, path: Path) -> None:
    """UserError unless a file can be created in `folder` (tried with a temporary file, removed
    at once; it is named as nas.core.atomic names its temporary files, so a kill leaves nothing
    that a later run would not remove)."""
    probe = temp_path(folder / ".probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise UserError(f"cannot write {what} {path}: cannot create files in {folder} "
                        f"({exc.strerror or exc})") from None
    os.unlink(probe)


def _nearest_folder(folder: Path, what: str, path: Path) -> Path:
    """The nearest existing ancestor of the (possibly missing) `folder`; UserError when it is
    not a folder (a file in the way)."""
    folder = Path(os.path.abspath(folder))
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    kind = file_kind(folder)
    if kind != "a folder":
        raise UserError(f"cannot write {what} {path}: {folder} is {kind or 'missing'}, "
                        f"not a folder")
    return folder


def _refuse_non_files(path: Path, what: str) -> str | None:
    """What is at `path` (file_kind), refused when no file can be written in its place."""
    kind = file_kind(path)
    if kind in ("a folder", "a socket", "a special file"):
        raise UserError(f"{what} {path} is {kind}; give a file name")
    return kind


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """`path` if `what` can be written there: a file that can be created or replaced, or a
    device or named pipe written in place. Creates nothing."""
    path = Path(path)
    kind = _refuse_non_files(path, what)
    if kind is not None and not os.access(path, os.W_OK):
        raise UserError(f"cannot write {what} {path}: it is read-only")
    if writes_in_place(path):
        return path
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path
    _probe(_nearest_folder(target.parent, what, path), what, path)
    return path


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """`path` if a run can write its files there: an existing writable folder, or a missing one
    whose nearest existing ancestor is a writable folder. Creates nothing."""
    path = Path(path)
    kind = file_kind(path)
    if kind not in (None, "a folder"):
        raise UserError(f"{what} {path} is {kind}; give a folder")
    _probe(_nearest_folder(path, what, path), what, path)
    return path


def prepare_target(path: str | Path, what: str = "output") -> Path:
    """`path`, about to be written: refused when it is a folder or a socket or a file is in
    its way; its folder created (not for a device or a pipe, written in place)."""
    path = Path(path)
    _refuse_non_files(path, what)
    if writes_in_place(path):
        return path
    blocking = next((p for p in path.parents if p.is_file()), None)
    if blocking is not None:
        raise UserError(f"cannot write {what} {path}: {blocking} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder for {what} {path}: "
                        f"{exc.strerror or exc}") from None
    return path


def writable_target(path: str | Path, what: str = "output") -> Path:
    """`path` if a file can be written there, creating its folder; a device or named pipe
    (written in place) as it is. The check before the work that creates nothing:
    `check_output_file`."""
    path = prepare_target(path, what)
    if not writes_in_place(path):
        real = Path(os.path.realpath(path)) if os.path.islink(path) else path
        _probe(real.parent, what, path)
    return path


def cache_dir() -> Path:
    """Where files that can always be rebuilt are kept (the builtin corpus): $NAS_CACHE_DIR,
    else $XDG_CACHE_HOME/transformer-hw-nas, else ~/.cache/transformer-hw-nas."""
    if os.environ.get("NAS_CACHE_DIR"):
        return Path(os.environ["NAS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "transformer-hw-nas"
