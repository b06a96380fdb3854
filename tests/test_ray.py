"""Ray as the executor (issue 24): the same front as the local executors, a killed worker's job
run again, failures surfaced, a cluster of two nodes. Every test here runs on one Ray cluster
of two 1-CPU nodes started once for this file (`ray_cluster`: starting one takes seconds), so
the actors and tasks of each test spread over both nodes; one test adds a node with a GPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from nas.cli import main
from nas.core.calibration import CALIBRATION_FILE
from nas.core.distributed import Engine, LocalTasks, RayTasks, connect
from nas.core.errors import UserError
from nas.search.build import build_search
from nas.search.config import SearchConfig
from nas.search.costs import FixedHardware

from doubles import SPACE, NoisyWindows, SyntheticPerplexity, synthetic_table

ray = pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FRONT_FILES = ("front.csv", "front.json", "history.csv")


@pytest.fixture(scope="session")
def worker_path():
    """PYTHONPATH for the Ray workers started from here: the project and the test doubles."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(TESTS), before) if p)
    yield
    if before is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = before


@pytest.fixture(scope="module")
def ray_cluster(worker_path):
    """A Ray cluster of two nodes (a head and a node of 1 CPU each, as separate processes on
    this machine) for this file's tests, joined by this process, and shut down after them (not
    at the end of the session: an idle cluster's processes take 0.05 of a core). Idle workers
    are kept (Ray ends them after a second by default), so a later test's tasks run in workers
    that have already imported torch and the toolkit (when this was added: 15 worker processes
    instead of 21)."""
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False,
                                      "_system_config": {"kill_idle_workers_interval_ms": 0}})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, configure_logging=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def search(quality, racing: bool, **where):
    """A small search on `quality`, its executor (closed) and its fingerprint."""
    s = build_search(SearchConfig(population=8, generations=2, seed=3, racing=racing), SPACE,
                     quality, FixedHardware(synthetic_table()), vocab=65, max_seq=32,
                     **where)
    result = s.run()
    assert result.retried_jobs == s.evaluator.executor.retried     # what search.json records
    return s.evaluator.executor, ([c.key for c in result.history], [c.key for c in result.front],
                                  [c.perplexity for c in result.front], result.hypervolume)


@pytest.mark.parametrize("racing, workers", [(True, 2), (False, 3)], ids=["racing", "exact"])
def test_ray_actors_give_the_local_front(ray_cluster, racing, workers, capsys):
    """The perplexity actors, one on each node, give the local front; the racing search joins
    the cluster by its address (as `--ray-address` does), the exact one the running instance."""
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    quality = NoisyWindows() if racing else SyntheticPerplexity()
    _, local = search(quality, racing)          # in this process (the same as a process pool)
    address = {"ray_address": ray_cluster.address} if racing else {}
    executor, on_ray = search(quality, racing, workers=workers, executor="ray", **address)
    assert on_ray == local and executor.retried == 0
    assert not executor.actors                  # closed: the actors are gone
    assert executor.workers == 2                # as many actors as the cluster has CPUs
    assert ("2 perplexity actors, not --workers 3" in capsys.readouterr().err) == (workers == 3)


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise UserError(f"job {x} is bad")
    if x == 4:
        raise ValueError("a bug")
    return x


def test_ray_tasks_map_in_order_and_surface_a_failure(ray_cluster):
    jobs = list(range(7))
    done = []
    tasks = RayTasks(square, Engine("ray", workers=2))
    assert tasks.map(jobs, on_done=lambda i, r: done.append((i, r))) \
        == LocalTasks(square).map(jobs) == [x * x for x in jobs]
    assert sorted(done) == [(x, x * x) for x in jobs] and tasks.retried == 0
    tasks.close()
    failing = RayTasks(fail_on_three, Engine("ray", workers=2))
    with pytest.raises(UserError, match="^job 3 is bad$"):       # the job's own one line
        failing.map([1, 3, 2])
    with pytest.raises(ValueError, match="a bug"):               # a bug keeps its traceback
        failing.map([4])
    failing.close()
    assert ray.is_initialized()         # it joined the shared instance: not its to stop
    with pytest.raises(UserError, match="no node of the Ray cluster has 3 CPUs"):
        RayTasks(square, Engine("ray", workers=1), cpus=3)      # would wait forever


def test_cli_search_and_verify_on_ray_match_local(ray_cluster, tiny_supernet, tmp_path, capsys):
    """In this process and on Ray, one worker and one thread each: the same front files, byte
    for byte, and the same retrained perplexities. On Ray: one perplexity actor, then one
    retraining task at a time (a Ray worker that trains imports torch and the training code,
    some 2.5 CPU-seconds: two at a time would pay that twice; how two workers share the work
    is the doubles' tests)."""
    fronts = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        assert main(["search", "--ckpt", str(tiny_supernet), "--out", str(out),
                     "--population", "6", "--generations", "1", "--max-tokens", "256",
                     "--threads", "1", "--workers", "1", "--executor", executor,
                     "--no-progress"]) == 0
        fronts[executor] = [(out / name).read_bytes() for name in FRONT_FILES]
        doc = json.loads((out / "search.json").read_text())
        assert (doc["executor"], doc["retried_jobs"]) == (executor, 0)
        assert main(["verify", "--front", str(out), "--top", "1", "--steps", "2",
                     "--workers", "1", "--executor", executor, "--no-progress"]) == 0
    assert fronts["ray"] == fronts["local"]             # byte for byte
    rows = {e: json.loads((tmp_path / e / "verify" / "verified.json").read_text())["rows"]
            for e in fronts}
    assert [(r["key"], r["standalone_ppl"]) for r in rows["ray"]] == \
        [(r["key"], r["standalone_ppl"]) for r in rows["local"]]
    assert "Ray worker(s)" in capsys.readouterr().out


