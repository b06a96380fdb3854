"""Search fronts pinned: small searches of every algorithm, evaluator and kind (architecture only,
joint architecture x hardware with and without an area budget, one and two worker processes,
resumed from a state file) give exactly the fronts, hypervolumes and evaluation histories
recorded in golden/search_fronts.json by the search as it was before it was assembled from
parts (evaluators, executors, algorithm strategies). A refactoring of the search must leave
them unchanged; a change that means to change results rewrites the file on purpose:

    SEARCH_GOLDEN_WRITE=1 python -m pytest -q tests/test_search_pinned.py   (then review the diff)

Synthetic sources (doubles) are compared bit for bit; the real tiny supernet (through
`nas.pipeline.run_search`, what `nas search` runs) by keys exactly and floats to 1e-6, as torch
kernels may round differently on another CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from nas.search.config import SearchConfig

from doubles import SPACE, FakeJointCosts, NoisyWindows, SyntheticPerplexity, synthetic_table

GOLDEN = Path(__file__).parent / "golden" / "search_fronts.json"
WRITE = os.environ.get("SEARCH_GOLDEN_WRITE") == "1"

# name -> (SearchConfig settings, perplexity source, joint search, workers)
CASES = {
    "nsga2-exact": (dict(population=10, generations=4, seed=3), "synthetic", False, 1),
    "nsga2-exact-constrained": (dict(population=10, generations=4, seed=5, objective="latency",
                                     max_latency_ms=0.2, max_ppl=4.2), "synthetic", False, 1),
    "random-exact": (dict(algorithm="random", population=8, generations=3, seed=1,
                          max_params=150_000), "synthetic", False, 1),
    "evolution-exact": (dict(algorithm="evolution", population=8, generations=4, seed=1,
                             max_params=150_000), "synthetic", False, 1),
    "evolution-exact-max-ppl": (dict(algorithm="evolution", population=8, generations=4,
                                     seed=2, max_ppl=4.0), "synthetic", False, 1),
    "nsga2-racing": (dict(population=12, generations=5, seed=4), "windows", False, 1),
    "nsga2-racing-strict": (dict(population=10, generations=4, seed=6, racing_tolerance=0.0,
                                 racing_start=0.125, racing_z=1.5), "windows", False, 1),
    "random-racing": (dict(algorithm="random", population=12, generations=4, seed=4),
                      "windows", False, 1),
    "evolution-racing": (dict(algorithm="evolution", population=10, generations=4, seed=3,
                              max_params=300_000), "windows", False, 1),
    "joint-nsga2-exact": (dict(population=10, generations=4, seed=0), "synthetic", True, 1),
    "joint-nsga2-exact-area": (dict(population=10, generations=3, seed=1, max_area_mm2=2.0),
                               "synthetic", True, 1),
    "joint-evolution-exact-area": (dict(algorithm="evolution", population=8, generations=3,
                                        seed=2, max_area_mm2=2.0), "synthetic", True, 1),
    "joint-nsga2-racing-area": (dict(population=10, generations=3, seed=2, max_area_mm2=2.0),
                                "windows", True, 1),
    "nsga2-racing-workers2": (dict(population=8, generations=2, seed=1), "windows", False, 2),
}
RACING = {"windows": True, "synthetic": False}


def run_case(name: str, state: Path | None = None, generations: int | None = None,
             resume: bool = False):
    """The one place that builds a search (the search's constructor)."""
    from nas.search.build import build_search
    from nas.search.costs import FixedHardware
    settings, source, joint, workers = CASES[name]
    settings = {**settings, "racing": RACING[source]}
    if generations is not None:
        settings["generations"] = generations
    quality = NoisyWindows() if source == "windows" else SyntheticPerplexity()
    costs = FakeJointCosts() if joint else FixedHardware(synthetic_table())
    search = build_search(SearchConfig(**settings), SPACE, quality, costs, vocab=65, max_seq=32,
                          workers=workers, state_path=state)
    return search.run(resume=resume)


def _digest(rows) -> str:
    return hashlib.sha1(json.dumps(rows).encode()).hexdigest()


def summary(result) -> dict:
    """What is pinned of a search: its front (key, perplexity, objective, area), the
    hypervolume after every generation, its evaluation history (keys and generations; and all
    values) as digests, and the racing evaluator's window counts."""
    objective = result.config.objective
    history = result.history
    return {
        "front": [[c.key, c.perplexity, c.value(objective), c.area_mm2] for c in result.front],
        "hypervolume": result.hypervolume,
        "evaluations": len(history),
        "history_keys": _digest([[c.key, c.generation, c.eval_index] for c in history]),
        "history_values": _digest([[c.key, c.perplexity, c.latency_ms, c.energy_mj, c.edp,
                                    c.cycles, c.params, c.violation] for c in history]),
        "racing": result.racing,
    }


def check(name: str, got: dict, exact: bool = True) -> None:
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    if WRITE:
        golden[name] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {name} into {GOLDEN}")
    assert name in golden, f"{name} is not in {GOLDEN}"
    want = golden[name]
    if exact:
        assert got == want
        return
    assert [r[0] for r in got["front"]] == [r[0] for r in want["front"]]
    assert got["history_keys"] == want["history_keys"]
    for g, w in zip(got["front"], want["front"]):
        assert g[1:] == pytest.approx(w[1:], rel=1e-6)
    assert got["hypervolume"] == pytest.approx(want["hypervolume"], rel=1e-6)
    assert (got["racing"] is None) == (want["racing"] is None)


@pytest.mark.parametrize("name", sorted(CASES))
def test_search_front_is_pinned(name):
    check(name, summary(run_case(name)))


@pytest.mark.parametrize("name", ["nsga2-exact", "nsga2-racing", "joint-nsga2-exact-area",
                                  "evolution-exact"])
def test_resumed_search_front_is_pinned(name, tmp_path):
    """Two generations, then --resume to the case's full count: the uninterrupted front."""
    if WRITE:
        pytest.skip("the resumed runs compare with the uninterrupted ones' entries")
    state = tmp_path / "state.pkl"
    run_case(name, state=state, generations=2)
    check(name, summary(run_case(name, state=state, resume=True)))


@pytest.mark.parametrize("racing", [True, False])
def test_supernet_search_front_is_pinned(racing, tiny_supernet, tmp_path):
    """`nas search` on the tiny supernet, through the pipeline."""
    from nas.pipeline import SearchJob, run_search
    config = SearchConfig(population=6, generations=2, seed=1, racing=racing)
    outcome = run_search(SearchJob(ckpt=str(tiny_supernet), out=tmp_path / "search",
                                   config=config, max_tokens=256, threads=1, progress=False))
    check(f"supernet-nsga2-{'racing' if racing else 'exact'}", summary(outcome.result),
          exact=False)
