"""Nothing lost, nothing destroyed (issue 21): runs that share a folder, resume, re-run,
leave files behind, or report their progress; each test names the finding it guards."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cli import main
from nas.core.atomic import pid_alive
from nas.search.build import build_search
from nas.search.config import SearchConfig
from nas.search.costs import FixedHardware

from doubles import SPACE, SyntheticPerplexity, synthetic_table

SEARCH = ["--population", "4", "--max-tokens", "64", "--no-progress"]


def dead_pid() -> int:
    """A process id no process has now."""
    pid = 2**22 - 1
    while pid_alive(pid):
        pid -= 1
    return pid


# -- what a user sees -----------------------------------------------------------------------------

def test_the_last_progress_line_is_the_search_summary(capsys):
    """The progress line of a generation was printed before its figures were set: a log's
    last line said hv=1.1521, front=19, evals=103 where the search ended at 1.1522, 20, 112."""
    config = SearchConfig(racing=False, population=8, generations=10, seed=2)
    result = build_search(config, SPACE, SyntheticPerplexity(), FixedHardware(synthetic_table()),
                          progress=True).run()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "/10 gen" in ln]
    assert lines[-1].startswith("nsga2 search: 10/10 gen")
    assert lines[-1].endswith(f"hv={result.hypervolume[-1]:.4f}, front={len(result.front)}, "
                              f"evals={len(result.history)}")


# -- the search -----------------------------------------------------------------------------------

def test_a_population_larger_than_the_space_is_noted(capsys):
    """`search --population 100000` on the tiny space printed nothing for minutes."""
    from nas.core.arch import SearchSpace
    from nas.pipeline import _note_population
    space = SearchSpace.load("tiny")
    _note_population(SearchConfig(population=space.size()), space, None)
    assert capsys.readouterr().err == ""
    _note_population(SearchConfig(population=100000), space, None)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--population 100,000 is larger than the space's {space.size():,} designs" in err


def test_search_resume_takes_the_options_of_the_search(tiny_supernet, tmp_path, capsys):
    """`nas search --resume` needed every option typed again; now it takes them from the state
    (as train-supernet does from its checkpoint), and a typed one that differs is named."""
    out = tmp_path / "s"
    assert main(["search", "--ckpt", str(tiny_supernet), "--out", str(out), *SEARCH,
                 "--generations", "1", "--seed", "3", "--no-racing", "--hw", "gemmini"]) == 0
    assert main(["search", "--out", str(out), "--resume", "--generations", "2",
                 "--no-progress"]) == 0
    settings = json.loads((out / "search.json").read_text())
    assert settings["generations_done"] == 2
    assert {k: settings["settings"][k] for k in ("population", "seed", "racing")} == \
        {"population": 4, "seed": 3, "racing": False}
    assert settings["hw"] == "gemmini" and settings["perplexity_source"]["max_tokens"] == 64
    capsys.readouterr()
    assert main(["search", "--out", str(out), "--resume", "--seed", "4", "--hw",
                 "gemmini-transformer", "--max-tokens", "64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed differs (search 3, given 4)" in err
    assert "--hw differs (search 'gemmini', given 'gemmini-transformer')" in err
    assert "--max-tokens" not in err                         # the same as the search's


def test_a_resume_on_another_supernet_writes_nothing(tiny_supernet, tmp_path, capsys):
    """`search --resume` with the wrong checkpoint wrote OUT/lut.parquet for the wrong space
    before failing, and the right resume then failed on that table."""
    out = tmp_path / "s"
    assert main(["search", "--ckpt", str(tiny_supernet), "--out", str(out), *SEARCH,
                 "--generations", "0"]) == 0
    (out / "lut.parquet").unlink()
    state = pickle.loads((out / "state.pkl").read_bytes())
    state["identity"]["space"] = {**state["identity"]["space"], "d": [64, 96]}  # not this one
    (out / "state.pkl").write_bytes(pickle.dumps(state))
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another supernet or subset (space differ)" in err
    assert sorted(p.name for p in out.iterdir()) == before


def test_front_files_are_written_after_every_generation(tiny_supernet, tmp_path, monkeypatch):
    """A running or killed search can be looked at: its front.csv, history.csv and
    search.json are written after every generation, not only at the end."""
    from nas.search.engine import Search
    next_generation = Search._next_generation

    def killed_in_generation_2(self, *args):
        if self.generation == 1:
            raise KeyboardInterrupt
        return next_generation(self, *args)
    monkeypatch.setattr(Search, "_next_generation", killed_in_generation_2)
    out = tmp_path / "s"
    assert main(["search", "--ckpt", str(tiny_supernet), "--out", str(out), *SEARCH,
                 "--generations", "3"]) == 130
    doc = json.loads((out / "search.json").read_text())
    assert doc["generations_done"] == 1 and len(doc["hypervolume"]) == 2
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) - 1 == doc["evaluations"] > 4
    assert (out / "front.csv").is_file() and (out / "front.json").is_file()


@pytest.mark.slow
def test_a_second_search_into_a_running_searchs_folder_fails_at_once(tiny_supernet, tmp_path,
                                                                     capsys):
    """Two searches into one --out both printed 'wrote ...' and one's results were lost; the
    second (here in this process) now fails at once, naming the first (a process of its own),
    which finishes untouched."""
    out = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = ["search", "--ckpt", str(tiny_supernet), "--out", str(out), *SEARCH,
            "--generations", "4", "--no-racing"]
    first = subprocess.Popen([sys.executable, "-m", "nas.cli", *argv], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / ".nas.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert main(argv) == 2
    stdout, stderr = capsys.readouterr()
    assert first.wait(120) == 0, first.stderr.read()
    assert stdout == "" and stderr.count("\n") == 1
    assert f"is in use by another run: `nas {' '.join(argv[:3])}" in stderr
    assert f"(pid {first.pid} on " in stderr
    assert json.loads((out / "search.json").read_text())["generations_done"] == 4
    assert not (out / ".nas.lock").exists()


# -- training -------------------------------------------------------------------------------------

def test_training_removes_what_killed_writers_left_and_names_a_subnet(tiny_supernet, tmp_path,
                                                                       capsys):
    """`kill -9` during a plot write left `.loss.png.*.tmp.png` that later runs never removed;
    the run's lock takes them away. A subnet's validation lines name its architecture (a
    `nas verify` log interleaves several runs)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_supernet, run)
    leftover = run / f".loss.png.nas-{dead_pid()}-0badf00d.tmp.png"
    leftover.write_bytes(b"half a png")
    assert main(["train-supernet", "--out", str(run), "--resume", "--steps", "4",
                 "--no-progress"]) == 0
    assert not leftover.exists()
    capsys.readouterr()
    key = "L2-d64-h2.2-f128.128-hd32"
    corpus = json.loads((run / "config.json").read_text())["dataset"]
    assert main(["train-subnet", "--arch", key, "--dataset", corpus, "--out",
                 str(tmp_path / "sub"), "--steps", "2", "--eval-interval", "2",
                 "--block-size", "16", "--batch-size", "2", "--eval-tokens", "64",
                 "--no-progress"]) == 0
    assert re.search(rf"^{re.escape(key)}: step 2: val subnet \d", capsys.readouterr().out, re.M)


