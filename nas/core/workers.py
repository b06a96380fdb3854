"""Worker processes that end with the run that started them: `process_pool(n, init, args)`.

A pool's workers are separate processes. When their run is killed (`kill -9`, an out-of-memory
kill) they would go on: a `nas verify` worker trained on for seconds, and a search's perplexity
workers printed BrokenPipeError tracebacks when they found the pipe to the run gone. A worker of
`process_pool` has a thread waiting on its run's process (a pidfd on Linux, else polled), which
ends the worker the moment the run ends, without a word.

The workers are forked from multiprocessing's fork server where there is one (Linux, macOS): a
clean process started once per run, which imports the pool's `preload` modules once for all
workers (torch and the toolkit's training code cost each worker 2-3 CPU-seconds to import);
elsewhere they are spawned. Neither way inherits the run's torch threads. The resource tracker
multiprocessing starts beside the pool is told not to warn about the semaphores of a killed run,
which it cleans up all the same.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import sys
import threading
from typing import Any, Callable, Sequence

_QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def end_with(run: int) -> None:
    """End this process as soon as the process `run` ends (at once if it already has): a
    daemon thread waits on it."""
    def watch() -> None:
        try:
            fd = os.pidfd_open(run)             # readable once `run` has ended
        except (AttributeError, OSError):       # no pidfds here, or `run` has ended
            while _alive(run):
                threading.Event().wait(0.2)
        else:
            select.select([fd], [], [])
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="end-with-run").start()


def _start_worker(run: int, initializer: Callable[..., None] | None,
                  initargs: tuple) -> None:
    end_with(run)
    if initializer is not None:
        initializer(*initargs)


def _quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (once per process) with its warning about
    semaphores a killed parent left ignored: it removes them without a word."""
    from multiprocessing import resource_tracker
    sys.warnoptions.append(_QUIET_TRACKER)     # passed on to the tracker's interpreter
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(_QUIET_TRACKER)


def process_pool(processes: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple = (), preload: Sequence[str] = ()) -> Any:
    """A `multiprocessing.Pool` of `processes` workers that end with this process; `preload`:
    modules its workers need, imported once by the fork server (the first pool's list is the
    one that counts: the server lives as long as this process)."""
    _quiet_resource_tracker()
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
    else:
        ctx = multiprocessing.get_context("spawn")
    return ctx.Pool(processes, initializer=_start_worker,
                    initargs=(os.getpid(), initializer, initargs))


__all__ = ["process_pool", "end_with"]
