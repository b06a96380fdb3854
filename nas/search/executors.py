"""Executors: how perplexity evaluations are mapped, in this process or over worker processes.

An evaluation is a picklable `QualityJob` (architectures and, for the racing evaluator, the
windows to score them on) run against the perplexity source. An `Executor` holds that source
where its jobs run (in long-lived workers, each loading the supernet once), maps jobs there and
returns the results in the order of the jobs, so a result never depends on which worker ran
what:

    InProcess     this process (the default: --workers 1)
    ProcessPool   N worker processes (nas.core.workers), started on first use, each with its
                  own copy of the source (`--workers N`)
    RayActors     N long-lived Ray actors (`--executor ray`), on a local Ray cluster or the
                  one at `--ray-address`: the source is put in Ray's object store once
                  (`ray.put`) and each actor takes it from there once, loading the supernet
                  on its first job; an actor that dies is restarted (and loads it again) and
                  its job runs again (nas.core.distributed.run_on_ray counts it in `retried`)

`score` splits a list of architectures into one job per worker. `make_executor` picks one.
Every executor returns the same results in the same order, so a search's front does not depend
on which one ran it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from nas.core.arch import Arch
from nas.core.distributed import (Engine, actors_that_fit, connect, disconnect, import_ray,
                                  run_on_ray)
from nas.core.workers import process_pool
from nas.search.quality import Quality


@dataclass
class QualityJob:
    """Perplexities of `archs` (`windows` None) or their losses on each of `windows`."""

    archs: list[Arch]
    windows: list[int] | None = None

    def __call__(self, quality: Quality) -> list:
        if self.windows is None:
            return list(quality(self.archs))
        return quality.window_losses(self.archs, self.windows)


class Executor(Protocol):
    workers: int
    retried: int            # jobs run again after their worker was lost (Ray only; else 0)

    def map(self, jobs: Sequence[QualityJob]) -> list[list]: ...

    def close(self) -> None: ...


class InProcess:
    """Runs every job here, one after the other."""

    workers, retried = 1, 0

    def __init__(self, quality: Quality):
        self.quality = quality

    def map(self, jobs: Sequence[QualityJob]) -> list[list]:
        return [job(self.quality) for job in jobs]

    def close(self) -> None:
        pass


_WORKER_QUALITY: Quality | None = None      # the source of a ProcessPool worker


def _init_worker(quality: Quality) -> None:
    global _WORKER_QUALITY
    _WORKER_QUALITY = quality


def _run_job(job: QualityJob) -> list:
    return job(_WORKER_QUALITY)


class ProcessPool:
    """`workers` processes, started on the first map of more than one job (without this
    process's torch threads; they end with this process: nas.core.workers), each given the
    source once; a single job runs here (no retries: a lost worker is for the Ray executor)."""

    retried = 0

    def __init__(self, quality: Quality, workers: int):
        self.quality, self.workers = quality, workers
        self._pool: Any = None

    def map(self, jobs: Sequence[QualityJob]) -> list[list]:
        if len(jobs) < 2:
            return [job(self.quality) for job in jobs]
        if self._pool is None:
            self._pool = process_pool(self.workers, _init_worker, (self.quality,))
        return self._pool.map(_run_job, jobs)

    def close(self) -> None:
        """Stop the workers (every map has returned: nothing is lost; after an error or an
        interrupt, nothing waits for them)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


class _QualityActor:
    """A Ray actor holding the perplexity source: taken from the object store on its first job
    after it starts or restarts (each job names it, `source` = [its ObjectRef]: in a list, so
    that Ray hands the reference over rather than the value), the supernet loading then."""

    def __init__(self):
        self.quality: Quality | None = None

    def run(self, job: QualityJob, source: list) -> list:
        if self.quality is None:
            self.quality = import_ray().get(source[0])
        return job(self.quality)

    def pid(self) -> int:
        return os.getpid()


class RayActors:
    """`engine.workers` Ray actors, started on the first map, each with the source once; jobs
    go to idle actors, results come back in job order. An actor that dies restarts (Ray's
    `max_restarts`) and its job runs again, on it or another (`run_on_ray`; `retried` counts
    them)."""

    def __init__(self, quality: Quality, engine: Engine):
        self.quality, self.engine, self.workers = quality, engine, engine.workers
        self.retried = 0
        self.actors: list[Any] = []
        self._source: Any = None
        self._started = False

    def _start(self) -> None:
        self._started = connect(self.engine)
        ray = import_ray()
        self.workers = actors_that_fit(self.engine.workers)
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(_QualityActor)
        self._source = ray.put(self.quality)       # once; each actor takes it once
        self.actors = [actor.remote() for _ in range(self.workers)]

    def map(self, jobs: Sequence[QualityJob]) -> list[list]:
        if not self.actors:
            self._start()
        source = [self._source]
        results, retried = run_on_ray(
            lambda slot, job: self.actors[slot].run.remote(job, source), jobs, self.workers,
            force_cancel=False)
        self.retried += retried
        return results

    def pids(self) -> list[int]:
        """The process ids of the actors now (each restart gets a new one)."""
        ray = import_ray()
        return ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        """Stop the actors (and Ray, when this executor started it)."""
        if self.actors:
            ray = import_ray()
            for a in self.actors:
                ray.kill(a, no_restart=True)
            self.actors, self._source = [], None
        disconnect(self._started)
        self._started = False


def make_executor(quality: Quality, workers: int = 1, executor: str = "local",
                  address: str | None = None) -> Executor:
    """`workers` Ray actors for the executor 'ray' (on the cluster at `address`, else a local
    one); for 'local', this process for one worker, else a process pool."""
    engine = Engine(executor, address, workers)
    if engine.ray:
        return RayActors(quality, engine)
    return InProcess(quality) if workers <= 1 else ProcessPool(quality, workers)


def score(executor: Executor, archs: list[Arch], windows: list[int] | None = None) -> list:
    """The perplexity of each architecture (`windows` None) or its loss on each of `windows`,
    in order: the architectures split into contiguous chunks, one job per worker."""
    n = max(1, min(executor.workers, len(archs)))
    jobs = [QualityJob(archs[i * len(archs) // n:(i + 1) * len(archs) // n], windows)
            for i in range(n)]
    return [r for part in executor.map(jobs) for r in part]
