"""The DEAP search on a synthetic quality function and a synthetic cost table (test doubles: the
search must not care where perplexity and cost come from)."""

from __future__ import annotations

import json
import math
import random

import pytest

from lut.table import CostTable, space_groups
from nas.arch import Arch, SearchSpace
from nas.cli import main
from nas.errors import UserError
from nas.pareto import Normaliser, hypervolume_2d, pareto_indices
from nas.search import (GenomeCodec, Search, SearchConfig, constrained_fronts, summary_lines,
                        write_outputs)

SPACE = SearchSpace.load("tiny")


class SyntheticPerplexity:
    """Deterministic stand-in for a supernet: bigger is better, with diminishing returns and a
    small per-width wiggle so the front is not a single line. Counts evaluated architectures."""

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, archs):
        self.calls += len(archs)
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        out = []
        for a in archs:
            size = sum(h * a.head_dim * a.d + f * a.d for h, f in zip(a.heads, a.ffn))
            out.append(3.0 + 300.0 / math.sqrt(size) + 0.05 * ((a.d // 32) % 3)
                       + 0.02 * sum(h % 2 for h in a.heads))
        return out


def synthetic_table(space: SearchSpace = SPACE) -> CostTable:
    """A CostTable with made-up but monotone costs (no simulator involved)."""
    rows = []
    for key in space_groups(space):
        kind, d = key[0], key[1]
        work = {"attn": lambda: d * key[2] * key[3] + 50 * key[2],
                "ffn": lambda: 2 * d * key[2], "head": lambda: 4 * d}[kind]()
        rows.append({"kind": kind, "d": d, "heads": key[2] if kind == "attn" else 0,
                     "head_dim": key[3] if kind == "attn" else 0,
                     "ffn": key[2] if kind == "ffn" else 0,
                     "cycles": float(work), "energy_pj": float(3 * work + 1000)})
    meta = {"hw_name": "synthetic", "hw_hash": "0" * 12, "hw": {}, "clock_hz": 1e9,
            "workload": {"seq": 32, "batch": 1, "mode": "decoder", "gen": 0, "vocab": 0},
            "space": space.to_dict(), "simulator_version": "test", "sparsity": None}
    return CostTable(rows, meta)


def run(config: SearchConfig, state=None, quality=None, resume=False, workers=1):
    search = Search(SPACE, quality or SyntheticPerplexity(), synthetic_table(), config,
                    vocab=65, max_seq=32, workers=workers, state_path=state)
    return search.run(resume=resume)


def fingerprint(result):
    return ([c["key"] for c in result.history], [c["key"] for c in result.front],
            result.hypervolume)


# -- genome ----------------------------------------------------------------------------------

def test_genome_round_trip_and_canonical_form():
    codec, rng = GenomeCodec(SPACE), random.Random(1)
    for _ in range(200):
        arch = SPACE.sample(rng)
        assert codec.decode(codec.encode(arch)) == arch
        genes = codec.random(rng)
        assert codec.decode(genes) in SPACE
        assert codec.encode(codec.decode(genes)) == genes      # random genomes are canonical
    # genes of unused layers do not matter: canonical genomes of equal archs are equal
    g = codec.encode(SPACE.smallest())
    noisy = list(g)
    noisy[2 + SPACE.layers[0]] = len(SPACE.heads) - 1
    noisy[-1] = len(SPACE.ffn) - 1
    assert codec.decode(noisy) == codec.decode(g) and codec.canonical(noisy) == g


# -- Pareto utilities ------------------------------------------------------------------------

def test_pareto_indices_match_brute_force():
    rng = random.Random(0)
    for _ in range(50):
        pts = [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(15)]
        front = {pts[i] for i in pareto_indices(pts)}
        brute = {p for p in pts if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in pts)}
        assert front == brute


def test_hypervolume_2d_counts_unit_cells():
    rng = random.Random(0)
    for _ in range(30):
        pts = [(rng.randint(0, 7), rng.randint(0, 7)) for _ in range(6)]
        ref = (8, 8)
        cells = sum(1 for x in range(8) for y in range(8)
                    if any(p[0] <= x and p[1] <= y for p in pts))
        assert hypervolume_2d(pts, ref) == pytest.approx(cells)
    assert hypervolume_2d([(2.0, 2.0)], (1.0, 5.0)) == 0.0      # beyond the reference point


def test_normaliser_maps_anchors_to_unit_square():
    norm = Normaliser([(10.0, 5.0), (20.0, 1.0)])
    assert norm((10.0, 1.0)) == (0.0, 0.0) and norm((20.0, 5.0)) == (1.0, 1.0)
    assert norm.hypervolume([(10.0, 1.0)]) == pytest.approx(1.1 * 1.1)


# -- constrained domination ------------------------------------------------------------------

class _Ind:
    def __init__(self, values, violation):
        from deap import creator
        self.fitness = creator.NasFitness(values)
        self.violation = violation


def test_constrained_fronts_put_feasible_first_and_order_infeasible_by_violation():
    a, b = _Ind((1.0, 1.0), 0.0), _Ind((2.0, 2.0), 0.0)        # b dominated by a
    c, d = _Ind((0.1, 0.1), 0.5), _Ind((9.0, 9.0), 0.1)        # c looks best but violates more
    fronts = constrained_fronts([c, d, b, a])
    assert fronts == [[a], [b], [d], [c]]


def test_constraints_are_feasibility_not_penalties():
    base = run(SearchConfig(population=10, generations=4, seed=3))
    limit = sorted(c["latency_ms"] for c in base.history)[len(base.history) // 3]
    res = run(SearchConfig(population=10, generations=4, seed=3, max_latency_ms=limit,
                           max_ppl=base.largest["perplexity"] * 2))
    assert res.front and all(c["feasible"] for c in res.front)
    assert all(c["latency_ms"] <= limit for c in res.front)
    # some infeasible candidate beats every front member in perplexity, yet stays out
    infeasible = [c for c in res.history if not c["feasible"]]
    assert infeasible and min(c["perplexity"] for c in infeasible) < \
        min(c["perplexity"] for c in res.front)


# -- the search ------------------------------------------------------------------------------

def test_same_seed_same_front_and_no_duplicate_evaluations():
    cfg = SearchConfig(population=10, generations=5, seed=7)
    q1 = SyntheticPerplexity()
    r1, r2 = run(cfg, quality=q1), run(cfg)
    assert fingerprint(r1) == fingerprint(r2)
    keys = [c["key"] for c in r1.history]
    assert len(keys) == len(set(keys)) == q1.calls          # each architecture evaluated once
    other = run(SearchConfig(population=10, generations=5, seed=8))
    assert fingerprint(other) != fingerprint(r1)
    # the archive's hypervolume never decreases; the anchors are in the history
    assert all(b >= a for a, b in zip(r1.hypervolume, r1.hypervolume[1:]))
    assert len(r1.hypervolume) == 6
    assert r1.largest["key"] == SPACE.largest().key and SPACE.smallest().key in keys


def test_nsga2_improves_on_its_initial_population():
    res = run(SearchConfig(population=12, generations=8, seed=0))
    assert res.hypervolume[-1] > res.hypervolume[0]


def test_resume_after_kill_gives_the_uninterrupted_front(tmp_path):
    cfg = SearchConfig(population=10, generations=6, seed=5)
    full = run(cfg, state=tmp_path / "a" / "state.pkl")
    with pytest.raises(KeyboardInterrupt):
        run(cfg, state=tmp_path / "b" / "state.pkl", quality=SyntheticPerplexity(fail_after=35))
    resumed = run(cfg, state=tmp_path / "b" / "state.pkl", resume=True)
    assert fingerprint(resumed) == fingerprint(full)
    # a different setting refuses to resume, naming the setting
    with pytest.raises(UserError, match="config.objective"):
        run(SearchConfig(population=10, generations=6, seed=5, objective="latency"),
            state=tmp_path / "b" / "state.pkl", resume=True)


def test_workers_give_identical_results():
    cfg = SearchConfig(population=8, generations=2, seed=2)
    assert fingerprint(run(cfg, workers=2)) == fingerprint(run(cfg))


@pytest.mark.parametrize("algorithm", ["random", "evolution"])
def test_other_algorithms_respect_constraints(algorithm):
    cfg = SearchConfig(algorithm=algorithm, population=8, generations=3, seed=1,
                       max_params=150_000)
    res = run(cfg)
    assert len(res.history) > 8 and all(c["params"] <= 150_000 for c in res.front)
    if algorithm == "evolution":        # minimises perplexity under the constraint
        best = min((c for c in res.history if c["feasible"]), key=lambda c: c["perplexity"])
        assert best in res.front


def test_bad_settings_are_user_errors():
    for bad in ({"objective": "flops"}, {"algorithm": "bayes"}, {"population": 2},
                {"mutation_prob": 1.5}, {"max_ppl": -1.0}):
        with pytest.raises(UserError):
            SearchConfig(**bad)


# -- outputs and export ----------------------------------------------------------------------

def test_outputs_and_export(tmp_path, capsys):
    res = run(SearchConfig(population=10, generations=3, seed=0))
    paths = write_outputs(res, tmp_path, synthetic_table(), {"perplexity_source": "synthetic"})
    for p in paths.values():
        assert p.stat().st_size > 0
    front = json.loads((tmp_path / "front.json").read_text())
    assert [r["key"] for r in front["front"]] == [c["key"] for c in res.front]
    assert front["table_id"] == synthetic_table().id and front["hw"] == "synthetic"
    search = json.loads((tmp_path / "search.json").read_text())
    assert search["hypervolume"] == res.hypervolume and search["settings"]["seed"] == 0
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert len(history) == len(res.history) + 1
    assert any("EDP reduction at <= +1" in line for line in summary_lines(res))

    assert main(["export", "--front", str(tmp_path), "--pick", "best-ppl", "min-edp", "0",
                 "--out", str(tmp_path / "x")]) == 0
    files = sorted((tmp_path / "x").glob("*.yaml"))
    assert files and Arch.load(files[0]) in SPACE
    best = min(res.front, key=lambda c: c["perplexity"])
    assert Arch.load(tmp_path / "x" / f"{best['key']}.yaml").key == best["key"]
    capsys.readouterr()
    assert main(["export", "--front", str(tmp_path), "--pick", "nonsense"]) == 2
    assert "--pick nonsense" in capsys.readouterr().err
    assert main(["export", "--front", str(tmp_path / "missing")]) == 2
