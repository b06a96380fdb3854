"""The perplexity source, the search's one input about model quality: a small, swappable object.

A `Quality` is any callable list[Arch] -> list[float] (the supernet's is
`supernet.perplexity.SupernetPerplexity`). One that also scores its evaluation windows
separately (`WindowQuality`: `.windows` and `.window_losses(archs, windows)`) can be raced
(nas.search.racing). Sources run in worker processes (nas.search.executors), so they pickle.
`CalibratedQuality` wraps a source with a supernet's calibration to trained-alone loss.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from nas.core.arch import Arch
from nas.search.candidate import Candidate

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


class CalibratedQuality:
    """A perplexity source corrected by a calibration (`nas.core.calibration.Calibration`: an
    affine map of each architecture's loss, fitted on subnets trained alone). Being affine in
    the loss, it corrects each window's loss too, so racing works on it unchanged, at the
    source's speed. `with_raw` gives a candidate its uncorrected perplexity (`ppl_raw`)."""

    def __init__(self, quality: Quality, calibration):
        self.quality, self.calibration = quality, calibration

    def __call__(self, archs: list[Arch]) -> list[float]:
        return [self.calibration.perplexity(a, p) for a, p in zip(archs, self.quality(archs))]

    @property
    def windows(self) -> int:
        return self.quality.windows

    def window_losses(self, archs: list[Arch], windows: Sequence[int]) -> list[list[float]]:
        raw = self.quality.window_losses(archs, windows)
        return [[self.calibration.loss(a, v) for v in losses] for a, losses in zip(archs, raw)]

    def with_raw(self, candidate: Candidate) -> Candidate:
        """`candidate` (scored on this source) with its raw perplexity beside."""
        return candidate.with_(ppl_raw=self.calibration.raw_perplexity(candidate.arch,
                                                                       candidate.perplexity))

    def describe(self) -> dict[str, Any]:
        """The source's description (where it has one) with the calibration's."""
        inner = self.quality.describe() if hasattr(self.quality, "describe") else {}
        return {**inner, "calibration": self.calibration.describe()}
