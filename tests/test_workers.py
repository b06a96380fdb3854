"""Worker processes end with their parent (issue 21: after `kill -9` of `nas verify --workers
2` a worker trained 15 s more; a killed racing search's workers printed BrokenPipeError
tracebacks and a leaked-semaphore warning)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# a search's perplexity workers (nas.search.executors.ProcessPool), each busy for ten minutes
SEARCH = """
import os, time
from nas.core.arch import SearchSpace
from nas.search.executors import ProcessPool, QualityJob, score


class Slow:
    def __call__(self, archs):
        # one write, so the two workers' lines cannot interleave (print writes the number and
        # the newline apart when output is unbuffered, as under PYTHONUNBUFFERED)
        os.write(1, f"{os.getpid()}\\n".encode())
        time.sleep(600)
        return [1.0] * len(archs)


if __name__ == "__main__":
    space = SearchSpace.load("tiny")
    score(ProcessPool(Slow(), 2), [space.largest(), space.smallest()])
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:        # a zombie has ended
        return f.read().split(") ")[-1][0] != "Z"


@pytest.mark.slow
def test_workers_end_at_once_and_silently_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "search.py"
    script.write_text(SEARCH)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    parent = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    workers = [int(parent.stdout.readline()) for _ in range(2)]     # both at work
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60     # generous: a loaded machine is slow to end them
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "workers outlived their killed parent"
    err = parent.stderr.read()                      # EOF: every holder of the pipe has ended
    assert "Traceback" not in err and "leaked" not in err, err


# a pool whose workers need the module `wave` (which nothing else here imports)
PRELOAD = """
import sys
from nas.core.workers import process_pool


def imported_before_the_job(_):
    return "wave" in sys.modules


if __name__ == "__main__":
    with process_pool(2, preload=sys.argv[1:]) as pool:
        print(all(pool.map(imported_before_the_job, range(4))), "wave" in sys.modules)
"""


@pytest.mark.slow
@pytest.mark.parametrize("preload", [["wave"], []], ids=["preloaded", "not-preloaded"])
def test_workers_start_with_the_pools_modules_imported(tmp_path, preload):
    """The fork server imports `preload` once; its workers start with it (torch and the
    training code: 2-3 CPU-seconds less per worker)."""
    script = tmp_path / "pool.py"
    script.write_text(PRELOAD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(script), *preload], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(bool(preload)), "False"]
