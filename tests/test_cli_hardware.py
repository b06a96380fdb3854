"""`nas hw`, `nas profile`, `nas simulate` from the command line (in-process)."""

import csv
import json
from pathlib import Path

import pytest

from costmodel.hardware import PRESETS
from nas.cli import main

MASK = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vitcod"
        / "deit_tiny_attention_masks_0.95.npy")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hw_list_and_show(capsys):
    code, out, _ = run(capsys, "hw", "list")
    assert code == 0
    for name, hw in PRESETS.items():
        assert name in out and hw.hash() in out
    code, out, _ = run(capsys, "hw", "show", "vitcod")
    assert code == 0 and "sparse_engine: true" in out and PRESETS["vitcod"].hash() in out


@pytest.mark.parametrize("hw", sorted(PRESETS))
def test_simulate_every_preset(capsys, tmp_path, hw):
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    code, out, err = run(capsys, "simulate", "--model", "deit-tiny", "--hw", hw, "--seq", "64",
                         "--json", str(js), "--csv", str(cs))
    assert code == 0, err
    assert "L0.q_proj" in out and "total:" in out and "EDP" in out
    data = json.loads(js.read_text())
    assert data["hardware"]["name"] == hw and data["totals"]["cycles"] > 0
    assert abs(sum(o["cycles"] for o in data["ops"]) - data["totals"]["cycles"]) < 1e-6 * data["totals"]["cycles"]
    rows = list(csv.DictReader(cs.open()))
    assert len(rows) == len(data["ops"]) and rows[0]["name"] == "L0.ln1"


def test_simulate_plot(capsys, tmp_path):
    png = tmp_path / "plots" / "bert.png"
    code, out, _ = run(capsys, "simulate", "--model", "deit-tiny", "--hw", "gemmini", "--seq",
                       "32", "--plot", str(png))
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in png.parent.iterdir()] == ["bert.png"]    # no temporary file left


def test_simulate_decoder_aggregates_decode_steps(capsys):
    code, out, _ = run(capsys, "simulate", "--model", "L2-d128-h2.2-f256.256-hd64", "--mode",
                       "decoder", "--seq", "16", "--gen", "4", "--vocab", "100")
    assert code == 0
    assert "L0.qk@decode" in out and "@t1" not in out
    assert "prefill (16 tokens)" in out and "per generated token" in out


def test_simulate_sparse_attention(capsys):
    code, out, err = run(capsys, "simulate", "--model", "deit-tiny", "--hw", "vitcod",
                         "--sparsity", "0.9", "--summary")
    assert code == 0 and "sparsity 0.9" in out and "\nqk " in out
    code, out, err = run(capsys, "simulate", "--model", "deit-tiny", "--hw", "gemmini",
                         "--sparsity", "0.9", "--summary")
    assert code == 0 and "no sparse attention engine" in err


def test_simulate_with_real_masks(capsys):
    if not MASK.is_file():
        pytest.skip("ViTCoD masks absent")
    code, out, _ = run(capsys, "simulate", "--model", "deit-tiny", "--hw", "vitcod",
                       "--mask", str(MASK))
    assert code == 0 and "(mask)" in out


def test_profile(capsys, tmp_path):
    js = tmp_path / "p.json"
    code, out, _ = run(capsys, "profile", "--model", "bert-base", "--seq", "128", "--json", str(js))
    assert code == 0 and "FLOP/B" in out and "projection" in out
    data = json.loads(js.read_text())
    assert data["total"]["flops"] == sum(o["flops"] for o in data["ops"])
    code, out16, _ = run(capsys, "profile", "--model", "bert-base", "--seq", "128", "--bits", "16",
                         "--summary")
    assert code == 0 and "16-bit" in out16


@pytest.mark.parametrize("argv, fragment", [
    (["simulate", "--model", "bert-base", "--hw", "nope"], "unknown hardware 'nope'"),
    (["simulate", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["simulate", "--model", "bert-base", "--seq", "0"], "seq must be positive"),
    (["simulate", "--model", "bert-base", "--gen", "3"], "--gen needs decoder mode"),
    (["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--sparsity", "1.5"], "sparsity"),
    (["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--mask", "missing.npy"],
     "mask file not found"),
    (["profile", "--model", "gpt2", "--bits", "12"], "--bits"),
    (["hw", "show", "tpu-v9"], "unknown hardware 'tpu-v9'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert code == 2 and fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_hardware_files(capsys, tmp_path):
    bad = {"malformed.yaml": ("rows: [16,\n", "malformed YAML"),
           "unknown.yaml": ("rows: 16\nwidth: 3\n", "unknown field(s) ['width']"),
           "tiny.yaml": ("rows: 64\ncols: 64\nscratchpad_kib: 8\n", "too small for one 64x64 tile"),
           "negative.yaml": ("accumulator_kib: -1\n", "accumulator_kib must be positive"),
           "flow.yaml": ("dataflow: rowstationary\n", "unknown dataflow")}
    for name, (text, fragment) in bad.items():
        (tmp_path / name).write_text(text)
        code, _, err = run(capsys, "simulate", "--model", "deit-tiny", "--hw", str(tmp_path / name))
        assert code == 2 and fragment in err and err.count("\n") == 1, (name, err)
    good = tmp_path / "good.yaml"
    good.write_text("base: gemmini-transformer\nrows: 32\ncols: 32\n")
    code, out, _ = run(capsys, "simulate", "--model", "deit-tiny", "--hw", str(good), "--seq", "32")
    assert code == 0 and "on good" in out
