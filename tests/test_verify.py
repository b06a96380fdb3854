"""`nas verify` end to end on a barely trained tiny supernet and a small search."""

from __future__ import annotations

import csv
import json

import pytest

from nas.cli import main
from nas.core.arch import Arch
from nas.search.candidate import Candidate
from nas.verify import kendall_tau, spread_picks


@pytest.fixture(scope="module")
def search(tiny_supernet, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "search"
    assert main(["search", "--ckpt", str(tiny_supernet), "--out", str(out), "--population", "6",
                 "--generations", "1", "--max-tokens", "256", "--no-progress"]) == 0
    return out


@pytest.mark.figures
def test_verify_trains_picks_and_reuses_runs(search, capsys, drawn):
    capsys.readouterr()
    assert main(["verify", "--front", str(search), "--top", "2", "--steps", "2",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Kendall tau" in printed and "trained" in printed
    out = search / "verify"
    for name in ("verified.csv", "verified.json", "verified.png"):
        assert (out / name).is_file(), name
    drawn(out / "verified.png", (1320, 540))               # 11 x 4.5 in at 120 dpi
    with (out / "verified.csv").open() as f:
        rows = list(csv.DictReader(f))
    front = json.loads((search / "front.json").read_text())
    largest = front["largest"]["key"]
    keys = [r["key"] for r in rows]
    assert largest in keys and len(rows) == len(set(keys))
    others = [c for c in front["front"] if c["key"] != largest]
    assert sum(r["role"] == "pick" for r in rows) == min(2, len(others))
    assert [r["role"] for r in rows].count("largest") == 1
    for r in rows:
        assert (out / r["key"] / "best.pt").is_file()
        assert float(r["standalone_ppl"]) > 1 and float(r["inherited_ppl"]) > 1
        # the inherited value is the search's
        match = [c for c in front["front"] + [front["largest"]] if c["key"] == r["key"]]
        assert float(r["inherited_ppl"]) == pytest.approx(match[0]["perplexity"])
        # each run is the architecture alone, trained for the steps asked
        cfg = json.loads((out / r["key"] / "config.json").read_text())
        assert cfg["arch"] == r["key"] and cfg["steps"] == 2
    summary = json.loads((out / "verified.json").read_text())
    assert summary["steps"] == 2 and "kendall_tau" in summary
    assert set(summary["picks_leaving_front"]) <= set(keys)
    first = (out / "verified.csv").read_text()

    # a second call reuses every finished run and writes the same table
    assert main(["verify", "--front", str(search), "--top", "2", "--steps", "2",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "reused (2 steps)" in printed and "trained\n" not in printed
    assert (out / "verified.csv").read_text() == first

    # more steps resume the runs from where they stopped, in parallel workers
    assert main(["verify", "--front", str(search), "--top", "2", "--steps", "3",
                 "--workers", "2", "--no-progress"]) == 0
    assert "resumed from step 2" in capsys.readouterr().out
    cfg = json.loads((out / keys[0] / "config.json").read_text())
    assert cfg["steps"] == 3


def test_verify_errors(search, tmp_path, capsys):
    assert main(["verify", "--front", str(tmp_path / "missing")]) == 2
    assert "no front.json" in capsys.readouterr().err
    assert main(["verify", "--front", str(search), "--top", "0"]) == 2
    assert "--top must be >= 1" in capsys.readouterr().err
    # a front without the search's record of its supernet
    other = tmp_path / "copy"
    other.mkdir()
    (other / "front.json").write_text((search / "front.json").read_text())
    assert main(["verify", "--front", str(other)]) == 2
    assert "names no supernet checkpoint" in capsys.readouterr().err


def _cand(ppl: float) -> Candidate:
    return Candidate(Arch.uniform(1, 64, 2, 128), ppl, 1.0, 1.0, 1.0, 1.0, 1)


def test_spread_picks_and_tau():
    front = [_cand(p) for p in (5.0, 1.0, 3.0, 2.0, 4.0)]
    assert [c.perplexity for c in spread_picks(front, 3)] == [1.0, 3.0, 5.0]
    assert [c.perplexity for c in spread_picks(front, 1)] == [1.0]
    assert len(spread_picks(front, 9)) == 5
    assert kendall_tau([1, 2, 3], [2, 4, 9]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1.0], [2.0]) is None
