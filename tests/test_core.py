"""The foundation's helpers: atomic writes, progress output, options from dataclasses."""

from __future__ import annotations

import argparse
import io
import os
import stat
from dataclasses import dataclass

import pytest

from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.core.options import add_options, from_args, given, option
from nas.core.plotting import check_figure_path
from nas.core.progress import LineProgress, progress


def test_atomic_writes_keep_the_users_umask_and_leave_nothing_on_error(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640   # not mkstemp's 0600
    with pytest.raises(UserError, match="is a folder"):
        atomic_write_text(tmp_path, "x")
    with pytest.raises(UserError, match="cannot"):
        atomic_write_text("/proc/no/such/file.json", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_figure_paths_need_a_known_suffix(tmp_path):
    assert check_figure_path(tmp_path / "p.png") == tmp_path / "p.png"
    for bad, message in ((tmp_path / "noext", "ending in one of"), (tmp_path, "is a folder")):
        with pytest.raises(UserError, match=message):
            check_figure_path(bad)


def test_progress_in_a_log_prints_whole_lines_at_each_tenth():
    log = io.StringIO()
    bar = progress(40, "search", unit="gen", file=log)           # not a terminal
    assert isinstance(bar, LineProgress)
    for _ in range(40):
        bar.set_postfix({"hv": "1.0"})
        bar.update(1)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 10
    assert lines[-1].startswith("search: 40/40 gen (100%)") and lines[-1].endswith("hv=1.0")
    quiet = io.StringIO()
    bar = progress(5, "x", file=quiet, enabled=False)
    bar.update(5)
    assert quiet.getvalue() == ""


@dataclass
class _Config:
    steps: int = option(10, "optimizer steps")
    rate: float | None = option(None, "a rate")
    mode: str = option("a", "mode", choices=("a", "b"))
    flag: bool = option(True, "a switch")


def test_options_come_from_the_dataclass_and_know_what_was_typed():
    parser = argparse.ArgumentParser()
    add_options(parser, _Config)
    text = parser.format_help()
    assert "optimizer steps (default: 10)" in text and text.count("(default") == 3
    args = parser.parse_args(["--steps", "5", "--no-flag"])
    assert given(_Config, args) == {"steps": 5, "flag": False}
    assert from_args(_Config, args) == _Config(steps=5, flag=False)
    assert from_args(_Config, parser.parse_args([]), defaults={"mode": "b"}) == _Config(mode="b")
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])
