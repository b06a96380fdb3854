"""Search algorithms as small strategy objects; `SearchConfig.algorithm` picks one from
STRATEGIES.

A generation: `vary(population)` returns the individuals kept for the next population and the
genomes of the children (drawing from `random`, which the search seeds and checkpoints); the
search evaluates the children; `survivors(kept, offspring)` is the next population.

  nsga2      NSGA-II with Deb's constrained domination (nas.search.selection). Parents by
             binary crowded tournament, uniform crossover, per-gene uniform mutation; parents
             and children compete for the next population.
  random     the same number of candidates per generation drawn uniformly from the space.
  evolution  HAT-style single-objective evolution (Wang et al. 2020): keep the best quarter as
             parents, fill the population with mutants and crossovers of them. Minimises
             perplexity under the constraints, or the hardware objective when --max-ppl is the only
             constraint.

Individuals are DEAP individuals: lists of genes with `.fitness`, `.violation`, `.key` and
`.cand` (their archive candidate).
"""

from __future__ import annotations

import random

from deap import tools

from nas.search.config import SearchConfig
from nas.search.genome import GenomeCodec
from nas.search.selection import crowded_tournament, select_survivors

Genome = list[int]


class Variation:
    """The genetic operators on a codec's genomes: uniform crossover, per-gene uniform
    mutation, uniform sampling; every child in canonical form."""

    def __init__(self, codec: GenomeCodec, config: SearchConfig):
        self.codec = codec
        # the per-gene probability is set for an architecture genome; a joint genome is
        # longer, so it is scaled to mutate as many genes per child on average
        self.mutation_prob = config.mutation_prob * codec.arch_genes / len(codec.choices)

    def mutate(self, genes: Genome) -> Genome:
        tools.mutUniformInt(genes, self.codec.low, self.codec.up, indpb=self.mutation_prob)
        return genes

    def crossover(self, a: Genome, b: Genome) -> None:
        tools.cxUniform(a, b, indpb=0.5)

    def canonical(self, genes: Genome) -> Genome:
        return self.codec.canonical(genes)

    def random(self) -> Genome:
        return self.codec.random(random)

    def neighbours(self, genes: Genome) -> list[Genome]:
        """The distinct genomes one gene away from `genes`, in canonical form (a gene of an
        unused layer changes nothing): a local search's moves."""
        out: dict[tuple[int, ...], Genome] = {}
        for i, up in enumerate(self.codec.up):
            for value in range(up + 1):
                g = self.canonical([*genes[:i], value, *genes[i + 1:]])
                if g != genes:
                    out.setdefault(tuple(g), g)
        return list(out.values())


def unique(inds: list) -> list:
    """The first individual of each design key, in order."""
    seen, out = set(), []
    for ind in inds:
        if ind.key not in seen:
            seen.add(ind.key)
            out.append(ind)
    return out


class NSGA2:
    def __init__(self, config: SearchConfig, variation: Variation):
        self.config, self.var = config, variation

    def vary(self, pop: list) -> tuple[list, list[Genome]]:
        parents = crowded_tournament(pop, len(pop) + len(pop) % 2)
        children = []
        for a, b in zip(parents[::2], parents[1::2]):
            a, b = list(a), list(b)
            if random.random() < self.config.crossover_prob:
                self.var.crossover(a, b)
            children += [self.var.canonical(self.var.mutate(a)),
                         self.var.canonical(self.var.mutate(b))]
        return pop, children[:len(pop)]

    def survivors(self, kept: list, offspring: list) -> list:
        inds = unique(kept + offspring)
        return select_survivors(inds, min(len(inds), self.config.population))


class RandomSearch:
    def __init__(self, config: SearchConfig, variation: Variation):
        self.config, self.var = config, variation

    def vary(self, pop: list) -> tuple[list, list[Genome]]:
        return [], [self.var.random() for _ in range(self.config.population)]

    def survivors(self, kept: list, offspring: list) -> list:
        return offspring


class Evolution:
    def __init__(self, config: SearchConfig, variation: Variation):
        self.config, self.var = config, variation
        # perplexity under the constraints, or the objective when --max-ppl is the only one
        hw_constrained = any(s != "max_ppl" for s in config.constraints())
        self.objective_first = config.max_ppl is not None and not hw_constrained

    def key(self, ind) -> tuple:
        """Feasible first (then by violation), then the single objective."""
        c, objective = ind.cand, self.config.objective
        if self.objective_first:
            return (c.violation, c.value(objective), c.perplexity)
        return (c.violation, c.perplexity, c.value(objective))

    def vary(self, pop: list) -> tuple[list, list[Genome]]:
        """The best quarter are parents; half the rest mutants, half crossovers."""
        n = len(pop)
        parents = sorted(pop, key=self.key)[:max(2, n // 4)]
        n_mut = (n - len(parents)) // 2
        children = [self.var.canonical(self.var.mutate(list(random.choice(parents))))
                    for _ in range(n_mut)]
        while len(parents) + len(children) < n:
            a, b = (list(p) for p in random.sample(parents, 2))
            self.var.crossover(a, b)
            children.append(self.var.canonical(a))
        return parents, children

    def survivors(self, kept: list, offspring: list) -> list:
        return kept + offspring


# SearchConfig.algorithm -> strategy (the names, for the command line: config.ALGORITHMS)
STRATEGIES = {"nsga2": NSGA2, "random": RandomSearch, "evolution": Evolution}
