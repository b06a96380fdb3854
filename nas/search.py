"""Hardware-aware evolutionary search with DEAP: perplexity vs EDP / latency / energy / params.

Genome (integers, indices into the space's choices):
    [depth, d, heads of layer 0 .. L-1, ffn of layer 0 .. L-1]     (L = the space's max depth)
Genes of layers beyond the genome's depth are reset to 0 ("canonical"), so two genomes that decode
to the same architecture are equal and the per-architecture cache never evaluates it twice.

Algorithms (`SearchConfig.algorithm`):
  nsga2      NSGA-II (Deb et al. 2002) with Deb's constrained domination: feasible candidates
             dominate infeasible ones, infeasible ones are ranked by total normalised violation.
             Parents by binary crowded tournament, uniform crossover, per-gene uniform mutation.
  random     the same number of candidates per generation drawn uniformly from the space.
  evolution  HAT-style single-objective evolution (Wang et al. 2020): keep the best quarter as
             parents, fill the population with mutants and crossovers of them. Minimises
             perplexity under the constraints, or the hardware objective when --max-ppl is the only
             constraint.
Constraints are feasibility, never penalties: an infeasible candidate can not buy its way into
the front with a good objective value.

The perplexity source is any callable list[Arch] -> list[float] (`SupernetPerplexity` for a
trained supernet); hardware costs come from a `lut.CostTable`. Results are reported over every
evaluated candidate (the archive): its feasible Pareto front, and the hypervolume of that front
after every generation (`nas.pareto.Normaliser`: both objectives normalised between the largest
and the smallest subnet, reference point (1.1, 1.1)).
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from deap import base, creator, tools

from nas.atomic import atomic_path, atomic_write_text
from nas.arch import Arch, SearchSpace
from nas.errors import UserError
from nas.pareto import Normaliser, pareto_indices

Quality = Callable[[list[Arch]], list[float]]
OBJECTIVES = {"edp": "edp", "latency": "latency_ms", "energy": "energy_mj", "params": "params"}
ALGORITHMS = ("nsga2", "random", "evolution")
STATE_FILE = "state.pkl"
STATE_VERSION = 1

if not hasattr(creator, "NasFitness"):
    creator.create("NasFitness", base.Fitness, weights=(-1.0, -1.0))     # minimise both
    creator.create("NasIndividual", list, fitness=creator.NasFitness)


@dataclass
class SearchConfig:
    """Search settings. Defaults: the survey's case study (population 40, 40 generations,
    mutation probability 0.2)."""

    objective: str = "edp"              # edp | latency | energy | params
    algorithm: str = "nsga2"            # nsga2 | random | evolution
    population: int = 40
    generations: int = 40
    mutation_prob: float = 0.2          # per gene: resampled uniformly with this probability
    crossover_prob: float = 0.9         # per pair of parents: uniform crossover
    seed: int = 0
    max_ppl: float | None = None
    max_latency_ms: float | None = None
    max_energy_mj: float | None = None
    max_params: float | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UserError(f"--objective must be one of {', '.join(OBJECTIVES)}, "
                            f"got {self.objective!r}")
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"--algorithm must be one of {', '.join(ALGORITHMS)}, "
                            f"got {self.algorithm!r}")
        if self.population < 4:
            raise UserError(f"--population must be at least 4, got {self.population}")
        if self.generations < 0:
            raise UserError(f"--generations must be >= 0, got {self.generations}")
        for name in ("mutation_prob", "crossover_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1], "
                                f"got {getattr(self, name)}")
        for name, _ in self.constraints():
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, "
                                f"got {getattr(self, name)}")

    def constraints(self) -> list[tuple[str, str]]:
        """(setting, candidate field) of each active constraint."""
        pairs = [("max_ppl", "perplexity"), ("max_latency_ms", "latency_ms"),
                 ("max_energy_mj", "energy_mj"), ("max_params", "params")]
        return [(s, f) for s, f in pairs if getattr(self, s) is not None]

    def violation(self, cand: dict[str, Any]) -> float:
        """Total relative violation of the constraints (0 = feasible)."""
        return sum(max(0.0, cand[f] / getattr(self, s) - 1.0) for s, f in self.constraints())

    def identity(self) -> dict[str, Any]:
        """Settings that must match to resume a search (everything but the generation count)."""
        d = asdict(self)
        d.pop("generations")
        return d


# -- genome ----------------------------------------------------------------------------------

class GenomeCodec:
    """Integer genome <-> Arch for one search space (see the module docstring)."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.max_layers = space.layers[-1]
        self.choices: list[tuple[int, ...]] = ([space.layers, space.d]
                                               + [space.heads] * self.max_layers
                                               + [space.ffn] * self.max_layers)
        self.low = [0] * len(self.choices)
        self.up = [len(c) - 1 for c in self.choices]

    def canonical(self, genes: list[int]) -> list[int]:
        """Reset the genes of unused layers (in place) and return the genome."""
        depth, L = self.space.layers[genes[0]], self.max_layers
        for i in range(depth, L):
            genes[2 + i] = 0
            genes[2 + L + i] = 0
        return genes

    def decode(self, genes: Sequence[int]) -> Arch:
        s, L = self.space, self.max_layers
        n = s.layers[genes[0]]
        return Arch(d=s.d[genes[1]], heads=tuple(s.heads[g] for g in genes[2:2 + n]),
                    ffn=tuple(s.ffn[g] for g in genes[2 + L:2 + L + n]), head_dim=s.head_dim)

    def encode(self, arch: Arch) -> list[int]:
        self.space.check(arch)
        s, L = self.space, self.max_layers
        genes = [s.layers.index(arch.layers), s.d.index(arch.d)] + [0] * (2 * L)
        for i, (h, f) in enumerate(zip(arch.heads, arch.ffn)):
            genes[2 + i], genes[2 + L + i] = s.heads.index(h), s.ffn.index(f)
        return genes

    def random(self, rng: random.Random) -> list[int]:
        return self.canonical([rng.randint(lo, up) for lo, up in zip(self.low, self.up)])


