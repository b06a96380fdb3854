"""Attention kinds in the cost model, the lookup tables and the hardware CLI (issue 12).

softmax: today's results, unchanged; taylor: ViTALiTy's linear Taylor attention and the
`vitality` preset; sparseNN: the kind's fixed pattern, through the sparse engine or as kept work.
"""

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from costmodel.hardware import PRESETS, derive, load_hardware
from costmodel.simulate import simulate, simulate_ops
from costmodel.sparsity import AttentionSparsity, PatternSparsity
from costmodel.workload import Workload, arch_groups, group_ops, model_ops
from lut.table import META_KEY, CostTable, space_groups
from nas.cli import main
from nas.core.arch import NAMED_MODELS, Arch, SearchSpace
from nas.core.attention import sparse_pattern

DEIT = NAMED_MODELS["deit-tiny"].arch
SMALL = Arch.from_key("L2-d64-h2.3-f128.256-hd32")
KINDS = SearchSpace.load("tiny-kinds")
PRESET_NAMES = ("gemmini-transformer", "vitcod", "vitality")


def attention_cycles(rep) -> float:
    """Cycles of the attention itself (what differs between kinds): the ops a kind owns, or
    for softmax its Q.K^T, softmax and scores.V."""
    return sum(c.cycles for c in rep.ops
               if c.op.attention or c.op.product or c.op.kind == "softmax")


# -- softmax: the results of simulator 2.0 before kinds existed ---------------------------------

# (model, hardware, workload, sparsity) -> (cycles, energy in J), recorded with the code as it was
# before attention kinds were added (same simulator version, 2.0)
BEFORE_KINDS = [
    ("deit-tiny", "gemmini-transformer", Workload(seq=197), None,
     7021591.5, 0.011571342920706775),
    ("deit-tiny", "vitcod", Workload(seq=197), None, 3702075.7298629284, 0.014092566122238673),
    ("deit-tiny", "vitcod", Workload(seq=197), 0.9, 2866239.7298629284, 0.012814641771719804),
    ("deit-tiny", "vitcod-sim", Workload(seq=197), 0.9, 2833577.2754128873, 0.012811375526274798),
    ("gpt2", "gemmini", Workload(seq=128, mode="decoder", gen=8, vocab=50257), None,
     834468304.0, 0.32997719507482237),
    ("L2-d64-h2.3-f128.256-hd32", "edge-32x32",
     Workload(seq=64, mode="decoder", gen=4, vocab=65), None, 80862.25, 0.00021226431260224768),
    ("L3-d96-h4.2.3-f512.128.256-hd32", "gemmini-transformer",
     Workload(seq=256, mode="decoder", gen=3), None, 994827.25, 0.0018276987709221117),
]
HASHES_BEFORE_KINDS = {"edge-32x32": "bf2f9f2818c2", "gemmini-transformer": "30063a3895b3",
                       "gemmini": "cae73ad6cba2", "vitcod-sim": "38e7618b90c3",
                       "vitcod": "e873a81eda18"}


@pytest.mark.parametrize("case", BEFORE_KINDS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2].mode}")
def test_softmax_results_are_those_before_kinds(case):
    model, hw, wl, sparsity, cycles, energy = case
    arch = NAMED_MODELS[model].arch if model in NAMED_MODELS else Arch.from_key(model)
    rep = simulate(arch, load_hardware(hw), wl, AttentionSparsity(sparsity) if sparsity else None)
    assert rep.cycles == pytest.approx(cycles, rel=1e-12)
    assert rep.energy_j == pytest.approx(energy, rel=1e-12)
    # an explicit softmax kind is the same architecture and the same cost
    assert simulate(arch.with_attention("softmax"), load_hardware(hw), wl,
                    AttentionSparsity(sparsity) if sparsity else None).cycles == rep.cycles


def test_existing_presets_keep_their_hashes_and_vitality_is_new():
    assert {n: PRESETS[n].hash() for n in HASHES_BEFORE_KINDS} == HASHES_BEFORE_KINDS
    vit = PRESETS["vitality"]
    assert vit.diag_pes > 0 and vit.preproc_lanes > 0 and vit.taylor_pipeline
    assert vit.hash() not in HASHES_BEFORE_KINDS.values()
    assert derive("vitality", "no-pipe", taylor_pipeline=False).hash() != vit.hash()


# -- taylor ------------------------------------------------------------------------------------

# Not vitcod: its MAC-line GEMMs keep a whole K x tn block of B on chip (costmodel.sparse_engine
# lines_gemm_cost, no K tiling), so K^T V with K = 4096 tokens re-reads its A operand per column
# and turns memory-bound (5.2x from 1024 to 4096 in the encoder; softmax's A.V shares the limit).
@pytest.mark.parametrize("hw", ["gemmini-transformer", "vitality", "gemmini"])
@pytest.mark.parametrize("mode", ["encoder", "decoder"])
def test_taylor_attention_cycles_grow_linearly(hw, mode):
    arch, h = DEIT.with_attention("taylor"), load_hardware(hw)
    cyc = {t: attention_cycles(simulate(arch, h, Workload(seq=t, mode=mode))) for t in (1024, 4096)}
    assert 3.5 <= cyc[4096] / cyc[1024] <= 4.5, cyc
    soft = {t: attention_cycles(simulate(DEIT, h, Workload(seq=t, mode=mode))) for t in (1024, 4096)}
    assert soft[4096] / soft[1024] > 10            # quadratic, for contrast
    assert cyc[4096] < soft[4096]


