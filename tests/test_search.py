"""The DEAP search on a synthetic quality function and a synthetic cost table (test doubles: the
search must not care where perplexity and cost come from)."""

from __future__ import annotations

import json
import pickle
import random

import pytest

from nas.core.arch import Arch
from nas.cli import main
from nas.core.errors import UserError
from nas.search.config import SearchConfig
from nas.search.algorithms import STRATEGIES
from nas.search.build import build_search, make_evaluator
from nas.search.checkpoint import STATE_VERSION
from nas.search.config import ALGORITHMS
from nas.search.costs import FixedHardware
from nas.search.evaluators import ExactEvaluator
from nas.search.executors import InProcess, QualityJob, score
from nas.search.genome import GenomeCodec
from nas.search.candidate import lowest_within
from nas.search.outputs import (FILES, pick, read_front, summary_lines, table_source,
                                write_outputs)
from nas.search.pareto import Normaliser, hypervolume_2d, pareto_indices
from nas.search.quality import MemoQuality
from nas.search.selection import constrained_fronts

from doubles import (SPACE, FakeHWSpace, FakeJointCosts, NoisyWindows, SyntheticPerplexity,
                     synthetic_table)


def exact(**settings) -> SearchConfig:
    """Settings with the exact evaluator (the synthetic source has no windows to race)."""
    return SearchConfig(racing=False, **settings)


def run(config: SearchConfig, state=None, quality=None, resume=False, workers=1):
    search = build_search(config, SPACE, quality or SyntheticPerplexity(),
                          FixedHardware(synthetic_table()), vocab=65, max_seq=32,
                          workers=workers, state_path=state)
    return search.run(resume=resume)