# -- evaluation ------------------------------------------------------------------------------

class SupernetPerplexity:
    """Perplexity with inherited supernet weights; picklable, so worker processes load their own
    copy of the supernet on first use (torch is imported only then)."""

    def __init__(self, ckpt: str | Path, split: str = "valid", max_tokens: int | None = None,
                 batch_size: int = 16, threads: int | None = None):
        self.ckpt, self.split, self.max_tokens = str(ckpt), split, max_tokens
        self.batch_size, self.threads = batch_size, threads
        self._ev = None

    @property
    def evaluator(self):
        if self._ev is None:
            if self.threads:
                import torch
                torch.set_num_threads(self.threads)
            from supernet.evaluate import SupernetEvaluator
            self._ev = SupernetEvaluator(self.ckpt, split=self.split, max_tokens=self.max_tokens,
                                         batch_size=self.batch_size)
        return self._ev

    def __call__(self, archs: list[Arch]) -> list[float]:
        return [float(p) for p in self.evaluator.perplexity(list(archs))]

    def describe(self) -> dict[str, Any]:
        return {"ckpt": str(Path(self.ckpt).resolve()), "split": self.split,
                "max_tokens": self.max_tokens}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ev": None}


_WORKER_QUALITY: Quality | None = None


def _init_worker(quality: Quality) -> None:
    global _WORKER_QUALITY
    _WORKER_QUALITY = quality


def _worker_eval(archs: list[Arch]) -> list[float]:
    return list(_WORKER_QUALITY(archs))


