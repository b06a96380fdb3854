"""Outputs: atomic writes, special files written in place (never renamed over), stale
temporary files removed, output paths checked before the work without creating anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.core.atomic import atomic_path, atomic_write_text, remove_stale_temp_files
from nas.core.errors import UserError
from nas.core.paths import (TEMP_FILE, check_output_dir, check_output_file, temp_path,
                            writes_in_place)
from special_files import device, draining, file_type, make_read_only, make_writable


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    if not make_read_only(folder):
        pytest.skip("this system lets this user write every folder")
    yield folder
    make_writable(folder)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_named_pipe_is_written_in_place(tmp_path):
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    with draining(fifo) as received:
        atomic_write_text(fifo, '{"a": 1}\n')
    assert received == [b'{"a": 1}\n']
    assert file_type(fifo) == ("fifo", 0) and listing(tmp_path) == ["out.json"]


@pytest.mark.parametrize("through_link", [False, True])
def test_a_null_device_is_written_in_place(tmp_path, through_link):
    null = device(tmp_path, "null")
    if null is None:
        pytest.skip("no null device to write")
    before = file_type(null)
    path = null
    if through_link:
        path = tmp_path / "link.json"
        path.symlink_to(null)
    atomic_write_text(path, "x" * 100_000)
    assert file_type(null) == before == ("chr", os.makedev(1, 3))
    if through_link:
        assert path.is_symlink()
    assert not [p for p in tmp_path.iterdir() if TEMP_FILE.fullmatch(p.name)]


def test_a_full_device_is_a_one_line_error_and_stays_a_device(tmp_path):
    full = device(tmp_path, "full")
    if full is None:
        pytest.skip("no full device to write")
    with pytest.raises(UserError) as exc:
        atomic_write_text(full, "x" * 100_000, "--json file")
    message = str(exc.value)
    assert message == f"cannot write --json file {full}: No space left on device"
    assert file_type(full) == ("chr", os.makedev(1, 7))


def test_a_descriptor_path_writes_the_open_file_in_place(tmp_path):
    """/dev/stdout redirected to a file: the shell's file is written, not replaced."""
    log = tmp_path / "log.txt"
    with log.open("w") as f:
        alias = Path(f"/proc/self/fd/{f.fileno()}")
        inode = log.stat().st_ino
        assert writes_in_place(alias) and writes_in_place("/dev/stdout")
        atomic_write_text(alias, "result\n")
    assert log.read_text() == "result\n" and log.stat().st_ino == inode
    assert listing(tmp_path) == ["log.txt"]


@pytest.mark.slow
def test_dev_stdout_redirected_to_a_file_gets_the_output_in_order(tmp_path):
    code = ("from nas.core.atomic import atomic_write_text\n"
            "print('table')\n"
            "atomic_write_text('/dev/stdout', '{\"a\": 1}\\n')\n"
            "print('wrote /dev/stdout')\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with (tmp_path / "out.txt").open("w") as out:
        subprocess.run([sys.executable, "-c", code], stdout=out, env=env, check=True)
    assert (tmp_path / "out.txt").read_text() == 'table\n{"a": 1}\nwrote /dev/stdout\n'
    assert listing(tmp_path) == ["out.txt"]


def test_a_link_to_a_file_is_written_through(tmp_path):
    (tmp_path / "real.yaml").write_text("old")
    (tmp_path / "link.yaml").symlink_to("real.yaml")
    atomic_write_text(tmp_path / "link.yaml", "new")
    assert (tmp_path / "link.yaml").is_symlink()
    assert (tmp_path / "real.yaml").read_text() == "new"


def test_a_folder_or_a_socket_is_refused_and_left_alone(tmp_path):
    with pytest.raises(UserError, match="is a folder"):
        atomic_write_text(tmp_path, "x")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s.sock"))
        with pytest.raises(UserError, match="is a socket; give a file name"):
            atomic_write_text(tmp_path / "s.sock", "x")
        assert file_type(tmp_path / "s.sock")[0] == "socket"
    finally:
        sock.close()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "front.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert TEMP_FILE.fullmatch(tmp.name) and tmp.suffix == ".csv"
            tmp.write_text("half")
            raise RuntimeError("crash in the middle")
    assert target.read_text() == "old\n" and listing(tmp_path) == ["front.csv"]


def test_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "loss.png"
    dead = target.with_name(f".loss.png.nas-{dead_pid()}-0a1b2c3d.tmp.png")
    live = temp_path(target)                          # this process: a write in progress
    other = tmp_path / f".eval.csv.nas-{dead_pid()}-00ff00ff.tmp.csv"
    legacy_old = tmp_path / ".loss.png.ab_cd123.tmp.png"   # mkstemp's names before
    legacy_new = tmp_path / ".loss.png.zz_cd123.tmp.png"
    for path in (dead, live, other, legacy_old, legacy_new):
        path.write_bytes(b"partial")
    os.utime(legacy_old, (time.time() - 7200,) * 2)
    atomic_write_text(target, "png")
    assert listing(tmp_path) == sorted([live.name, other.name, legacy_new.name, "loss.png"])
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / f".state.pkl.nas-{dead_pid()}-12345678.tmp.pkl"
    nested.write_bytes(b"")
    removed = remove_stale_temp_files(tmp_path, recursive=True)
    assert sorted(removed) == sorted([other, nested])
    assert live.exists() and legacy_new.exists()


@pytest.mark.parametrize("check", [check_output_file, check_output_dir])
def test_output_checks_create_nothing(tmp_path, check):
    (tmp_path / "a-file").write_text("x")
    assert check(tmp_path / "new" / "deeper" / "out") == tmp_path / "new" / "deeper" / "out"
    for bad, fragment in ((tmp_path / "a-file" / "x", "a-file is a file, not a folder"),
                          ("/proc/nas-test/out", "cannot create files in /proc")):
        with pytest.raises(UserError, match=fragment):
            check(bad)
    assert listing(tmp_path) == ["a-file"]


def test_output_file_checks(tmp_path, read_only):
    with pytest.raises(UserError, match="is a folder; give a file name"):
        check_output_file(tmp_path)
    with pytest.raises(UserError, match=f"cannot create files in {read_only}"):
        check_output_file(read_only / "x.json")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert check_output_file(fifo) == fifo                     # written in place, no probe
    assert listing(read_only) == []


def test_output_dir_checks(tmp_path, read_only):
    (tmp_path / "a-file").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    for bad, fragment in ((tmp_path / "a-file", "is a file; give a folder"),
                          (tmp_path / "pipe", "is a named pipe; give a folder"),
                          (read_only, "cannot create files in"),
                          (read_only / "run", "cannot create files in")):
        with pytest.raises(UserError, match=fragment):
            check_output_dir(bad, "--out")
    assert listing(tmp_path) == ["a-file", "pipe", "read-only"] and listing(read_only) == []
