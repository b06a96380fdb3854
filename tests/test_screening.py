"""Children screened by a perplexity model (`--screen`, nas/search/screening.py): as many
architectures measured per generation, a better front for the same measurements, exact resume,
the model itself."""

from __future__ import annotations

import random
import statistics

import pytest

from nas.search.build import build_search
from nas.search.config import SearchConfig
from nas.search.costs import FixedHardware
from nas.search.pareto import Normaliser, pareto_indices
from nas.search.screening import MIN_MEASURED, PerplexityModel, arch_features

from doubles import SPACE, FakeJointCosts, SyntheticPerplexity, synthetic_table


def screened(screen: int, seed: int, state=None, quality=None, resume=False, costs=None,
             generations: int = 6, max_area_mm2: float | None = None):
    config = SearchConfig(population=10, generations=generations, seed=seed, racing=False,
                          screen=screen, max_area_mm2=max_area_mm2)
    search = build_search(config, SPACE, quality or SyntheticPerplexity(),
                          costs or FixedHardware(synthetic_table()), vocab=65, max_seq=32,
                          state_path=state)
    return search.run(resume=resume)


def hypervolume_of_first(result, n: int) -> float:
    """The hypervolume of the front of the first `n` evaluated candidates."""
    pts = [(c.perplexity, c.edp) for c in result.history[:n] if c.feasible]
    anchors = Normaliser([(c.perplexity, c.edp) for c in (result.largest, result.smallest)])
    return anchors.hypervolume([pts[i] for i in pareto_indices(pts)])


def test_screening_measures_a_population_per_generation_and_finds_a_better_front():
    gains = []
    for seed in range(6):
        plain, screen = screened(1, seed), screened(8, seed)
        for result in (plain, screen):      # never more than a population of new designs
            per_generation = [sum(c.generation == g for c in result.history) for g in range(7)]
            assert max(per_generation[1:]) <= 10
        n = min(len(plain.history), len(screen.history))
        gains.append(hypervolume_of_first(screen, n) - hypervolume_of_first(plain, n))
    # at equal measurements, on average, and on most seeds
    assert statistics.mean(gains) > 0 and sum(g > 0 for g in gains) >= 4


def test_without_enough_measurements_the_children_are_kept_as_drawn():
    # 10 measured after generation 0 (< MIN_MEASURED): generation 1 is the plain search's
    assert MIN_MEASURED > 10
    plain, screen = screened(1, 3, generations=1), screened(8, 3, generations=1)
    assert [c.key for c in screen.history] == [c.key for c in plain.history]


def test_a_killed_screened_search_resumes_to_the_uninterrupted_front(tmp_path):
    full = screened(8, 5, state=tmp_path / "a" / "state.pkl")
    with pytest.raises(KeyboardInterrupt):
        screened(8, 5, state=tmp_path / "b" / "state.pkl",
                 quality=SyntheticPerplexity(fail_after=45))
    resumed = screened(8, 5, state=tmp_path / "b" / "state.pkl", resume=True)
    assert [c.key for c in resumed.history] == [c.key for c in full.history]
    assert resumed.hypervolume == full.hypervolume


def test_a_joint_search_screens_architecture_and_hardware():
    quality = SyntheticPerplexity()
    result = screened(6, 0, quality=quality, costs=FakeJointCosts())
    assert len({c.hardware.hash for c in result.history}) > 1
    assert quality.calls == len({c.arch.key for c in result.history})   # each measured once


def test_a_screened_joint_search_under_an_area_budget_depends_on_its_seed_alone():
    """The last generation's moves are one gene away, then stepped down to fit the area budget
    at random: from the search's seeded stream, not the process's (whatever state `random` is
    in, the same search)."""
    runs = []
    for state in (0, 2):                    # two that gave two searches before
        random.seed(state)
        result = screened(8, 0, costs=FakeJointCosts(), max_area_mm2=3.0)
        assert all(c.area_mm2 <= 3.0 for c in result.history if c.generation == 6)
        runs.append([c.key for c in result.history])
    assert all(run == runs[0] for run in runs)


def test_the_model_ranks_unseen_architectures():
    from scipy.stats import kendalltau      # here, not at collection: 0.5 s in each test process
    rng = random.Random(0)
    archs = list({a.key: a for a in (SPACE.sample(rng) for _ in range(300))}.values())
    truth = SyntheticPerplexity()(archs)
    model = PerplexityModel(SPACE, {a.key: (a, p) for a, p in zip(archs[:100], truth[:100])})
    tau = kendalltau(model.predict(archs[100:]), truth[100:])[0]
    assert tau > 0.7, tau
    # the features: depth, d, heads and FFN per layer (padded), parameters
    a = SPACE.smallest()
    L = SPACE.layers[-1]
    assert len(arch_features(a, SPACE)) == 2 + 2 * L + 1


def test_neighbours_are_every_genome_one_gene_away_in_canonical_form():
    from nas.search.algorithms import Variation
    from nas.search.genome import GenomeCodec
    codec = GenomeCodec(SPACE)
    var = Variation(codec, SearchConfig())
    genes = codec.encode(SPACE.largest())
    genes[0] = 0                                            # the least depth: unused layers
    genes = codec.canonical(genes)
    near = var.neighbours(list(genes))
    depth = SPACE.layers[0]
    used = [i for i in range(len(genes)) if i < 2 or (i - 2) % SPACE.layers[-1] < depth]
    assert len(near) == len({tuple(g) for g in near}) == sum(codec.up[i] for i in used)
    for g in near:
        assert g == codec.canonical(list(g)) and g != genes
        diff = [i for i, (a, b) in enumerate(zip(g, genes)) if a != b]
        assert len(diff) == 1 or diff[0] == 0               # one gene, or the depth


def test_the_last_screened_generation_refines_the_picks_by_cheaper_neighbours():
    from nas.search.algorithms import Variation
    from nas.search.candidate import PPL_DELTAS, lowest_within
    from nas.search.genome import GenomeCodec
    codec = GenomeCodec(SPACE)
    var = Variation(codec, SearchConfig())
    improved = []
    for seed in range(3):
        result = screened(4, seed, generations=4)
        last = [c for c in result.history if c.generation == 4]
        assert 0 < len(last) <= 10                      # a population's worth at most
        for c in last:      # each next to a measured design that costs more (a pick)
            near = {codec.design(g).key for g in var.neighbours(codec.encode(c.arch))}
            assert any(e.key in near and e.edp > c.edp for e in result.history)
        before = [c for c in result.history if c.generation < 4 and c.feasible]
        for delta in PPL_DELTAS:
            pick = lowest_within(before, result.largest.perplexity + delta)
            found = lowest_within([c for c in result.history if c.feasible],
                                  result.largest.perplexity + delta)
            improved.append(found.edp < pick.edp)
    assert sum(improved) >= 2           # of the 6 picks (3 seeds, +0.1 and +1)