# -- outputs --------------------------------------------------------------------------------------

def test_every_output_column_is_documented(tmp_path, capsys):
    """Output columns are documented one by one (README): every column of front.csv and
    history.csv (an architecture-only and a joint search) and of `nas simulate --csv`."""
    import csv

    from nas.search.outputs import table_source, write_outputs
    from doubles import FakeJointCosts
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    columns = set()
    for costs, source in ((FixedHardware(synthetic_table()), table_source(synthetic_table())),
                          (FakeJointCosts(), {"ids": {"hw_space": "fake", "table_id": "x"},
                                              "table": "", "workload": {}})):
        config = SearchConfig(racing=False, population=4, generations=0)
        result = build_search(config, SPACE, SyntheticPerplexity(), costs).run()
        write_outputs(result, tmp_path, source, {}, plot=False)
        for name in ("front.csv", "history.csv"):
            columns |= set(next(csv.reader((tmp_path / name).open())))
    ops = tmp_path / "ops.csv"
    assert main(["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--sparsity", "0.5",
                 "--seq", "16", "--csv", str(ops)]) == 0
    columns |= set(next(csv.reader(ops.open())))
    undocumented = [c for c in sorted(columns) if f"`{c}`" not in readme
                    and f"`{c.split('.')[0]}." not in readme]
    assert not undocumented


# -- export ---------------------------------------------------------------------------------------

def test_exports_record_their_workload_and_replace_an_earlier_export(tiny_supernet, tmp_path,
                                                                     capsys):
    """Exported YAMLs say which workload their costs are for (and the command that gives them
    again); re-exporting into a folder leaves no YAML of the earlier picks (files of others
    stay)."""
    from nas.core.arch import Arch
    from nas.search.outputs import read_front
    out, export = tmp_path / "s", tmp_path / "e"
    assert main(["search", "--ckpt", str(tiny_supernet), "--out", str(out), *SEARCH,
                 "--generations", "1"]) == 0
    assert main(["export", "--front", str(out), "--pick", "all", "--out", str(export)]) == 0
    front = read_front(out).front
    assert len(list(export.glob("*.yaml"))) == len(front) > 1
    best = min(front, key=lambda c: c.perplexity)
    header = (export / f"{best.key}.yaml").read_text().splitlines()[2]
    command = re.fullmatch(r"# costs for the workload decoder-seq16-b1-gen0-v\d+ \(`nas (.*)`\)",
                           header)
    capsys.readouterr()
    assert main(command[1].replace("THIS_FILE", str(export / f"{best.key}.yaml")).split()) == 0
    simulated = capsys.readouterr().out
    assert f" = {best.latency_ms:.4g} ms at " in simulated
    assert f"energy {best.energy_mj:.4g} mJ" in simulated
    (export / "mine.yaml").write_text("d: 64\nheads: [2]\nffn: [128]\n")
    assert main(["export", "--front", str(out), "--pick", "best-ppl", "--out",
                 str(export)]) == 0
    assert sorted(p.name for p in export.glob("*.yaml")) == sorted([f"{best.key}.yaml",
                                                                   "mine.yaml"])
    assert Arch.load(export / f"{best.key}.yaml") == best.arch