def fingerprint(result):
    return ([c.key for c in result.history], [c.key for c in result.front],
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
    base = run(exact(population=10, generations=4, seed=3))
    limit = sorted(c.latency_ms for c in base.history)[len(base.history) // 3]
    res = run(exact(population=10, generations=4, seed=3, max_latency_ms=limit,
                           max_ppl=base.largest.perplexity * 2))
    assert res.front and all(c.feasible for c in res.front)
    assert all(c.latency_ms <= limit for c in res.front)
    # some infeasible candidate beats every front member in perplexity, yet stays out
    infeasible = [c for c in res.history if not c.feasible]
    assert infeasible and min(c.perplexity for c in infeasible) < \
        min(c.perplexity for c in res.front)


# -- the search ------------------------------------------------------------------------------

def test_same_seed_same_front_and_no_duplicate_evaluations():
    cfg = exact(population=10, generations=5, seed=7)
    q1 = SyntheticPerplexity()
    r1, r2 = run(cfg, quality=q1), run(cfg)
    assert fingerprint(r1) == fingerprint(r2)
    keys = [c.key for c in r1.history]
    assert len(keys) == len(set(keys)) == q1.calls          # each architecture evaluated once
    other = run(exact(population=10, generations=5, seed=8))
    assert fingerprint(other) != fingerprint(r1)
    # the archive's hypervolume never decreases; the anchors are in the history
    assert all(b >= a for a, b in zip(r1.hypervolume, r1.hypervolume[1:]))
    assert len(r1.hypervolume) == 6
    assert r1.largest.key == SPACE.largest().key and SPACE.smallest().key in keys


def test_nsga2_improves_on_its_initial_population():
    res = run(exact(population=12, generations=8, seed=0))
    assert res.hypervolume[-1] > res.hypervolume[0]


def test_resume_after_kill_gives_the_uninterrupted_front(tmp_path):
    cfg = exact(population=10, generations=6, seed=5)
    full = run(cfg, state=tmp_path / "a" / "state.pkl")
    with pytest.raises(KeyboardInterrupt):
        run(cfg, state=tmp_path / "b" / "state.pkl", quality=SyntheticPerplexity(fail_after=35))
    resumed = run(cfg, state=tmp_path / "b" / "state.pkl", resume=True)
    assert fingerprint(resumed) == fingerprint(full)
    # a different setting refuses to resume, naming the setting
    with pytest.raises(UserError, match="config.objective"):
        run(exact(population=10, generations=6, seed=5, objective="latency"),
            state=tmp_path / "b" / "state.pkl", resume=True)
    # a state of another format version is refused in one line
    old = tmp_path / "b" / "state.pkl"
    state = pickle.loads(old.read_bytes())
    old.write_bytes(pickle.dumps({**state, "version": STATE_VERSION - 1}))
    with pytest.raises(UserError, match="not a search state of this version"):
        run(cfg, state=old, resume=True)


def test_workers_give_identical_results():
    cfg = exact(population=8, generations=2, seed=2)
    assert fingerprint(run(cfg, workers=2)) == fingerprint(run(cfg))


@pytest.mark.parametrize("algorithm", ["random", "evolution"])
def test_other_algorithms_respect_constraints(algorithm):
    cfg = exact(algorithm=algorithm, population=8, generations=3, seed=1,
                       max_params=150_000)
    res = run(cfg)
    assert len(res.history) > 8 and all(c.params <= 150_000 for c in res.front)
    if algorithm == "evolution":        # minimises perplexity under the constraint
        best = min((c for c in res.history if c.feasible), key=lambda c: c.perplexity)
        assert best in res.front


def test_bad_settings_are_user_errors():
    for bad in ({"objective": "flops"}, {"algorithm": "bayes"}, {"population": 2},
                {"mutation_prob": 1.5}, {"max_ppl": -1.0}):
        with pytest.raises(UserError):
            SearchConfig(**bad)


# -- the parts -------------------------------------------------------------------------------

def test_one_default_evaluator_racing_unless_the_config_says_exact():
    from nas.search.racing import RacingEvaluator
    costs, windows = FixedHardware(synthetic_table()), NoisyWindows()
    assert SearchConfig().racing is True            # the default of every entry point
    racing = make_evaluator(SearchConfig(), windows, costs, InProcess(windows))
    assert isinstance(racing, RacingEvaluator) and racing.total == windows.windows
    plain = SyntheticPerplexity()
    assert isinstance(make_evaluator(exact(), plain, costs, InProcess(plain)), ExactEvaluator)
    with pytest.raises(UserError, match="--no-racing"):      # a source without windows
        make_evaluator(SearchConfig(), plain, costs, InProcess(plain))


def test_every_algorithm_name_has_a_strategy():
    assert tuple(STRATEGIES) == ALGORITHMS


class _Recorder:
    """An executor of 3 workers that runs jobs here and records them."""

    workers = 3

    def __init__(self):
        self.jobs = []

    def map(self, jobs):
        self.jobs += jobs
        return [[a.key for a in job.archs] for job in reversed(jobs)][::-1]

    def close(self):
        pass


def test_score_splits_architectures_into_one_job_per_worker_in_order():
    archs = [SPACE.sample(random.Random(i)) for i in range(7)]
    rec = _Recorder()
    assert score(rec, archs) == [a.key for a in archs]
    assert [len(j.archs) for j in rec.jobs] == [2, 2, 3] and rec.jobs[0].windows is None
    assert score(rec, archs[:1], [4, 5]) == [archs[0].key] and rec.jobs[-1].windows == [4, 5]
    windows = NoisyWindows()
    assert QualityJob(archs[:2], [0, 3])(windows) == windows.window_losses(archs[:2], [0, 3])


# -- outputs and export ----------------------------------------------------------------------

def test_outputs_read_back_as_the_same_candidates(tmp_path):
    res = run(exact(population=10, generations=3, seed=0))
    paths = write_outputs(res, tmp_path, table_source(synthetic_table()),
                          {"perplexity_source": "synthetic"})
    assert sorted(p.name for p in paths.values()) == sorted(FILES)
    doc = read_front(tmp_path)
    assert doc.front == res.front and doc.largest == res.largest      # typed, exact round trip
    assert doc.history() == res.history                                 # through the CSV too
    assert doc.table_id == synthetic_table().id and doc.hw == "synthetic"
    search = json.loads((tmp_path / "search.json").read_text())
    assert search["hypervolume"] == res.hypervolume and search["settings"]["seed"] == 0
    edp = [r for r in search["reductions_vs_largest"] if r["delta"] == 1.0][0]
    best = lowest_within([c for c in res.history if c.feasible], res.largest.perplexity + 1.0)
    assert edp["key"] == best.key and edp["reduction"] == res.largest.edp / best.edp
    assert any(f"EDP reduction at <= +1 perplexity: {edp['reduction']:.2f}x" in line
               for line in summary_lines(res))


def test_picks_follow_their_rules():
    res = run(exact(population=10, generations=3, seed=0))
    front, largest = res.front, res.largest
    by_ppl = sorted(front, key=lambda c: c.perplexity)
    assert pick(front, largest, "best-ppl") == [by_ppl[0]]
    assert pick(front, largest, "min-edp") == [min(front, key=lambda c: c.edp)]
    assert pick(front, largest, "all") == by_ppl and pick(front, largest, "1") == [by_ppl[1]]
    within = [c for c in front if c.perplexity <= largest.perplexity + 0.1]
    if within:
        assert pick(front, largest, "+0.1") == [min(within, key=lambda c: c.edp)]
    # with another objective, +X takes the lowest value of that objective
    lat = pick(front, largest, f"ppl<={by_ppl[-1].perplexity}", objective="latency")
    assert lat == [min(front, key=lambda c: c.latency_ms)]
    for bad, message in (("+x", "expected a number after '\\+'"), ("99", "indices 0.."),
                         ("ppl<=0.5", "no front architecture"), ("nonsense", "not 'all'")):
        with pytest.raises(UserError, match=message):
            pick(front, largest, bad)


def test_export_writes_picks_and_leaves_nothing_when_a_pick_fails(tmp_path, capsys):
    res = run(exact(population=10, generations=3, seed=0))
    write_outputs(res, tmp_path, table_source(synthetic_table()), {})
    assert main(["export", "--front", str(tmp_path), "--pick", "best-ppl", "min-edp", "0",
                 "--out", str(tmp_path / "x")]) == 0
    files = sorted((tmp_path / "x").glob("*.yaml"))
    best = min(res.front, key=lambda c: c.perplexity)
    assert len(files) == 2 and all(Arch.load(f) in SPACE for f in files)
    assert Arch.load(tmp_path / "x" / f"{best.key}.yaml") == best.arch
    assert (tmp_path / "x" / "pareto.png").is_file()
    capsys.readouterr()
    assert main(["export", "--front", str(tmp_path), "--pick", "best-ppl", "nonsense",
                 "--out", str(tmp_path / "y")]) == 2
    assert "--pick nonsense" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()                   # no empty or partial folder
    assert main(["export", "--front", str(tmp_path / "missing")]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "front.json").write_text("{}")
    assert main(["export", "--front", str(tmp_path / "bad")]) == 2
    assert "not a front.json" in capsys.readouterr().err


def test_an_empty_front_says_which_constraint_emptied_it():
    res = run(exact(population=6, generations=1, seed=0, max_ppl=1.0))
    assert res.front == []
    lines = "\n".join(summary_lines(res))
    assert "the front is empty" in lines and "--max-ppl 1 (perplexity" in lines


def test_pareto_plot_labels_the_objective_and_marks_picks_and_infeasible(tmp_path, monkeypatch):
    import nas.search.pareto as pareto_mod
    drawn = {}
    monkeypatch.setattr(pareto_mod, "save_figure", lambda fig, path, dpi: drawn.update(fig=fig))
    base = run(exact(population=10, generations=2, seed=0))
    res = run(exact(population=10, generations=2, seed=0, objective="latency",
                           max_ppl=sorted(c.perplexity for c in base.history)[10]))
    write_outputs(res, tmp_path, table_source(synthetic_table()), {})
    ax = drawn["fig"].axes[0]
    assert ax.get_ylabel() == "latency (ms)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith("infeasible") for lab in labels)
    assert "exported picks" in labels and any(lab.startswith("feasible") for lab in labels)
    assert {t.get_text() for t in ax.texts} >= {"best-ppl", "min-latency"}


# -- joint architecture x hardware search (synthetic hardware space) --------------------------

def run_joint(config, state=None, quality=None, resume=False):
    search = build_search(config, SPACE, quality or SyntheticPerplexity(), FakeJointCosts(),
                          vocab=65, max_seq=32, state_path=state)
    return search.run(resume=resume)


def test_joint_search_varies_hardware_and_measures_each_architecture_once(tmp_path):
    quality = SyntheticPerplexity()
    res = run_joint(exact(population=10, generations=4, seed=0), quality=quality)
    assert len({c.hardware.hash for c in res.history}) > 1
    assert all("@" in c.key for c in res.history)
    assert quality.calls == len({c.arch.key for c in res.history})   # perplexity per arch
    assert res.largest.hardware.hash == "r16s256"                     # the anchors' point
    # same seed, same front; a kill and --resume continue to the same front
    full = run_joint(exact(population=10, generations=4, seed=0),
                     state=tmp_path / "a.pkl")
    assert fingerprint(full) == fingerprint(res)
    with pytest.raises(KeyboardInterrupt):
        run_joint(exact(population=10, generations=4, seed=0), state=tmp_path / "b.pkl",
                  quality=SyntheticPerplexity(fail_after=25))
    resumed = run_joint(exact(population=10, generations=4, seed=0),
                        state=tmp_path / "b.pkl", resume=True)
    assert fingerprint(resumed) == fingerprint(full)


def test_joint_search_area_constraint_and_outputs(tmp_path, capsys):
    res = run_joint(exact(population=10, generations=3, seed=1, max_area_mm2=2.0))
    assert res.front and all(c.area_mm2 <= 2.0 for c in res.front)
    # hardware over budget is stepped down before it is evaluated: only the anchors, on the
    # anchor point (3.58 mm2), are over it, and they are off the front
    over = {c.key for c in res.history if c.area_mm2 > 2.0}
    assert over == {res.largest.key, res.smallest.key}
    assert len({c.hardware.hash for c in res.history}) > 2
    source = {"ids": {"hw_space": "fake", "table_id": "t"}, "table": "synthetic",
              "workload": {}, "hw_space": FakeHWSpace().to_dict()}
    write_outputs(res, tmp_path, source, {})
    doc = read_front(tmp_path)
    assert doc.front == res.front and doc.history() == res.history
    assert main(["export", "--front", str(tmp_path), "--pick", "best-ppl",
                 "--out", str(tmp_path / "x")]) == 0
    best = min(res.front, key=lambda c: c.perplexity)
    import yaml
    hw_file = yaml.safe_load((tmp_path / "x" / f"hw-{best.hardware.hash}.yaml").read_text())
    assert hw_file["base"] == "gemmini" and hw_file["rows"] == dict(best.hardware.fields)["rows"]
    assert Arch.load(tmp_path / "x" / f"{best.arch.key}.yaml") == best.arch


def test_memo_quality_measures_each_architecture_once_across_searches():
    inner = SyntheticPerplexity()
    memo = MemoQuality(inner)
    first = run(exact(population=8, generations=2, seed=0), quality=memo)
    second = run(exact(population=8, generations=2, seed=1), quality=memo)
    keys = {c.key for c in first.history} | {c.key for c in second.history}
    assert inner.calls == len(keys)                    # each architecture measured once
    assert memo([first.largest.arch]) == [first.largest.perplexity] and inner.calls == len(keys)


def test_joint_search_scales_mutation_to_its_genome():
    search = build_search(exact(population=10, generations=1, seed=0), SPACE,
                          SyntheticPerplexity(), FakeJointCosts(), vocab=65, max_seq=32)
    genes = len(search.codec.choices)
    assert genes == search.codec.arch_genes + 2
    assert search.variation.mutation_prob == pytest.approx(0.2 * search.codec.arch_genes / genes)
    plain = build_search(exact(), SPACE, SyntheticPerplexity(), FixedHardware(synthetic_table()))
    assert plain.variation.mutation_prob == 0.2         # an architecture genome: as configured
