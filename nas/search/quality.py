"""The perplexity source, the search's one input about model quality: a small, swappable object.

A `Quality` is any callable list[Arch] -> list[float] (the supernet's is
`supernet.perplexity.SupernetPerplexity`). One that also scores its evaluation windows
separately (`WindowQuality`: `.windows` and `.window_losses(archs, windows)`) can be raced
(nas.search.racing). Sources run in worker processes (nas.search.executors), so they pickle.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from nas.core.arch import Arch

Quality = Callable[[list[Arch]], list[float]]


class WindowQuality(Protocol):
    """A perplexity source that scores evaluation windows separately
    (`supernet.perplexity.SupernetPerplexity`)."""

    @property
    def windows(self) -> int: ...

    def window_losses(self, archs: list[Arch], windows: Sequence[int]) -> list[list[float]]: ...

    def __call__(self, archs: list[Arch]) -> list[float]: ...


def scores_windows(quality: Quality) -> bool:
    """Whether `quality` scores windows separately (a `WindowQuality`), as racing needs."""
    return hasattr(quality, "window_losses") and hasattr(quality, "windows")


class MemoQuality:
    """A perplexity source that remembers every value it gave: one shared by several searches
    on the same supernet and tokens (benchmarks comparing methods) measures each architecture
    once."""

    def __init__(self, quality: Quality):
        self.quality, self.values = quality, {}

    def __call__(self, archs: list[Arch]) -> list[float]:
        todo = list({a.key: a for a in archs if a.key not in self.values}.values())
        for a, p in zip(todo, self.quality(todo) if todo else []):
            self.values[a.key] = p
        return [self.values[a.key] for a in archs]
