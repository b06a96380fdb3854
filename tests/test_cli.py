"""The `nas` command line as a whole: its commands, their help, and the one-line error rule."""

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import COMMANDS

from nas.cli import build_parser, main


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_is_registered_with_a_help_line():
    parser = build_parser()
    assert set(subcommands(parser)) == COMMANDS
    listed = parser.format_help()
    for name in COMMANDS:           # each command's own line in `nas --help`: name, then help
        assert re.search(rf"^\s+{re.escape(name)}\s+\S", listed, re.M), name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_each_default_once(name):
    text = subcommands(build_parser())[name].format_help()
    for line in re.split(r"\n\s*\n|\n  -", text):
        assert len(re.findall(r"\(default", line)) <= 1, line


def test_help_does_not_import_torch():
    code = ("import sys, contextlib, io\n"
            "from nas.cli import main\n"
            "for argv in (['--help'], ['search', '--help'], ['train-supernet', '--help'],\n"
            "             ['verify', '--help'], ['calibrate', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try: main(argv)\n"
            "        except SystemExit: pass\n"
            "print('torch' in sys.modules, 'deap' in sys.modules, 'ray' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "False", "False"]


def test_bare_nas_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: nas" in capsys.readouterr().out


def test_version():
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "--version"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and re.fullmatch(r"nas \d+\.\d+\.\d+\n", proc.stdout)


@pytest.mark.parametrize("kind", ["null", "full", "pipe"])
def test_simulate_writes_json_into_a_device_or_a_pipe_without_replacing_it(tmp_path, capsys,
                                                                         kind):
    """Issue 21: `--json /dev/full` printed 'wrote /dev/full', exited 0 and left a regular file
    in its place. A device or a pipe is written in place; a full device is a one-line error."""
    from special_files import device, draining, file_type
    if kind == "pipe":
        target = tmp_path / "pipe.json"
        os.mkfifo(target)
    else:
        target = device(tmp_path, kind)
        if target is None:
            pytest.skip(f"no {kind} device to write")
    before = file_type(target)
    argv = ["simulate", "--model", "deit-tiny", "--seq", "16", "--json", str(target)]
    with draining(target) if kind == "pipe" else contextlib.nullcontext([]) as received:
        code = main(argv)
    out, err = capsys.readouterr()
    assert file_type(target) == before
    if kind == "full":
        assert code == 2 and err.strip().splitlines() == [
            f"nas simulate: error: cannot write output {target}: No space left on device"]
    else:
        assert code == 0 and f"wrote {target}" in out
    if kind == "pipe":
        assert json.loads(received[0])["model"] == "deit-tiny"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
