"""Bilevel co-design: NSGA-II over architectures, each architecture on its best hardware point.

A flat joint search (nas.pipeline.JointCosts) puts the hardware genes into the genome and
spreads its evaluations over architectures x hardware points. A bilevel search keeps the
genome to the architecture and solves the hardware sub-problem for every architecture it
evaluates: the hardware point of the space that minimises the search's objective within the
area budget (`SearchConfig.max_area_mm2`), meeting the latency and energy limits where any
point does (else the point that breaks them least). The architecture's candidate is that
(architecture, hardware) pair, so the front keeps pairs, and its perplexity is measured once
as in any search. The outer search is the ordinary architecture-only search, with
`BilevelCosts` as its cost source (nas.search.costs); it resumes as every search does.

Inner solvers (`solve(arch) -> (cost, hardware)`):

    ExhaustiveHardware  exact, over a space that can be enumerated: a cost matrix [operator
                        groups x hardware points] (lut.matrix.CostMatrix) gives the
                        architecture's cost on every point at once (the sum of its groups'
                        rows), and the minimum is taken over the points within the budget.
                        Never worse than any point of the space within the budget, so the
                        pairs are never worse than sequential design given the best hardware
                        for its architecture.
    LocalHardware       where the space is too large to enumerate: a local search over the
                        hardware genes (best single-gene move within the budget, until none
                        improves), started from the best points of the nearest architectures
                        solved before (or the space's anchor point), each point's cost from its
                        lookup table (lut.cache.TableCache).

Warm start (`run_bilevel`): the first `share` of the evaluations search the architecture alone
on one hardware point (sequential design's first step: `warm_costs`, the space's base point),
then the bilevel search starts from that search's front and last population (`Search`'s
`start`). Every architecture sequential design could pick is then among the bilevel search's,
on its best hardware, so at the same seed and budget the bilevel front is never worse than
sequential design given the best hardware for its architecture: by construction, not by luck.

The objective the inner solve minimises is the search's (EDP, latency or energy; with
`--objective params`, which no hardware changes, EDP). This module does not import the
simulator or the tables: the matrix, the tables, the area and the hardware records come from
nas.pipeline.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from nas.core.arch import Arch, SearchSpace
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.search.build import build_search
from nas.search.candidate import OBJECTIVES, HardwarePoint
from nas.search.checkpoint import STATE_FILE, StateFile
from nas.search.config import CONSTRAINTS, SearchConfig
from nas.search.costs import CostSource
from nas.search.engine import SearchResult
from nas.search.genome import Design
from nas.search.quality import MemoQuality, Quality

HARDWARE_OBJECTIVES = ("edp", "latency", "energy")     # objectives the hardware changes
HARDWARE_LIMITS = ("max_latency_ms", "max_energy_mj")  # constraints the hardware changes
WARM_STATE = "warm-start"      # the warm start's folder (its state file) in the search's folder


def inner_objective(objective: str) -> str:
    """The objective the hardware is chosen for: the search's, or EDP for `params`."""
    return objective if objective in HARDWARE_OBJECTIVES else "edp"


def score_fields(config: SearchConfig) -> tuple[str, list[tuple[str, float]]]:
    """The cost field the inner solve minimises, and (cost field, limit) of each latency or
    energy constraint (`Cost` and `Candidate` share these field names)."""
    limits = [(CONSTRAINTS[name], limit) for name, limit in config.constraints().items()
              if name in HARDWARE_LIMITS]
    return OBJECTIVES[inner_objective(config.objective)].field, limits


def violation(cost: Any, limits: Sequence[tuple[str, float]]) -> Any:
    """SearchConfig.violation's sum of relative excesses over the latency and energy limits,
    for a cost whose fields are numbers or arrays over hardware points."""
    return sum((np.maximum(0.0, getattr(cost, f) / limit - 1.0) for f, limit in limits), 0.0)


