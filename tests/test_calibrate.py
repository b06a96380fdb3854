"""Calibration of a supernet's loss to trained-alone loss (nas.core.calibration, nas.calibrate,
nas.search.quality.CalibratedQuality) and `nas calibrate` end to end on a barely trained tiny
supernet, with what it changes in `nas eval`, `nas search`, `nas export` and `nas verify`."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest

from nas.calibrate import MODELS, fit_calibration, loo_mae, pick_anchors
from nas.core.arch import Arch
from nas.core.calibration import (CALIBRATION_FILE, Anchor, Calibration, load_calibration,
                                  save_calibration)
from nas.core.errors import UserError
from nas.search.build import build_search
from nas.search.config import SearchConfig
from nas.search.costs import FixedHardware
from nas.search.outputs import read_front
from nas.search.quality import CalibratedQuality

from doubles import SPACE, NoisyWindows, synthetic_table

OFFSETS = {64: -0.05, 96: 0.04, 128: 0.09}


def grid() -> list[Arch]:
    """Every uniform architecture of the tiny space (a pool with each d's largest and
    smallest)."""
    return [Arch.uniform(n, d, h, f, SPACE.head_dim) for n in SPACE.layers for d in SPACE.d
            for h in SPACE.heads for f in SPACE.ffn]


def anchors_of(archs, truth) -> list[Anchor]:
    """Anchors whose standalone loss is `truth(arch, inherited)`, the inherited loss made up."""
    out = []
    for a in archs:
        inherited = 2.0 + 30.0 / math.sqrt(a.params()) + 0.001 * a.layers
        out.append(Anchor(a.key, inherited, truth(a, inherited)))
    return out


def test_pick_anchors_largest_of_each_width_then_spread_by_parameters():
    pool = grid()
    assert pick_anchors(pool) == [Arch.uniform(4, d, 4, 512, 32) for d in (128, 96, 64)]
    six = pick_anchors(pool, 6)
    for d in SPACE.d:                         # two per d: its largest and its smallest
        mine = sorted((a for a in pool if a.d == d), key=Arch.params)
        assert [a for a in six if a.d == d] == [mine[-1], mine[0]]
    four = pick_anchors(pool, 4)              # the extra anchor goes to the widest d
    assert [a.d for a in four] == [128, 128, 96, 64]
    with pytest.raises(UserError, match="at least one per embedding width"):
        pick_anchors(pool, 2)


def test_offset_per_width_from_one_anchor_each():
    anchors = anchors_of(pick_anchors(grid()), lambda a, inh: inh + OFFSETS[a.d])
    cal = fit_calibration(anchors, SPACE.d)
    assert cal.model == "offset" and cal.slopes == {} and cal.params_coef == 0.0
    assert cal.offsets == pytest.approx(OFFSETS, abs=1e-12)
    assert all(v is None for v in cal.loo_mae.values())     # one per d: nothing to compare
    other = Arch.uniform(2, 96, 2, 128, 32)
    assert cal.loss(other, 2.3) == pytest.approx(2.3 + OFFSETS[96])
    assert cal.raw_loss(other, cal.loss(other, 2.3)) == pytest.approx(2.3)
    assert cal.perplexity(other, 10.0) == pytest.approx(10.0 * math.exp(OFFSETS[96]))
    with pytest.raises(UserError, match=r"no anchor of width d = \[64\]"):
        fit_calibration([a for a in anchors if a.arch.d != 64], SPACE.d)


@pytest.mark.parametrize("truth, model", [
    (lambda a, inh: 0.8 * inh + OFFSETS[a.d], "offset+slope"),
    (lambda a, inh: inh + OFFSETS[a.d] - 0.03 * math.log(a.params()), "offset+params"),
    (lambda a, inh: {64: 0.7, 96: 0.9, 128: 1.1}[a.d] * inh + OFFSETS[a.d], "affine per d"),
    (lambda a, inh: inh + OFFSETS[a.d], "offset"),
])
def test_more_anchors_choose_the_correction_by_leave_one_out_error(truth, model):
    anchors = anchors_of(pick_anchors(grid(), 9), truth)
    cal = fit_calibration(anchors, SPACE.d)
    assert cal.model == model
    assert cal.loo_mae[model] == pytest.approx(0.0, abs=1e-9)
    assert all(e is not None and e >= cal.loo_mae[model] for e in cal.loo_mae.values())
    held_out = Arch.uniform(3, 128, 3, 256, 32)
    inh = anchors_of([held_out], truth)[0]
    assert cal.loss(held_out, inh.inherited_loss) == pytest.approx(inh.standalone_loss)
    # the leave-one-out error is the error on each anchor of a fit without it
    by_hand = []
    for i, a in enumerate(anchors):
        fit = next(m for m in MODELS if m.name == "offset").fit(
            anchors[:i] + anchors[i + 1:], SPACE.d)
        by_hand.append(abs(fit.loss(a.arch, a.inherited_loss) - a.standalone_loss))
    assert loo_mae(MODELS[0], anchors, SPACE.d) == pytest.approx(sum(by_hand) / len(by_hand))


def test_calibration_file_round_trip_and_step(tmp_path):
    anchors = anchors_of(pick_anchors(grid(), 6), lambda a, inh: 0.9 * inh + OFFSETS[a.d])
    cal = fit_calibration(anchors, SPACE.d)
    # two anchors per d: a slope per d can not be checked by leaving one out
    assert cal.model == "offset+slope" and cal.loo_mae["affine per d"] is None
    cal = Calibration(**{**cal.__dict__, "step": 40, "checkpoint": str(tmp_path / "best.pt")})
    save_calibration(cal, tmp_path / "best.pt")
    assert (tmp_path / CALIBRATION_FILE).is_file()
    back, note = load_calibration(tmp_path / "best.pt", 40)
    assert back == cal and note == ""
    stale, note = load_calibration(tmp_path, 80)           # another checkpoint of the run
    assert stale is None and "fitted at step 40" in note and "step 80" in note
    (tmp_path / "other").mkdir()                            # an uncalibrated run
    assert load_calibration(tmp_path / "other", 40) == (None, "")
    (tmp_path / CALIBRATION_FILE).write_text("{")
    with pytest.raises(UserError, match="not a calibration"):
        load_calibration(tmp_path, 40)


def test_calibrated_source_races_like_the_raw_one():
    """A per-width offset moves every window of an architecture alike: the racing search on the
    calibrated source scores the same candidates, its front perplexities are the calibrated
    exact ones, and each candidate's raw perplexity is the raw source's."""
    cal = Calibration(model="offset", offsets=OFFSETS)
    calibrated = CalibratedQuality(NoisyWindows(), cal)
    losses = calibrated.window_losses([SPACE.largest()], range(5))[0]
    raw = NoisyWindows().window_losses([SPACE.largest()], range(5))[0]
    assert losses == pytest.approx([v + OFFSETS[128] for v in raw])
    config = SearchConfig(population=10, generations=4, seed=3, racing_tolerance=0.0)
    search = build_search(config, SPACE, calibrated, FixedHardware(synthetic_table()),
                          vocab=65, max_seq=32)
    result = search.run()
    exact = {c.arch.key: p for c, p in zip(result.front, calibrated([c.arch for c in
                                                                       result.front]))}
    for c in result.front:
        assert c.perplexity == pytest.approx(exact[c.arch.key], rel=1e-12)
        with_raw = calibrated.with_raw(c)
        assert with_raw.ppl_raw == pytest.approx(NoisyWindows()([c.arch])[0], rel=1e-9)
        assert with_raw.calibrated_perplexity == c.perplexity
        assert with_raw.raw_perplexity == with_raw.ppl_raw
        row = with_raw.to_row()
        assert row["ppl_raw"] == with_raw.ppl_raw and "ppl_raw" not in c.to_row()
        assert type(c).from_row(row) == with_raw
    assert calibrated.describe()["calibration"]["offsets"] == {"64": -0.05, "96": 0.04,
                                                             "128": 0.09}


# -- end to end ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def calibrated_run(tiny_supernet, tmp_path_factory):
    """A copy of the tiny supernet (the shared one stays uncalibrated), calibrated."""
    from nas.cli import main
    run = tmp_path_factory.mktemp("calibrate") / "supernet"
    shutil.copytree(tiny_supernet, run)
    assert main(["calibrate", "--ckpt", str(run), "--max-tokens", "256", "--no-progress"]) == 0
    return run


def test_calibrate_trains_one_anchor_per_width_and_reuses_them(calibrated_run, capsys):
    from nas.cli import main
    doc = json.loads((calibrated_run / CALIBRATION_FILE).read_text())
    keys = [a["key"] for a in doc["anchors"]]
    assert sorted(Arch.from_key(k).d for k in keys) == [64, 96, 128]
    assert doc["model"] == "offset" and 0 < doc["tokens"] <= 256
    for a in doc["anchors"]:                   # trained alone with the supernet's recipe
        cfg = json.loads((calibrated_run / "calibration" / a["key"] / "config.json").read_text())
        assert cfg["arch"] == a["key"] and cfg["steps"] == 3 and cfg["seed"] == 1337
        assert doc["offsets"][str(Arch.from_key(a["key"]).d)] == pytest.approx(
            a["standalone_loss"] - a["inherited_loss"])
    capsys.readouterr()
    assert main(["calibrate", "--ckpt", str(calibrated_run), "--max-tokens", "256",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("reused (3 steps)") == 3 and "calibrated (offset" in out
    assert json.loads((calibrated_run / CALIBRATION_FILE).read_text())["offsets"] == \
        doc["offsets"]


def test_eval_reports_calibrated_and_raw(calibrated_run, tiny_supernet, capsys):
    from nas.cli import main
    cal = json.loads((calibrated_run / CALIBRATION_FILE).read_text())
    assert main(["eval", "--ckpt", str(calibrated_run), "--largest", "--max-tokens", "256",
                 "--json", "--no-progress"]) == 0
    (r,) = json.loads(capsys.readouterr().out)["results"]
    assert r["loss"] == pytest.approx(r["loss_raw"] + cal["offsets"]["128"])
    assert r["ppl_raw"] == pytest.approx(math.exp(r["loss_raw"]))
    assert main(["eval", "--ckpt", str(tiny_supernet), "--largest", "--max-tokens", "256",
                 "--json", "--no-progress"]) == 0
    (plain,) = json.loads(capsys.readouterr().out)["results"]
    assert "loss_raw" not in plain and plain["loss"] == pytest.approx(r["loss_raw"])
    assert main(["eval", "--ckpt", str(calibrated_run), "--largest", "--max-tokens", "256",
                 "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "calibrated (offset" in table and "ppl_raw" in table
    # the model card of an exported subnet carries both
    assert main(["export-subnet", "--ckpt", str(calibrated_run), "--largest", "--out",
                 str(calibrated_run.parent / "largest.pt"), "--max-tokens", "256"]) == 0
    card = json.loads(capsys.readouterr().out)["perplexity"]
    assert card["raw"] == pytest.approx(r["ppl_raw"])
    assert card["calibrated"] == pytest.approx(r["perplexity"])


def _search(ckpt, out, *extra):
    from nas.cli import main
    assert main(["search", "--ckpt", str(ckpt), "--out", str(out), "--population", "6",
                 "--generations", "1", "--max-tokens", "256", "--no-progress", *extra]) == 0
    with (out / "front.csv").open() as f:
        return list(csv.DictReader(f))


def test_search_export_and_verify_on_a_calibrated_run(calibrated_run, tmp_path, capsys):
    from nas.cli import main
    cal = Calibration.from_dict(json.loads((calibrated_run / CALIBRATION_FILE).read_text()))
    rows = _search(calibrated_run, tmp_path / "cal")
    for r in rows:
        arch = Arch.from_key(r["key"])
        assert float(r["perplexity"]) == pytest.approx(cal.perplexity(arch, float(r["ppl_raw"])))
    raw_rows = _search(calibrated_run, tmp_path / "raw", "--no-calibration")
    assert raw_rows and "ppl_raw" not in raw_rows[0]
    search = json.loads((tmp_path / "cal" / "search.json").read_text())
    assert search["perplexity_source"]["calibration"]["model"] == "offset"
    assert main(["export", "--front", str(tmp_path / "cal"), "--pick", "best-ppl"]) == 0
    (yaml_file,) = (tmp_path / "cal" / "export").glob("*.yaml")
    assert "(calibrated; raw " in yaml_file.read_text().splitlines()[1]
    from nas.export_onnx import front_numbers        # the model card of an exported pick
    doc = read_front(tmp_path / "cal")
    card, _ = front_numbers(doc.front[0], doc, {"max_tokens": 256}, {"config": {}})
    assert (card.raw, card.calibrated) == (doc.front[0].ppl_raw, doc.front[0].perplexity)
    raw_doc = read_front(tmp_path / "raw")
    card, _ = front_numbers(raw_doc.front[0], raw_doc, {"max_tokens": 256}, {"config": {}})
    assert (card.raw, card.calibrated) == (raw_doc.front[0].perplexity, None)

    capsys.readouterr()
    assert main(["verify", "--front", str(tmp_path / "cal"), "--top", "1", "--pick", "min-edp",
                 "--no-progress"]) == 0
    assert "calibrated inherited perplexity" in capsys.readouterr().out
    verified = json.loads((tmp_path / "cal" / "verify" / "verified.json").read_text())
    largest = next(r["key"] for r in verified["rows"] if r["role"] == "largest")
    others = [r for r in rows if r["key"] != largest]
    best = min(others, key=lambda r: float(r["perplexity"]))["key"]       # --top 1
    cheapest = min(others, key=lambda r: float(r["edp"]))["key"]          # --pick min-edp
    assert {r["key"] for r in verified["rows"] if r["role"] == "pick"} == {best, cheapest}
    assert set(verified["perplexity_mae_pct"]) == {"calibrated", "raw"}
    assert all("inherited_ppl_raw" in r for r in verified["rows"])

    # verified runs become anchors (the supernet's: taken from the search)
    assert main(["calibrate", "--add-verified", str(tmp_path / "cal"), "--max-tokens", "256",
                 "--no-progress"]) == 0
    doc = json.loads((calibrated_run / CALIBRATION_FILE).read_text())
    sources = {a["key"]: a["source"] for a in doc["anchors"]}
    assert set(sources.values()) == {"calibrate", "verify"}
    assert {r["key"] for r in verified["rows"]} <= set(sources)


def test_calibrate_refusals(calibrated_run, tiny_supernet, tmp_path, capsys):
    from nas.cli import main
    assert main(["calibrate"]) == 2
    assert "give --ckpt" in capsys.readouterr().err
    assert main(["calibrate", "--ckpt", str(calibrated_run), "--anchors", "2"]) == 2
    assert "at least one per embedding width" in capsys.readouterr().err
    fresh = tmp_path / "fresh"
    shutil.copytree(tiny_supernet, fresh)
    assert main(["calibrate", "--ckpt", str(fresh), "--split", "test"]) == 2
    assert "no 'test' split" in capsys.readouterr().err
    assert not (fresh / "calibration").exists()             # refused before any training
    anchor = next((calibrated_run / "calibration").iterdir())
    assert main(["calibrate", "--ckpt", str(anchor)]) == 2
    assert "train-subnet run" in capsys.readouterr().err
    _search(calibrated_run, tmp_path / "short")
    assert main(["verify", "--front", str(tmp_path / "short"), "--top", "1", "--steps", "2",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["calibrate", "--add-verified", str(tmp_path / "short")]) == 2
    assert "trained for 2 steps, the supernet's recipe is 3" in capsys.readouterr().err
