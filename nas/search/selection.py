"""NSGA-II selection with Deb's constrained domination (Deb et al. 2002), on DEAP individuals.

Individuals carry `.violation` (0 = feasible) and DEAP fitness values (both minimised).
Feasible individuals dominate infeasible ones; infeasible ones are ranked by violation.
Constraints are feasibility, never penalties: an infeasible candidate can not buy its way into
the front with a good objective value.
"""

from __future__ import annotations

import random
from typing import Any

from deap import base, creator, tools

if not hasattr(creator, "NasFitness"):
    creator.create("NasFitness", base.Fitness, weights=(-1.0, -1.0))     # minimise both
    creator.create("NasIndividual", list, fitness=creator.NasFitness)


def make_individual(genes: list[int], key: str, cand: Any,
                    objectives: tuple[float, float]) -> Any:
    """The DEAP individual of `genes` (its design's `key`): `objectives` as its fitness, the
    candidate `cand` (and its `.violation`) kept on it."""
    ind = creator.NasIndividual(genes)
    ind.fitness.values = objectives
    ind.violation, ind.key, ind.cand = cand.violation, key, cand
    return ind


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
