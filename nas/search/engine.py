"""The search loop: a `Search` runs an algorithm over a space, resumable, from a config and parts.

Parts (nas.search.build.build_search assembles them for every entry point):
  evaluator   designs -> candidates, each once: exact or racing (nas.search.evaluators,
              nas.search.racing), mapping perplexity over an executor (nas.search.executors) and
              costing with a cost source (nas.search.costs), which also says whether the
              hardware is searched (a joint search: hardware genes in the genome)
  algorithm   the strategy `SearchConfig.algorithm` names (nas.search.algorithms)
  screen      with `SearchConfig.screen` K > 1, the children kept of K times as many drawn,
              by a perplexity model (nas.search.screening); its last generation refines the
              picks instead (`Search._refine`)
  state file  nas.search.checkpoint.StateFile, written after every generation

Generation 0 is the two anchors (the largest and smallest subnet, on the cost source's anchor
hardware in a joint search) and distinct random genomes, ranked by constrained NSGA-II
selection; every later generation is the algorithm's. Every evaluated design becomes a
`Candidate` in the evaluator's archive; results are its feasible Pareto front and the
hypervolume of that front after every generation (`nas.search.pareto.Normaliser`: both
objectives normalised between the largest and the smallest subnet, reference (1.1, 1.1)).

DEAP's operators draw from the global `random`: the search lends them its own generator, so
results depend only on the seed and the generator is checkpointed with the rest.
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from nas.core.arch import Arch, SearchSpace
from nas.core.errors import UserError
from nas.core.progress import progress
from nas.search.algorithms import STRATEGIES, Variation
from nas.search.candidate import PPL_DELTAS, Candidate, lowest_within
from nas.search.checkpoint import StateFile
from nas.search.config import SearchConfig
from nas.search.evaluators import Evaluator
from nas.search.genome import GenomeCodec
from nas.search.pareto import Normaliser, pareto_indices
from nas.search.screening import Screen
from nas.search.selection import make_individual, select_survivors


@dataclass
class SearchResult:
    config: SearchConfig
    history: list[Candidate]               # every evaluated candidate, in evaluation order
    front: list[Candidate]                 # feasible, non-dominated (perplexity, objective)
    largest: Candidate
    smallest: Candidate
    hypervolume: list[float]               # after each generation (index 0 = initial population)
    normaliser: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    generations_done: int = 0
    racing: dict[str, Any] | None = None   # the racing evaluator's window counts (None: exact)
    retried_jobs: int = 0                   # perplexity jobs run again after a lost Ray worker


class Search:
    """One search run; `run()` checkpoints to the state file after every generation and
    continues from it when `resume=True`."""

    def __init__(self, config: SearchConfig, space: SearchSpace, evaluator: Evaluator,
                 state: StateFile | None = None, progress: bool = False,
                 start: Sequence[Arch] = ()):
        """`start`: architectures generation 0 evaluates besides the anchors (before random
        ones; all of them, even beyond the population, which selection then cuts to size)."""
        costs = evaluator.costs
        if costs.hw_space is not None and costs.anchor_hw is None:
            raise ValueError("a joint search needs anchor_hw, a point of its hardware space")
        self.config, self.space, self.evaluator = config, space, evaluator
        self.codec = GenomeCodec(space, costs.hw_space, config.max_area_mm2)
        self.anchors = [self.codec.encode(a, costs.anchor_hw)
                        for a in (space.largest(), space.smallest())]
        self.start = [self.codec.encode(a, costs.anchor_hw) for a in start]
        self.variation = Variation(self.codec, config)
        self.algorithm = STRATEGIES[config.algorithm](config, self.variation)
        self.screen = Screen(self.codec, evaluator, self._objectives)
        self.state_file, self.progress = state, progress
        # called with the result so far after every generation (nas search writes its front
        # files then, so a running or killed search can be looked at)
        self.on_generation: Callable[[SearchResult], None] | None = None
        self.rng = random.Random(config.seed)
        self.population: list = []              # current DEAP individuals
        self._saved_population: list = []       # (genes, rank, crowding) from a checkpoint
        self.hv: list[float] = []
        self.generation = -1                    # last completed generation
        self.seconds = {"checkpoint": 0.0, "total": 0.0}
        self.normaliser: Normaliser | None = None
        self._started: float | None = None        # perf_counter() when run() started

    def identity(self) -> dict[str, Any]:
        """What must match to resume: settings (but the generation count), space, costs."""
        hw_space = self.evaluator.costs.hw_space
        out = {"config": self.config.identity(), "space": self.space.to_dict(),
               "table": self.evaluator.costs.id,
               "hw_space": hw_space.to_dict() if hw_space is not None else None}
        if self.start:
            out["start"] = [self.codec.design(g).key for g in self.start]
        return out

    @contextmanager
    def _deap_random(self) -> Iterator[None]:
        saved = random.getstate()
        random.setstate(self.rng.getstate())
        try:
            yield
        finally:
            self.rng.setstate(random.getstate())
            random.setstate(saved)

    # -- individuals ---------------------------------------------------------------------------
    def _objectives(self, cand: Candidate) -> tuple[float, float]:
        return (cand.perplexity, cand.value(self.config.objective))

    def _individuals(self, genomes: list[list[int]], generation: int) -> list:
        """DEAP individuals of `genomes`, keyed by their designs (the archive's keys: a
        bilevel cost source adds the hardware it chose to the candidate's key, not the
        design's)."""
        designs = [self.codec.design(g) for g in genomes]
        cands = self.evaluator.evaluate(designs, generation)
        return [make_individual(g, d.key, c, self._objectives(c))
                for g, d, c in zip(genomes, designs, cands)]

    def _refresh(self, inds: list) -> None:
        """Individuals with their archive candidates' current values (the racing evaluator
        refines them)."""
        for ind in inds:
            c = self.evaluator.cache[ind.key]
            if c is not ind.cand:
                ind.fitness.values = self._objectives(c)
                ind.violation, ind.cand = c.violation, c

    # -- the loop ------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> SearchResult:
        t_start = self._started = time.perf_counter()
        try:
            if resume:
                self._load_state()
            largest, smallest = self._anchors()
            if self.generation < 0:
                pop = self._initial_population(largest, smallest)
            else:
                pop = self._restore_population()
                self.normaliser = Normaliser([self._objectives(largest),
                                              self._objectives(smallest)])
            bar = progress(self.config.generations, f"{self.config.algorithm} search",
                           unit="gen", initial=min(self.generation, self.config.generations),
                           enabled=self.progress)
            bar.set_postfix(self._postfix())
            while self.generation < self.config.generations:
                pop = self._next_generation(pop, largest, smallest)
                bar.set_postfix(self._postfix(), refresh=False)     # the line of this step
                bar.update(1)
            bar.close()
        finally:
            self.evaluator.close()
        self.seconds["total"] += time.perf_counter() - t_start
        self._started = None
        return self.result(largest, smallest)

    def _anchors(self) -> tuple[Candidate, Candidate]:
        """The largest and the smallest subnet, evaluated (on the anchor hardware)."""
        largest, smallest = self.evaluator.evaluate(
            [self.codec.design(g) for g in self.anchors], generation=0)
        return largest, smallest

    def _initial_population(self, largest: Candidate, smallest: Candidate) -> list:
        """Generation 0: the two anchors, the start architectures and distinct random genomes
        up to the population, ranked and cut to the population."""
        with self._deap_random():
            genomes, keys = [], set()
            for g in self.anchors + self.start:
                if self.codec.design(g).key not in keys:
                    keys.add(self.codec.design(g).key)
                    genomes.append(g)
            for _ in range(100 * self.config.population):
                if len(genomes) >= self.config.population:
                    break
                g = self.variation.random()
                if self.codec.design(g).key not in keys:
                    keys.add(self.codec.design(g).key)
                    genomes.append(g)
        inds = self._individuals(genomes, 0)
        return self._end_generation(select_survivors(inds, min(len(inds), self.config.population)),
                                    0, largest, smallest)

    def _next_generation(self, pop: list, largest: Candidate, smallest: Candidate) -> list:
        gen = self.generation + 1
        if self.config.screen > 1 and gen == self.config.generations > 1:
            offspring = self._refine(pop, largest, gen)
            if offspring:
                return self._end_generation(self.algorithm.survivors(pop, offspring), gen,
                                            largest, smallest)
        with self._deap_random():           # variation only; evaluation runs outside
            kept, children = self.algorithm.vary(pop)
            pool = [g for _ in range(self.config.screen - 1) for g in self.algorithm.vary(pop)[1]]
        if pool:                            # --screen K: K times the children, the best kept
            children = self.screen.pick(children + pool, len(children), gen)
        offspring = self._individuals(children, gen)
        self._refresh(pop)                  # the racing evaluator may have refined them
        return self._end_generation(self.algorithm.survivors(kept, offspring), gen, largest,
                                    smallest)

    def _refine(self, pop: list, largest: Candidate, gen: int) -> list:
        """The last generation of a screened search, a local search from the picks `nas export`
        takes by default (the lowest objective within +0.1 and +1 perplexity of the largest
        subnet, of the archive; of the population in a joint search): in rounds of a quarter
        population, new designs next to the picks that cost less, those the perplexity model
        ranks best first, one gene away, or two when none is left (a variable neighbourhood
        descent), so that a better pick's neighbours come next. A population's worth in all;
        [] when there is no move (the generation is then an ordinary one)."""
        self._refresh(pop)                  # the racing evaluator may have refined them
        inds, offspring = list(pop) + self._archived(), []
        budget, per_round = self.config.population, max(1, self.config.population // 4)
        while len(offspring) < budget:
            picks = [p for p in (self._lowest_within(inds, largest.perplexity + delta)
                                 for delta in PPL_DELTAS) if p is not None]
            n = min(per_round, budget - len(offspring))
            with self._deap_random():       # a joint genome's moves fit the area at random
                moves = (self.screen.moves(picks, self.variation.neighbours, n, gen)
                         or self.screen.moves(picks, self._two_steps, n, gen))
            if not moves:
                break
            new = self._individuals(moves, gen)
            offspring += new
            inds += new
        return offspring

    def _archived(self) -> list:
        """The archive's feasible candidates as individuals, when a genome is an architecture
        alone (a joint search's hardware genes are kept by its population only)."""
        if self.codec.hw_space is not None:
            return []
        out = []
        for c in self.evaluator.cache.values():
            if c.feasible:
                genes = self.codec.encode(c.arch)
                out.append(make_individual(genes, self.codec.design(genes).key, c,
                                           self._objectives(c)))
        return out

    def _two_steps(self, genes: list[int]) -> list[list[int]]:
        return [g for near in self.variation.neighbours(genes)
                for g in self.variation.neighbours(near)]

    def _lowest_within(self, inds: list, max_ppl: float):
        """The individual of the feasible candidate `lowest_within` `max_ppl` (None: none is)."""
        best = lowest_within([i.cand for i in inds if i.cand.feasible], max_ppl,
                             self.config.objective)
        return next((i for i in inds if i.cand is best), None)

    def _end_generation(self, pop: list, generation: int, largest: Candidate,
                        smallest: Candidate) -> list:
        """Record the generation's population and hypervolume, and checkpoint."""
        self.population, self.generation = pop, generation
        if self.normaliser is None:
            self.normaliser = Normaliser([self._objectives(largest), self._objectives(smallest)])
        self.hv.append(self.normaliser.hypervolume([self._objectives(c) for c in self.front()]))
        self._save_state()
        if self.on_generation is not None:
            self.on_generation(self.result(largest, smallest))
        return pop

    def front(self) -> list[Candidate]:
        """Feasible non-dominated candidates of the archive, by increasing perplexity."""
        feasible = [c for c in self.evaluator.cache.values() if c.feasible]
        return [feasible[i] for i in pareto_indices([self._objectives(c) for c in feasible])]

    # -- checkpoints ---------------------------------------------------------------------------
    def _save_state(self) -> None:
        if self.state_file is None:
            return
        t0 = time.perf_counter()
        ev = self.evaluator
        self.state_file.save(self.identity(), {
            "generation": self.generation,
            "population": [(list(i), getattr(i, "rank", 0),
                            getattr(i.fitness, "crowding_dist", 0.0)) for i in self.population],
            "rng": self.rng.getstate(), "cache": ev.cache, "hv": self.hv,
            "evaluator": ev.state(),
            "seconds": {**self.seconds, **{f"eval_{k}": v for k, v in ev.seconds.items()}}})
        self.seconds["checkpoint"] += time.perf_counter() - t0

    def _load_state(self) -> None:
        if self.state_file is None:
            raise UserError("--resume: this search keeps no state file")
        state = self.state_file.load(self.identity())
        self.generation, self._saved_population = state["generation"], state["population"]
        self.rng.setstate(state["rng"])
        self.hv = state["hv"]
        self.evaluator.load(state["cache"], state["evaluator"])
        for k, v in state["seconds"].items():
            if k.startswith("eval_"):
                self.evaluator.seconds[k[5:]] = v
            else:
                self.seconds[k] = v
        if self.progress:
            print(f"resuming the search from generation {self.generation} "
                  f"({len(self.evaluator.cache)} candidates evaluated)")

    def _restore_population(self) -> list:
        """The checkpointed population, in its order, with its ranks and crowding distances
        (tournaments depend on both, so a resumed run continues exactly)."""
        genomes = [g for g, _, _ in self._saved_population]
        pop = self._individuals(genomes, self.generation)
        for ind, (_, rank, crowding) in zip(pop, self._saved_population):
            ind.rank, ind.fitness.crowding_dist = rank, crowding
        self.population = pop
        return pop

    # -- results -------------------------------------------------------------------------------
    def _postfix(self) -> dict[str, Any]:
        return {"hv": f"{self.hv[-1]:.4f}" if self.hv else "-", "front": len(self.front()),
                "evals": len(self.evaluator.cache)}

    def result(self, largest: Candidate, smallest: Candidate) -> SearchResult:
        secs = {**{f"{k}_s": v for k, v in self.evaluator.seconds.items()},
                **{f"{k}_s": v for k, v in self.seconds.items()}}
        if self._started is not None:               # a result while the search runs
            secs["total_s"] += time.perf_counter() - self._started
        secs["bookkeeping_s"] = secs["total_s"] - secs["perplexity_s"] - secs["cost_s"] - \
            secs["checkpoint_s"]
        return SearchResult(config=self.config, history=list(self.evaluator.cache.values()),
                            front=self.front(), largest=largest, smallest=smallest,
                            hypervolume=list(self.hv), normaliser=self.normaliser.to_dict(),
                            seconds=secs, generations_done=self.generation,
                            racing=self.evaluator.stats(),
                            retried_jobs=self.evaluator.executor.retried)
