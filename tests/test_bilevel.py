"""Bilevel co-design (issue 23): the cost matrix (lut.matrix), the inner hardware solves
(nas.search.bilevel) and the bilevel search, on a tiny space, a 16-point hardware space and a
16-token workload (the real simulator; a matrix builds in well under a second)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import lut.matrix
from doubles import SPACE, SyntheticPerplexity
from costmodel.area import area
from costmodel.hardware import load_hardware
from costmodel.hwspace import HardwareSpace
from costmodel.workload import Workload
from lut.cache import TableCache
from lut.matrix import CostMatrix, MatrixTables
from lut.table import CostTable
from nas.core.errors import UserError
from nas.pipeline import JointCosts, bilevel_costs, hardware_point
from nas.search.bilevel import (BilevelCosts, ExhaustiveHardware, LocalHardware,
                                arch_distance, best_point, bilevel_evaluations, run_bilevel,
                                warm_generations)
from nas.search.build import build_search
from nas.search.candidate import lowest_within
from nas.search.config import SearchConfig
from nas.search.costs import FixedHardware

WORKLOAD = Workload(seq=16, mode="decoder", vocab=65)
HW_SPACE = HardwareSpace.from_dict({
    "base": "gemmini-transformer", "rows": [8, 16], "cols": [8, 16],
    "dataflow": ["ws", "os"], "scratchpad_kib": [64, 256], "dram_bytes_per_cycle": [8, 16],
    "tie": {"sfu_lanes": "cols"}}, name="small")
POINTS = list(HW_SPACE.points())
AREAS = [area(hw).total_mm2 for hw in POINTS]
BUDGET = float(np.median(AREAS))                # half the points fit


@pytest.fixture(scope="module")
def matrix():
    return CostMatrix.build(SPACE, POINTS, WORKLOAD)


def archs(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    return [SPACE.largest(), SPACE.smallest()] + [SPACE.sample(rng) for _ in range(n)]


# -- the cost matrix -------------------------------------------------------------------------

def test_matrix_columns_are_the_points_lookup_tables_bit_for_bit(matrix):
    for j in (0, 7, len(POINTS) - 1):
        table = CostTable.build(SPACE, POINTS[j], WORKLOAD)
        assert [matrix.table(j).entry(k) for k in matrix.groups] == \
            [table.entry(k) for k in matrix.groups]
        for a in archs(20, seed=j):
            vec, one = matrix.arch_cost(a), table.cost(a)
            assert matrix.cost(a, j) == one
            assert (vec.cycles[j], vec.energy_pj[j], vec.edp[j]) == (one.cycles, one.energy_pj,
                                                                     one.edp)


def test_matrix_is_cached_and_an_interrupted_build_continues(tmp_path, monkeypatch):
    monkeypatch.setattr(lut.matrix, "CHUNK", 5)
    first = CostMatrix.build(SPACE, POINTS, WORKLOAD, folder=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"matrix-{first.id}.npz"]

    def refuse(job):
        raise AssertionError("simulated a chunk that was saved")
    monkeypatch.setattr(lut.matrix, "_chunk_costs", refuse)
    again = CostMatrix.build(SPACE, POINTS, WORKLOAD, folder=tmp_path)
    assert np.array_equal(again.cycles, first.cycles)
    # killed after two chunks: the next build simulates only the others
    monkeypatch.undo()
    monkeypatch.setattr(lut.matrix, "CHUNK", 5)
    (tmp_path / f"matrix-{first.id}.npz").unlink()
    parts = tmp_path / f"matrix-{first.id}"
    parts.mkdir()
    for s in (0, 5):
        lut.matrix._save_npz(parts / f"chunk-{s}.npz", first.cycles[:, s:s + 5],
                             first.energy_pj[:, s:s + 5])
    (parts / "chunk-10.npz").write_bytes(b"truncated")              # unusable: simulated again
    seen = []
    real = lut.matrix._chunk_costs
    monkeypatch.setattr(lut.matrix, "_chunk_costs", lambda job: seen.append(len(job[1]))
                        or real(job))
    resumed = CostMatrix.build(SPACE, POINTS, WORKLOAD, folder=tmp_path)
    assert seen == [len(POINTS[s:s + 5]) for s in range(10, len(POINTS), 5)]
    assert np.array_equal(resumed.energy_pj, first.energy_pj)
    assert not parts.exists()


def test_matrix_id_names_what_its_entries_depend_on():
    ids = {CostMatrix.build(SPACE, POINTS[:2], w).id
           for w in (WORKLOAD, Workload(seq=17, mode="decoder", vocab=65))}
    ids.add(CostMatrix.build(SPACE, POINTS[1:3], WORKLOAD).id)
    assert len(ids) == 3


def test_matrix_tables_serve_columns_and_refuse_other_points(matrix):
    tables = MatrixTables(matrix)
    a = SPACE.largest()
    assert tables.table(POINTS[3]).cost(a) == CostTable.build(SPACE, POINTS[3], WORKLOAD).cost(a)
    tables.table(POINTS[3])
    assert (tables.loaded, tables.hits) == (1, 1)
    with pytest.raises(UserError, match="not a point of cost matrix"):
        tables.table(load_hardware("vitcod"))


def test_matrix_rows_refuse_an_architecture_outside_the_space(matrix):
    with pytest.raises(UserError, match="outside the cost matrix's search space"):
        matrix.rows(SPACE.largest().__class__(d=48, heads=(2,), ffn=(128,), head_dim=32))


# -- the exact inner solve -------------------------------------------------------------------

def test_exhaustive_solve_is_the_best_point_within_the_budget(matrix):
    for objective, field in (("edp", "edp"), ("latency", "latency_ms"),
                             ("energy", "energy_mj"), ("params", "edp")):
        solver = ExhaustiveHardware(matrix, AREAS, SearchConfig(objective=objective,
                                                                max_area_mm2=BUDGET))
        for a in archs(10):
            cost, hw = solver.solve(a)
            brute = [getattr(CostTable.build(SPACE, p, WORKLOAD).cost(a), field)
                     for p, s in zip(POINTS, AREAS) if s <= BUDGET]
            assert area(hw).total_mm2 <= BUDGET and getattr(cost, field) == min(brute)
    assert solver.lookups == 2 * sum(len(matrix.rows(a)) for a in archs(10)) * len(POINTS)


def test_exhaustive_solve_meets_latency_limits_or_breaks_them_least(matrix):
    a = SPACE.largest()
    lat = matrix.arch_cost(a).latency_ms
    fits = np.array(AREAS) <= BUDGET
    limit = float(np.median(lat[fits]))
    cost, hw = ExhaustiveHardware(matrix, AREAS, SearchConfig(
        max_area_mm2=BUDGET, max_latency_ms=limit)).solve(a)
    assert cost.latency_ms <= limit
    assert cost.edp == min(e for e, l, f in zip(matrix.arch_cost(a).edp, lat, fits)
                           if f and l <= limit)
    cost, _ = ExhaustiveHardware(matrix, AREAS, SearchConfig(
        max_area_mm2=BUDGET, max_latency_ms=lat.min() / 10)).solve(a)
    assert cost.latency_ms == lat[fits].min()               # none meets it: the least over


def test_best_point_prefers_allowed_points_and_first_ties():
    class Vec:
        edp = np.array([1.0, 0.5, 0.5, 0.2])
        latency_ms = np.array([1.0, 2.0, 2.0, 1.0])
    allowed = np.array([True, True, True, False])
    assert best_point(Vec, allowed, "edp") == 1
    assert best_point(Vec, allowed, "edp", [("latency_ms", 1.5)]) == 0
    assert best_point(Vec, allowed, "edp", [("latency_ms", 0.5)]) == 0


def test_exhaustive_solve_refuses_a_budget_no_point_fits(matrix):
    with pytest.raises(UserError, match="no hardware point fits"):
        ExhaustiveHardware(matrix, AREAS, SearchConfig(max_area_mm2=0.01))


# -- bilevel search against sequential design --------------------------------------------------

def _search(costs, seed: int, generations: int = 4, **kw):
    cfg = SearchConfig(population=8, generations=generations, seed=seed, racing=False,
                       max_area_mm2=BUDGET)
    return build_search(cfg, SPACE, SyntheticPerplexity(), costs, vocab=65, max_seq=16,
                        **kw).run()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bilevel_never_loses_to_sequential_design_with_exhaustive_hardware(matrix, seed):
    """Sequential design: the architecture searched on gemmini-transformer (a point of the
    space) with half the budget, then its best point. The bilevel search warm-starts with that
    very search, so at the same seed and budget its front is never worse at any perplexity
    limit, by construction; and no architecture is dearer than on gemmini-transformer."""
    generations = 6
    config = SearchConfig(population=8, generations=generations, seed=seed, racing=False,
                          max_area_mm2=BUDGET)
    solver = ExhaustiveHardware(matrix, AREAS, config)
    ref = POINTS[[p.hash() for p in POINTS].index(load_hardware("gemmini-transformer").hash())]
    assert area(ref).total_mm2 <= BUDGET
    on_ref = FixedHardware(CostTable.build(SPACE, ref, WORKLOAD), hardware_point(ref))
    seq = _search(on_ref, seed, generations=warm_generations(generations, 0.5))
    quality = SyntheticPerplexity()
    bilevel, warm = run_bilevel(config, SPACE, quality, BilevelCosts(
        solver, lambda hw: hardware_point(hw, HW_SPACE), "b"), on_ref, 0.5, vocab=65, max_seq=16)
    assert [c.key for c in warm.history] == [c.key for c in seq.history]
    assert quality.calls <= (generations + 1) * 8 + 8        # the budget (+ a random fill)
    # its generation 0 re-costs the warm start's front and last population (more than a
    # population): no new measurement, so no evaluation; then a population per generation
    recosted = [c for c in bilevel.history if c.generation == 0]
    assert len(recosted) > 8 and {c.arch.key for c in recosted} <= {c.arch.key for c in seq.history}
    assert bilevel_evaluations(bilevel, warm) == len(seq.history) + len(bilevel.history) \
        - len(recosted) <= (generations + 1) * 8
    base = seq.largest.perplexity
    for limit in sorted({c.perplexity for c in seq.history}):
        pick = lowest_within(seq.history, limit)
        assert lowest_within(bilevel.history, limit).edp <= solver.solve(pick.arch)[0].edp
    edp_on_ref = {c.arch.key: c.edp for c in seq.history}
    for c in bilevel.history:
        assert c.area_mm2 <= BUDGET and c.hardware.searched and c.key.endswith(c.hardware.hash)
        assert c.edp <= edp_on_ref.get(c.arch.key, np.inf)
    assert lowest_within(bilevel.history, base + 0.1).edp < lowest_within(seq.history,
                                                                           base + 0.1).edp


def test_a_cold_bilevel_search_is_the_plain_search_on_bilevel_costs(matrix):
    config = SearchConfig(population=8, generations=3, seed=4, racing=False,
                          max_area_mm2=BUDGET)

    def costs():
        return BilevelCosts(ExhaustiveHardware(matrix, AREAS, config),
                            lambda hw: hardware_point(hw, HW_SPACE), "b")
    cold, warm = run_bilevel(config, SPACE, SyntheticPerplexity(), costs(), None, 0.5,
                             vocab=65, max_seq=16)
    assert warm is None
    assert [c.key for c in cold.history] == [c.key for c in _search(costs(), 4, 3).history]


def test_bilevel_search_resumes_exactly_and_measures_each_architecture_once(matrix, tmp_path):
    def costs():
        return BilevelCosts(ExhaustiveHardware(matrix, AREAS, SearchConfig(max_area_mm2=BUDGET)),
                            lambda hw: hardware_point(hw, HW_SPACE), "b")
    quality = SyntheticPerplexity()
    cfg = SearchConfig(population=8, generations=2, seed=3, racing=False, max_area_mm2=BUDGET)
    state = tmp_path / "state.pkl"
    build_search(cfg, SPACE, quality, costs(), vocab=65, max_seq=16, state_path=state).run()
    cfg.generations = 4
    resumed = build_search(cfg, SPACE, quality, costs(), vocab=65, max_seq=16,
                           state_path=state).run(resume=True)
    fresh = _search(costs(), seed=3)
    assert resumed.hypervolume == fresh.hypervolume
    assert [c.key for c in resumed.history] == [c.key for c in fresh.history]
    assert quality.calls == len({c.arch.key for c in resumed.history})


def test_bilevel_search_with_the_racing_evaluator(matrix):
    """Racing refines candidates by archive key (the design's, without the hardware)."""
    from doubles import NoisyWindows
    cfg = SearchConfig(population=8, generations=2, seed=0, max_area_mm2=BUDGET)
    costs = BilevelCosts(ExhaustiveHardware(matrix, AREAS, cfg),
                         lambda hw: hardware_point(hw, HW_SPACE), "b")
    result = build_search(cfg, SPACE, NoisyWindows(), costs, vocab=65, max_seq=16).run()
    assert result.front and all("@" in c.key for c in result.front)


# -- the local inner solve -------------------------------------------------------------------

def test_local_solve_improves_on_its_seeds_and_reuses_neighbours(tmp_path, matrix):
    cfg = SearchConfig(max_area_mm2=BUDGET)
    cache = TableCache(SPACE, WORKLOAD)
    start = load_hardware("gemmini-transformer")
    memo = tmp_path / "memo.json"
    local = LocalHardware(HW_SPACE, cache, lambda hw: area(hw).total_mm2, cfg, start,
                          memo_path=memo)
    exact = ExhaustiveHardware(matrix, AREAS, cfg)
    pool = archs(6, seed=5)
    for a in pool:
        seeds = local._seeds(a)
        cost, hw = local.solve(a)
        assert area(hw).total_mm2 <= BUDGET
        assert cost.edp <= min(cache.table(HW_SPACE.decode(g)).cost(a).edp for g in seeds)
        assert cost.edp >= exact.solve(a)[0].edp
    local.save()
    assert local._seeds(pool[0])[0] == local.best[pool[0].key][1]   # its own point first
    again = LocalHardware(HW_SPACE, cache, lambda hw: area(hw).total_mm2, cfg, start,
                          memo_path=memo)
    assert again.best == local.best
    other = LocalHardware(HW_SPACE, cache, lambda hw: area(hw).total_mm2,
                          SearchConfig(objective="latency", max_area_mm2=BUDGET), start,
                          memo_path=memo)
    assert other.best == {}                 # written for another objective: not read


def test_arch_distance_counts_differing_genes():
    a = SPACE.largest()
    assert arch_distance(a, a) == 0
    b = a.__class__(d=a.d, heads=a.heads[:2], ffn=a.ffn[:2], head_dim=a.head_dim)
    assert arch_distance(a, b) == 1 + 3 * 2


# -- the pipeline's cost source ----------------------------------------------------------------

def test_bilevel_costs_enumerate_small_spaces_and_search_large_ones_locally(tmp_path):
    cfg = SearchConfig(max_area_mm2=BUDGET)
    exact = bilevel_costs(HW_SPACE, SPACE, WORKLOAD, cfg, tmp_path / "a")
    assert isinstance(exact.solver, ExhaustiveHardware)
    assert len(exact.solver.matrix.points) == sum(s <= BUDGET for s in AREAS)
    assert list((tmp_path / "a").glob("matrix-*.npz"))
    local = bilevel_costs(HW_SPACE, SPACE, WORKLOAD, cfg, tmp_path / "b", exhaustive_max=4)
    assert isinstance(local.solver, LocalHardware)
    from nas.search.genome import Design
    (cost, point), = local([Design(SPACE.largest())])
    assert point.area_mm2 <= BUDGET and json.loads((tmp_path / "b" / "bilevel-local.json")
                                                   .read_text())["best"]
    with pytest.raises(UserError, match="no point fits"):
        bilevel_costs(HW_SPACE, SPACE, WORKLOAD, SearchConfig(max_area_mm2=0.01), None)


def test_joint_costs_on_matrix_tables_equal_joint_costs_on_built_tables(matrix):
    from nas.search.genome import Design
    designs = [Design(a, POINTS[i % len(POINTS)]) for i, a in enumerate(archs(8))]
    built = JointCosts(HW_SPACE, TableCache(SPACE, WORKLOAD))(designs)
    served = JointCosts(HW_SPACE, MatrixTables(matrix))(designs)
    assert [(c.cycles, c.energy_pj, p) for c, p in built] == \
        [(c.cycles, c.energy_pj, p) for c, p in served]


# -- `nas search --hw-space` ------------------------------------------------------------------

def test_cli_bilevel_search_end_to_end(tiny_supernet, tmp_path, capsys):
    from nas.cli import main
    space = tmp_path / "small.yaml"
    space.write_text(HW_SPACE.to_yaml())
    common = ["search", "--ckpt", str(tiny_supernet), "--hw-space", str(space),
              "--max-area-mm2", f"{BUDGET}", "--population", "6", "--max-tokens", "128",
              "--seed", "1", "--no-progress"]
    out = tmp_path / "bilevel"
    assert main(common + ["--generations", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bilevel" in printed and "warm start:" in printed and "look-ups" in printed
    assert (out / "warm-start" / "state.pkl").is_file() and list((out / "luts").glob("*.npz"))
    front = json.loads((out / "front.json").read_text())["front"]
    assert front and all(r["area_mm2"] <= BUDGET and "@" in r["key"] and "hw.rows" in r
                         for r in front)
    doc = json.loads((out / "search.json").read_text())
    assert doc["hw_search"]["mode"] == "bilevel" and doc["hw_search"]["warm_start"]["share"] == 0.5
    # the budget both parts spent: 6 x (2 + 1) evaluations at most (children already seen are
    # not evaluated again), against 18 + the re-costed start in the bilevel part's history
    assert doc["hw_search"]["warm_start"]["architectures"] < doc["hw_search"]["evaluations"] \
        <= 18 < doc["hw_search"]["warm_start"]["architectures"] + doc["evaluations"]
    assert f"{doc['hw_search']['evaluations']} architectures evaluated by both parts" in printed
    # no worker lost, in either part (on Ray, lost workers' jobs are counted here)
    assert doc["retried_jobs"] == doc["hw_search"]["warm_start"]["retried_jobs"] == 0
    # a warm start alone (killed before the bilevel part) is a search: --resume or another --out
    from nas.pipeline import resume_job
    whole = resume_job(out, {}, {})
    (out / "state.pkl").rename(tmp_path / "moved.pkl")
    assert main(common + ["--generations", "2", "--out", str(out)]) == 2
    assert "warm start" in capsys.readouterr().err
    # ... whose state keeps the options too: --resume needs none of them retyped
    assert resume_job(out, {}, {}) == whole and whole.hw_space == str(space)
    (tmp_path / "moved.pkl").rename(out / "state.pkl")
    # resuming a finished search changes nothing; more generations extend the bilevel part
    before = json.loads((out / "search.json").read_text())
    assert main(common + ["--generations", "2", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "search.json").read_text())["hypervolume"] == before["hypervolume"]
    assert main(common + ["--generations", "3", "--out", str(out), "--resume"]) == 0
    capsys.readouterr()
    after = json.loads((out / "search.json").read_text())
    assert after["hypervolume"][:len(before["hypervolume"])] == before["hypervolume"]
    assert after["generations_done"] == before["generations_done"] + 1
    # --hw-search without --hw-space, and a bad warm-start share
    assert main(["search", "--ckpt", str(tiny_supernet), "--out", str(tmp_path / "x"),
                 "--hw-search", "joint"]) == 2
    assert main(common + ["--out", str(tmp_path / "y"), "--hw-warm-start", "1"]) == 2
    assert "--hw-warm-start" in capsys.readouterr().err


# -- the benchmark's summary (experiments/studies/cosearch_bilevel) ---------------------------

def test_benchmark_summary_reads_each_space_as_issue_23_asks(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "studies" /
                           "cosearch_bilevel"))
    from bilevel_summary import space_summary, summarise

    def method(edp01, edp1, evals=10):
        return {"edp_at_+0.1": edp01, "edp_at_+1": edp1, "hv": 1.0, "evaluations": evals,
                "architectures": evals}

    runs = [{"seed": s, "best_preset": "edge-32x32", "methods": {
        "best_preset": method(6.0 * k, 3.0), "sequential": method(3.0 * k, 2.0),
        "sequential_exhaustive": method(2.0 * k, 1.5), "joint": method(2.5 * k, 1.2),
        "bilevel_cold": method(1.2 * k, 1.1), "bilevel": method(1.0 * k, 1.0)}}
        for s, k in ((0, 1.0), (1, 2.0))]
    doc = {"setting": {"name": "survey-x"}, "hw_space": "survey-hw", "space": "survey-kinds",
           "workload": {}, "area_budget_mm2": 3.7, "supernet": "s", "supernet_steps": 400,
           "hw_points_within_budget": 9, "runs": runs,
           "bound": {"+0.1": {"edp": 0.9}, "+1": {"edp": 1.0}}}
    s = space_summary(doc)
    assert s["edp_gain_vs_best_preset"] == 6.0 and s["edp_gain_vs_sequential"] == 3.0
    assert s["gain_vs_sequential_exhaustive_per_seed"] == [2.0, 2.0]
    assert s["fraction_of_bound_per_seed"] == pytest.approx([0.9, 0.45])
    assert s["reachable_gain_vs_sequential"] == pytest.approx((3.0 / 0.9 + 6.0 / 0.9) / 2)
    assert s["reachable_gain_vs_best_preset"] == pytest.approx((6.0 / 0.9 + 12.0 / 0.9) / 2)
    assert s["evaluations"]["bilevel"] == 10 and s["area_budget_mm2"] == 3.7
    (tmp_path / "setting-survey-x.json").write_text(json.dumps(doc))
    out = json.loads(summarise(tmp_path).read_text())
    assert out["seeds"] == [0, 1] and "survey-x" in out["spaces"]
    assert set(out["provenance"]) >= {"command", "commit", "machine", "simulator_version"}
    assert (tmp_path / "cosearch_bilevel.png").is_file()
