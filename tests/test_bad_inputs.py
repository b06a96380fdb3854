"""Bad input to every `nas` command (tests/bad_inputs.py): exit 2, one line on stderr, no
traceback, nothing new on disk, special files unchanged.

The cases known to fail today are expected failures (strict: one that starts passing fails the
suite until its mark is removed), each with what is wrong.
"""

from __future__ import annotations

import pytest

import nas.cli
from bad_inputs import CASES, attempt_case, build_world, run_in_process


def _param(case):
    marks = []
    if case.phase2:
        marks.append(pytest.mark.xfail(strict=True, run=not case.slow_today, reason=case.phase2))
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
def world(tiny_supernet, tmp_path_factory):
    w = build_world(tmp_path_factory.mktemp("bad-inputs"), tiny_supernet, nas.cli.main)
    yield w
    w.close()


def test_the_sweep_covers_every_command_with_many_cases():
    from conftest import COMMANDS
    commands = {c.argv[0] for c in CASES}
    assert commands >= COMMANDS and len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(world, case):
    if world.missing(case):
        pytest.skip(f"this system cannot make {', '.join(world.missing(case))}")
    attempt, found = attempt_case(world, case, world.root / "cwd" / case.id,
                                  lambda argv, cwd: run_in_process(argv, cwd, nas.cli.main))
    assert not found, f"{found}: exit {attempt.code}, stderr:\n{attempt.err[-2000:]}"
