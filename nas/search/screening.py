"""Children screened by a perplexity model (surrogate-assisted NSGA-II, as NSGANetV2: Lu et
al. 2020), `SearchConfig.screen` K > 1.

Perplexity is what a search spends its time on; costs are cheap (a table look-up, or the
bilevel search's inner hardware solve). So each generation the algorithm draws K times the
children it asks for, every new design is costed exactly, the perplexity of each architecture
not measured yet is predicted from the ones measured so far, and the children kept are those
NSGA-II's constrained ranking puts first on (predicted perplexity, objective): as many as the
algorithm asked for, so the search measures as many architectures as without screening.

The model: scikit-learn's gradient boosting on log perplexity, from an architecture's numbers
(depth, d, heads and FFN width per layer, attention kind per layer, parameters), refitted every
generation on the archive with a fixed seed, so a resumed search continues exactly. Until
MIN_MEASURED architectures are measured, children are kept as drawn.

The last generation refines the picks instead (`Screen.moves`, called by the search's
`_refine`): the new designs one gene (or, once none is left, two genes) away from the
lowest-objective ones measured within +0.1 and +1 perplexity that meet the constraints and cost
less than them, lowest predicted perplexity first, in rounds, so that a better pick's neighbours
come next: a local search at the end of the evolutionary one (a memetic search), within the
same population's worth of measurements.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from nas.core.arch import Arch, SearchSpace
from nas.search.candidate import Candidate
from nas.search.genome import Design, GenomeCodec
from nas.search.selection import make_individual, select_survivors

MIN_MEASURED = 16           # measured architectures before the model is trusted


def arch_features(arch: Arch, space: SearchSpace) -> list[float]:
    """An architecture as numbers: depth, d, heads and FFN width of each layer (0 beyond the
    depth), one-hot attention kind of each layer, parameters in millions."""
    L = space.layers[-1]
    pad = [0] * (L - arch.layers)
    kinds = [float(i < arch.layers and arch.attention[i] == k)
             for i in range(L) for k in space.attention] if len(space.attention) > 1 else []
    return [arch.layers, arch.d, *arch.heads, *pad, *arch.ffn, *pad, *kinds,
            arch.params() / 1e6]


class PerplexityModel:
    """Log perplexity predicted from `arch_features` (gradient boosting, seeded)."""

    def __init__(self, space: SearchSpace, measured: dict[str, tuple[Arch, float]]):
        from sklearn.ensemble import GradientBoostingRegressor
        self.space = space
        archs = [a for a, _ in measured.values()]
        logs = [math.log(p) for _, p in measured.values()]
        self.model = GradientBoostingRegressor(random_state=0)
        self.model.fit([arch_features(a, space) for a in archs], logs)

    def predict(self, archs: Sequence[Arch]) -> list[float]:
        logs = self.model.predict([arch_features(a, self.space) for a in archs])
        return [math.exp(v) for v in logs]


class Screen:
    """Keeps the children worth measuring (see the module's docstring)."""

    def __init__(self, codec: GenomeCodec, evaluator: Any,
                 objectives: Callable[[Candidate], tuple[float, float]]):
        """`evaluator`: the search's (its archive, cost source and `candidate`);
        `objectives`: the search's two objectives of a candidate."""
        self.codec, self.evaluator, self.objectives = codec, evaluator, objectives
        self._fitted: tuple[tuple, PerplexityModel] | None = None

    def pick(self, pool: list[list[int]], n: int, generation: int) -> list[list[int]]:
        """`n` genomes of `pool`: new designs first (an archived one costs no measurement),
        those ranked best on (predicted perplexity, objective)."""
        archive, measured = self.evaluator.cache, self._measured()
        if len(measured) < MIN_MEASURED:
            return pool[:n]                 # the children drawn first, as without screening
        firsts: dict[str, tuple[list[int], Design]] = {}
        for g in pool:
            d = self.codec.design(g)
            firsts.setdefault(d.key, (g, d))
        new = [(g, d) for g, d in firsts.values() if d.key not in archive]
        if len(new) <= n:
            seen = [g for g, d in firsts.values() if d.key in archive]
            return [g for g, _ in new] + seen[:n - len(new)]
        cands = self._predicted([d for _, d in new], measured, generation)
        inds = [make_individual(g, d.key, c, self.objectives(c))
                for (g, d), c in zip(new, cands)]
        return [list(ind) for ind in select_survivors(inds, n)]

    def moves(self, picks: list, neighbours: Callable[[list[int]], list[list[int]]], n: int,
              generation: int) -> list[list[int]]:
        """Up to `n` genomes of new designs next to the individuals `picks`
        (`neighbours(genome)`) that meet the constraints and cost less than the pick they
        are next to, those of lowest predicted perplexity first ([] before MIN_MEASURED)."""
        archive, measured = self.evaluator.cache, self._measured()
        if len(measured) < MIN_MEASURED:
            return []
        firsts: dict[str, tuple[list[int], Design, Any]] = {}
        for pick in picks:
            for g in neighbours(list(pick)):
                d = self.codec.design(g)
                if d.key not in archive:
                    firsts.setdefault(d.key, (g, d, pick))
        if not firsts:
            return []
        genomes, designs, near = zip(*firsts.values())
        cands = self._predicted(list(designs), measured, generation)
        cheaper = [(c.perplexity, i) for i, c in enumerate(cands) if c.violation == 0.0
                   and self.objectives(c)[1] < near[i].fitness.values[1]]
        return [genomes[i] for _, i in sorted(cheaper)[:n]]

    def _measured(self) -> dict[str, tuple[Arch, float]]:
        """The archive's architectures with a measured perplexity, by key."""
        return {c.arch.key: (c.arch, c.perplexity) for c in self.evaluator.cache.values()
                if math.isfinite(c.perplexity)}

    def _predicted(self, designs: list[Design], measured: dict[str, tuple[Arch, float]],
                   generation: int) -> list[Candidate]:
        """Candidates of `designs`: costed exactly, at their measured perplexity or else the
        model's."""
        model = self._model(measured)
        todo = [d.arch for d in designs if d.arch.key not in measured]
        guess = dict(zip((a.key for a in todo), model.predict(todo))) if todo else {}
        ppl = [measured[d.arch.key][1] if d.arch.key in measured else guess[d.arch.key]
               for d in designs]
        return [self.evaluator.candidate(d, p, cost, generation)
                for d, p, cost in zip(designs, ppl, self.evaluator.costs(designs))]

    def _model(self, measured: dict[str, tuple[Arch, float]]) -> PerplexityModel:
        """The model fitted to `measured` (refitted only when it holds other architectures or
        perplexities: the fit is seeded, so the same ones give the same model)."""
        keys = tuple((k, p) for k, (_, p) in measured.items())
        if self._fitted is None or self._fitted[0] != keys:
            self._fitted = (keys, PerplexityModel(self.codec.space, measured))
        return self._fitted[1]


__all__ = ["Screen", "PerplexityModel", "arch_features", "MIN_MEASURED"]
