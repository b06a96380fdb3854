"""`nas search` end to end on a real (barely trained) tiny supernet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nas.core.arch

from lut.table import CostTable
from nas.cli import main


@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
    pytest.importorskip("torch")
    from supernet.config import TrainConfig
    from supernet.train import train
    root = tmp_path_factory.mktemp("supernet")
    corpus = root / "corpus.txt"               # small local text: loads in milliseconds
    corpus.write_text(Path(nas.core.arch.__file__).read_text() * 2)
    out = root / "run"
    train(TrainConfig(out=str(out), space="tiny", dataset=str(corpus), steps=2, batch_size=2,
                      block_size=16, eval_interval=2, eval_tokens=256, eval_random=0,
                      warmup=1, progress=False))
    return out


@pytest.mark.figures
def test_search_resume_and_refusals(supernet, tmp_path, capsys, drawn):
    out = tmp_path / "search"
    common = ["search", "--ckpt", str(supernet), "--out", str(out), "--population", "4",
              "--max-tokens", "256", "--seed", "3"]
    assert main(common + ["--generations", "1"]) == 0
    printed = capsys.readouterr().out
    assert "EDP reduction at <= +1 perplexity" in printed
    for name in ("front.csv", "front.json", "history.csv", "search.json", "pareto.png",
                 "state.pkl", "lut.parquet"):
        assert (out / name).is_file(), name
    drawn(out / "pareto.png", (910, 624))                   # 7 x 4.8 in at 130 dpi
    first = json.loads((out / "search.json").read_text())
    assert first["generations_done"] == 1 and len(first["hypervolume"]) == 2

    # running again into the same directory needs --resume; --resume extends the search
    assert main(common + ["--generations", "2"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(common + ["--generations", "2", "--resume"]) == 0
    second = json.loads((out / "search.json").read_text())
    assert second["hypervolume"][:2] == first["hypervolume"]
    assert second["generations_done"] == 2 and second["evaluations"] >= first["evaluations"]

    # perplexities are deterministic: a fresh run with the table built above agrees
    other = tmp_path / "again"
    assert main(["search", "--ckpt", str(supernet), "--out", str(other), "--population", "4",
                 "--max-tokens", "256", "--seed", "3", "--generations", "1",
                 "--lut", str(out / "lut.parquet"), "--hw", "gemmini-transformer"]) == 0
    again = json.loads((other / "front.json").read_text())
    again_search = json.loads((other / "search.json").read_text())
    assert again_search["hypervolume"] == first["hypervolume"]
    assert again["largest"] == json.loads((out / "front.json").read_text())["largest"]
    capsys.readouterr()

    # a table for another space or hardware is refused, naming what differs
    survey = tmp_path / "survey.parquet"
    assert main(["build-lut", "--space", "survey", "--seq", "16", "--out", str(survey)]) == 0
    capsys.readouterr()
    assert main(["search", "--ckpt", str(supernet), "--out", str(tmp_path / "x"),
                 "--lut", str(survey)]) == 2
    assert "search space 'survey', not 'tiny'" in capsys.readouterr().err
    assert main(["search", "--ckpt", str(supernet), "--out", str(tmp_path / "x"),
                 "--lut", str(out / "lut.parquet"), "--hw", "gemmini"]) == 2
    assert "not 'gemmini'" in capsys.readouterr().err
    # an encoder table with another context, vocabulary and sparsity: refused, all named
    odd = tmp_path / "odd.parquet"
    assert main(["build-lut", "--mode", "encoder", "--seq", "999", "--vocab", "7",
                 "--sparsity", "0.5", "--out", str(odd)]) == 0
    capsys.readouterr()
    assert main(["search", "--ckpt", str(supernet), "--out", str(tmp_path / "x"),
                 "--lut", str(odd)]) == 2
    err = capsys.readouterr().err
    for part in ("mode=encoder (expected decoder)", "seq=999 (expected 16)", "vocab=7",
                 "attention sparsity 0.5"):
        assert part in err, part
    assert not (tmp_path / "x").exists()
    # without --hw the table's hardware is used, and the output says so
    assert main(["search", "--ckpt", str(supernet), "--out", str(tmp_path / "own-hw"),
                 "--population", "4", "--generations", "0", "--max-tokens", "256",
                 "--lut", str(out / "lut.parquet")]) == 0
    assert "hardware: 'gemmini-transformer', the table's" in capsys.readouterr().out
    # --resume with nothing to resume: an error, and no table or folder left behind
    assert main(["search", "--ckpt", str(supernet), "--out", str(tmp_path / "fresh"),
                 "--resume"]) == 2
    assert "no search state" in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()
    table = CostTable.load(out / "lut.parquet")
    assert table.workload.seq == 16 and table.workload.mode == "decoder"


def test_search_bad_input(tmp_path, capsys):
    assert main(["search", "--ckpt", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["search", "--ckpt", "x", "--out", str(tmp_path), "--population", "1"]) == 2
    assert "--population" in capsys.readouterr().err


def test_quickstart_runs_every_stage_then_skips_them(tmp_path, capsys):
    pytest.importorskip("torch")
    args = ["quickstart", "--out", str(tmp_path), "--steps", "2", "--population", "4",
            "--generations", "1", "--max-tokens", "256"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "[4/4]" in first and "reduced" in first
    # the search's default evaluator, as `nas search`'s: racing
    assert "validation windows scored" in first
    assert json.loads((tmp_path / "search" / "search.json").read_text())["racing"]
    for path in ("supernet/best.pt", "lut.parquet", "search/front.csv", "search/front.json",
                 "search/pareto.png"):
        assert (tmp_path / path).is_file(), path
    exported = sorted((tmp_path / "search" / "export").glob("*.yaml"))
    assert exported
    assert main(args) == 0                  # second run: nothing redone
    second = capsys.readouterr().out
    assert "lookup table: exists" in second and "search: done" in second
    assert "export: exists" in second
    assert sorted((tmp_path / "search" / "export").glob("*.yaml")) == exported
    # more steps: the supernet continues with its own settings (eval interval, seed ...)
    more = [a if a != "2" else "4" for a in args]
    assert main(more) == 0
    third = capsys.readouterr().out
    assert "resuming" in third
    from supernet.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "supernet", "last")["step"] == 4
    # ... and the stages after it run again on the new supernet (issue 21: the front kept
    # perplexities of the old one): the front's largest subnet is the new checkpoint's
    best = load_checkpoint(tmp_path / "supernet", "best")["step"]
    assert best == 4 and "lookup table: exists" in third
    assert "supernet_step 2 -> 4): searching anew" in third and "[4/4] export: best" in third
    from supernet.evaluate import SupernetEvaluator
    front = json.loads((tmp_path / "search" / "front.json").read_text())
    ev = SupernetEvaluator(tmp_path / "supernet", max_tokens=256)
    assert front["largest"]["perplexity"] == pytest.approx(ev.perplexity([ev.space.largest()])[0])
    # more generations continue the search; another population starts it anew
    assert main([*more[:-3], "2", *more[-2:]]) == 0
    assert "search: done" not in capsys.readouterr().out
    assert json.loads((tmp_path / "search" / "search.json").read_text())["generations_done"] == 2
    assert main([*more[:-5], "6", *more[-4:]]) == 0
    assert "population 4 -> 6): searching anew" in capsys.readouterr().out
    settings = json.loads((tmp_path / "search" / "search.json").read_text())["settings"]
    assert settings["population"] == 6 and settings["generations"] == 1


@pytest.mark.figures
def test_joint_search_end_to_end(supernet, tmp_path, capsys, drawn):
    common = ["search", "--ckpt", str(supernet), "--hw-space", "edge-hw", "--hw-search", "joint",
              "--population", "6", "--max-tokens", "256", "--seed", "1", "--max-area-mm2", "2",
              "--no-progress"]
    out = tmp_path / "joint"
    assert main(common + ["--generations", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hardware space 'edge-hw'" in printed and "lookup tables:" in printed
    drawn(out / "pareto.png", (910, 624))       # 7 x 4.8 in at 130 dpi, with the area colour bar
    front = json.loads((out / "front.json").read_text())
    assert front["front"] and all(r["area_mm2"] <= 2 and "@" in r["key"] and "hw.rows" in r
                                  for r in front["front"])
    tables = sorted((out / "luts").glob("*.parquet"))
    assert {t.stem for t in tables} >= {r["hw_hash"] for r in front["front"]}
    # resume to 2 generations = a fresh 2-generation run (and the tables are reused)
    assert main(common + ["--generations", "2", "--out", str(out), "--resume"]) == 0
    fresh = tmp_path / "fresh"
    assert main(common + ["--generations", "2", "--out", str(fresh)]) == 0
    capsys.readouterr()
    assert json.loads((out / "search.json").read_text())["hypervolume"] == \
        json.loads((fresh / "search.json").read_text())["hypervolume"]
    # export: architecture + hardware YAML; the hardware file rebuilds the same accelerator
    assert main(["export", "--front", str(out), "--pick", "best-ppl", "--out",
                 str(tmp_path / "x")]) == 0
    capsys.readouterr()
    front = json.loads((out / "front.json").read_text())          # after the resume
    best = min(front["front"], key=lambda r: r["perplexity"])
    hw_file = tmp_path / "x" / f"hw-{best['hw_hash']}.yaml"
    from costmodel.hardware import load_hardware
    assert load_hardware(hw_file).hash() == best["hw_hash"]
    assert main(["simulate", "--model", str(tmp_path / "x" / f"{best['key'].split('@')[0]}.yaml"),
                 "--hw", str(hw_file), "--seq", "16"]) == 0
    # --hw-space with --lut or --hw is refused
    assert main(common + ["--out", str(tmp_path / "y"), "--hw", "gemmini"]) == 2
    assert "--hw-space" in capsys.readouterr().err
    # an area budget no point of the space fits: one error before anything is written
    assert main(common + ["--out", str(tmp_path / "z"), "--max-area-mm2", "0.1"]) == 2
    assert "no point fits in 0.1 mm2" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
