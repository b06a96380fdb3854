"""Where parallel work runs: on this machine (a process pool) or on a Ray cluster.

    Engine          the choice (`--executor local|ray`, `--ray-address`, `--workers`)
    task_executor   maps a picklable function over picklable jobs, results in job order:
                    `LocalTasks` (in this process for one worker, else a process pool that
                    ends with this process: nas.core.workers) or `RayTasks` (one Ray task per
                    job, asking for a GPU when the cluster has GPUs): retraining runs
                    (nas.verify) and table builds use it
    connect         starts a local Ray cluster of `workers` CPUs, or joins the one at the
                    address (`--ray-address`, else $RAY_ADDRESS), or uses the one this
                    process already joined
    run_on_ray      the loop Ray tasks and the search's perplexity actors
                    (nas.search.executors.RayActors) share: at most `workers` jobs in flight;
                    results in job order; a job whose worker died (killed, out of memory, its
                    node lost) runs again, up to MAX_RETRIES times, each retry counted and
                    named on standard error; a job that raises stops the rest and its error
                    surfaces (a UserError as the one line it is)

Ray is imported only here and only when `--executor ray` is chosen: `nas --help` and the local
executor never import it. Jobs and results cross processes (and machines) pickled: they are
plain data, and a job's files (checkpoints, data) must be at the same path on every node.
"""

from __future__ import annotations

import os
import socket
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from nas.core.errors import UserError
from nas.core.workers import process_pool

EXECUTORS = ("local", "ray")
ADDRESS_ENV = "RAY_ADDRESS"         # Ray's own variable: the cluster `ray start --head` printed
MAX_RETRIES = 3                     # runs of a job after its worker died, before giving up
CONNECT_TIMEOUT_S = 5.0             # to reach a cluster's address before Ray's own (long) retries

Job = Any
OnDone = Callable[[int, Any], None]     # called with a job's index and result when it is done


@dataclass(frozen=True)
class Engine:
    """Where parallel work runs: `kind` local (this machine) or ray (a Ray cluster: the one at
    `address`, else $RAY_ADDRESS's, else a local one of `workers` CPUs); `workers`: jobs in
    flight at once."""

    kind: str = "local"
    address: str | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise UserError(f"--executor must be one of {', '.join(EXECUTORS)}, got "
                            f"'{self.kind}'")
        if self.workers < 1:
            raise UserError(f"--workers must be >= 1, got {self.workers}")
        if self.address and self.kind != "ray":
            raise UserError(f"--ray-address {self.address} is for --executor ray; add "
                            f"--executor ray to run on that cluster")

    @property
    def ray(self) -> bool:
        return self.kind == "ray"

    def probe(self) -> None:
        """For Ray with an address (given or $RAY_ADDRESS): a one-line error now, before any
        work, when no cluster answers there."""
        address = self.address or os.environ.get(ADDRESS_ENV)
        if self.ray and address:
            _check_reachable(address)

    def describe(self) -> str:
        if not self.ray:
            return f"{self.workers} local worker(s)"
        where = self.address or os.environ.get(ADDRESS_ENV)
        return (f"{self.workers} Ray worker(s) on the cluster at {where}" if where
                else f"{self.workers} Ray worker(s) on a local Ray cluster")


@dataclass(kw_only=True)
class RunsOn:
    """A command job's --workers, --executor and --ray-address (a dataclass base of the jobs
    of `nas verify` and `nas calibrate`): `engine()` is where its jobs run."""

    workers: int = 1
    executor: str = "local"         # local processes or Ray
    ray_address: str | None = None  # --executor ray: the cluster's; None: $RAY_ADDRESS or local

    def engine(self) -> Engine:
        """The engine (its options checked: one-line errors)."""
        return Engine(self.executor, self.ray_address, self.workers)


def add_executor_options(parser: Any, what: str = "jobs") -> None:
    """--executor and --ray-address on a command that runs `what` on --workers workers (its
    job a `RunsOn`)."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help=f"where the {what} run: local (processes on this machine) or "
                             f"ray (Ray workers: on the cluster at --ray-address, else "
                             f"${ADDRESS_ENV}'s, else on a local Ray cluster of --workers "
                             f"CPUs); same results either way (default: local)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help=f"with --executor ray: the Ray cluster to join, HOST:PORT as "
                             f"`ray start --head` prints it, or auto (default: ${ADDRESS_ENV}, "
                             f"else a local cluster)")


# -- Ray: joining a cluster, the retrying loop ------------------------------------------------

def import_ray() -> Any:
    """The `ray` module, or a one-line error naming how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: `pip install ray` (install.sh installs "
                        "it), or use --executor local") from None
    return ray