class Evaluator:
    """Scores architectures once each: perplexity (batched, optionally over worker processes),
    cost from the lookup table, parameter count. Keeps every result (the search's archive)."""

    def __init__(self, quality: Quality, table, config: SearchConfig, vocab: int = 0,
                 max_seq: int = 0, workers: int = 1):
        self.quality, self.table, self.config = quality, table, config
        self.vocab, self.max_seq, self.workers = vocab, max_seq, workers
        self.cache: dict[str, dict[str, Any]] = {}      # arch key -> candidate, in eval order
        self.seconds = {"perplexity": 0.0, "cost": 0.0}
        self._pool = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def _perplexities(self, archs: list[Arch]) -> list[float]:
        if self.workers <= 1 or len(archs) < 2:
            return list(self.quality(archs))
        if self._pool is None:
            # spawn: safe with torch threads in the parent; each worker loads its own supernet
            ctx = multiprocessing.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker,
                                  initargs=(self.quality,))
        n = min(self.workers, len(archs))
        chunks = [archs[i * len(archs) // n:(i + 1) * len(archs) // n] for i in range(n)]
        return [p for part in self._pool.map(_worker_eval, chunks) for p in part]

    def evaluate(self, archs: Sequence[Arch], generation: int) -> list[dict[str, Any]]:
        """Candidates for `archs` (same order); only architectures never seen are evaluated."""
        new: dict[str, Arch] = {}
        for a in archs:
            if a.key not in self.cache and a.key not in new:
                new[a.key] = a
        if new:
            todo = list(new.values())
            t0 = time.perf_counter()
            ppls = self._perplexities(todo)
            t1 = time.perf_counter()
            costs = self.table.costs(todo)
            params = [a.params(self.vocab, self.max_seq) for a in todo]
            self.seconds["perplexity"] += t1 - t0
            self.seconds["cost"] += time.perf_counter() - t1
            for a, ppl, cost, n_params in zip(todo, ppls, costs, params):
                cand = {"key": a.key, "perplexity": float(ppl), "cycles": cost.cycles,
                        "latency_ms": cost.latency_ms, "energy_mj": cost.energy_mj,
                        "edp": cost.edp, "params": n_params, "generation": generation,
                        "eval_index": len(self.cache)}
                if not math.isfinite(cand["perplexity"]):
                    cand["perplexity"] = float("inf")
                cand["violation"] = self.config.violation(cand)
                cand["feasible"] = cand["violation"] == 0.0
                self.cache[a.key] = cand
        return [self.cache[a.key] for a in archs]


# -- selection -------------------------------------------------------------------------------

def constrained_fronts(individuals: list) -> list[list]:
    """Fronts under Deb's constrained domination: the non-dominated fronts of the feasible
    individuals (DEAP's sortNondominated), then one front per violation level, lowest first."""
    feasible = [i for i in individuals if i.violation == 0.0]
    fronts = tools.sortNondominated(feasible, len(feasible)) if feasible else []
    infeasible = sorted((i for i in individuals if i.violation > 0.0), key=lambda i: i.violation)
    for ind in infeasible:
        if fronts and fronts[-1][0].violation == ind.violation and ind.violation > 0.0:
            fronts[-1].append(ind)
        else:
            fronts.append([ind])
    return fronts


def select_survivors(individuals: list, k: int) -> list:
    """NSGA-II environmental selection over constrained fronts: whole fronts in rank order, the
    last one cut by crowding distance (as deap.tools.selNSGA2). Sets .rank and crowding_dist."""
    chosen: list = []
    for rank, front in enumerate(constrained_fronts(individuals)):
        tools.emo.assignCrowdingDist(front)
        for ind in front:
            ind.rank = rank
        if len(chosen) + len(front) <= k:
            chosen += front
        else:
            front = sorted(front, key=lambda i: i.fitness.crowding_dist, reverse=True)
            chosen += front[:k - len(chosen)]
        if len(chosen) == k:
            break
    return chosen


def crowded_tournament(individuals: list, k: int) -> list:
    """Binary tournaments: lower constrained rank wins, then larger crowding distance."""
    def better(a, b):
        if a.rank != b.rank:
            return a if a.rank < b.rank else b
        return a if a.fitness.crowding_dist >= b.fitness.crowding_dist else b
    return [better(*random.sample(individuals, 2)) for _ in range(k)]


# -- the search ------------------------------------------------------------------------------

@dataclass
class SearchResult:
    config: SearchConfig
    history: list[dict[str, Any]]          # every evaluated candidate, in evaluation order
    front: list[dict[str, Any]]            # feasible, non-dominated (perplexity, objective)
    largest: dict[str, Any]
    smallest: dict[str, Any]
    hypervolume: list[float]               # after each generation (index 0 = initial population)
    normaliser: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    generations_done: int = 0


class Search:
    """One search run; `run()` checkpoints to `state_path` after every generation and continues
    from it when `resume=True`."""

    def __init__(self, space: SearchSpace, quality: Quality, table, config: SearchConfig,
                 vocab: int = 0, max_seq: int = 0, workers: int = 1,
                 state_path: str | Path | None = None, identity: dict[str, Any] | None = None,
                 progress: bool = False):
        self.space, self.config, self.codec = space, config, GenomeCodec(space)
        self.evaluator = Evaluator(quality, table, config, vocab, max_seq, workers)
        self.state_path = Path(state_path) if state_path else None
        self.identity = {"config": config.identity(), "space": space.to_dict(),
                         "table": getattr(table, "id", None), **(identity or {})}
        self.progress = progress
        self.rng = random.Random(config.seed)
        self.objective_field = OBJECTIVES[config.objective]
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
    def _objectives(self, cand: dict[str, Any]) -> tuple[float, float]:
        return (cand["perplexity"], float(cand[self.objective_field]))

    def _individuals(self, genomes: list[list[int]], generation: int) -> list:
        archs = [self.codec.decode(g) for g in genomes]
        cands = self.evaluator.evaluate(archs, generation)
        inds = []
        for g, c in zip(genomes, cands):
            ind = creator.NasIndividual(g)
            ind.fitness.values = self._objectives(c)
            ind.violation, ind.key, ind.cand = c["violation"], c["key"], c
            inds.append(ind)
        return inds

    def _unique(self, inds: list) -> list:
        seen, out = set(), []
        for ind in inds:
            if ind.key not in seen:
                seen.add(ind.key)
                out.append(ind)
        return out

    # -- variation -----------------------------------------------------------------------------
    def _mutate(self, genes: list[int]) -> list[int]:
        tools.mutUniformInt(genes, self.codec.low, self.codec.up, indpb=self.config.mutation_prob)
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
        hw_constrained = any(s != "max_ppl" for s, _ in self.config.constraints())
        if self.config.max_ppl is not None and not hw_constrained:
            return (c["violation"], c[self.objective_field], c["perplexity"])
        return (c["violation"], c["perplexity"], c[self.objective_field])

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
        for k, v in state["seconds"].items():
            if k.startswith("eval_"):
                self.evaluator.seconds[k[5:]] = v
            else:
                self.seconds[k] = v

    # -- main loop -----------------------------------------------------------------------------
    def _record(self, largest: dict, smallest: dict) -> None:
        if self.normaliser is None:
            self.normaliser = Normaliser([self._objectives(largest), self._objectives(smallest)])
        front = self.front()
        self.hv.append(self.normaliser.hypervolume([self._objectives(c) for c in front]))

    def front(self) -> list[dict[str, Any]]:
        """Feasible non-dominated candidates of the archive, by increasing perplexity."""
        feasible = [c for c in self.evaluator.cache.values() if c["feasible"]]
        return [feasible[i] for i in pareto_indices([self._objectives(c) for c in feasible])]

    def run(self, resume: bool = False) -> SearchResult:
        from tqdm import tqdm

        cfg, codec = self.config, self.codec
        t_start = time.perf_counter()
        if resume:
            self._load_state()
        anchors = [codec.encode(self.space.largest()), codec.encode(self.space.smallest())]
        largest, smallest = self.evaluator.evaluate(
            [codec.decode(g) for g in anchors], generation=0)
        if self.generation < 0:
            # Generation 0: the two anchors plus distinct random genomes.
            with self._deap_random():
                genomes, keys = list(anchors), {largest["key"], smallest["key"]}
                for _ in range(100 * cfg.population):
                    if len(genomes) == cfg.population:
                        break
                    g = codec.random(random)
                    if codec.decode(g).key not in keys:
                        keys.add(codec.decode(g).key)
                        genomes.append(g)
            pop = self._select(self._individuals(genomes, 0))
            self.generation = 0
            self._record(largest, smallest)
            self._save_state()
        else:
            pop = self._restore_population()
            self.normaliser = Normaliser([self._objectives(largest), self._objectives(smallest)])

        bar = tqdm(total=cfg.generations, initial=min(self.generation, cfg.generations),
                   desc=f"{cfg.algorithm} search", unit="gen", disable=not self.progress)
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

    def result(self, largest: dict, smallest: dict) -> SearchResult:
        secs = {**{f"{k}_s": v for k, v in self.evaluator.seconds.items()},
                **{f"{k}_s": v for k, v in self.seconds.items()}}
        secs["bookkeeping_s"] = secs["total_s"] - secs["perplexity_s"] - secs["cost_s"] - \
            secs["checkpoint_s"]
        return SearchResult(config=self.config, history=list(self.evaluator.cache.values()),
                            front=self.front(), largest=largest, smallest=smallest,
                            hypervolume=list(self.hv), normaliser=self.normaliser.to_dict(),
                            seconds=secs, generations_done=self.generation)


# -- outputs ---------------------------------------------------------------------------------

CSV_FIELDS = ["key", "layers", "d", "heads", "ffn", "head_dim", "perplexity", "latency_ms",
              "energy_mj", "edp", "cycles", "params", "feasible", "violation", "generation",
              "eval_index"]
EDP_DELTAS = (0.1, 1.0)     # the survey's Fig. 26: EDP reduction at <= +0.1 and <= +1 perplexity


def _row(cand: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    a = Arch.from_key(cand["key"])
    row = {**cand, "layers": a.layers, "d": a.d, "heads": ".".join(map(str, a.heads)),
           "ffn": ".".join(map(str, a.ffn)), "head_dim": a.head_dim}
    return {**{k: row[k] for k in CSV_FIELDS}, **(extra or {})}


def edp_reductions(result: SearchResult) -> list[dict[str, Any]]:
    """EDP of the largest subnet / lowest EDP among evaluated feasible candidates within
    +0.1 and +1 perplexity of it (None entries when nothing is that close)."""
    from nas.pareto import edp_reduction
    feasible = [c for c in result.history if c["feasible"]]
    return [edp_reduction(feasible, result.largest, d) or {"delta": d, "reduction": None}
            for d in EDP_DELTAS]


def _csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else CSV_FIELDS,
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_outputs(result: SearchResult, out: str | Path, table, info: dict[str, Any],
                  plot: bool = True) -> dict[str, Path]:
    """front.csv, front.json, history.csv, search.json and pareto.png in `out`."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = {"hw": table.hw_name, "hw_hash": table.hw_hash, "table_id": table.id}
    front_rows = [_row(c, ids) for c in result.front]
    reductions = edp_reductions(result)
    paths = {name: out / name for name in ("front.csv", "front.json", "history.csv",
                                           "search.json", "pareto.png")}
    atomic_write_text(paths["front.csv"], _csv(front_rows))
    atomic_write_text(paths["history.csv"], _csv([_row(c) for c in result.history]))
    front_doc = {
        "objective": result.config.objective, **ids, "workload": table.meta["workload"],
        "largest": {**_row(result.largest), "arch": Arch.from_key(result.largest["key"]).to_dict()},
        "front": [{**r, "arch": Arch.from_key(r["key"]).to_dict()} for r in front_rows],
    }
    atomic_write_text(paths["front.json"], json.dumps(front_doc, indent=1))
    search_doc = {
        "settings": asdict(result.config), **info, **ids, "table": table.describe(),
        "generations_done": result.generations_done, "evaluations": len(result.history),
        "front_size": len(result.front),
        "hypervolume": result.hypervolume, "hypervolume_normaliser": result.normaliser,
        "largest": _row(result.largest), "smallest": _row(result.smallest),
        "edp_reduction_vs_largest": reductions, "seconds": result.seconds,
    }
    atomic_write_text(paths["search.json"], json.dumps(search_doc, indent=1))
    if plot:
        from nas.pareto import plot_pareto
        plot_pareto(result.history, result.front, result.largest, paths["pareto.png"],
                    title=f"{result.config.algorithm}, objective {result.config.objective}, "
                          f"{table.hw_name}, {len(result.history)} candidates")
    else:
        paths.pop("pareto.png")
    return paths


def summary_lines(result: SearchResult) -> list[str]:
    """What `nas search` prints at the end."""
    L = result.largest
    lines = [f"evaluated {len(result.history)} architectures in {result.generations_done} "
             f"generations; front: {len(result.front)} feasible non-dominated candidates; "
             f"hypervolume {result.hypervolume[-1]:.4f}",
             f"largest subnet {L['key']}: perplexity {L['perplexity']:.3f}, "
             f"EDP {L['edp']:.3e} J s, latency {L['latency_ms']:.3f} ms, "
             f"energy {L['energy_mj']:.4f} mJ"]
    for r in edp_reductions(result):
        if r["reduction"] is None:
            lines.append(f"EDP reduction at <= +{r['delta']:g} perplexity: no candidate")
        else:
            lines.append(f"EDP reduction at <= +{r['delta']:g} perplexity: "
                         f"{r['reduction']:.2f}x ({r['key']}, perplexity {r['perplexity']:.3f})")
    lines.append("(survey's case study, 6-layer GPT-2-sized model on WikiText-2 and Gemmini: "
                 "2.2x at +0.1 and 10.6x at +1)")
    return lines