@pytest.mark.parametrize("hw", ["gemmini-transformer", "vitality"])
def test_taylor_decode_step_costs_the_same_at_every_step(hw):
    arch, h = SMALL.with_attention("taylor"), load_hardware(hw)

    def decode(seq, gen, a=arch):
        rep = simulate(a, h, Workload(seq=seq, mode="decoder", gen=gen))
        ops = [c for c in rep.ops if c.op.phase == "decode"
               and (c.op.attention or c.op.product or c.op.kind == "softmax")]
        assert ops
        return sum(c.cycles for c in ops), sum(c.energy_pj for c in ops)

    short, long_ = decode(16, 4), decode(1024, 4)
    assert short == pytest.approx(long_, rel=1e-12)      # no cache that grows with the context
    assert decode(16, 8)[0] == pytest.approx(2 * short[0], rel=1e-12)
    assert decode(1024, 4, SMALL)[0] > 4 * decode(16, 4, SMALL)[0]   # softmax reads the cache


def test_taylor_vector_ops_run_on_vitality_units_and_the_pipeline_hides_them():
    wl = Workload(seq=512)
    vit = load_hardware("vitality")
    rep = simulate(DEIT.with_attention("taylor"), vit, wl)
    bounds = {c.op.name.split(".")[1]: c.bound for c in rep.ops if c.op.layer == 0}
    assert bounds["colsum"] == bounds["centre"] == bounds["recip"] == "preproc"
    assert bounds["norm"] == bounds["scale"] == "sa-diag"
    flat = simulate(DEIT.with_attention("taylor"), derive("vitality", "no-pipe",
                                                          taylor_pipeline=False), wl)
    assert attention_cycles(rep) < attention_cycles(flat)
    assert all(c.dram_bytes == 0 for c in rep.ops if c.op.kind in ("colsum", "norm", "scale"))
    bare = simulate(DEIT.with_attention("taylor"), derive("vitality", "bare", diag_pes=0,
                                                          preproc_lanes=0), wl)
    assert {c.bound for c in bare.ops if c.op.kind in ("colsum", "norm")} <= {"sfu", "memory"}
    assert attention_cycles(flat) < attention_cycles(bare)
    # softmax models do not touch the Taylor units: the same cost without them
    assert simulate(DEIT, vit, wl).cycles == simulate(
        DEIT, derive("vitality", "bare", diag_pes=0, preproc_lanes=0, taylor_pipeline=False),
        wl).cycles


def test_taylor_on_a_host_sfu_counts_host_cycles():
    rep = simulate(SMALL.with_attention("taylor"), load_hardware("gemmini"), Workload(seq=64))
    vec = [c for c in rep.ops if c.op.kind in ("colsum", "recip", "scale")]
    assert vec and all(c.bound == "host" and c.host_cycles > 0 for c in vec)


# -- sparse ------------------------------------------------------------------------------------

@pytest.mark.parametrize("hw", PRESET_NAMES + ("gemmini",))
@pytest.mark.parametrize("mode", ["encoder", "decoder"])
def test_sparse_is_cheaper_than_dense_and_monotone_in_the_keep_ratio(hw, mode):
    h, wl = load_hardware(hw), Workload(seq=256, mode=mode, gen=2 if mode == "decoder" else 0)
    reps = [simulate(DEIT.with_attention(k), h, wl)
            for k in ("sparse5", "sparse10", "sparse25", "sparse50", "softmax")]
    cyc = [attention_cycles(r) for r in reps]
    energy = [r.energy_j for r in reps]
    assert cyc == sorted(cyc) and len(set(cyc)) == len(cyc), cyc
    assert energy == sorted(energy), energy


def test_sparse_on_the_engines_uses_the_patterns_split():
    vitcod, wl = load_hardware("vitcod"), Workload(seq=197)
    rep = simulate(DEIT.with_attention("sparse10"), vitcod, wl)
    qk = [c for c in rep.ops if c.op.product == "qk"]
    assert qk and all(c.sparse_engine_cycles > 0 and c.dense_engine_cycles > 0 for c in qk)
    p = sparse_pattern("sparse10", 197, causal=False)
    sp = PatternSparsity(p.window, p.globals, causal=False)
    glob, nnz = sp.split(197, 197)
    assert glob == p.globals and glob * 197 + nnz == p.kept() == sp.kept(197, 197)
    # a decode step's row: the window and the globals, whatever the context
    dec = PatternSparsity(*(lambda q: (q.window, q.globals))(sparse_pattern("sparse10", 128, True)),
                          causal=True)
    assert dec.kept(1, 1000) == dec.kept(1, 2000) == dec.window + dec.globals
    # --sparsity prunes the softmax layers only: a sparse kind keeps its own pattern
    assert simulate(DEIT.with_attention("sparse10"), vitcod, wl, AttentionSparsity(0.5)).cycles \
        == rep.cycles


