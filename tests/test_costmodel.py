"""The accelerator cost model: hardware configs, GEMM tiling, non-linear units, sparse engine,
additivity over operator groups, and the analytic profile."""

import math
import random

import numpy as np
import pytest

from costmodel.hardware import PRESETS, HardwareConfig, load_hardware, sram_pj_per_byte
from costmodel.profile import FLOPS_PER_ELEMENT, profile
from costmodel.gemm import gemm_cost
from costmodel.simulate import SIMULATOR_VERSION, op_cost, simulate, simulate_ops
from costmodel.sparsity import AttentionSparsity, generate_mask, mask_stats
from costmodel.workload import (ACT_MATMUL, GEMM, NONLINEAR, PROJECTION, SOFTMAX, Op, Workload,
                                attention_ops, ffn_ops, head_ops, model_ops)
from nas.core.arch import NAMED_MODELS, SearchSpace
from nas.core.errors import UserError



def projection(m: int, k: int, n: int, cls: str = PROJECTION, batch: int = 1) -> Op:
    """A GEMM operator of layer 0 (a projection unless `cls` says otherwise)."""
    return Op(name="x", kind=GEMM, cls=cls, layer=0, phase="encoder", m=m, k=k, n=n, batch=batch)


# -- hardware configs --------------------------------------------------------------------------

def test_presets_exist_and_match_the_issue():
    assert {"gemmini", "gemmini-transformer", "vitcod", "edge-32x32"} <= set(PRESETS)
    g, t, v = PRESETS["gemmini"], PRESETS["gemmini-transformer"], PRESETS["vitcod"]
    assert (g.rows, g.cols, g.dataflow, g.scratchpad_kib, g.accumulator_kib) == (16, 16, "ws", 256, 64)
    assert (g.input_bits, g.acc_bits, g.dram_bytes_per_cycle, g.sfu) == (8, 32, 16, "host")
    assert (t.scratchpad_kib, t.accumulator_kib, t.sfu) == (64, 256, "onchip")
    assert v.pes == 512 and v.sparse_engine and v.sparse_rows / v.rows == pytest.approx(1 / 3, abs=0.02)
    for hw in PRESETS.values():
        assert hw.description and load_hardware(hw.name) is hw


def test_hash_is_stable_and_tracks_cost_fields_only():
    g = PRESETS["gemmini"]
    same = HardwareConfig.from_dict({**g.to_dict(), "name": "renamed", "description": "x"})
    assert same.hash() == g.hash() and len(g.hash()) == 12
    assert HardwareConfig.from_dict({**g.to_dict(), "accumulator_kib": 128}).hash() != g.hash()
    assert len({h.hash() for h in PRESETS.values()}) == len(PRESETS)


def test_hash_is_kept_and_a_changed_copy_hashes_anew():
    from dataclasses import replace
    g = PRESETS["gemmini"]
    assert g.hash() is g.hash()                         # computed once
    assert replace(g, rows=32).hash() == HardwareConfig.from_dict(
        {**g.to_dict(), "rows": 32}).hash() != g.hash()


def test_op_cost_gives_each_call_its_own_record_of_the_cached_cost():
    from dataclasses import replace
    hw = PRESETS["gemmini-transformer"]
    op = projection(64, 128, 256)
    renamed = replace(op, name="y")
    first, second = op_cost(op, hw), op_cost(renamed, hw)
    assert first.op is op and second.op is renamed and type(first).__name__ == "OpCost"
    assert replace(first, op=renamed) == second        # the same cost: shape-cached
    first.energy["mac"] = -1.0                           # a caller's change stays its own
    first.traffic.clear()
    third = op_cost(op, hw)
    assert third.energy == second.energy and third.energy["mac"] > 0 and third.traffic


