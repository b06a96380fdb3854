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


# -- YAML arguments -------------------------------------------------------------------------

def one_line_error(load, path) -> str:
    """The message of the UserError `load(path)` raises, checked to be one line."""
    with pytest.raises(UserError) as exc:
        load(path)
    assert "\n" not in str(exc.value), str(exc.value)
    return str(exc.value)


@pytest.mark.parametrize("content, fragment", [
    (b"PK\x03\x04" + bytes(range(256)), "not a YAML text file (a zip archive, e.g. a PyTorch "
                                        "checkpoint); give an architecture YAML"),
    (b"PAR1" + b"\x00" * 64, "(a Parquet file, e.g. a lookup table)"),
    (b"\x80\x05\x95" + b"\x00" * 16, "(a Python pickle, e.g. a search state)"),
    (b"d: 64\x00\n", "(binary data)"),
    ("d: 64 # caf\u00e9\n".encode("latin-1"), "(binary data, not UTF-8 text)"),
    (b"", "is empty; give an architecture YAML"),
    (b"  \n# only a comment\n", "is empty"),
    (b"d: [64\n", "malformed YAML (line 2)"),
    (b"- 64\n- 128\n", "expected a mapping at the top level, found a list"),
    (b"ROMEO: wherefore art thou\nJULIET: here\n", "unknown field(s) ['JULIET', 'ROMEO']"),
    (b"First Citizen said so.\n", "found plain text"),
    (b"d: 64\nheads: [a, b]\nffn: [1, 2]\n", "heads must be an integer or a list of integers"),
    (b"d: 64\nheads: 2\nffn: 3.5\n", "ffn must be an integer or a list of integers"),
    (b"d: 64\nheads: 2\nffn: 8\nlayers: 1000000000\n", "layers must be an integer from 1"),
    (b"arch: L2-d64\n", "'arch' must be a mapping"),
    (b"1: 2\nd: 64\nheads: 2\nffn: 8\n", "unknown field(s) [1]"),
])
def test_an_architecture_file_that_is_not_one_is_a_one_line_error(tmp_path, content, fragment):
    from nas.core.arch import Arch
    path = tmp_path / "arch.yaml"
    path.write_bytes(content)
    message = one_line_error(Arch.load, path)
    assert fragment in message, message
    assert message.startswith(("architecture file " + str(path), "architecture: "))


def test_yaml_files_from_a_pipe_a_device_or_too_large(tmp_path, monkeypatch):
    from special_files import device, feeding

    import nas.core.yamlfile
    from nas.core.arch import Arch, SearchSpace
    from nas.core.yamlfile import load_mapping
    fifo = tmp_path / "arch.fifo"
    os.mkfifo(fifo)
    with feeding(fifo, b"d: 64\nheads: [2]\nffn: [128]\n"):
        assert Arch.load(fifo) == Arch(64, (2,), (128,))            # `--arch <(cat a.yaml)`
    with feeding(fifo, b"PK\x03\x04" + bytes(200)), pytest.raises(UserError, match="zip"):
        SearchSpace.load(fifo)
    null = device(tmp_path, "null")
    if null is not None:
        with pytest.raises(UserError, match=f"search space file {null} is empty"):
            SearchSpace.load(null)
    big = tmp_path / "big.yaml"
    big.write_text("d: 64\n" * 100)
    monkeypatch.setattr(nas.core.yamlfile, "MAX_YAML_BYTES", 64)
    with pytest.raises(UserError, match="600 bytes, too large for a YAML file"):
        load_mapping(big, "hardware")
    with pytest.raises(UserError, match="hardware file not found"):
        load_mapping(tmp_path / "missing.yaml", "hardware")
    with pytest.raises(UserError, match="is a folder, not a file"):
        load_mapping(tmp_path, "hardware")


@pytest.mark.parametrize("text, fragment", [
    ("layers: [2]\nd: [64]\nheads: [2]\nffn: {min: 1, max: 1000000000}\n", "more than 4,096"),
    ("layers: [2]\nd: [64]\nheads: [2]\nffn: {min: 1, max: 9, step: 0}\n", "positive step"),
    ("layers: [2]\nd: [64]\nheads: [2]\nffn: [128]\nhead_dim: wide\n", "head_dim must be an"),
    ("layers: [2]\nd: [64]\nheads: [2]\nffn: [128]\nname: [x]\n", "name must be text"),
    ("layers: [2]\nd: [64]\nheads: [2]\nffn: [128]\n3: x\n", "unknown field(s) [3]"),
])
def test_bad_search_space_values_are_one_line_errors(tmp_path, text, fragment):
    from nas.core.arch import SearchSpace
    (tmp_path / "space.yaml").write_text(text)
    message = one_line_error(SearchSpace.load, tmp_path / "space.yaml")
    assert fragment in message, message