def connect(engine: Engine) -> bool:
    """Join the engine's Ray cluster, or start a local one of `engine.workers` CPUs; nothing
    when this process has joined one already. Whether this call started Ray (then the caller
    shuts it down when done: `disconnect`)."""
    ray = import_ray()
    address = engine.address or os.environ.get(ADDRESS_ENV)
    engine.probe()
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, configure_logging=False)
    if not address:
        ray.init(num_cpus=engine.workers, **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"--ray-address {address}: cannot join the Ray cluster there "
                        f"({str(exc).splitlines()[0]})") from None
    return True


def _check_reachable(address: str) -> None:
    """A HOST:PORT address must answer within CONNECT_TIMEOUT_S (Ray itself retries for
    minutes); 'auto' and ray:// addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"--ray-address {address}: no Ray cluster answers there ({exc}); "
                        f"start one with `ray start --head` and give the address it "
                        f"prints") from None


def disconnect(started: bool) -> None:
    """Shut Ray down if `connect` started it here."""
    if started:
        import_ray().shutdown()


def has_gpus() -> bool:
    """Whether the joined Ray cluster has GPUs."""
    return import_ray().cluster_resources().get("GPU", 0) > 0


def actors_that_fit(workers: int) -> int:
    """How many of `workers` long-lived 1-CPU actors the joined cluster can hold at once (an
    actor it cannot place would wait forever, and its jobs with it); fewer are named on
    standard error."""
    cpus = int(import_ray().cluster_resources().get("CPU", 0))
    if cpus < 1:
        raise UserError("the Ray cluster has no CPUs for the perplexity actors")
    if cpus < workers:
        print(f"ray: the cluster has {cpus} CPU(s): {cpus} perplexity actors, not --workers "
              f"{workers}", file=sys.stderr)
    return min(workers, cpus)


def check_task_fits(cpus: int) -> None:
    """A task asking for `cpus` CPUs must fit on one node of the joined cluster (else Ray
    would keep it pending forever): a one-line error now."""
    nodes = [n for n in import_ray().nodes() if n.get("Alive")]
    largest = max((int(n["Resources"].get("CPU", 0)) for n in nodes), default=0)
    if cpus > largest:
        raise UserError(f"--threads {cpus}: no node of the Ray cluster has {cpus} CPUs (the "
                        f"largest has {largest}); use --threads {max(largest, 1)} or fewer")


def _lost_worker_errors(ray: Any) -> tuple[type, ...]:
    """Ray's errors for a job whose worker, actor, node or result was lost (not the job's own
    failure, which is a RayTaskError)."""
    names = ("WorkerCrashedError", "RayActorError", "NodeDiedError", "ObjectLostError",
             "LocalRayletDiedError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


Submit = Callable[[int, Job], Any]      # (slot, job) -> a Ray ObjectRef of the job's result


def run_on_ray(submit: Submit, jobs: Sequence[Job], workers: int, on_done: OnDone | None = None,
               force_cancel: bool = True) -> tuple[list, int]:
    """Run `jobs` through `submit` with at most `workers` in flight (slot i of `workers` is
    busy with at most one), retrying a job whose worker was lost; its results in job order,
    and how many runs were retries. A job that raised stops the others (cancelled; `force_cancel`
    kills their workers, for plain tasks) and its error is raised here."""
    ray = import_ray()
    lost = _lost_worker_errors(ray)
    results: dict[int, Any] = {}
    attempts = [0] * len(jobs)
    todo, free = deque(range(len(jobs))), deque(range(workers))
    pending: dict[Any, tuple[int, int]] = {}        # ref -> (job, slot)
    retried = 0
    try:
        while todo or pending:
            while todo and free:
                i, slot = todo.popleft(), free.popleft()
                pending[submit(slot, jobs[i])] = (i, slot)
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i, slot = pending.pop(ref)
            free.append(slot)
            try:
                results[i] = ray.get(ref)
            except lost as exc:
                attempts[i] += 1
                _note_retry(i, attempts[i], exc)
                retried += 1
                todo.appendleft(i)
                continue
            except ray.exceptions.RayTaskError as exc:
                raise _job_error(exc) from None
            if on_done is not None:
                on_done(i, results[i])
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=force_cancel)
        raise
    return [results[i] for i in range(len(jobs))], retried


def _note_retry(job: int, attempt: int, exc: BaseException) -> None:
    why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if attempt > MAX_RETRIES:
        raise UserError(f"job {job} lost its Ray worker {attempt} times, the last time: "
                        f"{why}") from None
    print(f"ray: job {job} lost its worker ({type(exc).__name__}: {why[:200]}); running it "
          f"again (retry {attempt} of {MAX_RETRIES})", file=sys.stderr)


def _job_error(exc: Any) -> BaseException:
    """The error a job raised on Ray, as it would have been raised here: a UserError is its
    one line; anything else Ray's error, which carries the remote traceback."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, UserError) else exc


