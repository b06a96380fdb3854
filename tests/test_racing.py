"""The racing evaluator (nas/search/racing.py) on a synthetic per-window quality, and
`nas search` (racing by default) on a barely trained tiny supernet."""

from __future__ import annotations

import json

import pytest

import nas.core.arch
from nas.cli import main
from nas.core.errors import UserError
from nas.search.config import SearchConfig
from nas.search.build import build_search
from nas.search.costs import FixedHardware
from nas.search.racing import estimate, levels, window_order

from doubles import SPACE, NoisyWindows, SyntheticPerplexity, synthetic_table


def run(config, quality, state=None, resume=False, workers=1):
    search = build_search(config, SPACE, quality, FixedHardware(synthetic_table()), vocab=65,
                          max_seq=32, workers=workers, state_path=state)
    return search.run(resume=resume)


def test_levels_order_and_estimate():
    assert levels(128, 0.125) == [16, 32, 64, 128]
    assert levels(100, 0.125) == [13, 26, 52, 100]
    assert levels(16, 0.05) == [2, 4, 8, 16] and levels(8, 1.0) == [8]
    order = window_order(50)
    assert sorted(order) == list(range(50)) and order == window_order(50) and order[:5] != [
        0, 1, 2, 3, 4]
    ref = [1.0, 2.0, 3.0, 4.0]
    # exact on every window; against a reference that moves with it, the error vanishes
    assert estimate([2.0, 3.0, 4.0, 5.0], [ref], 4) == (3.5, 0.0)
    loss, se = estimate([1.5, 2.5], [ref], 4)
    assert loss == pytest.approx(3.0) and se == pytest.approx(0.0)
    plain_loss, plain_se = estimate([1.5, 2.5], [], 4)
    assert plain_loss == pytest.approx(2.0) and plain_se > 0.3


@pytest.mark.parametrize("algorithm", ["random", "nsga2"])
def test_racing_front_is_exact_and_cheaper(algorithm):
    cfg = dict(population=12, generations=6, seed=4, algorithm=algorithm)
    exact_q, race_q = NoisyWindows(), NoisyWindows()
    exact = run(SearchConfig(**cfg, racing=False), exact_q)
    raced = run(SearchConfig(**cfg, racing=True, racing_tolerance=0.0), race_q)
    truth = {c.arch.key: p for c, p in zip(raced.front, NoisyWindows()([c.arch for c in
                                                                          raced.front]))}
    for c in raced.front:                 # front members are scored on every window
        assert c.perplexity == pytest.approx(truth[c.arch.key], rel=1e-12)
    if algorithm == "random":             # the same candidates: the same front
        assert [c.key for c in raced.history] == [c.key for c in exact.history]
        assert [c.key for c in raced.front] == [c.key for c in exact.front]
        assert raced.hypervolume[-1] == pytest.approx(exact.hypervolume[-1], rel=1e-9)
    stats = raced.racing
    assert stats["windows_scored"] == race_q.scored < exact_q.scored
    assert stats["share_of_exact"] < (0.7 if algorithm == "random" else 0.9)
    assert stats["fully_scored"] >= len(raced.front)
    assert exact.racing is None


def test_racing_tolerance_trades_windows_for_a_sliver_of_front():
    cfg = dict(population=12, generations=6, seed=4, algorithm="random", racing=True)
    strict = run(SearchConfig(**cfg, racing_tolerance=0.0), NoisyWindows())
    loose = run(SearchConfig(**cfg, racing_tolerance=0.01), NoisyWindows())
    assert loose.racing["windows_scored"] < strict.racing["windows_scored"]
    # its front members are exact; an exact front member it misses is within 1% (plus the
    # confidence interval) of one of them
    exact = {c.key: c.perplexity for c in strict.history}
    for c in loose.front:
        assert c.perplexity == pytest.approx(exact[c.key], rel=1e-12)
    missed = [c for c in strict.front if c.key not in {f.key for f in loose.front}]
    for c in missed:
        assert any(f.edp <= c.edp and f.perplexity <= c.perplexity * 1.02 for f in loose.front)
    assert loose.hypervolume[-1] == pytest.approx(strict.hypervolume[-1], rel=0.02)


def test_racing_resume_matches_an_uninterrupted_run(tmp_path):
    cfg = dict(population=10, seed=2, racing=True)
    whole = run(SearchConfig(generations=4, **cfg), NoisyWindows())
    state = tmp_path / "state.pkl"
    run(SearchConfig(generations=2, **cfg), NoisyWindows(), state=state)
    resumed = run(SearchConfig(generations=4, **cfg), NoisyWindows(), state=state, resume=True)
    assert resumed.hypervolume == whole.hypervolume
    assert [(c.key, c.perplexity) for c in resumed.history] == \
        [(c.key, c.perplexity) for c in whole.history]
    assert resumed.racing == whole.racing
    # the racing setting is part of what must match to resume
    with pytest.raises(UserError, match="config.racing"):
        run(SearchConfig(generations=5, population=10, seed=2, racing=False), NoisyWindows(),
            state=state, resume=True)


def test_racing_with_workers_matches_one_process():
    cfg = SearchConfig(population=8, generations=2, seed=1, racing=True)
    one = run(cfg, NoisyWindows())
    two = run(cfg, NoisyWindows(), workers=2)
    assert [(c.key, c.perplexity) for c in two.history] == \
        [(c.key, c.perplexity) for c in one.history]


def test_racing_refusals():
    with pytest.raises(UserError, match="scores windows separately"):
        run(SearchConfig(population=4, generations=0, racing=True), SyntheticPerplexity())
    with pytest.raises(UserError, match="--racing-start"):
        SearchConfig(racing_start=0)
    with pytest.raises(UserError, match="--racing-z"):
        SearchConfig(racing_z=-1)
    with pytest.raises(UserError, match="--racing-tolerance"):
        SearchConfig(racing_tolerance=-0.1)


def test_search_cli_racing(tiny_supernet, tmp_path, capsys):
    from supernet.perplexity import SupernetPerplexity
    sn = tiny_supernet
    out = tmp_path / "search"
    assert main(["search", "--ckpt", str(sn), "--out", str(out), "--population", "6",
                 "--generations", "2", "--max-tokens", "256", "--no-progress"]) == 0
    assert "validation windows scored" in capsys.readouterr().out
    doc = json.loads((out / "search.json").read_text())
    assert doc["settings"]["racing"] is True
    stats = doc["racing"]
    assert stats["windows_per_perplexity"] == 16 and stats["levels"] == [2, 4, 8, 16]
    assert stats["windows_scored"] <= stats["windows_exact"]
    # every front member's perplexity is the exact one on all the tokens
    front = json.loads((out / "front.json").read_text())["front"]
    exact = SupernetPerplexity(sn, max_tokens=256)(
        [nas.core.arch.Arch.from_dict(c["arch"]) for c in front])
    assert [c["perplexity"] for c in front] == pytest.approx(exact, rel=1e-6)

    # --no-racing: the exact evaluator
    out = tmp_path / "exact"
    assert main(["search", "--ckpt", str(sn), "--out", str(out), "--population", "6",
                 "--generations", "1", "--max-tokens", "256", "--no-racing",
                 "--no-progress"]) == 0
    doc = json.loads((out / "search.json").read_text())
    assert doc["settings"]["racing"] is False and doc["racing"] is None
