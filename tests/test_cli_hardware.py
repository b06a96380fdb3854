"""`nas hw`, `nas profile`, `nas simulate` from the command line (in-process)."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

import costmodel.plots as plots
from costmodel.hardware import PRESETS
from nas.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, fragment: str) -> None:
    """Exit 2, nothing on stdout (no work reported), one line on stderr naming the problem."""
    assert code == 2 and out == "", (code, out)
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the simulation or the profile starts."""
    def boom(*args, **kwargs):
        raise AssertionError("the work started before the bad input was reported")
    monkeypatch.setattr("costmodel.simulate.simulate", boom)
    monkeypatch.setattr("costmodel.profile.profile", boom)


def save_mask(path: Path, seq: int, layers: int = 2, heads: int = 2) -> Path:
    """A [layers, heads, seq, seq] mask (True = pruned) with the same shares at every seq
    divisible by 4: the first quarter of the columns kept (dense), a quarter of the rest."""
    i, j = np.indices((seq, seq))
    kept = (j < seq // 4) | ((i + j) % 4 == 0)
    np.save(path, np.broadcast_to(~kept, (layers, heads, seq, seq)))
    return path


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
    data = json.loads(js.read_text())
    assert data["hardware"]["name"] == hw and data["hardware_hash"] == PRESETS[hw].hash()
    # the text, the JSON and the CSV report the same simulation
    assert f"total: {data['totals']['cycles']:,.0f} cycles" in out
    assert f"[{PRESETS[hw].hash()}]" in out.splitlines()[0]
    rows = list(csv.DictReader(cs.open()))
    assert [(r["name"], float(r["cycles"])) for r in rows] == [
        (o["name"], o["cycles"]) for o in data["ops"]]
    assert rows[0]["name"] == "L0.ln1" and rows[-1]["name"] == "final_ln"


@pytest.mark.figures
def test_simulate_plot(capsys, tmp_path, drawn):
    png = tmp_path / "plots" / "bert.png"
    code, out, _ = run(capsys, "simulate", "--model", "deit-tiny", "--hw", "gemmini", "--seq",
                       "32", "--plot", str(png))
    assert code == 0
    drawn(png)
    assert [p.name for p in png.parent.iterdir()] == ["bert.png"]    # no temporary file left


def plotted(capsys, monkeypatch, tmp_path, *argv):
    """Run `nas simulate ... --plot` keeping the figure (instead of writing it) and the JSON."""
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    js = tmp_path / "r.json"
    code, _, err = run(capsys, "simulate", *argv, "--plot", str(tmp_path / "p.png"),
                       "--json", str(js))
    assert code == 0, err
    (fig,) = figures
    return fig, json.loads(js.read_text())


def bar_colours(ax) -> dict[str, set]:
    """y tick label -> face colours of the bars in that row."""
    labels = {round(t.get_position()[1]): t.get_text() for t in ax.get_yticklabels()}
    out: dict[str, set] = {}
    for bar in ax.patches:
        if bar.get_width() > 0:
            row = labels[round(bar.get_y() + bar.get_height() / 2)]
            out.setdefault(row, set()).add(bar.get_facecolor())
    return out


def test_plot_colours_name_one_unit_in_every_panel(capsys, monkeypatch, tmp_path):
    # gemmini runs softmax on the host CPU: the host colour is the same in the latency panel
    # (softmax is host-bound) and in the energy panel (host CPU energy), and differs from DRAM
    fig, data = plotted(capsys, monkeypatch, tmp_path, "--model", "deit-tiny", "--hw",
                        "gemmini", "--seq", "32")
    latency, energy = (bar_colours(ax) for ax in fig.axes)
    assert len(fig.axes) == 2                        # no sparse engine: no engine panel
    assert latency["softmax"] == energy["host CPU"]
    assert energy["DRAM"] != energy["host CPU"]
    assert energy["MACs"] == energy["PE registers"]  # both spent in the PE array
    legend = {t.get_text(): h.get_facecolor()
              for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    assert {legend["host CPU"]} == energy["host CPU"] and {legend["DRAM"]} == energy["DRAM"]
    assert len(set(legend.values())) == len(legend)  # one colour per unit
    host_ms = sum(o["cycles"] for o in data["ops"] if o["bound"] == "host") / 1e6
    drawn = sum(b.get_width() for b in fig.axes[0].patches
                if b.get_facecolor() == legend["host CPU"])
    assert drawn == pytest.approx(host_ms)


def test_plot_shows_the_engine_split_with_a_sparse_engine(capsys, monkeypatch, tmp_path):
    fig, data = plotted(capsys, monkeypatch, tmp_path, "--model", "deit-tiny", "--hw", "vitcod",
                        "--sparsity", "0.9")
    assert len(fig.axes) == 3
    engines = fig.axes[2]
    assert [t.get_text() for t in engines.get_yticklabels()] == ["av", "qk"]
    legend = {t.get_text(): h.get_facecolor()
              for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    for unit, key in (("PE array", "dense_engine_cycles"),
                      ("sparse engine", "sparse_engine_cycles")):
        drawn = sum(b.get_width() for b in engines.patches if b.get_facecolor() == legend[unit])
        expect = (sum(o[key] for o in data["ops"] if o["class"] == "act-to-act matmul")
                  * 1e3 / data["hardware"]["clock_hz"])                    # cycles -> ms
        assert drawn == pytest.approx(expect) and drawn > 0
    # every bar, latency tick and label inside the panel (issue 21: bars were cut off at the
    # DRAM bars' width, with their labels outside the axes)
    ends = [b.get_x() + b.get_width() for b in engines.patches]
    ends += [t.get_position()[0] for t in engines.texts]
    ends += list(engines.collections[0].get_offsets()[:, 0])
    assert max(ends) < engines.get_xlim()[1]


def test_simulate_decoder_aggregates_decode_steps(capsys):
    code, out, _ = run(capsys, "simulate", "--model", "L2-d128-h2.2-f256.256-hd64", "--mode",
                       "decoder", "--seq", "16", "--gen", "4", "--vocab", "100")
    assert code == 0
    assert "L0.qk@decode" in out and "@t1" not in out
    assert "prefill (16 tokens)" in out and "per generated token" in out


def test_simulate_sparse_attention(capsys, tmp_path):
    def attention(hw, *sparsity):
        js = tmp_path / "r.json"
        code, out, err = run(capsys, "simulate", "--model", "deit-tiny", "--hw", hw, "--summary",
                             "--json", str(js), *sparsity)
        assert code == 0, err
        ops = json.loads(js.read_text())["ops"]
        return out, err, sum(o["cycles"] for o in ops if o["class"] == "act-to-act matmul")

    out, _, sparse = attention("vitcod", "--sparsity", "0.9")
    assert "sparsity 0.9 (global-local)" in out and "dense eng  sparse eng" in out
    assert sparse < 0.7 * attention("vitcod")[2]
    _, err, ignored = attention("gemmini", "--sparsity", "0.9")
    assert "no sparse attention engine" in err and ignored == attention("gemmini")[2]


def test_simulate_with_real_masks(capsys, tmp_path, vitcod_mask):
    code, out, _ = run(capsys, "simulate", "--model", "deit-tiny", "--hw", "vitcod",
                       "--mask", str(vitcod_mask))
    assert code == 0 and "(mask)" in out and "rescaled" not in out
    # the case: DeiT-Tiny's 197-token masks on a 512-token BERT are an error ...
    js = tmp_path / "r.json"
    code, out, err = run(capsys, "simulate", "--model", "bert-base", "--hw", "vitcod", "--mask",
                         str(vitcod_mask), "--json", str(js))
    assert_one_line_error(code, out, err, "holds 197x197 attention maps but the sequence "
                                          "length is 512")
    assert "--rescale-mask" in err and not js.exists()
    # ... unless the user asks for the statistics to be rescaled
    code, out, _ = run(capsys, "simulate", "--model", "bert-base", "--hw", "vitcod", "--mask",
                       str(vitcod_mask), "--rescale-mask", "--summary")
    assert code == 0 and "197-token mask rescaled to 512" in out


def test_mask_of_another_length_needs_rescale_mask(capsys, tmp_path):
    mask = save_mask(tmp_path / "m16.npy", 16)
    base = ["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--mask", str(mask)]
    code, out, err = run(capsys, *base, "--seq", "32")
    assert_one_line_error(code, out, err, "holds 16x16 attention maps but the sequence length "
                                          "is 32")
    code, out, _ = run(capsys, *base, "--seq", "16")
    assert code == 0 and "rescaled" not in out
    code, rescaled, _ = run(capsys, *base, "--seq", "32", "--rescale-mask", "--summary")
    assert code == 0 and "16-token mask rescaled to 32" in rescaled
    # rescaling keeps the mask's shares: a 32-token mask with the same statistics costs the same
    save_mask(tmp_path / "m32.npy", 32)
    code, same_len, _ = run(capsys, "simulate", "--model", "deit-tiny", "--hw", "vitcod",
                            "--mask", str(tmp_path / "m32.npy"), "--seq", "32", "--summary")
    total = [line for line in rescaled.splitlines() if line.startswith("total:")]
    assert code == 0 and total == [line for line in same_len.splitlines()
                                   if line.startswith("total:")]


def test_profile(capsys, tmp_path):
    js = tmp_path / "p.json"
    code, out, _ = run(capsys, "profile", "--model", "bert-base", "--seq", "128", "--json", str(js))
    assert code == 0 and "FLOP/B" in out and "projection" in out
    data = json.loads(js.read_text())
    mops = {o["name"]: o["mops"] for o in data["ops"]}
    code, out16, _ = run(capsys, "profile", "--model", "bert-base", "--seq", "128", "--bits", "16",
                         "--json", str(js))
    assert code == 0 and "16-bit" in out16
    assert {o["name"]: o["mops"] for o in json.loads(js.read_text())["ops"]} == {
        name: 2 * m for name, m in mops.items()}


def test_profile_says_when_an_lm_head_is_included(capsys, tmp_path):
    """The issue: bert-base's default 30,522-word MLM head adds ~27% FLOPs at seq 128."""
    with_head, without = tmp_path / "with.json", tmp_path / "without.json"
    code, out, _ = run(capsys, "profile", "--model", "bert-base", "--seq", "128",
                       "--json", str(with_head))
    assert code == 0
    assert out.splitlines()[1].startswith("includes an LM head of 30,522 words")
    assert "--vocab 0 leaves it out" in out
    code, out0, _ = run(capsys, "profile", "--model", "bert-base", "--seq", "128", "--vocab", "0",
                        "--json", str(without))
    assert code == 0 and "LM head" not in out0
    head, plain = json.loads(with_head.read_text()), json.loads(without.read_text())
    assert plain["lm_head"] is None
    extra = head["total"]["flops"] - plain["total"]["flops"]
    assert head["lm_head"]["flops"] == extra == 2 * 128 * 768 * 30522
    assert extra / plain["total"]["flops"] == pytest.approx(0.27, abs=0.005)
    assert "+26.8% over the model without it" in head["lm_head"]["note"]


def test_simulate_says_when_an_lm_head_is_included(capsys, tmp_path):
    js = tmp_path / "r.json"
    code, out, _ = run(capsys, "simulate", "--model", "L2-d128-h2.2-f256.256-hd64", "--seq",
                       "32", "--vocab", "500", "--json", str(js))
    data = json.loads(js.read_text())
    head_cycles = sum(o["cycles"] for o in data["ops"] if o["name"] == "lm_head")
    assert code == 0 and data["lm_head"]["vocab"] == 500
    assert data["lm_head"]["cycles"] == head_cycles > 0
    assert data["lm_head"]["share"] == pytest.approx(head_cycles / data["totals"]["cycles"])
    assert data["lm_head"]["note"] in out.splitlines()
    code, out, _ = run(capsys, "simulate", "--model", "deit-tiny", "--seq", "32", "--json", str(js))
    assert code == 0 and "LM head" not in out and json.loads(js.read_text())["lm_head"] is None


@pytest.mark.parametrize("argv, fragment", [
    (["simulate", "--model", "bert-base", "--hw", "nope"], "unknown hardware 'nope'"),
    (["simulate", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["simulate", "--model", "bert-base", "--seq", "0"], "seq must be positive"),
    (["simulate", "--model", "bert-base", "--gen", "3"], "--gen needs decoder mode"),
    (["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--sparsity", "1.5"], "sparsity"),
    (["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--mask", "missing.npy"],
     "mask file not found"),
    (["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--rescale-mask"],
     "--rescale-mask needs --mask"),
    (["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--sparsity", "0.9",
      "--per-layer-mask"], "--per-layer-mask needs --mask"),
    (["simulate", "--model", "L2-d128-h4.4-f512.512"],
     "needs its -hdN suffix (the head width), e.g. L2-d128-h4.4-f512.512-hd64"),
    (["profile", "--model", "L2-d128-h4.4-f512.512"], "needs its -hdN suffix"),
    (["profile", "--model", "gpt2", "--bits", "12"], "--bits"),
    (["hw", "show", "tpu-v9"], "unknown hardware 'tpu-v9'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, out, err, fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["simulate", "--plot", "{tmp}/noext"], "give a file name ending in one of"),
    (["simulate", "--plot", "{tmp}/folder"], "figure {tmp}/folder is a folder"),
    (["simulate", "--plot", "/proc/x.png"], "cannot write --plot figure /proc/x.png"),
    (["simulate", "--json", "/proc/x.json"], "cannot write --json file /proc/x.json"),
    (["simulate", "--csv", "/proc/x.csv"], "cannot write --csv file /proc/x.csv"),
    (["simulate", "--json", "{tmp}/folder"], "--json file {tmp}/folder is a folder"),
    (["simulate", "--csv", "{tmp}/a-file/x.csv"], "{tmp}/a-file is a file, not a folder"),
    (["profile", "--json", "/proc/x.json"], "cannot write --json file /proc/x.json"),
    (["profile", "--csv", "/proc/x.csv"], "cannot write --csv file /proc/x.csv"),
    (["profile", "--json", "{tmp}/folder"], "--json file {tmp}/folder is a folder"),
])
def test_bad_output_paths_fail_before_the_work(capsys, tmp_path, no_work, argv, fragment):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    good = tmp_path / "good.json" if "--json" not in argv else tmp_path / "good.csv"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, *argv[:1], "--model", "deit-tiny", "--seq", "32", *argv[1:],
                         "--json" if "--json" not in argv else "--csv", str(good))
    assert_one_line_error(code, out, err, fragment.replace("{tmp}", str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "folder"]   # nothing written
    assert not any((tmp_path / "folder").iterdir())


@pytest.mark.parametrize("option", ["--hw", "--model", "--mask"])
def test_a_folder_is_named_a_folder(capsys, tmp_path, no_work, option):
    folder = tmp_path / ("masks.npy" if option == "--mask" else "dir")
    folder.mkdir()
    argv = {"--hw": ["--model", "deit-tiny", "--hw", str(folder)],
            "--model": ["--model", str(folder)],
            "--mask": ["--model", "deit-tiny", "--hw", "vitcod", "--mask", str(folder)]}[option]
    code, out, err = run(capsys, "simulate", *argv)
    assert_one_line_error(code, out, err, f"{folder} is a folder, not a file")


@pytest.mark.parametrize("name, write", [
    ("text.npy", lambda p: p.write_text("not numpy\n")),
    ("text.txt", lambda p: p.write_text("0 1\n1 0\n")),
    ("empty.npy", lambda p: p.write_bytes(b"")),
    ("archive.npz", lambda p: np.savez(p, masks=np.zeros((2, 4, 4), dtype=bool))),
    ("floats.npy", lambda p: np.save(p, np.full((2, 4, 4), 0.5))),
    ("objects.npy", lambda p: np.save(p, np.array([{}, 1], dtype=object))),
])
def test_a_mask_file_that_is_not_a_numpy_bool_array(capsys, tmp_path, no_work, name, write):
    write(tmp_path / name)
    code, out, err = run(capsys, "simulate", "--model", "deit-tiny", "--hw", "vitcod", "--mask",
                         str(tmp_path / name))
    assert_one_line_error(code, out, err, f"mask file {tmp_path / name} is not a numpy boolean "
                                          "array file (one saved with numpy.save")
    assert "allow_pickle" not in err


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


def test_preset_descriptions_state_the_bandwidth_hw_list_shows():
    """vitcod and vitality said 76.8 GB/s (ViTCoD's 76.8 x 1024^3 B/s: GiB/s) where `nas hw
    list` shows 82.5 GB/s: every GB/s figure of a description is the preset's bandwidth."""
    for name, hw in PRESETS.items():
        gb_s = hw.dram_bytes_per_cycle * hw.clock_hz / 1e9
        for figure in re.findall(r"([\d.]+) GB/s", hw.description):
            assert float(figure) == pytest.approx(gb_s, rel=0.005), name
        for figure in re.findall(r"([\d.]+) GiB/s", hw.description):
            assert float(figure) == pytest.approx(gb_s * 1e9 / 2**30, rel=0.005), name


def test_notes_on_what_is_allowed_but_likely_not_meant(capsys, tmp_path):
    """`--seq 1000000000` gave 1e14 ms without a word; `build-lut --sparsity` on hardware
    without a sparse engine gave no note where `simulate` gives one."""
    code, _, err = run(capsys, "profile", "--model", "bert-base", "--seq", "1000000000")
    assert code == 0 and err.count("\n") == 1
    assert "note: 1,000,000,000 tokens per sequence" in err and "context of 512" in err
    code, _, err = run(capsys, "simulate", "--model", "L2-d64-h2.2-f128.128-hd32", "--seq",
                       "2000000")
    assert code == 0 and "longer than any model's context" in err
    assert run(capsys, "simulate", "--model", "gpt2", "--mode", "decoder", "--seq", "1000",
               "--gen", "24")[2] == ""                      # within GPT-2's 1,024
    code, _, err = run(capsys, "build-lut", "--space", "tiny", "--hw", "gemmini", "--seq", "16",
                       "--sparsity", "0.5", "--out", str(tmp_path / "t.parquet"),
                       "--no-progress")
    assert code == 0 and err.count("\n") == 1
    assert "nas build-lut: note: hardware 'gemmini' has no sparse attention engine" in err


def test_ops_csv_has_one_value_per_cell(capsys, tmp_path):
    """ops.csv held JSON objects in its cells (energy breakdown, traffic, mapping): now each
    of their keys is a column of its own."""
    cs, js = tmp_path / "ops.csv", tmp_path / "ops.json"
    assert run(capsys, "simulate", "--model", "bert-base", "--seq", "32", "--csv", str(cs),
               "--json", str(js))[0] == 0
    rows = list(csv.DictReader(cs.open()))
    assert not any(v.startswith(("{", "[")) for r in rows for v in r.values())
    op = json.loads(js.read_text())["ops"][1]                       # L0.q_proj
    assert rows[1]["name"] == op["name"] == "L0.q_proj"
    assert float(rows[1]["energy_breakdown_pj.mac"]) == op["energy_breakdown_pj"]["mac"]
    assert rows[1]["mapping.dataflow"] == op["mapping"]["dataflow"]
    assert rows[1]["mapping.sram_tile_mkn"] == "x".join(map(str, op["mapping"]["sram_tile_mkn"]))