# -- mapping a function over jobs --------------------------------------------------------------

class TaskExecutor(Protocol):
    workers: int
    retried: int            # jobs run again after their worker was lost

    def map(self, jobs: Sequence[Job], on_done: OnDone | None = None) -> list: ...

    def close(self) -> None: ...


class LocalTasks:
    """`fn` over the jobs in this process (one worker or one job), else in a pool of `workers`
    processes that end with this one, started per map, with the modules `preload` imported
    (nas.core.workers)."""

    retried = 0

    def __init__(self, fn: Callable[[Job], Any], workers: int = 1, preload: Sequence[str] = ()):
        self.fn, self.workers, self.preload = fn, workers, preload

    def map(self, jobs: Sequence[Job], on_done: OnDone | None = None) -> list:
        if self.workers <= 1 or len(jobs) < 2:
            results = (self.fn(job) for job in jobs)
            return _collect(results, on_done)
        with process_pool(min(self.workers, len(jobs)), preload=self.preload) as pool:
            return _collect(pool.imap(self.fn, jobs, chunksize=1), on_done)

    def close(self) -> None:
        pass


def _collect(results: Any, on_done: OnDone | None) -> list:
    out = []
    for i, result in enumerate(results):
        out.append(result)
        if on_done is not None:
            on_done(i, result)
    return out


class RayTasks:
    """`fn` over the jobs as Ray tasks, `workers` at a time, each asking for `cpus` CPUs and,
    when the cluster has GPUs, one GPU; a task whose worker died runs again (`run_on_ray`)."""

    def __init__(self, fn: Callable[[Job], Any], engine: Engine, cpus: int = 1):
        self.workers, self.retried = engine.workers, 0
        self._started = connect(engine)
        ray = import_ray()
        check_task_fits(cpus)
        self.gpus = 1 if has_gpus() else 0
        self._remote = ray.remote(fn).options(num_cpus=cpus, num_gpus=self.gpus, max_retries=0)

    def map(self, jobs: Sequence[Job], on_done: OnDone | None = None) -> list:
        results, retried = run_on_ray(lambda slot, job: self._remote.remote(job), jobs,
                                      self.workers, on_done)
        self.retried += retried
        return results

    def close(self) -> None:
        disconnect(self._started)
        self._started = False


def task_executor(fn: Callable[[Job], Any], engine: Engine, cpus: int = 1,
                  preload: Sequence[str] = ()) -> TaskExecutor:
    """The executor of `fn` for `engine`: Ray tasks, or this machine's processes. `fn` must be
    a module-level function (it is pickled by name), `cpus`: the CPUs one job uses, `preload`:
    modules a local worker process needs (imported once for all of them)."""
    if engine.ray:
        return RayTasks(fn, engine, cpus)
    return LocalTasks(fn, engine.workers, preload)


__all__ = ["Engine", "RunsOn", "EXECUTORS", "ADDRESS_ENV", "MAX_RETRIES", "add_executor_options",
           "TaskExecutor", "LocalTasks", "RayTasks", "task_executor", "connect", "disconnect",
           "run_on_ray", "has_gpus", "actors_that_fit", "check_task_fits", "import_ray"]
