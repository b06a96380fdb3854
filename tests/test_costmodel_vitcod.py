"""ViTCoD's engines (costmodel.sparse_engine): the two presets, the split rule, the per-head line
allocation, fused attention, the three attention-traffic defects of simulator 1.0, and the
figures of ViTCoD's own simulator log (seed 000)."""

import importlib
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from costmodel.hardware import PRESETS, HardwareConfig, register_pj_per_mac, sram_pj_per_byte
from costmodel.simulate import op_cost, simulate
from costmodel.gemm import lines_gemm_cost
from costmodel.sparse_engine import attention_kernel, head_work, split_lines
from costmodel.sparsity import AttentionSparsity, mask_stats
from costmodel.workload import ACT_MATMUL, GEMM, NONLINEAR, PROJECTION, SOFTMAX, Op, Workload
from nas.core.arch import NAMED_MODELS
from nas.core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments" / "validation" / "vitcod_log"))
vitcod_log = importlib.import_module("vitcod_log")

N, HD, H = 197, 64, 3                       # DeiT-Tiny: tokens, head dimension, heads


def attention_op(product: str, heads: int = H, seqs: int = 1, layer: int | None = 0) -> Op:
    """Q.K^T (m=q, k=head_dim, n=ctx) or A.V (m=q, k=ctx, n=head_dim) of DeiT-Tiny's shape."""
    k, n = (HD, N) if product == "qk" else (N, HD)
    return Op(name=f"L0.{product}", kind=GEMM, cls=ACT_MATMUL, layer=layer, phase="encoder",
              m=N, k=k, n=n, batch=seqs * heads, heads=heads, product=product)


def softmax_op() -> Op:
    """DeiT-Tiny's softmax of layer 0 (every head's N x N map)."""
    return Op(name="L0.softmax", kind=SOFTMAX, cls=NONLINEAR, layer=0, phase="encoder", m=H * N,
              n=N)


# -- presets -------------------------------------------------------------------------------------

def test_the_two_presets_model_vitcod_and_its_simulator():
    hw, sim = PRESETS["vitcod"], PRESETS["vitcod-sim"]
    for p in (hw, sim):
        assert (p.rows, p.cols, p.pes, p.pe_array) == (64, 8, 512, "lines")
        assert p.clock_hz == 500e6                                        # SRAM.py
        assert p.dram_bytes_per_cycle == pytest.approx(76.8 * 1024 ** 3 / 500e6)   # ~165 B/cycle
        assert (p.scratchpad_kib, p.accumulator_kib) == (3 * 53 + 20, 108)
        assert p.sparse_engine and p.sparse_allocation == "dynamic" and p.attention_fusion
        assert p.qk_compression == pytest.approx(2 / 3)
    assert (hw.engine_lanes, hw.head_timing) == (512, "slowest")
    assert (sim.engine_lanes, sim.head_timing) == (64 * 64, "first")
    # they differ in those two fields only
    differ = {k for k, v in hw.to_dict().items() if sim.to_dict()[k] != v}
    assert differ == {"name", "description", "attention_lanes", "head_timing"}


@pytest.mark.parametrize("change, fragment", [
    ({"pe_array": "mesh"}, "pe_array must be one of"),
    ({"sparse_allocation": "greedy"}, "sparse_allocation must be one of"),
    ({"head_timing": "mean"}, "head_timing must be one of"),
    ({"qk_compression": 0}, "qk_compression must be in (0, 1]"),
    ({"qk_compression": 1.5}, "qk_compression must be in (0, 1]"),
    ({"attention_lanes": -1}, "attention_lanes must be >= 0"),
    ({"attention_fusion": True, "sfu": "host"}, "attention_fusion needs sfu: onchip"),
])
def test_bad_engine_fields_get_one_line_errors(change, fragment):
    with pytest.raises(UserError) as err:
        HardwareConfig.from_dict({"name": "bad", **change})
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_new_fields_leave_the_other_presets_as_they_were():
    for name in ("gemmini", "gemmini-transformer", "edge-32x32"):
        hw = PRESETS[name]
        assert (hw.pe_array, hw.sparse_engine, hw.attention_fusion, hw.qk_compression,
                hw.attention_lanes) == ("systolic", False, False, 1.0, 0)


# -- the split rule and the line allocation ------------------------------------------------------

def test_a_column_is_dense_when_more_than_50_of_197_rows_keep_it():
    pruned = np.ones((N, 3), dtype=bool)
    pruned[:50, 0] = False                   # kept by 50 rows: sparse (ViTCoD: out-degree > 50)
    pruned[:51, 1] = False                   # kept by 51 rows: dense
    cols, sparse_share, _ = mask_stats(pruned)
    assert cols == pytest.approx(1 / 3)
    assert sparse_share * pruned.size == pytest.approx(50)