def best_point(costs: Any, allowed: np.ndarray, field: str,
               limits: Sequence[tuple[str, float]] = ()) -> int:
    """Index of the point with the lowest `field` among the `allowed` ones that meet the
    `limits` (`costs`: a Cost of arrays over the points); if none meets them, the allowed
    point that breaks them least. Ties go to the first point."""
    values = np.asarray(getattr(costs, field))
    excess = np.broadcast_to(violation(costs, limits), values.shape)
    feasible = allowed & (excess == 0.0)
    if feasible.any():
        return int(np.argmin(np.where(feasible, values, np.inf)))
    order = np.lexsort((values, np.where(allowed, excess, np.inf)))
    return int(order[0])


class HardwareMatrix(Protocol):
    """What the exact inner solve reads (lut.matrix.CostMatrix)."""

    points: list

    def rows(self, arch: Arch) -> Any: ...

    def arch_cost(self, arch: Arch) -> Any: ...

    def cost(self, arch: Arch, j: int) -> Any: ...


class ExhaustiveHardware:
    """The exact inner solve over every point of a cost matrix within the area budget
    (`area_mm2`: each point's area, in the matrix's column order)."""

    def __init__(self, matrix: HardwareMatrix, area_mm2: Sequence[float], config: SearchConfig):
        self.matrix = matrix
        self.field, self.limits = score_fields(config)
        area = np.asarray(area_mm2, dtype=float)
        if area.shape != (len(matrix.points),):
            raise ValueError(f"{len(area)} areas for {len(matrix.points)} hardware points")
        budget = config.max_area_mm2
        self.allowed = area <= budget if budget is not None else np.ones(len(area), bool)
        if not self.allowed.any():
            raise UserError(f"no hardware point fits in --max-area-mm2 {budget:g} (the "
                            f"smallest is {area.min():.3g} mm2)")
        self.solved = 0
        self.lookups = 0        # table entries read: groups x points per architecture

    def solve(self, arch: Arch) -> tuple[Any, Any]:
        j = best_point(self.matrix.arch_cost(arch), self.allowed, self.field, self.limits)
        self.solved += 1
        self.lookups += 2 * len(self.matrix.rows(arch)) * len(self.matrix.points)
        return self.matrix.cost(arch, j), self.matrix.points[j]

    def save(self) -> None:
        """Nothing to keep: the solve is a pure function of the matrix."""

    def describe(self) -> str:
        return (f"exact over the {int(self.allowed.sum()):,} of {len(self.allowed):,} "
                f"hardware points within the area budget")


def arch_distance(a: Arch, b: Arch) -> int:
    """Genes in which two architectures differ: depth, width, and per layer heads, FFN width
    and attention kind (a layer only one of them has differs in all three)."""
    layers = max(a.layers, b.layers)
    out = int(a.layers != b.layers) + int(a.d != b.d) + 3 * (layers - min(a.layers, b.layers))
    for i in range(min(a.layers, b.layers)):
        out += (a.heads[i] != b.heads[i]) + (a.ffn[i] != b.ffn[i]) + \
            (a.attention[i] != b.attention[i])
    return out


