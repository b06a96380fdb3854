"""Executors: how perplexity evaluations are mapped, in this process or over worker processes.

An evaluation is a picklable `QualityJob` (architectures and, for the racing evaluator, the
windows to score them on) run against the perplexity source. An `Executor` holds that source
where its jobs run (in long-lived workers, each loading the supernet once), maps jobs there and
returns the results in the order of the jobs, so a result never depends on which worker ran
what:

    InProcess     this process (the default: --workers 1)
    ProcessPool   N spawned processes, started on first use, each with its own copy of the
                  source (`--workers N`)

`score` splits a list of architectures into one job per worker. `make_executor` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from nas.core.arch import Arch
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

    def map(self, jobs: Sequence[QualityJob]) -> list[list]: ...

    def close(self) -> None: ...


class InProcess:
    """Runs every job here, one after the other."""

    workers = 1

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
    """`workers` processes, spawned on the first map of more than one job (spawn: safe with
    torch threads in the parent; they end with this process: nas.core.workers), each given the
    source once; a single job runs here."""

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


def make_executor(quality: Quality, workers: int = 1) -> Executor:
    """In this process for one worker, else a process pool."""
    return InProcess(quality) if workers <= 1 else ProcessPool(quality, workers)


def score(executor: Executor, archs: list[Arch], windows: list[int] | None = None) -> list:
    """The perplexity of each architecture (`windows` None) or its loss on each of `windows`,
    in order: the architectures split into contiguous chunks, one job per worker."""
    n = max(1, min(executor.workers, len(archs)))
    jobs = [QualityJob(archs[i * len(archs) // n:(i + 1) * len(archs) // n], windows)
            for i in range(n)]
    return [r for part in executor.map(jobs) for r in part]