def test_real_masks_give_vitcod_logs_global_tokens(vitcod_mask):
    sp = AttentionSparsity.from_mask(vitcod_mask, per_layer=True)
    head0 = [sp.head_splits(N, N, layer, H)[0][0] for layer in range(12)]
    assert head0 == vitcod_log.LOG_HEAD0["global_tokens"]
    # without per-layer statistics every head gets the mean split
    mean = AttentionSparsity.from_mask(vitcod_mask)
    assert len(set(mean.head_splits(N, N, 2, H))) == 1


def test_dynamic_allocation_follows_the_work_and_fixed_is_2_to_1():
    hw = PRESETS["vitcod"]
    assert split_lines(1, 2244, N, hw) == (5, 59)          # layer 0, head 0: int(64 * 197/2441)
    assert split_lines(70, 2479, N, hw) == (54, 10)        # layer 2, head 0
    assert split_lines(0, 500, N, hw) == (0, 64) and split_lines(9, 0, N, hw) == (64, 0)
    assert split_lines(1, 1e6, N, hw) == (1, 63)           # each engine with work gets a line
    fixed = replace(hw, sparse_allocation="fixed")
    assert split_lines(1, 2244, N, fixed) == (43, 21)


def test_head_zero_cycles_equal_vitcods_log_layer_by_layer(vitcod_mask):
    sp = AttentionSparsity.from_mask(vitcod_mask, per_layer=True)
    assert vitcod_log.head0_per_layer(PRESETS["vitcod-sim"], sp) == vitcod_log.LOG_HEAD0
    # on the 512-MAC hardware a head has 8x fewer lanes: ceil(64 / (8/3)) = 24 cycles a score
    work = head_work(1, 2244, N, HD, H, PRESETS["vitcod"])
    assert work.sddmm_dense == 1 * math.ceil(N / 5) * 24


# -- fused attention -------------------------------------------------------------------------------

def test_fused_attention_keeps_the_scores_off_dram():
    hw = PRESETS["vitcod"]
    sp = AttentionSparsity(0.95)
    qk, av = (op_cost(attention_op(p), hw, sp) for p in ("qk", "av"))
    assert qk.traffic["dram_write"] == 0                        # no scores out ...
    assert av.traffic["dram_read_a"] == 0                       # ... and none back in
    assert av.traffic["dram_read_b"] == N * H * HD              # V only
    softmax = op_cost(softmax_op(), hw, sp)
    assert softmax.dram_bytes == 0 and softmax.cycles > 0       # on chip, in place
    # the same engines unfused: Q.K^T writes every score (and each non-zero's index), A.V reads
    # them back, and the softmax moves them through DRAM too
    unfused = replace(hw, name="unfused", attention_fusion=False)
    qk_u, av_u = (op_cost(attention_op(p), unfused, sp) for p in ("qk", "av"))
    glob, nnz = sp.split(N, N)
    scores = H * (N * glob + nnz)
    assert qk_u.traffic["dram_write"] == pytest.approx(scores + H * nnz * 2)
    assert av_u.traffic["dram_read_a"] == qk_u.traffic["dram_write"]
    assert op_cost(softmax_op(), unfused, sp).dram_bytes > 0


def test_the_fused_kernel_is_max_of_transfers_and_work_split_between_the_products():
    hw = PRESETS["vitcod"]
    k = attention_kernel(N, N, HD, H, None, hw, AttentionSparsity(0.9))
    assert k.qk.cycles == max(k.qk.memory, k.qk.busy)
    assert k.qk.cycles + k.av.cycles == pytest.approx(
        max(k.qk.memory + k.av.memory, k.qk.busy + k.av.busy))


def test_compressed_q_and_k_are_read_at_two_thirds_and_decoded_on_chip():
    hw = PRESETS["vitcod"]
    plain = replace(hw, name="plain", qk_compression=1.0)
    sp = AttentionSparsity(0.95)
    qk, qk_plain = op_cost(attention_op("qk"), hw, sp), op_cost(attention_op("qk"), plain, sp)
    assert qk.traffic["dram_read_a"] == pytest.approx(2 / 3 * N * H * HD)
    assert qk_plain.traffic["dram_read_a"] == N * H * HD
    # ViTCoD.py: one decoder cycle per token of Q and of K (128 values on 512/3 MACs)
    assert qk.compute_cycles - qk_plain.compute_cycles == 2 * N


def test_dense_attention_runs_on_the_fused_engines_with_every_column_dense():
    hw = PRESETS["vitcod"]
    dense, zero = (op_cost(attention_op("qk"), hw, sp) for sp in (None, AttentionSparsity(0.0)))
    assert dense.cycles == zero.cycles
    assert dense.sparse_engine_cycles == 0 < dense.dense_engine_cycles


