"""Evaluators: how designs become `Candidate`s, each design once, kept in an archive.

An `Evaluator` scores designs: perplexity once per architecture (whatever hardware it is paired
with), mapped by an executor (nas.search.executors); cost and hardware from the cost source
(nas.search.costs); parameter count; the constraints' violation. Its archive (`cache`, design
key -> candidate, in evaluation order) is the search's history, and what it keeps besides
(`state()`) goes into the search's state file.

    ExactEvaluator     every architecture on the whole perplexity budget
    RacingEvaluator    (nas.search.racing) few validation windows first, more only where the
                       front is undecided; the front on all of them

Both are an `ArchiveEvaluator`, which owns the archive and the order of the work
(`evaluate`); they differ only in how perplexity is measured (`_measure`), read (`_perplexity`)
and refined after a batch (`_refine`). `nas.search.build.make_evaluator` picks one.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator, Protocol, Sequence

from nas.core.arch import Arch
from nas.search.candidate import Candidate
from nas.search.config import SearchConfig
from nas.search.costs import CostSource
from nas.search.executors import Executor, score
from nas.search.genome import Design


class Evaluator(Protocol):
    costs: CostSource
    cache: dict[str, Candidate]             # design key -> candidate, in evaluation order
    seconds: dict[str, float]               # "perplexity", "cost"

    def evaluate(self, designs: Sequence[Design], generation: int) -> list[Candidate]: ...

    def candidate(self, design: Design, perplexity: float, cost: tuple[Any, Any],
                  generation: int = 0) -> Candidate: ...

    def state(self) -> dict[str, Any]: ...

    def load(self, cache: dict[str, Candidate], state: dict[str, Any]) -> None: ...

    def stats(self) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class ArchiveEvaluator:
    """The archive and the order of the work; subclasses measure perplexity."""

    def __init__(self, executor: Executor, costs: CostSource, config: SearchConfig,
                 vocab: int = 0, max_seq: int = 0):
        """`vocab` and `max_seq`: the model's, for the parameter count (embedding and
        positions; 0: the stack alone)."""
        self.executor, self.costs, self.config = executor, costs, config
        self.vocab, self.max_seq = vocab, max_seq
        self.cache: dict[str, Candidate] = {}
        self.seconds = {"perplexity": 0.0, "cost": 0.0}

    def evaluate(self, designs: Sequence[Design], generation: int) -> list[Candidate]:
        """Candidates for `designs` (same order); only designs never seen are evaluated, and
        an architecture's perplexity only once whatever its hardware."""
        new = list({d.key: d for d in designs if d.key not in self.cache}.values())
        if new:
            archs = list({d.arch.key: d.arch for d in new
                          if not self._measured(d.arch.key)}.values())
            with self._clock("perplexity"):
                if archs:
                    self._measure(archs)
            with self._clock("cost"):
                self._add(new, generation)
            with self._clock("perplexity"):
                self._refine()
        return [self.cache[d.key] for d in designs]

    def _add(self, designs: list[Design], generation: int) -> None:
        """Cost new designs and add them to the archive with their architectures'
        perplexities."""
        for d, cost in zip(designs, self.costs(designs)):
            self.cache[d.key] = self.candidate(d, self._perplexity(d.arch.key), cost,
                                               generation)

    def candidate(self, design: Design, perplexity: float, cost: tuple[Any, Any],
                  generation: int = 0) -> Candidate:
        """The candidate of `design` at `perplexity` and `cost` (the cost source's (cost,
        hardware) pair), with its parameters and constraint violation."""
        (c, hardware), d = cost, design
        cand = Candidate(arch=d.arch, perplexity=float(perplexity), latency_ms=c.latency_ms,
                         energy_mj=c.energy_mj, edp=c.edp, cycles=c.cycles,
                         params=d.arch.params(self.vocab, self.max_seq), generation=generation,
                         eval_index=len(self.cache), hardware=hardware)
        return cand.with_(violation=self.config.violation(cand))

    @contextmanager
    def _clock(self, what: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[what] += time.perf_counter() - t0

    def close(self) -> None:
        self.executor.close()

    # -- what an evaluator measures --------------------------------------------------------------
    def _measured(self, arch_key: str) -> bool:
        raise NotImplementedError

    def _measure(self, archs: list[Arch]) -> None:
        """Measure architectures never measured before."""
        raise NotImplementedError

    def _perplexity(self, arch_key: str) -> float:
        """A measured architecture's current perplexity."""
        raise NotImplementedError

    def _refine(self) -> None:
        """After a batch of new candidates (nothing to do for the exact evaluator)."""

    # what the state file keeps besides the archive
    def state(self) -> dict[str, Any]:
        return {}

    def load(self, cache: dict[str, Candidate], state: dict[str, Any]) -> None:
        self.cache = cache

    def stats(self) -> dict[str, Any] | None:
        """How perplexity was measured, for search.json (None: every candidate exactly)."""
        return None


class ExactEvaluator(ArchiveEvaluator):
    """Every architecture on the whole perplexity budget, once."""

    def __init__(self, executor: Executor, costs: CostSource, config: SearchConfig,
                 vocab: int = 0, max_seq: int = 0):
        super().__init__(executor, costs, config, vocab, max_seq)
        self.perplexity: dict[str, float] = {}      # arch key -> perplexity

    def _measured(self, arch_key: str) -> bool:
        return arch_key in self.perplexity

    def _measure(self, archs: list[Arch]) -> None:
        self.perplexity.update(zip((a.key for a in archs), score(self.executor, archs)))

    def _perplexity(self, arch_key: str) -> float:
        return self.perplexity[arch_key]

    def load(self, cache: dict[str, Candidate], state: dict[str, Any]) -> None:
        super().load(cache, state)
        self.perplexity = {c.arch.key: c.perplexity for c in cache.values()}