class LocalHardware:
    """The inner solve by local search, for hardware spaces too large to enumerate.

    `hw_space`: genes(), decode(genome), encode(hw), within_area(genome, budget, rng)
    (costmodel.hwspace.HardwareSpace); `tables`: `.table(hw).cost(arch)` (lut.cache.TableCache);
    `area_of(hw)`: mm2; `start`: the point searched from while nothing is solved.
    `memo_path`: a JSON file keeping the best genome of every architecture solved, so a
    resumed search starts its local searches from the same neighbours."""

    def __init__(self, hw_space: Any, tables: Any, area_of: Callable[[Any], float],
                 config: SearchConfig, start: Any, neighbours: int = 3, max_moves: int = 50,
                 memo_path: str | Path | None = None):
        self.hw_space, self.tables, self.area_of = hw_space, tables, area_of
        self.field, self.limits = score_fields(config)
        self.budget = config.max_area_mm2
        self.neighbours, self.max_moves = neighbours, max_moves
        self.sizes = [len(c) for _, c in hw_space.genes()]
        self.start = self._fit(hw_space.encode(start))
        self.memo_path = Path(memo_path) if memo_path is not None else None
        # what the best points depend on: a memo written for other settings is not read
        self.memo_id = json.dumps({"space": hw_space.to_dict(), "field": self.field,
                                   "limits": self.limits, "budget": self.budget},
                                  sort_keys=True, default=str)
        self.best: dict[str, tuple[Arch, tuple[int, ...]]] = {}
        if self.memo_path is not None and self.memo_path.is_file():
            saved = json.loads(self.memo_path.read_text())
            if saved.get("id") == self.memo_id:
                self.best = {k: (Arch.from_key(k), tuple(g)) for k, g in saved["best"].items()}
        self.solved = 0
        self.lookups = 0        # points costed (one table look-up of the architecture each)

    def _fit(self, genome: Sequence[int]) -> tuple[int, ...]:
        if self.budget is None:
            return tuple(genome)
        return tuple(self.hw_space.within_area(list(genome), self.budget, random.Random(0)))

    def _score(self, arch: Arch, genome: tuple[int, ...]) -> tuple[float, float]:
        """(violation of the limits, objective) of `arch` on point `genome`; a point over the
        area budget scores (inf, inf)."""
        hw = self.hw_space.decode(genome)
        if self.budget is not None and self.area_of(hw) > self.budget:
            return (np.inf, np.inf)
        cost = self.tables.table(hw).cost(arch)
        self.lookups += 1
        return (float(violation(cost, self.limits)), float(getattr(cost, self.field)))

    def _seeds(self, arch: Arch) -> list[tuple[int, ...]]:
        """The best points of the nearest architectures solved before, or the start point."""
        near = sorted(self.best.items(), key=lambda kv: (arch_distance(arch, kv[1][0]), kv[0]))
        seeds = list(dict.fromkeys(g for _, (_, g) in near[:self.neighbours]))
        return seeds or [self.start]

    def _climb(self, arch: Arch, genome: tuple[int, ...], scores: dict) -> tuple[int, ...]:
        """Best single-gene move until none improves (or `max_moves` moves)."""
        for _ in range(self.max_moves):
            moves = [genome[:k] + (j,) + genome[k + 1:] for k, n in enumerate(self.sizes)
                     for j in range(n) if j != genome[k]]
            for g in moves:
                if g not in scores:
                    scores[g] = self._score(arch, g)
            best = min(moves, key=lambda g: (scores[g], g))
            if scores[best] >= scores[genome]:
                return genome
            genome = best
        return genome

    def solve(self, arch: Arch) -> tuple[Any, Any]:
        if arch.key in self.best:
            genome = self.best[arch.key][1]
        else:
            scores: dict[tuple[int, ...], tuple[float, float]] = {}
            ends = []
            for seed in self._seeds(arch):
                scores.setdefault(seed, self._score(arch, seed))
                ends.append(self._climb(arch, seed, scores))
            genome = min(ends, key=lambda g: (scores[g], g))
            self.best[arch.key] = (arch, genome)
        self.solved += 1
        hw = self.hw_space.decode(genome)
        return self.tables.table(hw).cost(arch), hw

    def save(self) -> None:
        """Write the best genome of every solved architecture to `memo_path`."""
        if self.memo_path is not None:
            best = {k: list(g) for k, (_, g) in sorted(self.best.items())}
            atomic_write_text(self.memo_path, json.dumps({"id": self.memo_id, "best": best})
                              + "\n")

    def describe(self) -> str:
        return (f"local search over {np.prod(self.sizes, dtype=float):.3g} genomes, from the "
                f"best points of the {self.neighbours} nearest architectures solved")


class BilevelCosts:
    """The cost source (nas.search.costs) of a bilevel search: each architecture's cost on
    the hardware point `solver` chooses for it, recorded by `point(hw)` (a HardwarePoint with
    the space's fields). The genome holds the architecture alone (`hw_space` None); `id`
    names the hardware space, budget and solver for the state file."""

    hw_space = None
    anchor_hw = None

    def __init__(self, solver: ExhaustiveHardware | LocalHardware,
                 point: Callable[[Any], HardwarePoint], id: str):  # noqa: A002 (CostSource's)
        self.solver, self.point, self.id = solver, point, id
        self._points: dict[str, HardwarePoint] = {}

    def __call__(self, designs: Sequence[Design]) -> list[tuple[Any, HardwarePoint]]:
        out = []
        for d in designs:
            cost, hw = self.solver.solve(d.arch)
            name = getattr(hw, "name", str(hw))
            if name not in self._points:
                self._points[name] = self.point(hw)
            out.append((cost, self._points[name]))
        self.solver.save()
        return out

    def usage(self) -> str:
        s = self.solver
        return (f"bilevel hardware search ({s.describe()}): {s.solved:,} architectures "
                f"solved, {s.lookups:,} look-ups")