def test_the_slowest_head_sets_the_time_unless_timed_by_head_zero(vitcod_mask):
    sp = AttentionSparsity.from_mask(vitcod_mask, per_layer=True)
    hw = PRESETS["vitcod"]
    first = replace(hw, name="first", head_timing="first")
    op = attention_op("qk", layer=0)          # layer 0: head 1 has 10 global tokens, head 0 one
    assert op_cost(op, hw, sp).cycles > op_cost(op, first, sp).cycles


# -- the three defects of simulator 1.0 (these fail on its _sparse_attention_op) ------------------

def old_vitcod() -> HardwareConfig:
    """Simulator 1.0's `vitcod` preset: a 64x8 array, 2:1 fixed split, unfused, 16 B/cycle."""
    return HardwareConfig(name="old-vitcod", rows=64, cols=8, sfu="onchip", sfu_lanes=8,
                          sparse_engine=True, dram_bytes_per_cycle=16)


@pytest.fixture
def on_engines():
    hw, sp = old_vitcod(), AttentionSparsity(0.95)
    qk, av = (op_cost(attention_op(p, layer=None), hw, sp) for p in ("qk", "av"))
    assert qk.sparse_engine_cycles > 0 and av.sparse_engine_cycles > 0   # not on the array
    return qk, av, sp


def test_q_is_read_once_for_q_kt(on_engines):
    qk, _, _ = on_engines
    assert qk.traffic["dram_read_a"] == H * N * HD          # 1.0: twice (dense + sparse engine)


def test_the_a_v_output_is_written_once(on_engines):
    _, av, _ = on_engines
    assert av.traffic["dram_write"] == H * N * HD           # 1.0: twice


def test_global_k_and_v_rows_are_read_once(on_engines):
    qk, av, sp = on_engines
    _, nnz = sp.split(N, N)
    assert qk.traffic["dram_read_b"] == H * (N * HD + 2 * nnz)   # K once, plus the pattern
    assert av.traffic["dram_read_b"] == H * N * HD               # 1.0: + the global rows again
    # these products are memory-bound: the time is the traffic over the bus
    assert qk.bound == av.bound == "memory"
    assert qk.cycles == pytest.approx(qk.dram_bytes / 16)


# -- MAC lines -------------------------------------------------------------------------------------

def test_lines_run_deit_tiny_projections_at_full_use():
    hw = PRESETS["vitcod"]
    for m, k, n in [(N, 192, 192), (N, 192, 768), (N, 768, 192)]:
        g = lines_gemm_cost(m, k, n, hw)
        assert g.compute == math.ceil(m * n / 64) * math.ceil(k / 8) == m * k * n / 512
        assert g.dram_b == k * n and g.dram_out == m * n
    c = op_cost(Op(name="L0.ffn1", kind=GEMM, cls=PROJECTION, layer=0, phase="encoder", m=N, k=192,
                   n=768), hw)
    assert c.bound == "compute" and c.utilization > 0.95


# -- ViTCoD's log (seed 000) ------------------------------------------------------------------

def test_seed_log_targets(vitcod_mask):
    res = vitcod_log.compare(vitcod_mask)
    assert res["reference"] == {**res["reference"], "attention_cycles": 9492,
                                "linear_cycles": 681492, "mlp_cycles": 1361664}
    assert all(res["targets_met"].values()), res["error_pct"]
    assert res["head0_per_layer"]["equal"]
    gap = list(res["attention_gap"].values())
    assert gap == sorted(gap) and gap[-1] > 4 * gap[0]       # the 8x lanes explain most of it


def test_the_study_figures_add_up(vitcod_mask):
    sp = AttentionSparsity.from_mask(vitcod_mask, per_layer=True)
    model = NAMED_MODELS["deit-tiny"]
    rep = simulate(model.arch, PRESETS["vitcod-sim"], Workload(seq=model.seq), sp)
    by = vitcod_log.class_cycles(rep)
    assert sum(by.values()) == pytest.approx(rep.cycles)


# -- energy per action ----------------------------------------------------------------------

def test_register_and_sram_energy_per_action():
    # 3 x 8-bit + 2 x 32-bit register accesses per MAC at Aladdin's 0.009 pJ/bit
    assert register_pj_per_mac(8, 32) == pytest.approx(88 * 0.009)
    assert PRESETS["gemmini"].rf_pj_per_mac == pytest.approx(0.792)
    # log-log between Horowitz's points: sqrt scaling from 8 to 32 KB
    assert sram_pj_per_byte(16) == pytest.approx(10 * math.sqrt(2) / 8)
    assert sram_pj_per_byte(64) == pytest.approx(20 * 2 ** (math.log(5) / math.log(32)) / 8)
    assert sram_pj_per_byte(1) > 0
