"""The search loop: NSGA-II (or random / HAT-style evolution) over a space, resumable.

Algorithms (`SearchConfig.algorithm`):
  nsga2      NSGA-II with Deb's constrained domination (nas.search.selection). Parents by
             binary crowded tournament, uniform crossover, per-gene uniform mutation.
  random     the same number of candidates per generation drawn uniformly from the space.
  evolution  HAT-style single-objective evolution (Wang et al. 2020): keep the best quarter as
             parents, fill the population with mutants and crossovers of them. Minimises
             perplexity under the constraints, or the hardware objective when --max-ppl is the only
             constraint.

The perplexity source is any callable list[Arch] -> list[float] (a `Quality`; the supernet's is
`supernet.perplexity.SupernetPerplexity`); hardware costs come from a `lut.CostTable` on fixed
hardware or, in a joint search (`hw_space`), from a callable that costs each (architecture,
hardware) design (`nas.pipeline.JointCosts`: a table per hardware point). An architecture's
perplexity is measured once, whatever hardware it is paired with. Every evaluated design
becomes a `Candidate` in the archive; results are its feasible Pareto
front and the hypervolume of that front after every generation (`nas.search.pareto.Normaliser`:
both objectives normalised between the largest and the smallest subnet, reference (1.1, 1.1)).

With `SearchConfig.racing`, perplexity comes from the racing evaluator
(nas.search.racing.RacingEvaluator): few validation windows first, more only where the front is
undecided, and the final front on all of them.

State file (`state.pkl`, written atomically after every generation): the population with ranks
and crowding distances, the random generator, the archive, the hypervolumes and the evaluator's
own state (the racing evaluator's per-window losses), so a search killed at any point continues
exactly where its last generation ended.
"""

from __future__ import annotations

import multiprocessing
import pickle
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from deap import base, creator, tools

from nas.core.arch import Arch, SearchSpace
from nas.core.atomic import atomic_path
from nas.core.errors import UserError
from nas.core.progress import progress
from nas.search.candidate import Candidate, HardwarePoint
from nas.search.config import SearchConfig
from nas.search.genome import Design, GenomeCodec
from nas.search.pareto import Normaliser, pareto_indices
from nas.search.selection import crowded_tournament, select_survivors

Quality = Callable[[list[Arch]], list[float]]
STATE_FILE = "state.pkl"
STATE_VERSION = 4           # 2: `Candidate` records; 3: designs (joint search); 4: racing

if not hasattr(creator, "NasFitness"):
    creator.create("NasFitness", base.Fitness, weights=(-1.0, -1.0))     # minimise both
    creator.create("NasIndividual", list, fitness=creator.NasFitness)


# -- evaluation ------------------------------------------------------------------------------

_WORKER_QUALITY: Quality | None = None


def _init_worker(quality: Quality) -> None:
    global _WORKER_QUALITY
    _WORKER_QUALITY = quality


def _run_quality(quality: Quality, archs: list[Arch], windows: list[int] | None) -> list:
    """Perplexities (`windows` None) or per-window losses (`quality.window_losses`)."""
    if windows is None:
        return list(quality(archs))
    return quality.window_losses(archs, windows)


def _worker_eval(job: tuple[list[Arch], list[int] | None]) -> list:
    return _run_quality(_WORKER_QUALITY, *job)


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


class FixedHardware:
    """The cost source of an architecture-only search: one lookup table (anything with
    `.costs(archs)`), and the hardware it was built for (`HardwarePoint`, or None)."""

    def __init__(self, table, hardware: HardwarePoint | None = None):
        self.table, self.hardware = table, hardware
        self.id = getattr(table, "id", None)

    def __call__(self, designs: Sequence[Design]) -> list[tuple[Any, HardwarePoint | None]]:
        return [(c, self.hardware) for c in self.table.costs([d.arch for d in designs])]


