"""A run folder is locked while a run writes it; a second run fails at once naming the first;
the lock of a killed run is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nas.core.errors import UserError
from nas.core.runlock import LOCK_FILE, run_lock

HOLD = """
import sys, time
from pathlib import Path
from nas.core.runlock import run_lock
folder = Path(sys.argv[1])
with run_lock(folder, command="nas search --ckpt runs/sn --out " + sys.argv[1]):
    import os
    (folder / f".front.csv.nas-{os.getpid()}-0badf00d.tmp.csv").write_text("half")
    print("locked", flush=True)
    time.sleep(120)
"""


def hold(folder: Path) -> subprocess.Popen:
    """Another process holding `folder` (and writing a temporary file in it)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_the_lock_creates_the_folder_and_is_released(tmp_path):
    folder = tmp_path / "runs" / "search"
    with run_lock(folder, command="nas search --out runs/search") as held:
        assert held == folder and folder.is_dir()
        record = json.loads((folder / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["command"] == "nas search --out runs/search"
        with run_lock(folder):                          # this process again: nested, no error
            pass
        assert (folder / LOCK_FILE).exists()
        (folder / "front.csv").write_text("results")
    assert [p.name for p in folder.iterdir()] == ["front.csv"]
    with run_lock(folder):                              # free again
        pass


def test_a_run_that_wrote_nothing_leaves_no_folder_behind(tmp_path):
    """A run that fails before writing (a bad checkpoint) leaves the disk as it was: the
    folders its lock created are removed again; a folder that was there stays."""
    with pytest.raises(UserError):
        with run_lock(tmp_path / "runs" / "search"):
            raise UserError("checkpoint not found")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "old").mkdir()
    with run_lock(tmp_path / "old"):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


def test_a_lock_on_a_file_or_an_unwritable_place_is_a_one_line_error(tmp_path):
    (tmp_path / "a-file").write_text("x")
    for bad, fragment in ((tmp_path / "a-file", "--out .*a-file is a file; give a folder"),
                          (Path("/proc/nas-run"), "cannot create files in /proc")):
        with pytest.raises(UserError, match=fragment) as exc:
            with run_lock(bad):
                pass
        assert "\n" not in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.slow
def test_a_second_run_fails_at_once_and_a_killed_runs_lock_is_taken_over(tmp_path):
    folder = tmp_path / "search"
    first = hold(folder)
    try:
        with pytest.raises(UserError) as exc:
            with run_lock(folder, command="nas search --out search"):
                pytest.fail("two runs hold one folder")
        message = str(exc.value)
        assert "\n" not in message
        assert message.startswith(f"{folder} is in use by another run: `nas search --ckpt "
                                  f"runs/sn --out {folder}` (pid {first.pid} on ")
        assert message.endswith("; wait for it to end or choose another folder")
        first.send_signal(signal.SIGKILL)
        first.wait()
        leftover = folder / f".front.csv.nas-{first.pid}-0badf00d.tmp.csv"
        assert leftover.exists() and (folder / LOCK_FILE).exists()   # a kill cleans nothing
        with run_lock(folder, command="nas search --out search --resume"):
            record = json.loads((folder / LOCK_FILE).read_text())
            assert record["pid"] == os.getpid()
            assert not leftover.exists()                # the dead writer's temporary file
    finally:
        first.kill()
        first.wait()
