"""Provenance of result files (nas.core.provenance), and the rule every committed result under
experiments/ keeps: a `provenance` object with its command, commit and machine, and, when the
cost model produced it, the current simulator version. Results kept only for history live in
experiments/archive/ and are exempt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from costmodel.simulate import SIMULATOR_VERSION
from nas.core.errors import UserError
from nas.core.provenance import command_line, code_version, problems, provenance, write_result

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
RESULTS = sorted(p for p in EXPERIMENTS.rglob("*.json")
                 if "archive" not in p.relative_to(EXPERIMENTS).parts)


def test_command_line_names_the_script_relative_to_the_repository():
    script = str(ROOT / "experiments" / "studies" / "x" / "x.py")
    assert command_line([script, "--out", "a b"]) == \
        "python experiments/studies/x/x.py --out 'a b'"
    assert command_line(["/venv/bin/nas", "search", "--ckpt", "run"]) == "nas search --ckpt run"
    assert command_line(["/venv/lib/pytest/__main__.py", "-q"]) == "python -m pytest -q"
    assert command_line(["/elsewhere/y.py"]) == "python /elsewhere/y.py"
    assert command_line(["-c"]) == "python -c"


def test_provenance_records_command_commit_machine_and_the_simulator_when_given():
    p = provenance(simulator_version=SIMULATOR_VERSION, command="python run.py")
    assert p["command"] == "python run.py"
    assert p["simulator_version"] == SIMULATOR_VERSION
    assert p["machine"]["cores"] == os.cpu_count() and p["machine"]["python"]
    assert ("torch_threads" in p["machine"]) == ("torch" in sys.modules)   # never imported
    assert p["date"].endswith("+00:00")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert p["commit"] == (head or "unknown")
    assert "simulator_version" not in provenance()   # not a cost-model result: none recorded
    json.dumps(p)                                    # plain data


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dirty_means_uncommitted_code_not_results(tmp_path, tmp_path_factory):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "r.json").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    clean = code_version(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "r.json").write_text('{"new": 1}\n')          # a result: still clean
    assert code_version(tmp_path)["dirty"] is False
    (tmp_path / "b.py").write_text("y = 2\n")                 # new code, not yet added
    assert code_version(tmp_path)["dirty"] is True
    (tmp_path / "b.py").unlink()
    (tmp_path / "a.py").write_text("x = 2\n")                 # changed code
    assert code_version(tmp_path)["dirty"] is True
    outside = tmp_path_factory.mktemp("not-git")
    assert code_version(outside) == {"commit": "unknown", "dirty": None}


def test_write_result_adds_provenance_atomically(tmp_path):
    p = provenance(command="python run.py")
    path = write_result(tmp_path / "sub" / "r.json", {"x": 1, "provenance": "old"}, p)
    doc = json.loads(path.read_text())
    assert doc == {"x": 1, "provenance": p}
    assert problems(doc, SIMULATOR_VERSION) == []
    assert sorted(q.name for q in (tmp_path / "sub").iterdir()) == ["r.json"]   # no temp file
    with pytest.raises(ValueError, match="commit"):
        write_result(tmp_path / "s.json", {"x": 1}, {**p, "commit": ""})
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(UserError):
        write_result(tmp_path / "sub", {"x": 1}, p)        # a folder, not a file


def test_problems_names_each_missing_field_and_a_stale_simulator():
    good = {"command": "c", "commit": "abc", "machine": {"cores": 2}}
    assert problems({"provenance": good}, "2.0") == []
    assert problems({"provenance": {**good, "simulator_version": "2.0"}}, "2.0") == []
    assert problems({"command": "c"}, "2.0") == ["no provenance"]
    assert problems([1, 2], "2.0") == ["no provenance"]
    assert problems({"provenance": {"command": "c"}}, "2.0") == [
        "no provenance.commit", "no provenance.machine"]
    assert problems({"provenance": {**good, "simulator_version": "1.0"}}, "2.0") == [
        "simulator 1.0 != 2.0"]


def test_experiments_hold_results():
    assert len(RESULTS) >= 20            # the rule below runs over the committed results
    assert (EXPERIMENTS / "archive" / "README.md").is_file()


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_every_result_has_provenance_and_the_current_simulator(path):
    doc = json.loads(path.read_text())
    assert problems(doc, SIMULATOR_VERSION) == [], path
    p = doc["provenance"]
    if p.get("reconstructed"):           # added after the fact: it says so, and how
        assert p.get("note"), f"{path}: reconstructed provenance without a note"