def test_calibrate_on_ray_fits_what_local_fits(ray_cluster, tiny_supernet, tmp_path, capsys):
    """`nas calibrate` trains its anchors with verify's runner: on Ray as in this process (one
    task at a time, as above)."""
    fits = {}
    for executor in ("local", "ray"):
        run = tmp_path / executor
        shutil.copytree(tiny_supernet, run)
        assert main(["calibrate", "--ckpt", str(run), "--max-tokens", "256", "--workers", "1",
                     "--executor", executor, "--no-progress"]) == 0
        doc = json.loads((run / CALIBRATION_FILE).read_text())
        fits[executor] = (doc["offsets"], [(a["key"], a["standalone_loss"], a["inherited_loss"])
                                           for a in doc["anchors"]])
    assert fits["ray"] == fits["local"] and len(fits["ray"][1]) == 3
    assert "1 Ray worker(s)" in capsys.readouterr().out


def test_cost_matrix_chunks_as_ray_tasks_match_local(ray_cluster, tmp_path, monkeypatch):
    """Co-search's table builds (lut.matrix: chunks of hardware points) as Ray tasks: the same
    matrix, each chunk saved as it came."""
    import numpy as np

    import lut.matrix
    from costmodel.hwspace import HardwareSpace
    from costmodel.workload import Workload
    from lut.matrix import CostMatrix
    monkeypatch.setattr(lut.matrix, "CHUNK", 3)
    points = list(HardwareSpace.from_dict({"base": "gemmini-transformer", "rows": [8, 16],
                                           "cols": [8, 16], "dataflow": ["ws", "os"]}).points())
    workload = Workload(seq=16, mode="decoder", vocab=65)
    saved = []
    monkeypatch.setattr(lut.matrix, "_save_npz", lambda path, **a: saved.append(path.name))
    on_ray = CostMatrix.build(SPACE, points, workload, folder=tmp_path,
                              engine=Engine("ray", workers=2))
    local = CostMatrix.build(SPACE, points, workload)
    assert np.array_equal(on_ray.cycles, local.cycles)
    assert np.array_equal(on_ray.energy_pj, local.energy_pj)
    assert sorted(saved[:-1]) == [f"chunk-{s}.npz" for s in (0, 3, 6)]     # then the whole


def test_bad_executor_options_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="is for --executor ray"):
        Engine("local", "127.0.0.1:6379")
    with pytest.raises(UserError, match="--executor must be one of"):
        Engine("dask")
    with socket_closed() as port:               # nothing listens there
        with pytest.raises(UserError, match="no Ray cluster answers there"):
            connect(Engine("ray", f"127.0.0.1:{port}"))
        for command in (["verify", "--front", str(tmp_path)], ["calibrate", "--ckpt", "x"]):
            assert main([*command, "--ray-address", f"127.0.0.1:{port}",
                         "--executor", "ray"]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "no Ray cluster answers" in err, err


class socket_closed:
    """A local port nothing listens on (bound, then closed)."""

    def __enter__(self) -> int:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc) -> None:
        pass


# -- a worker killed, a node added (slow: they start and kill processes) -----------------------

class DiesOnce:
    """NoisyWindows whose worker process is killed (SIGKILL) on its first job, once per
    `marker` file: a worker lost mid-generation."""

    windows = NoisyWindows.windows

    def __init__(self, marker: Path):
        self.marker, self.inner = str(marker), NoisyWindows()

    def _maybe_die(self) -> None:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL)      # the first to get here dies
        except FileExistsError:
            return
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    def window_losses(self, archs, windows):
        self._maybe_die()
        return self.inner.window_losses(archs, windows)

    def __call__(self, archs):
        self._maybe_die()
        return self.inner(archs)


def die_once(job: tuple[str, int]) -> int:
    DiesOnce(Path(job[0]))._maybe_die()
    return job[1] + 1


@pytest.mark.slow
def test_a_killed_worker_has_its_job_run_again(ray_cluster, tmp_path):
    _, local = search(NoisyWindows(), True)
    executor, on_ray = search(DiesOnce(tmp_path / "actor"), True, workers=2, executor="ray")
    assert on_ray == local and executor.retried == 1
    tasks = RayTasks(die_once, Engine("ray", workers=2))
    assert tasks.map([(str(tmp_path / "task"), i) for i in range(4)]) == [1, 2, 3, 4]
    assert tasks.retried == 1


def gpus_seen(job: int) -> int:
    """The GPUs Ray gave the task running this job."""
    return len(ray.get_gpu_ids())


@pytest.mark.slow
def test_a_gpu_node_gets_the_retraining(ray_cluster):
    """Once a node of 1 CPU and 1 (declared) GPU joins, retraining tasks ask for the GPU (and
    get it)."""
    assert RayTasks(gpus_seen, Engine("ray", workers=2)).gpus == 0
    gpu_node = ray_cluster.add_node(num_cpus=1, num_gpus=1)
    try:
        ray_cluster.wait_for_nodes()
        tasks = RayTasks(gpus_seen, Engine("ray", ray_cluster.address, workers=2))
        assert (tasks.gpus, tasks.map([0, 1, 2])) == (1, [1, 1, 1])
    finally:
        ray_cluster.remove_node(gpu_node)
