"""Progress bars that behave in a terminal and in a log file.

In a terminal, `progress(...)` is a tqdm bar. When standard error is redirected (a log file, CI,
`nohup`), a bar's carriage-return updates would fill the log with one line per refresh; there it
prints a plain line at every tenth of the work instead (and at the end). `enabled=False` shows
nothing. Messages that must be seen whatever the bar (validation results) go through `.write`,
which prints them in every mode.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class LineProgress:
    """tqdm's update / set_postfix / write / close, printed as whole lines."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0,
                 enabled: bool = True, file=None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.enabled, self.file = enabled, file or sys.stderr
        self.postfix: dict[str, Any] = {}
        self._t0, self._next = time.perf_counter(), self._milestone(initial)

    def _milestone(self, n: int) -> int:
        step = max(1, self.total // 10)
        return (n // step + 1) * step

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.enabled and (self.n >= self._next or self.n == self.total):
            self._next = self._milestone(self.n)
            self._line()

    def _line(self) -> None:
        post = ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        pct = f" ({100 * self.n // self.total}%)" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{pct} in "
              f"{time.perf_counter() - self._t0:.0f} s" + (f", {post}" if post else ""),
              file=self.file, flush=True)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def write(self, message: str) -> None:
        print(message, flush=True)

    def close(self) -> None:
        pass


def progress(total: int, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True,
             file=None):
    """A tqdm bar on a terminal, `LineProgress` elsewhere (see the module docstring)."""
    stream = file or sys.stderr
    if enabled and getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream,
                    dynamic_ncols=True)
    return LineProgress(total, desc, unit, initial, enabled, stream)
