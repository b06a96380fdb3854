"""Worker processes that end with the run that started them: `process_pool(n, init, args)`.

A pool's workers are separate processes. When their parent is killed (`kill -9`, an out-of-
memory kill) they would go on: a `nas verify` worker trained on for seconds, and a search's
perplexity workers printed BrokenPipeError tracebacks when they found the pipe to the parent
gone. Workers of `process_pool` ask the kernel to kill them the moment their parent dies
(Linux's PR_SET_PDEATHSIG; elsewhere a thread watching the parent's process id), so they end at
once and print nothing. The pool is spawned (safe with torch threads in the parent), and the
resource tracker multiprocessing starts beside it is told not to warn about the semaphores of a
killed parent, which it cleans up all the same.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
from typing import Any, Callable

PR_SET_PDEATHSIG = 1                # linux/prctl.h
_QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"


def _watch_parent(parent: int) -> None:
    """End this process as soon as `parent` is no longer its parent (polled)."""
    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(0.2)
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def die_with_parent(parent: int) -> None:
    """Make this process end when `parent`, the process that started it, ends."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) \
        if sys.platform.startswith("linux") else None
    if libc is None or libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        _watch_parent(parent)
    if os.getppid() != parent:      # it died before we asked
        os._exit(1)


def _start_worker(parent: int, initializer: Callable[..., None] | None,
                  initargs: tuple) -> None:
    die_with_parent(parent)
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
                 initargs: tuple = ()) -> Any:
    """A spawned `multiprocessing.Pool` of `processes` workers that end with this process."""
    _quiet_resource_tracker()
    ctx = multiprocessing.get_context("spawn")
    return ctx.Pool(processes, initializer=_start_worker,
                    initargs=(os.getpid(), initializer, initargs))


__all__ = ["process_pool", "die_with_parent"]
