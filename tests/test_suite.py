"""The suite's own bookkeeping: the seconds by which pytest-xdist's test processes take the test
files, longest first (tests/conftest.py)."""

import json

from conftest import FILE_SECONDS


def test_every_test_file_has_its_seconds_and_no_other_file_does():
    """A file missing from file_seconds.json would be taken last whatever its length; run
    `pytest --record-file-seconds` after adding or removing one."""
    files = {p.name for p in FILE_SECONDS.parent.glob("test_*.py")}
    recorded = json.loads(FILE_SECONDS.read_text())
    assert sorted(files - recorded.keys()) == [], "not in file_seconds.json"
    assert sorted(recorded.keys() - files) == [], "in file_seconds.json, no longer a test file"
    assert all(seconds >= 0 for seconds in recorded.values())
