"""The racing evaluator (the default; `nas search --no-racing` turns it off): perplexity on few
tokens first, more only where the front is still undecided.

The perplexity budget is N evaluation windows (`--max-tokens` / context). Every window is
scored separately (a `nas.search.quality.WindowQuality`: `.windows` and
`.window_losses(archs, windows)`), in one fixed random order, so the first n windows are a
sample of all N. Budget levels double from `racing_start` x N windows up to N. A new
architecture is scored on the first level; the anchors (largest and smallest subnet) always on
all N windows.

Estimate. Windows that are hard for one subnet are hard for all of them, so an architecture's
loss is estimated against a fully scored anchor r on the same windows (a paired difference, the
classic control variate):

    loss_a ~ mean_i(l_a,i - l_r,i) + loss_r,   se = sd_i(l_a,i - l_r,i) / sqrt(n) * sqrt(1 - n/N)

over its first n windows (sampling without replacement: the finite-population factor makes the
error vanish at n = N, where the estimate is the exact mean), with r the anchor whose
differences vary least. On the 1000-step Tiny Shakespeare supernet (runs/cosearch-supernet, 60
random subnets, 16 of 128 windows) the paired standard error is 0.0073 nats against 0.045 for
the plain one, and the actual errors stay within 2 standard errors.

Race. After every batch of new candidates, each candidate short of N windows is
- surely out: its constraints are broken even at its optimistic perplexity exp(loss - z se), or
  a candidate feasible at its pessimistic perplexity, with at most its objective, is better at
  that pessimistic perplexity than it is at its optimistic one, up to `racing_tolerance` (a
  candidate that could beat the front by less than that share adds a sliver of hypervolume at
  most);
- undecided otherwise, and so is every member of the front of the estimates: it gets the next
  level's windows, the ones on the estimated front first (once they are exact, many others are
  decided); repeat until none is undecided.
So the front after every generation, and the one the search writes, is scored on all N windows;
the other candidates keep their estimates (NSGA-II's selection uses them below the first front).

Deterministic: the window order and the levels are fixed, and each level's windows are scored
as one list, in any process. The per-window losses go into the search's state file.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from typing import Any, Sequence

from nas.core.arch import Arch
from nas.search.candidate import Candidate
from nas.search.config import SearchConfig
from nas.search.costs import CostSource
from nas.search.evaluators import ArchiveEvaluator
from nas.search.executors import Executor, score
from nas.search.pareto import pareto_indices


def window_order(n: int) -> list[int]:
    """The fixed random order windows are scored in (the same for every search)."""
    order = list(range(n))
    random.Random(f"racing-{n}").shuffle(order)
    return order


def levels(n: int, start: float) -> list[int]:
    """Window counts of the budget levels: ceil(start x n) (at least 2, for a standard error),
    doubling, up to n."""
    size = min(n, max(2, math.ceil(start * n)))
    out = [size]
    while out[-1] < n:
        out.append(min(n, 2 * out[-1]))
    return out


def estimate(losses: Sequence[float], refs: Sequence[Sequence[float]],
             total: int) -> tuple[float, float]:
    """(loss, standard error) of an architecture from its losses on the first n of `total`
    windows, against each fully scored reference (per-window losses on all `total`, in the
    same order); the reference with the smallest error wins. Exact (error 0) at n = total."""
    n = len(losses)
    if n >= total:
        return statistics.fmean(losses), 0.0
    fpc = math.sqrt(1.0 - n / total) / math.sqrt(n)
    best = (statistics.fmean(losses), statistics.stdev(losses) * fpc)
    for ref in refs:
        diff = [a - b for a, b in zip(losses, ref)]
        se = statistics.stdev(diff) * fpc
        if se < best[1]:
            best = (statistics.fmean(diff) + statistics.fmean(ref), se)
    return best


class RacingEvaluator(ArchiveEvaluator):
    """An evaluator whose perplexities are raced (module docstring) on a perplexity source of
    `windows` evaluation windows (a `nas.search.quality.WindowQuality`). `pinned`: architectures
    always scored on every window (the anchors), the references of the estimates."""

    def __init__(self, executor: Executor, costs: CostSource, config: SearchConfig,
                 vocab: int = 0, max_seq: int = 0, *, windows: int,
                 pinned: Sequence[Arch] = ()):
        super().__init__(executor, costs, config, vocab, max_seq)
        self.total = int(windows)
        self.order = window_order(self.total)
        self.levels = levels(self.total, config.racing_start)
        self.pinned = {a.key for a in pinned}
        self.losses: dict[str, list[float]] = {}    # arch key -> losses on order[:n]
        self._memo: dict[str, tuple] = {}           # arch key -> ((n, _full), estimate)
        self._full = 0                              # architectures on every window

    # -- state --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"losses": self.losses}

    def load(self, cache: dict[str, Candidate], state: dict[str, Any]) -> None:
        super().load(cache, state)
        self.losses = {k: list(v) for k, v in state["losses"].items()}
        self._full = sum(len(v) == self.total for v in self.losses.values())

    def stats(self) -> dict[str, Any]:
        """Windows scored against the exact evaluator's (every architecture on all of them)."""
        used = sum(len(v) for v in self.losses.values())
        full = sum(len(v) == self.total for v in self.losses.values())
        return {"windows_per_perplexity": self.total, "levels": self.levels,
                "z": self.config.racing_z, "architectures": len(self.losses),
                "fully_scored": full, "windows_scored": used,
                "windows_exact": self.total * len(self.losses),
                "share_of_exact": used / max(1, self.total * len(self.losses))}

    # -- estimates ----------------------------------------------------------------------------
    def _loss(self, key: str) -> tuple[float, float]:
        n = len(self.losses[key])
        memo = self._memo.get(key)
        if memo is None or memo[0] != (n, self._full):
            memo = ((n, self._full), self._estimate(key))
            self._memo[key] = memo
        return memo[1]

    def _estimate(self, key: str) -> tuple[float, float]:
        refs = [self.losses[k] for k in self.pinned
                if k != key and len(self.losses.get(k, ())) == self.total]
        return estimate(self.losses[key], refs, self.total)

    def _interval(self, key: str) -> tuple[float, float, float]:
        """(perplexity, optimistic, pessimistic) of an architecture: exp(loss -+ z se)."""
        loss, se = self._loss(key)
        z = self.config.racing_z
        return math.exp(loss), math.exp(loss - z * se), math.exp(loss + z * se)

    def _score(self, archs: list[Arch], windows: list[int]) -> None:
        for a, part in zip(archs, score(self.executor, archs, windows)):
            self.losses.setdefault(a.key, []).extend(part)
        self._full = sum(len(v) == self.total for v in self.losses.values())

    def _update(self, keys: set[str]) -> None:
        """Every cached candidate of these architectures with its current estimate."""
        ppl = {k: self._interval(k)[0] for k in keys}
        for dkey, c in self.cache.items():
            if c.arch.key in ppl:
                cand = c.with_(perplexity=ppl[c.arch.key])
                self.cache[dkey] = cand.with_(violation=self.config.violation(cand))

    # -- the race -----------------------------------------------------------------------------
    def undecided(self) -> set[str]:
        """Architectures short of all windows that could be on the front: not surely
        dominated (nor surely infeasible), or on the front of the current estimates."""
        objective, cfg = self.config.objective, self.config
        bounds = {k: self._interval(k) for k in self.losses}

        def feasible_at(c: Candidate, ppl: float) -> bool:
            if cfg.max_ppl is None:         # then feasibility does not depend on perplexity
                return c.feasible
            return cfg.violation(c.with_(perplexity=ppl)) == 0.0

        # feasible at their pessimistic perplexity: these dominate for sure
        sure = _Lowest([(c.value(objective), bounds[c.arch.key][2], c.key)
                        for c in self.cache.values() if feasible_at(c, bounds[c.arch.key][2])])
        tolerance = 1.0 + cfg.racing_tolerance
        out = set()
        for c in self.cache.values():
            k = c.arch.key
            if len(self.losses[k]) >= self.total or k in out:
                continue
            low = bounds[k][1]
            if feasible_at(c, low) and sure.before(c.value(objective), c.key) >= low * tolerance:
                out.add(k)                  # neither surely infeasible nor surely dominated
        # and what the tolerance let go but the estimates put on the front
        return out | {k for k in self._front_archs() if len(self.losses[k]) < self.total}

    def _front_archs(self) -> set[str]:
        """Architectures on the feasible front of the current estimates."""
        feasible = [c for c in self.cache.values() if c.feasible]
        pts = [(c.perplexity, c.value(self.config.objective)) for c in feasible]
        return {feasible[i].arch.key for i in pareto_indices(pts)}

    def race(self) -> None:
        """Score undecided architectures on the next level's windows until none is left: those
        on the estimated front first (once they are exact, many others are decided)."""
        while True:
            todo = self.undecided()
            if not todo:
                return
            todo = (todo & self._front_archs()) or todo
            by_level: dict[int, list[Arch]] = {}
            archs = {c.arch.key: c.arch for c in self.cache.values()}
            for k in sorted(todo):
                by_level.setdefault(len(self.losses[k]), []).append(archs[k])
            for n, group in sorted(by_level.items()):
                nxt = next(s for s in self.levels if s > n)
                self._score(group, self.order[n:nxt])
            self._update(todo)

    # -- the evaluator's hooks --------------------------------------------------------------
    def _measured(self, arch_key: str) -> bool:
        return arch_key in self.losses

    def _measure(self, archs: list[Arch]) -> None:
        """The anchors on every window, the others on the first level's."""
        pinned = [a for a in archs if a.key in self.pinned]
        raced = [a for a in archs if a.key not in self.pinned]
        if pinned:
            self._score(pinned, self.order)
        if raced:
            self._score(raced, self.order[:self.levels[0]])

    def _perplexity(self, arch_key: str) -> float:
        return self._interval(arch_key)[0]

    def _refine(self) -> None:
        self.race()


class _Lowest:
    """The lowest value among entries (objective, value, key) with objective <= x, leaving one
    key out: two running minima over the entries sorted by objective."""

    def __init__(self, entries: list[tuple[float, float, str]]):
        entries = sorted(entries)
        self.objs = [e[0] for e in entries]
        self.mins = []
        m1, k1, m2 = math.inf, None, math.inf
        for _, value, key in entries:
            if value < m1:
                m1, k1, m2 = value, key, m1
            elif value < m2:
                m2 = value
            self.mins.append((m1, k1, m2))

    def before(self, objective: float, key: str) -> float:
        i = bisect.bisect_right(self.objs, objective)
        if not i:
            return math.inf
        m1, k1, m2 = self.mins[i - 1]
        return m2 if k1 == key else m1