def warm_generations(generations: int, share: float) -> int:
    """Generations (after its generation 0) of a warm start that takes the first `share` of
    a search's (generations + 1) x population evaluations; 0.5 gives sequential design's
    architecture search in experiments/studies/cosearch*.py."""
    return max(0, int(share * (generations + 1)) - 1)


def run_bilevel(config: SearchConfig, space: SearchSpace, quality: Quality, costs: BilevelCosts,
                warm_costs: CostSource | None = None, share: float = 0.0, *, vocab: int = 0,
                max_seq: int = 0, workers: int = 1, executor: str = "local",
                ray_address: str | None = None, folder: str | Path | None = None,
                identity: dict[str, Any] | None = None, record: dict[str, Any] | None = None,
                resume: bool = False, progress: bool = False,
                on_generation: Callable[[SearchResult], None] | None = None
                ) -> tuple[SearchResult, SearchResult | None]:
    """A bilevel search of `config.generations` generations (and the warm start's result, or
    None): with `warm_costs` and `share` > 0, the first `share` of the evaluations search the
    architecture on `warm_costs` (state in FOLDER/warm-start), the rest are the bilevel search
    (state in FOLDER) from its front and last population. With the exact evaluator the two
    share perplexities (each architecture measured once); the racing evaluator re-measures the
    start architectures. `resume` continues each part from its state file; once the bilevel
    part has begun, more generations extend it, not the warm start. `record`: what both state
    files keep besides (nas.search.build); `workers`, `executor`, `ray_address`: where
    perplexity runs (nas.search.build); `on_generation`: called after each generation of the
    bilevel part."""
    folder = Path(folder) if folder is not None else None
    common = dict(vocab=vocab, max_seq=max_seq, workers=workers, executor=executor,
                  ray_address=ray_address, identity=identity, record=record,
                  progress=progress)

    def state(part: Path | None) -> tuple[Path | None, bool]:
        path = part / STATE_FILE if part is not None else None
        return path, resume and path is not None and path.is_file()

    if not config.racing:
        quality = MemoQuality(quality)
    start: list[Arch] = []
    warm = None
    if warm_costs is not None and share > 0:
        first = warm_generations(config.generations, share)
        path, again = state(folder / WARM_STATE if folder is not None else None)
        if again and state(folder)[1]:                  # the bilevel part has begun
            first = StateFile(path).saved_generation() or 0
        search = build_search(replace(config, generations=first), space, quality, warm_costs,
                              state_path=path, **common)
        warm = search.run(resume=again)
        start = [c.arch for c in warm.front] + [search.codec.decode(ind)
                                                for ind in search.population]
        config = replace(config, generations=config.generations - first)
    path, again = state(folder)
    search = build_search(config, space, quality, costs, state_path=path, start=start,
                          **common)
    search.on_generation = on_generation
    return search.run(resume=again), warm


def bilevel_evaluations(result: SearchResult, warm: SearchResult | None) -> int:
    """Architecture evaluations of a bilevel search and its warm start (`run_bilevel`): every
    candidate of both, less the bilevel part's generation 0 where it re-costs architectures
    the warm start measured on their best points (no new measurement)."""
    if warm is None:
        return len(result.history)
    measured = {c.arch.key for c in warm.history}
    recosted = sum(c.generation == 0 and c.arch.key in measured for c in result.history)
    return len(warm.history) + len(result.history) - recosted


__all__ = ["BilevelCosts", "ExhaustiveHardware", "LocalHardware", "HardwareMatrix",
           "best_point", "violation", "inner_objective", "score_fields", "arch_distance",
           "HARDWARE_OBJECTIVES", "HARDWARE_LIMITS", "WARM_STATE", "warm_generations",
           "run_bilevel", "bilevel_evaluations"]