class Evaluator:
    """Scores designs once each: perplexity (once per architecture, batched, optionally over
    worker processes), cost and hardware from the cost source (a callable designs -> [(cost,
    HardwarePoint)]), parameter count. Keeps every result (the search's archive)."""

    def __init__(self, quality: Quality, costs: Callable, config: SearchConfig, vocab: int = 0,
                 max_seq: int = 0, workers: int = 1):
        self.quality, self.costs, self.config = quality, costs, config
        self.vocab, self.max_seq, self.workers = vocab, max_seq, workers
        self.cache: dict[str, Candidate] = {}       # design key -> candidate, in eval order
        self.perplexity: dict[str, float] = {}      # arch key -> perplexity (shared by designs)
        self.seconds = {"perplexity": 0.0, "cost": 0.0}
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def _parallel(self, archs: list[Arch], windows: list[int] | None = None) -> list:
        """The perplexity of each architecture (`windows` None) or its loss on each of
        `windows` (`quality.window_losses`), split over the worker processes by architecture."""
        if self.workers <= 1 or len(archs) < 2:
            return _run_quality(self.quality, archs, windows)
        if self._pool is None:
            # spawn: safe with torch threads in the parent; each worker loads its own supernet
            ctx = multiprocessing.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker,
                                  initargs=(self.quality,))
        n = min(self.workers, len(archs))
        chunks = [(archs[i * len(archs) // n:(i + 1) * len(archs) // n], windows)
                  for i in range(n)]
        return [p for part in self._pool.map(_worker_eval, chunks) for p in part]

    def _add(self, designs: list[Design], perplexity: dict[str, float], generation: int) -> None:
        """Cost new designs and add them to the archive with their architectures'
        perplexities."""
        for d, (cost, hardware) in zip(designs, self.costs(designs)):
            cand = Candidate(arch=d.arch, perplexity=float(perplexity[d.arch.key]),
                             latency_ms=cost.latency_ms, energy_mj=cost.energy_mj,
                             edp=cost.edp, cycles=cost.cycles,
                             params=d.arch.params(self.vocab, self.max_seq),
                             generation=generation, eval_index=len(self.cache),
                             hardware=hardware)
            self.cache[d.key] = cand.with_(violation=self.config.violation(cand))

    # what the state file keeps besides the archive (the racing evaluator's window losses)
    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: dict[str, Any]) -> None:
        self.perplexity = {c.arch.key: c.perplexity for c in self.cache.values()}

    def stats(self) -> dict[str, Any] | None:
        return None

    def evaluate(self, designs: Sequence[Design], generation: int) -> list[Candidate]:
        """Candidates for `designs` (same order); only designs never seen are evaluated, and
        an architecture's perplexity only once whatever its hardware."""
        new = {d.key: d for d in designs if d.key not in self.cache}
        if new:
            todo = list(new.values())
            archs = list({d.arch.key: d.arch for d in todo
                          if d.arch.key not in self.perplexity}.values())
            t0 = time.perf_counter()
            if archs:
                self.perplexity.update(zip((a.key for a in archs), self._parallel(archs)))
            t1 = time.perf_counter()
            self._add(todo, self.perplexity, generation)
            self.seconds["perplexity"] += t1 - t0
            self.seconds["cost"] += time.perf_counter() - t1
        return [self.cache[d.key] for d in designs]


# -- the search ------------------------------------------------------------------------------

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


class Search:
    """One search run; `run()` checkpoints to `state_path` after every generation and continues
    from it when `resume=True`."""

    def __init__(self, space: SearchSpace, quality: Quality, table, config: SearchConfig,
                 vocab: int = 0, max_seq: int = 0, workers: int = 1,
                 state_path: str | Path | None = None, identity: dict[str, Any] | None = None,
                 progress: bool = False, hardware: HardwarePoint | None = None,
                 hw_space: Any = None, anchor_hw: Any = None):
        """`table`: a lookup table (`.costs(archs)`) for an architecture-only search on its
        `hardware`; with `hw_space` (a joint search), a callable designs -> [(cost,
        HardwarePoint)], and `anchor_hw` the point of `hw_space` the anchors run on."""
        self.space, self.config = space, config
        self.codec = GenomeCodec(space, hw_space, config.max_area_mm2)
        if hw_space is not None and anchor_hw is None:
            raise ValueError("a joint search needs anchor_hw, a point of its hardware space")
        self.anchor_hw = anchor_hw
        # the per-gene probability is set for an architecture genome; a joint genome is
        # longer, so it is scaled to mutate as many genes per child on average
        self.mutation_prob = (config.mutation_prob * self.codec.arch_genes
                              / len(self.codec.choices))
        costs = FixedHardware(table, hardware) if hw_space is None else table
        if config.racing:
            from nas.search.racing import RacingEvaluator
            self.evaluator: Evaluator = RacingEvaluator(
                quality, costs, config, vocab, max_seq, workers,
                pinned=[space.largest(), space.smallest()])
        else:
            self.evaluator = Evaluator(quality, costs, config, vocab, max_seq, workers)
        self.state_path = Path(state_path) if state_path else None
        self.identity = {"config": config.identity(), "space": space.to_dict(),
                         "table": getattr(table, "id", None),
                         "hw_space": hw_space.to_dict() if hw_space is not None else None,
                         **(identity or {})}
        self.progress = progress
        self.rng = random.Random(config.seed)
        self.population: list = []              # current DEAP individuals
        self._saved_population: list = []       # (genes, rank, crowding) from a checkpoint
        self.hv: list[float] = []
        self.generation = -1                   # last completed generation
        self.seconds = {"checkpoint": 0.0, "total": 0.0}
        self.normaliser: Normaliser | None = None

    # DEAP's operators draw from the global `random`: give them our own generator's state, so
    # results depend only on the seed (not on whatever else uses `random`) and can be checkpointed.
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
        cands = self.evaluator.evaluate([self.codec.design(g) for g in genomes], generation)
        inds = []
        for g, c in zip(genomes, cands):
            ind = creator.NasIndividual(g)
            ind.fitness.values = self._objectives(c)
            ind.violation, ind.key, ind.cand = c.violation, c.key, c
            inds.append(ind)
        return inds

    def _refresh(self, inds: list) -> None:
        """Individuals with their archive candidates' current values."""
        for ind in inds:
            c = self.evaluator.cache[ind.key]
            if c is not ind.cand:
                ind.fitness.values = self._objectives(c)
                ind.violation, ind.cand = c.violation, c

    def _unique(self, inds: list) -> list:
        seen, out = set(), []
        for ind in inds:
            if ind.key not in seen:
                seen.add(ind.key)
                out.append(ind)
        return out

    # -- variation -----------------------------------------------------------------------------
    def _mutate(self, genes: list[int]) -> list[int]:
        tools.mutUniformInt(genes, self.codec.low, self.codec.up, indpb=self.mutation_prob)
        return genes

    def _offspring_nsga2(self, pop: list) -> list[list[int]]:
        parents = crowded_tournament(pop, len(pop) + len(pop) % 2)
        children = []
        for a, b in zip(parents[::2], parents[1::2]):
            a, b = list(a), list(b)
            if random.random() < self.config.crossover_prob:
                tools.cxUniform(a, b, indpb=0.5)
            children += [self.codec.canonical(self._mutate(a)),
                         self.codec.canonical(self._mutate(b))]
        return children[:len(pop)]

    def _single_objective_key(self, ind) -> tuple:
        """evolution: feasible first (then by violation), then the single objective."""
        c = ind.cand
        hw_constrained = any(s != "max_ppl" for s in self.config.constraints())
        if self.config.max_ppl is not None and not hw_constrained:
            return (c.violation, c.value(self.config.objective), c.perplexity)
        return (c.violation, c.perplexity, c.value(self.config.objective))

    def _offspring_evolution(self, pop: list) -> tuple[list, list[list[int]]]:
        """HAT: the best quarter are parents; half the rest mutants, half crossovers."""
        n = len(pop)
        parents = sorted(pop, key=self._single_objective_key)[:max(2, n // 4)]
        n_mut = (n - len(parents)) // 2
        children = [self.codec.canonical(self._mutate(list(random.choice(parents))))
                    for _ in range(n_mut)]
        while len(parents) + len(children) < n:
            a, b = (list(p) for p in random.sample(parents, 2))
            tools.cxUniform(a, b, indpb=0.5)
            children.append(self.codec.canonical(a))
        return parents, children

    # -- checkpoints ---------------------------------------------------------------------------
    def _save_state(self) -> None:
        if self.state_path is None:
            return
        t0 = time.perf_counter()
        state = {"version": STATE_VERSION, "identity": self.identity,
                 "generation": self.generation,
                 "population": [(list(i), getattr(i, "rank", 0),
                                 getattr(i.fitness, "crowding_dist", 0.0))
                                for i in self.population],
                 "rng": self.rng.getstate(), "cache": self.evaluator.cache, "hv": self.hv,
                 "evaluator": self.evaluator.state(),
                 "seconds": {**self.seconds, **{f"eval_{k}": v for k, v in
                                                self.evaluator.seconds.items()}}}
        with atomic_path(self.state_path) as tmp, tmp.open("wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        self.seconds["checkpoint"] += time.perf_counter() - t0

    def _load_state(self) -> None:
        path = self.state_path
        if path is None or not path.is_file():
            raise UserError(f"--resume: no search state at {path}")
        try:
            with open(path, "rb") as f:
                state = pickle.load(f)
        except Exception as exc:  # a truncated or foreign file: say so in one line
            raise UserError(f"--resume: {path} is not a readable search state ({exc})") from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise UserError(f"--resume: {path} is not a search state of this version")
        if state["identity"] != self.identity:
            old, new = state["identity"], self.identity
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if "config" in diff:
                diff = [f"config.{k}" for k in new["config"]
                        if old["config"].get(k) != new["config"].get(k)] + \
                       [d for d in diff if d != "config"]
            raise UserError(f"--resume: {path} was written by a search with different "
                            f"settings ({', '.join(diff)}); use the same settings or a new --out")
        self.generation, self._saved_population = state["generation"], state["population"]
        self.rng.setstate(state["rng"])
        self.evaluator.cache, self.hv = state["cache"], state["hv"]
        self.evaluator.load(state["evaluator"])
        for k, v in state["seconds"].items():
            if k.startswith("eval_"):
                self.evaluator.seconds[k[5:]] = v
            else:
                self.seconds[k] = v

    # -- main loop -----------------------------------------------------------------------------
    def _record(self, largest: Candidate, smallest: Candidate) -> None:
        if self.normaliser is None:
            self.normaliser = Normaliser([self._objectives(largest), self._objectives(smallest)])
        front = self.front()
        self.hv.append(self.normaliser.hypervolume([self._objectives(c) for c in front]))

    def front(self) -> list[Candidate]:
        """Feasible non-dominated candidates of the archive, by increasing perplexity."""
        feasible = [c for c in self.evaluator.cache.values() if c.feasible]
        return [feasible[i] for i in pareto_indices([self._objectives(c) for c in feasible])]

    def run(self, resume: bool = False) -> SearchResult:
        cfg, codec = self.config, self.codec
        t_start = time.perf_counter()
        if resume:
            self._load_state()
            if self.progress:
                print(f"resuming the search from generation {self.generation} "
                      f"({len(self.evaluator.cache)} candidates evaluated)")
        anchors = [codec.encode(self.space.largest(), self.anchor_hw),
                   codec.encode(self.space.smallest(), self.anchor_hw)]
        largest, smallest = self.evaluator.evaluate(
            [codec.design(g) for g in anchors], generation=0)
        if self.generation < 0:
            # Generation 0: the two anchors plus distinct random genomes.
            with self._deap_random():
                genomes, keys = list(anchors), {largest.key, smallest.key}
                for _ in range(100 * cfg.population):
                    if len(genomes) == cfg.population:
                        break
                    g = codec.random(random)
                    if codec.design(g).key not in keys:
                        keys.add(codec.design(g).key)
                        genomes.append(g)
            pop = self._select(self._individuals(genomes, 0))
            self.generation = 0
            self._record(largest, smallest)
            self._save_state()
        else:
            pop = self._restore_population()
            self.normaliser = Normaliser([self._objectives(largest), self._objectives(smallest)])

        bar = progress(cfg.generations, f"{cfg.algorithm} search", unit="gen",
                       initial=min(self.generation, cfg.generations), enabled=self.progress)
        bar.set_postfix(self._postfix())
        while self.generation < cfg.generations:
            gen = self.generation + 1
            with self._deap_random():           # variation only; evaluation runs outside
                if cfg.algorithm == "nsga2":
                    children = self._offspring_nsga2(pop)
                elif cfg.algorithm == "random":
                    children = [codec.random(random) for _ in range(cfg.population)]
                else:
                    parents, children = self._offspring_evolution(pop)
            offspring = self._individuals(children, gen)
            self._refresh(pop)                  # the racing evaluator may have refined them
            if cfg.algorithm == "nsga2":
                pop = self._select(self._unique(pop + offspring))
            elif cfg.algorithm == "random":
                pop = offspring
            else:
                pop = parents + offspring
            self.population = pop
            self.generation = gen
            self._record(largest, smallest)
            self._save_state()
            bar.update(1)
            bar.set_postfix(self._postfix())
        bar.close()
        self.evaluator.close()
        self.seconds["total"] += time.perf_counter() - t_start
        return self.result(largest, smallest)

    def _select(self, inds: list) -> list:
        self.population = select_survivors(inds, min(len(inds), self.config.population))
        return self.population

    def _restore_population(self) -> list:
        """The checkpointed population, in its order, with its ranks and crowding distances
        (tournaments depend on both, so a resumed run continues exactly)."""
        genomes = [g for g, _, _ in self._saved_population]
        pop = self._individuals(genomes, self.generation)
        for ind, (_, rank, crowding) in zip(pop, self._saved_population):
            ind.rank, ind.fitness.crowding_dist = rank, crowding
        self.population = pop
        return pop

    def _postfix(self) -> dict[str, Any]:
        return {"hv": f"{self.hv[-1]:.4f}" if self.hv else "-", "front": len(self.front()),
                "evals": len(self.evaluator.cache)}

    def result(self, largest: Candidate, smallest: Candidate) -> SearchResult:
        secs = {**{f"{k}_s": v for k, v in self.evaluator.seconds.items()},
                **{f"{k}_s": v for k, v in self.seconds.items()}}
        secs["bookkeeping_s"] = secs["total_s"] - secs["perplexity_s"] - secs["cost_s"] - \
            secs["checkpoint_s"]
        return SearchResult(config=self.config, history=list(self.evaluator.cache.values()),
                            front=self.front(), largest=largest, smallest=smallest,
                            hypervolume=list(self.hv), normaliser=self.normaliser.to_dict(),
                            seconds=secs, generations_done=self.generation,
                            racing=self.evaluator.stats())