@pytest.mark.parametrize("change, fragment", [
    ({"bogus": 1}, "unknown field(s) ['bogus']"),
    ({"rows": 0}, "rows must be positive"),
    ({"scratchpad_kib": -4}, "scratchpad_kib must be positive"),
    ({"dataflow": "rs"}, "unknown dataflow 'rs'"),
    ({"sfu": "gpu"}, "sfu must be one of"),
    ({"scratchpad_kib": 0.5}, "scratchpad_kib=0.5 is too small for one 16x16 tile"),
    ({"accumulator_kib": 1}, "accumulator_kib=1 is too small"),
    ({"rows": "big"}, "rows must be a number"),
    ({"sparse_engine": True, "sparse_pe_fraction": 1.5}, "sparse_pe_fraction"),
])
def test_bad_hardware_fields_get_one_line_errors(change, fragment):
    with pytest.raises(UserError) as err:
        HardwareConfig.from_dict({"name": "bad", **change})
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_load_hardware_files(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("base: gemmini\naccumulator_kib: 256\nsfu: onchip\nclock_hz: 5e8\n")
    hw = load_hardware(str(f))
    assert (hw.name, hw.rows, hw.accumulator_kib, hw.sfu) == ("mine", 16, 256, "onchip")
    assert hw.clock_hz == 5e8                    # YAML 1.1 reads "5e8" as a string
    # derived SRAM energies follow the new size rather than the base preset's
    assert hw.accumulator_pj_per_byte == pytest.approx(sram_pj_per_byte(256))
    with pytest.raises(UserError, match="unknown hardware 'nope'"):
        load_hardware("nope")
    (tmp_path / "broken.yaml").write_text("rows: [1,\n")
    with pytest.raises(UserError, match="malformed YAML"):
        load_hardware(str(tmp_path / "broken.yaml"))
    (tmp_path / "base.yaml").write_text("base: tpu\n")
    with pytest.raises(UserError, match="base 'tpu' is not a preset"):
        load_hardware(str(tmp_path / "base.yaml"))


def test_sram_energy_grows_with_size_and_hits_horowitz_points():
    assert sram_pj_per_byte(8) == pytest.approx(10 / 8)
    assert sram_pj_per_byte(32) == pytest.approx(20 / 8)
    assert sram_pj_per_byte(1024) == pytest.approx(100 / 8)
    sizes = [4, 16, 64, 256, 512, 2048]
    assert all(sram_pj_per_byte(a) < sram_pj_per_byte(b) for a, b in zip(sizes, sizes[1:]))


# -- GEMMs -------------------------------------------------------------------------------------

def test_ws_gemm_reproduces_scalesim_formula_when_bandwidth_is_ample():
    hw = HardwareConfig(rows=16, cols=16, dram_bytes_per_cycle=1e9)
    for m, k, n in [(128, 768, 768), (64, 128, 128), (100, 70, 33)]:
        g = gemm_cost(m, k, n, hw)
        assert g.compute == math.ceil(k / 16) * math.ceil(n / 16) * (2 * 16 + 16 + m - 2)
        assert g.cycles == pytest.approx(g.compute, rel=1e-3)


def test_os_dataflow_formula():
    hw = HardwareConfig(rows=16, cols=16, dataflow="os", dram_bytes_per_cycle=1e9)
    g = gemm_cost(128, 64, 128, hw)
    assert g.compute == 8 * 8 * (64 + 16 + 16 - 2)


def test_tiles_fit_buffers_and_traffic_is_at_least_compulsory():
    for hw in PRESETS.values():
        for m, k, n in [(512, 768, 3072), (1, 768, 768), (197, 64, 197), (1024, 3072, 768)]:
            g = gemm_cost(m, k, n, hw)
            tm, tk, tn = g.tile
            assert 2 * (tm * tk + tk * tn) * hw.in_bytes <= hw.scratchpad_bytes
            # one output tile, or two when one array column wide (costmodel.mapping.fits)
            assert g.mapping.acc_buffers * tm * tn * hw.acc_bytes <= hw.accumulator_bytes
            assert g.dram_bytes >= (m * k + k * n + m * n) * hw.in_bytes
            assert g.cycles >= m * k * n / hw.pes


def test_traffic_per_operand():
    hw = PRESETS["gemmini-transformer"]
    c = op_cost(projection(512, 768, 3072), hw)
    t = c.traffic
    assert t["dram_read_a"] >= 512 * 768 and t["dram_read_b"] >= 768 * 3072
    assert t["dram_write"] == 512 * 3072
    assert t["dram_read_a"] + t["dram_read_b"] + t["dram_write"] == c.dram_bytes
    assert c.sram_bytes == sum(v for k, v in t.items() if not k.startswith("dram"))
    # each weight tile enters the array once per M tile; inputs stream once per column fold
    tm = gemm_cost(512, 768, 3072, hw).tile[0]
    assert t["scratchpad_read"] == 512 * 768 * (3072 // 16) + 768 * 3072 * (512 // tm)
    add = op_cost(Op(name="a", kind="add", cls=NONLINEAR, layer=0, phase="encoder", m=8, n=768), hw)
    assert add.traffic["dram_read_a"] == add.traffic["dram_read_b"] == add.traffic["dram_write"]


def test_low_bandwidth_makes_a_gemm_memory_bound():
    slow = HardwareConfig(dram_bytes_per_cycle=0.25)
    c = op_cost(projection(512, 768, 768), slow)
    fast = op_cost(projection(512, 768, 768), PRESETS["gemmini"])
    assert c.bound == "memory" and fast.bound == "compute"
    assert c.dram_bytes / 0.25 <= c.cycles <= 1.05 * c.dram_bytes / 0.25


def test_batched_attention_products_cost_per_head():
    hw = PRESETS["gemmini-transformer"]
    one = op_cost(projection(128, 64, 128, cls=ACT_MATMUL), hw)
    twelve = op_cost(projection(128, 64, 128, cls=ACT_MATMUL, batch=12), hw)
    # heads run back to back: transfers of one head overlap compute of the next
    assert 12 * one.compute_cycles <= twelve.cycles < 12 * one.cycles
    assert twelve.dram_bytes == 12 * one.dram_bytes


# -- non-linear operators ----------------------------------------------------------------------

def test_host_offload_is_much_slower_than_onchip_units():
    op = Op(name="softmax", kind=SOFTMAX, cls=NONLINEAR, layer=0, phase="encoder", m=12 * 512,
            n=512)
    host = op_cost(op, PRESETS["gemmini"])
    chip = op_cost(op, PRESETS["gemmini-transformer"])
    assert host.bound == "host" and host.host_cycles > 0 and host.energy["host"] > 0
    assert chip.bound in ("sfu", "memory") and chip.host_cycles == 0
    assert host.cycles > 10 * chip.cycles
    # host time = elements x (compute + dequantize + requantize) cycles, plus the bus transfer
    hw = PRESETS["gemmini"]
    per_el = hw.host_cycles_softmax + 2 * hw.host_cycles_quant
    assert host.cycles == pytest.approx(op.elements * per_el + op.elements * 2 / 16)


def test_reductions_take_more_sfu_passes_than_elementwise_ops():
    hw = HardwareConfig(sfu="onchip", dram_bytes_per_cycle=1e6)
    ln, gelu = (op_cost(Op(name=kind, kind=kind, cls=NONLINEAR, layer=0, phase="encoder", m=512, n=768),
                        hw) for kind in ("layernorm", "gelu"))
    assert ln.compute_cycles == 3 * gelu.compute_cycles == 3 * 512 * 768 / 16


# -- whole models ------------------------------------------------------------------------------

def test_static_energy_is_static_power_times_the_model_latency():
    """Each operator is charged leakage for its own time only, so the model's static energy is
    the static power times the model's latency (what keeps group sums additive)."""
    hw = HardwareConfig.from_dict({**PRESETS["gemmini-transformer"].to_dict(), "clock_hz": 5e8,
                                   "static_power_w": 0.2})
    rep = simulate(NAMED_MODELS["deit-tiny"].arch, hw, Workload(seq=197))
    static_j = sum(c.energy["static"] for c in rep.ops) * 1e-12
    assert static_j == pytest.approx(0.2 * rep.cycles / 5e8)
    assert rep.to_dict()["totals"]["latency_ms"] == pytest.approx(rep.cycles / 5e8 * 1e3)
    assert rep.to_dict()["simulator_version"] == SIMULATOR_VERSION    # lookup tables check it


@pytest.mark.parametrize("wl, hw, sparsity", [
    (Workload(seq=64, vocab=100), "gemmini-transformer", None),
    (Workload(seq=32, mode="decoder", gen=5, vocab=50, batch=2), "gemmini", None),
    (Workload(seq=48), "vitcod", AttentionSparsity(0.9)),
    (Workload(seq=16, mode="decoder", gen=3), "vitcod", "mask"),
])
def test_group_sums_equal_full_simulation_for_random_archs(wl, hw, sparsity, request):
    """What lookup tables rely on: simulate each group once (layer=None) and add."""
    if sparsity == "mask":   # DeiT's 197-token masks, rescaled to this 16-token prompt
        sparsity = AttentionSparsity.from_mask(request.getfixturevalue("vitcod_mask"))
    space = SearchSpace.load("survey")
    hw = PRESETS[hw]
    rng = random.Random(0)
    cache: dict = {}

    def group(ops):            # simulated once per group key (each op carries its group's)
        if ops[0].group not in cache:
            costs = simulate_ops(ops, hw, sparsity)
            cache[ops[0].group] = (sum(c.cycles for c in costs), sum(c.energy_pj for c in costs))
        return cache[ops[0].group]

    for _ in range(200):
        arch = space.sample(rng)
        cyc = en = 0.0
        for h, f in zip(arch.heads, arch.ffn):
            for ops in (attention_ops(arch.d, h, arch.head_dim, wl), ffn_ops(arch.d, f, wl)):
                c, e = group(ops)
                cyc, en = cyc + c, en + e
        c, e = group(head_ops(arch.d, wl))
        rep = simulate(arch, hw, wl, sparsity, rescale_mask=True)
        assert cyc + c == pytest.approx(rep.cycles, rel=1e-9)
        assert en + e == pytest.approx(rep.energy_j * 1e12, rel=1e-9)


def test_study_knobs_move_in_the_expected_direction():
    bert = NAMED_MODELS["bert-base"].arch
    wl = Workload(seq=512)
    base = PRESETS["gemmini"]

    def swap_buffers(hw):
        return HardwareConfig.from_dict({**hw.to_dict(), "scratchpad_kib": 64,
                                         "accumulator_kib": 256, "scratchpad_pj_per_byte": 0,
                                         "accumulator_pj_per_byte": 0})

    def matmuls(hw):
        costs = [c for c in simulate(bert, hw, wl).ops if c.op.kind == GEMM]
        return sum(c.cycles for c in costs), sum(c.dram_bytes for c in costs)

    # a larger accumulator allows larger output tiles: less DRAM traffic, and fewer cycles
    # when the bus is narrow enough for the matmuls to be memory-bound
    assert matmuls(swap_buffers(base))[1] < 0.7 * matmuls(base)[1]
    narrow = HardwareConfig.from_dict({**base.to_dict(), "dram_bytes_per_cycle": 4})
    assert matmuls(swap_buffers(narrow))[0] < 0.9 * matmuls(narrow)[0]
    onchip = HardwareConfig.from_dict({**base.to_dict(), "sfu": "onchip"})
    assert simulate(bert, base, wl).cycles > 5 * simulate(bert, onchip, wl).cycles
    # longer sequences cost more, and attention's share grows with the sequence
    def attn_share(seq):
        rep = simulate(bert, PRESETS["gemmini-transformer"], Workload(seq=seq))
        return rep.by_class()[ACT_MATMUL]["cycles"] / rep.cycles
    assert attn_share(128) < attn_share(1024) < attn_share(4096)


# -- sparse attention engine -------------------------------------------------------------------

def test_generated_masks_match_their_analytic_split():
    for pattern in ("global-local", "random"):
        # (0.7 is left out: the generator's windows wrap onto 167 columns and overlap, so some
        # window columns are kept by up to 58 of 197 rows, dense by ViTCoD's more-than-50 rule;
        # low sparsity: everything is dense, below)
        for s in (0.9, 0.95):
            n = 197
            mask = generate_mask(n, s, pattern, seed=1)
            assert mask.mean() == pytest.approx(s, abs=0.02)
            sp = AttentionSparsity(s, pattern=pattern)
            glob, nnz = sp.split(n, n)
            cols, sparse_share, kept = mask_stats(mask)
            assert glob == pytest.approx(cols * n, abs=1)
            assert nnz == pytest.approx(sparse_share * n * n, rel=0.05, abs=n)
        assert AttentionSparsity(0.3, pattern=pattern).split(n, n) == (n, 0.0)


def test_real_vitcod_masks(vitcod_mask):
    sp = AttentionSparsity.from_mask(vitcod_mask)
    assert sp.sparsity == pytest.approx(0.947, abs=0.005)
    hw = PRESETS["vitcod"]
    arch, wl = NAMED_MODELS["deit-tiny"].arch, Workload(seq=197)
    dense = simulate(arch, hw, wl)
    sparse = simulate(arch, hw, wl, sp)
    attn = [c for c in sparse.ops if c.op.cls == ACT_MATMUL]
    assert all(c.sparse_engine_cycles > 0 for c in attn)
    def attn_cycles(rep):
        return sum(c.cycles for c in rep.ops if c.op.cls == ACT_MATMUL)
    assert attn_cycles(sparse) < 0.7 * attn_cycles(dense)
    # by default every layer gets the mean statistics (what lookup tables need) ...
    assert len({c.cycles for c in attn if c.op.name.endswith("qk")}) == 1
    # ... per_layer uses each layer's own mask (later layers keep more dense columns)
    per_layer = simulate(arch, hw, wl, AttentionSparsity.from_mask(vitcod_mask, per_layer=True))
    qk = {c.op.layer: c for c in per_layer.ops if c.op.name.endswith("qk")}
    assert qk[0].dense_engine_cycles < qk[11].dense_engine_cycles


def test_sparsity_is_ignored_without_a_sparse_engine():
    arch, wl = NAMED_MODELS["deit-tiny"].arch, Workload(seq=197)
    hw = PRESETS["gemmini-transformer"]
    assert simulate(arch, hw, wl, AttentionSparsity(0.9)).cycles == simulate(arch, hw, wl).cycles


def test_bad_sparsity_and_masks(tmp_path):
    with pytest.raises(UserError, match="must be in"):
        AttentionSparsity(1.0)
    with pytest.raises(UserError, match="not found"):
        AttentionSparsity.from_mask(tmp_path / "none.npy")
    with pytest.raises(UserError, match="is a folder, not a file"):
        AttentionSparsity.from_mask(tmp_path)
    for name, shape in (("flat.npy", (5,)), ("rect.npy", (2, 4, 5)), ("none.npy", (0, 0, 0))):
        np.save(tmp_path / name, np.zeros(shape, dtype=bool))
        with pytest.raises(UserError, match=r"expected \[layers, heads, n, n\]"):
            AttentionSparsity.from_mask(tmp_path / name)
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(UserError, match="not a numpy boolean array file") as err:
        AttentionSparsity.from_mask(tmp_path / "junk.npy")
    assert "pickle" not in str(err.value)
    np.save(tmp_path / "twos.npy", np.full((1, 4, 4), 2))
    with pytest.raises(UserError, match="holds int64 values"):
        AttentionSparsity.from_mask(tmp_path / "twos.npy")


def test_masks_of_0_1_integers_read_like_bool_masks(tmp_path):
    pruned = np.arange(2 * 8 * 8).reshape(2, 8, 8) % 3 == 0
    np.save(tmp_path / "bool.npy", pruned)
    np.save(tmp_path / "uint8.npy", pruned.astype(np.uint8))
    a, b = (AttentionSparsity.from_mask(tmp_path / n) for n in ("bool.npy", "uint8.npy"))
    assert a.sparsity == b.sparsity == pytest.approx(pruned.mean())
    assert a.split(8, 8) == b.split(8, 8)


def test_a_mask_fits_one_sequence_length_unless_rescaled(tmp_path):
    np.save(tmp_path / "m.npy", generate_mask(32, 0.9)[None])
    sp = AttentionSparsity.from_mask(tmp_path / "m.npy")
    assert sp.mask_seq == 32
    sp.check_seq(32)
    with pytest.raises(UserError, match="holds 32x32 attention maps but the sequence length is "
                                        "64.*--rescale-mask"):
        sp.check_seq(64)
    sp.check_seq(64, rescale=True)
    generated = AttentionSparsity(0.9)
    assert generated.mask_seq is None
    generated.check_seq(64)                        # a generated pattern fits every length
    # simulate() is where a mask meets a workload: it refuses the mismatch too
    arch, hw = NAMED_MODELS["deit-tiny"].arch, PRESETS["vitcod"]
    with pytest.raises(UserError, match="32x32"):
        simulate(arch, hw, Workload(seq=64), sp)
    # rescaled, the 32-token mask's shares apply at 256 tokens: close to the same pattern
    # generated at 256 tokens, and far from dense attention
    wl = Workload(seq=256)

    def attention(sparsity, **kw):
        return sum(c.cycles for c in simulate(arch, hw, wl, sparsity, **kw).ops
                   if c.op.cls == ACT_MATMUL)
    rescaled = attention(sp, rescale_mask=True)
    assert rescaled == pytest.approx(attention(generated), rel=0.05)
    assert rescaled < 0.4 * attention(None)


# -- profile -----------------------------------------------------------------------------------

def test_profile_counts():
    wl = Workload(seq=128)
    arch = NAMED_MODELS["bert-base"].arch
    prof = profile(model_ops(arch, wl), bytes_per_element=1)
    s, d, f, L = 128, 768, 3072, 12
    gemm_macs = L * (4 * s * d * d + 2 * s * d * f + 2 * s * s * d)
    nonlin = L * (FLOPS_PER_ELEMENT["softmax"] * 12 * s * s + 2 * 7 * s * d + 8 * s * f
                  + 2 * 1 * s * d) + 7 * s * d
    assert prof.flops == 2 * gemm_macs + nonlin
    by = prof.by_class()
    assert by[PROJECTION]["flops"] == 2 * L * (4 * s * d * d + 2 * s * d * f)
    q_proj = prof.ops[1]
    assert q_proj.op.name == "L0.q_proj"
    assert q_proj.mops == s * d + d * d + s * d
    assert q_proj.intensity == pytest.approx(2 * s * d * d / (2 * s * d + d * d))
    # 2-byte elements double the memory operations and halve the intensity
    prof16 = profile(model_ops(arch, wl), bytes_per_element=2)
    assert prof16.mops == 2 * prof.mops and prof16.intensity == pytest.approx(prof.intensity / 2)
    assert by[NONLINEAR]["intensity"] < by[ACT_MATMUL]["intensity"] < by[PROJECTION]["intensity"]