# -- groups and lookup tables ------------------------------------------------------------------

def test_model_ops_are_the_groups_ops_for_mixed_kinds():
    rng = random.Random(0)
    wl = Workload(seq=48, mode="decoder", gen=3, vocab=65)
    seen = set()
    for _ in range(25):
        arch = KINDS.sample(rng)
        seen.update(arch.attention)
        groups = arch_groups(arch)
        assert model_ops(arch, wl) == [op for key, layer in groups
                                       for op in group_ops(key, wl, layer)]
        assert [k.attention for k, _ in groups if k.kind == "attn"] == list(arch.attention)
        assert {k for k, _ in groups} <= set(space_groups(KINDS))
    assert seen == set(KINDS.attention)
    assert len(space_groups(KINDS)) == len(KINDS.d) * (
        len(KINDS.heads) * len(KINDS.attention) + len(KINDS.ffn) + 1)


@pytest.mark.parametrize("hw", PRESET_NAMES)
@pytest.mark.parametrize("wl", [Workload(seq=40, mode="decoder", gen=2, vocab=65),
                                Workload(seq=64)], ids=["decoder", "encoder"])
def test_table_sum_equals_full_simulation_for_a_mixed_kind_space(hw, wl):
    h = load_hardware(hw)
    table = CostTable.build(KINDS, h, wl)
    rng = random.Random(2)
    for _ in range(40):
        arch = KINDS.sample(rng)
        rep = simulate(arch, h, wl)
        cost = table.cost(arch)
        assert cost.cycles == pytest.approx(rep.cycles, rel=1e-9)
        assert cost.energy_j == pytest.approx(rep.energy_j, rel=1e-9)


def test_tables_round_trip_kinds_and_format_2_tables_still_load(tmp_path):
    wl = Workload(seq=32, mode="decoder", vocab=65)
    hw = load_hardware("gemmini-transformer")
    kinds = CostTable.build(KINDS, hw, wl).save(tmp_path / "kinds.parquet")
    back = CostTable.load(kinds)
    arch = Arch(d=64, heads=(2, 3), ffn=(128, 256), head_dim=32, attention=("taylor", "sparse25"))
    assert back.cost(arch).cycles == pytest.approx(simulate(arch, hw, wl).cycles, rel=1e-9)
    # a table written before kinds: format 2, no attention column, softmax groups
    tiny = SearchSpace.load("tiny")
    path = CostTable.build(tiny, hw, wl).save(tmp_path / "new.parquet")
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[META_KEY])
    meta["format_version"] = 2
    old = table.drop(["attention"]).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    pq.write_table(old, tmp_path / "old.parquet")
    loaded = CostTable.load(tmp_path / "old.parquet")
    loaded.check(tiny, wl, hw=hw)
    softmax = Arch(d=64, heads=(2, 3), ffn=(128, 256), head_dim=32)
    assert loaded.cost(softmax) == CostTable.load(path).cost(softmax)
    assert loaded.id == CostTable.load(path).id        # what it was built for is the same
    assert pa is not None


# -- command line ------------------------------------------------------------------------------

@pytest.mark.figures
def test_cli_simulate_with_an_attention_kind(tmp_path, capsys, drawn):
    out = tmp_path / "deit.json"
    assert main(["simulate", "--model", "deit-tiny", "--hw", "vitality", "--attention", "taylor",
                 "--summary", "--json", str(out), "--csv", str(tmp_path / "ops.csv"),
                 "--plot", str(tmp_path / "deit.png")]) == 0
    text = capsys.readouterr().out
    drawn(tmp_path / "deit.png")
    assert "-at.t.t" in text and "colsum" in text and "sa-diag" in text
    data = json.loads(out.read_text())
    rep = simulate(DEIT.with_attention("taylor"), load_hardware("vitality"), Workload(seq=197))
    assert data["totals"]["cycles"] == pytest.approx(rep.cycles)
    assert data["arch"]["attention"] == ["taylor"] * 12
    # a key with kinds keeps them; --attention overrides them all
    key = "L2-d64-h2.3-f128.256-hd32-at.sp25"
    assert main(["simulate", "--model", key, "--hw", "vitcod", "--seq", "64",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["arch"]["attention"] == ["taylor", "sparse25"]
    assert main(["profile", "--model", key, "--attention", "sparse10", "--seq", "64",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["arch"]["attention"] == ["sparse10", "sparse10"]


def test_group_ops_of_each_kind_cost_what_simulate_says():
    """Each attention group of DeiT-Tiny costs the same in a table as in the model."""
    hw, wl = load_hardware("vitality"), Workload(seq=197)
    for kind in ("softmax", "taylor", "sparse10"):
        arch = DEIT.with_attention(kind)
        key, layer = arch_groups(arch)[0]
        group = sum(c.cycles for c in simulate_ops(group_ops(key, wl), hw))
        in_model = sum(c.cycles for c in simulate(arch, hw, wl).ops
                       if c.op.layer == 0 and c.op.group.kind == "attn")
        assert group == pytest.approx(in_model, rel=1e-12)
