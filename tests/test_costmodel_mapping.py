"""GEMM mappings (costmodel.mapping): the three modes, Gemmini's tiler and the survey's buffer
rebalance, the search never slower than SCALE-Sim's schedule, `nas simulate --mapping / --gemm /
--topology`, and the two GEMM accounting defects fixed with the mappings."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.hardware import PRESETS, HardwareConfig, derive, load_hardware
from costmodel.mapping import gemmini_tiles, map_gemm, with_mapping
from costmodel.gemm import gemm_cost
from costmodel.simulate import op_cost, simulate
from costmodel.workload import GEMM, PROJECTION, Op, Workload, load_topology, parse_gemm
from nas.cli import main
from nas.core.arch import NAMED_MODELS
from nas.core.errors import UserError

BERT = NAMED_MODELS["bert-base"]
GEMMINI = PRESETS["gemmini"]                                   # 256 KiB sp / 64 KiB acc
REBALANCED = derive("gemmini", "gemmini-64k-256k", scratchpad_kib=64, accumulator_kib=256)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- the mapping field -------------------------------------------------------------------------

def test_mapping_is_a_validated_hashed_hardware_field(tmp_path):
    assert {hw.mapping for hw in PRESETS.values()} == {"scalesim"}   # presets unchanged
    modes = {m: with_mapping(GEMMINI, m) for m in ("scalesim", "gemmini", "search")}
    assert modes["scalesim"] == GEMMINI
    assert len({hw.hash() for hw in modes.values()}) == 3
    assert with_mapping(GEMMINI, "search", "edp").hash() != modes["search"].hash()
    f = tmp_path / "mine.yaml"
    f.write_text("base: gemmini\nmapping: gemmini\n")
    assert load_hardware(str(f)).mapping == "gemmini"
    for field, value in (("mapping", "timeloop"), ("mapping_objective", "area")):
        with pytest.raises(UserError, match=f"{field} must be one of") as err:
            HardwareConfig.from_dict({"name": "bad", field: value})
        assert "\n" not in str(err.value)


def test_every_mode_reports_its_mapping_per_gemm():
    for mode in ("scalesim", "gemmini", "search"):
        rep = simulate(BERT.arch, with_mapping(GEMMINI, mode), Workload(seq=128))
        for c in rep.ops:
            d = c.to_dict()
            if c.op.kind != GEMM:
                assert d["mapping"] is None
                continue
            m = d["mapping"]
            assert m["mode"] == mode and m["dataflow"] == "ws" and m["loop_order"] in ("mnk", "nmk")
            tm, tk, tn = m["sram_tile_mkn"]
            assert 1 <= tm <= c.op.m and 1 <= tk <= c.op.k and 1 <= tn <= c.op.n
            a_bytes = c.op.m * c.op.k * m["a_dram_reads"] * c.op.batch
            assert d["traffic_bytes"]["dram_read_a"] == a_bytes


def test_scalesim_mode_is_the_scalesim_fold_formula():
    hw = HardwareConfig(rows=16, cols=16, dram_bytes_per_cycle=1e9)
    g = gemm_cost(100, 70, 33, hw)
    assert g.compute == 5 * 3 * (2 * 16 + 16 + 100 - 2)
    assert g.mapping.mode == "scalesim" and not g.mapping.preload_overlap


# -- Gemmini's tiler and the survey's buffer rebalance -------------------------------------------

@pytest.mark.parametrize("shape, baseline, rebalanced", [
    ((512, 768, 3072), (80, 768, 80), (176, 80, 176)),      # projections: 80x80, 176x176 tiles
    ((512, 64, 512), (80, 64, 96), (176, 64, 176)),         # Q.K^T: the tile grows along N
    ((512, 512, 64), (128, 512, 64), (224, 112, 64)),       # A.V: N is one block, M grows
])
def test_gemmini_tiles_follow_tiled_matmul_auto(shape, baseline, rebalanced):
    assert gemmini_tiles(*shape, 16, 16, GEMMINI, double_buffered=True) == baseline
    assert gemmini_tiles(*shape, 16, 16, REBALANCED, double_buffered=True) == rebalanced


def test_gemmini_mode_moves_every_tile_in_again_with_its_bias():
    g = gemm_cost(512, 768, 3072, with_mapping(GEMMINI, "gemmini"), bias=True)
    tiles_m, tiles_k, tiles_n = 7, 1, 39                    # ceil(512/80), 1, ceil(3072/80)
    assert g.mapping.tiles == (tiles_m, tiles_k, tiles_n) and g.mapping.loop_order == "mnk"
    assert g.dram_a == 512 * 768 * tiles_n and g.dram_b == 768 * 3072 * tiles_m
    assert g.dram_bias == 512 * 3072 * 4 and g.dram_out == 512 * 3072
    assert not g.overlap and g.cycles == g.compute + g.dram      # DMA not overlapped
    assert gemm_cost(512, 768, 3072, with_mapping(GEMMINI, "gemmini")).dram_bias == 0


def matmul_cycles(hw) -> float:
    rep = simulate(BERT.arch, hw, Workload(seq=512))
    return sum(c.cycles for c in rep.ops if c.op.kind == GEMM)


def test_survey_buffer_rebalance_cuts_bert_matmul_latency_by_a_quarter_in_gemmini_mode():
    base = matmul_cycles(with_mapping(GEMMINI, "gemmini"))
    rebalanced = matmul_cycles(with_mapping(REBALANCED, "gemmini"))
    assert rebalanced / base - 1 <= -0.25          # Kim et al. 2023 Sec. 3.4.3: -36% measured


# -- the search ------------------------------------------------------------------------------

ARRAYS = st.sampled_from([(16, 16), (32, 32), (64, 8), (8, 64), (4, 4)])
DIMS = st.sampled_from([1, 3, 16, 64, 100, 197, 512, 768, 1024, 3072])


@settings(max_examples=150, deadline=None)
@given(array=ARRAYS, m=DIMS, k=DIMS, n=DIMS, batch=st.sampled_from([1, 12]),
       dataflow=st.sampled_from(["ws", "os", "both"]), double=st.booleans(),
       weights=st.booleans(), sp=st.sampled_from([64, 256, 512]),
       acc=st.sampled_from([64, 256]), bw=st.sampled_from([1.0, 4.0, 16.0, 64.0]))
def test_search_is_never_slower_than_scalesim(array, m, k, n, batch, dataflow, double, weights,
                                              sp, acc, bw):
    hw = HardwareConfig(rows=array[0], cols=array[1], dataflow=dataflow, double_buffer=double,
                        weight_double_buffer=weights, scratchpad_kib=sp, accumulator_kib=acc,
                        dram_bytes_per_cycle=bw)
    scalesim = map_gemm(m, k, n, hw, hw.rows)
    found = map_gemm(m, k, n, with_mapping(hw, "search"), hw.rows, False, batch)
    assert batch * found.steady + found.exposed <= (batch * scalesim.steady + scalesim.exposed
                                                    ) * (1 + 1e-12)


def test_search_hides_the_preload_where_pes_double_buffer_weights():
    hw = HardwareConfig(rows=64, cols=8, scratchpad_kib=256, accumulator_kib=64)
    scalesim = gemm_cost(128, 768, 768, hw)
    found = gemm_cost(128, 768, 768, with_mapping(hw, "search"))
    assert found.mapping.preload_overlap and found.cycles < 0.8 * scalesim.cycles
    plain = gemm_cost(128, 768, 768, with_mapping(
        HardwareConfig(rows=64, cols=8, scratchpad_kib=256, accumulator_kib=64,
                       weight_double_buffer=False), "search"))
    assert not plain.mapping.preload_overlap and plain.cycles > found.cycles


def test_search_objectives_trade_latency_for_energy():
    hw = with_mapping(HardwareConfig(dataflow="both", dram_bytes_per_cycle=4), "search")
    op = Op(name="x", kind=GEMM, cls=PROJECTION, layer=0, phase="encoder", m=512, k=768, n=3072)
    fast, frugal = (op_cost(op, with_mapping(hw, objective=o)) for o in ("latency", "energy"))
    edp = op_cost(op, with_mapping(hw, objective="edp"))
    assert fast.cycles <= frugal.cycles and frugal.energy_pj <= fast.energy_pj
    assert edp.cycles * edp.energy_pj <= min(fast.cycles * fast.energy_pj,
                                             frugal.cycles * frugal.energy_pj) * (1 + 1e-9)


# -- defects fixed with the mappings ---------------------------------------------------------------

def test_first_k_fold_reads_nothing_from_the_accumulator():
    # (a) the first fold of a K loop writes its partial sums; only later folds read to add
    hw = HardwareConfig(rows=16, cols=16)
    c = op_cost(Op(name="x", kind=GEMM, cls=PROJECTION, layer=0, phase="encoder", m=128, k=64,
                   n=128), hw)
    folds, out = 64 // 16, 128 * 128 * hw.acc_bytes
    assert c.traffic["accumulator_write"] == folds * out
    assert c.traffic["accumulator_read"] == (folds - 1) * out
    assert c.traffic["accumulator_drain_read"] == out          # the finished outputs move out


@pytest.mark.parametrize("hw, seq", [
    (HardwareConfig(rows=32, cols=32, scratchpad_kib=512, accumulator_kib=256), 512),
    (HardwareConfig(rows=64, cols=8, scratchpad_kib=256, accumulator_kib=64), 128),
])
def test_ffn2_output_tile_is_not_halved_for_a_second_accumulator_copy(hw, seq):
    # (b) a tile of several column blocks drains block by block while the next one fills the
    # accumulator: one copy suffices, A is read 6 times instead of 12, compute cycles unchanged
    g = gemm_cost(seq, 3072, 768, hw)
    assert g.mapping.a_reads == 6 and g.mapping.acc_buffers == 1
    assert g.dram_a == 6 * seq * 3072
    folds = (3072 // hw.rows) * (768 // hw.cols)
    assert g.compute == folds * (2 * hw.rows + hw.cols - 2 + seq)      # SCALE-Sim's formula


# -- command line ------------------------------------------------------------------------------

def test_simulate_mapping_flag(capsys, tmp_path):
    js = tmp_path / "r.json"
    code, out, err = run(capsys, "simulate", "--model", "bert-base", "--seq", "64", "--hw",
                         "gemmini", "--mapping", "gemmini", "--json", str(js))
    assert code == 0, err
    data = json.loads(js.read_text())
    hw = with_mapping(GEMMINI, "gemmini")
    assert data["hardware"]["mapping"] == "gemmini" and data["hardware_hash"] == hw.hash()
    assert f"[{hw.hash()}], mapping gemmini" in out.splitlines()[0]
    ffn1 = next(o for o in data["ops"] if o["name"] == "L0.ffn1")
    assert ffn1["mapping"]["mode"] == "gemmini" and ffn1["mapping"]["bias"]


def test_simulate_gemms_and_a_topology(capsys, tmp_path):
    topo = tmp_path / "gpt2.csv"
    topo.write_text("Layer, M, N, K,\nQKT, 1024, 1024, 64,\nFF2, 1024, 768, 3072,\n"
                    "QKT, 1024, 1024, 64,\n")
    js, cs = tmp_path / "g.json", tmp_path / "g.csv"
    code, out, err = run(capsys, "simulate", "--gemm", "512,768,3072", "--topology", str(topo),
                         "--hw", "edge-32x32", "--mapping", "search", "--json", str(js),
                         "--csv", str(cs))
    assert code == 0, err
    data = json.loads(js.read_text())
    assert [(o["name"], o["shape"]) for o in data["ops"]] == [
        ("gemm0", "512x768x3072"), ("QKT", "1024x64x1024"), ("FF2", "1024x3072x768"),
        ("QKT#2", "1024x64x1024")]
    assert all(o["mapping"]["mode"] == "search" for o in data["ops"])
    assert data["totals"]["cycles"] == sum(o["cycles"] for o in data["ops"])
    assert f"total: {data['totals']['cycles']:,.0f} cycles" in out
    assert "QKT#2" in cs.read_text()
    hw = PRESETS["edge-32x32"]
    single = map_gemm(512, 768, 3072, with_mapping(hw, "search"), hw.rows)
    assert data["ops"][0]["cycles"] == single.cycles


def test_topology_reader_follows_scalesim_convention(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("Layer,M,N,K\nfc,8,4,2\n\n")      # without SCALE-Sim's trailing commas too
    assert load_topology(f) == [("fc", 8, 2, 4)]
    assert parse_gemm(" 8, 2 ,4") == (8, 2, 4)


@pytest.mark.parametrize("argv, fragment", [
    (["--gemm", "512,768"], "--gemm '512,768': give M,K,N as three positive integers"),
    (["--gemm", "a,b,c"], "give M,K,N"),
    (["--gemm", "0,4,4"], "give M,K,N"),
    (["--topology", "{tmp}/missing.csv"], "topology file not found"),
    (["--topology", "{tmp}"], "is a folder, not a file"),
    (["--topology", "{tmp}/header.csv"], "expected the SCALE-Sim GEMM header"),
    (["--topology", "{tmp}/row.csv"], "line 2: expected a layer name and integers M, N, K"),
    (["--topology", "{tmp}/zero.csv"], "line 2: a layer needs a name and positive M, N, K"),
    (["--topology", "{tmp}/empty.csv"], "is empty"),
    (["--topology", "{tmp}/only-header.csv"], "has a header but no GEMM rows"),
    (["--gemm", "4,4,4", "--model", "bert-base"], "either --model or --gemm/--topology"),
    (["--gemm", "4,4,4", "--seq", "64"], "--seq apply to --model only"),
    ([], "give --model, or GEMMs with --gemm"),
])
def test_bad_gemm_input_is_one_line_and_exit_2(capsys, tmp_path, argv, fragment):
    (tmp_path / "header.csv").write_text("name,rows,cols\nfc,1,2\n")
    (tmp_path / "row.csv").write_text("Layer, M, N, K,\nfc, 8, x, 2,\n")
    (tmp_path / "zero.csv").write_text("Layer, M, N, K,\nfc, 8, 0, 2,\n")
    (tmp_path / "empty.csv").write_text("\n")
    (tmp_path / "only-header.csv").write_text("Layer, M, N, K,\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, "simulate", *argv)
    assert code == 2 and out == "" and fragment in err and err.count("\n") == 1, (code, out, err)
