"""Property tests of the simulator (hypothesis): lower bounds and monotonicity."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.hardware import PRESETS, HardwareConfig
from costmodel.simulate import op_cost, simulate
from costmodel.sparsity import AttentionSparsity
from costmodel.workload import ACT_MATMUL, GEMM, NONLINEAR, NONLINEAR_KINDS, PROJECTION, Op, Workload
from nas.core.arch import Arch

dims = st.integers(min_value=1, max_value=1500)
presets = st.sampled_from(sorted(PRESETS))


def gemm(m, k, n, batch=1):
    return Op(name="g", kind=GEMM, cls=PROJECTION, layer=0, phase="encoder", m=m, k=k, n=n,
              batch=batch)


def assert_energy_counts_actions(c, hw: HardwareConfig, macs: float) -> None:
    """Every MAC, every DRAM byte and the op's own time are charged at the configured rates."""
    assert c.energy["mac"] == pytest.approx(macs * hw.mac_pj)
    assert c.energy["dram"] == pytest.approx(c.dram_bytes * hw.dram_pj_per_byte)
    assert c.energy["static"] == pytest.approx(hw.static_power_w * c.cycles / hw.clock_hz * 1e12)


@settings(max_examples=150, deadline=None)
@given(m=dims, k=dims, n=dims, batch=st.integers(1, 4), hw=presets)
def test_cycles_bounded_below_by_peak_compute_and_bandwidth(m, k, n, batch, hw):
    hw = PRESETS[hw]
    c = op_cost(gemm(m, k, n, batch), hw)
    assert c.cycles >= m * k * n * batch / hw.pes
    assert c.cycles >= c.dram_bytes / hw.dram_bytes_per_cycle - 1e-6
    assert c.dram_bytes >= (m * k + k * n + m * n) * batch * hw.in_bytes
    assert 0 < c.utilization <= 1 and c.bound in ("compute", "memory")
    assert_energy_counts_actions(c, hw, m * k * n * batch)


@settings(max_examples=100, deadline=None)
@given(rows=dims, width=dims, repeat=st.integers(1, 3), kind=st.sampled_from(NONLINEAR_KINDS),
       hw=presets)
def test_nonlinear_ops_bounded_below_by_bandwidth_and_lanes(rows, width, repeat, kind, hw):
    hw = PRESETS[hw]
    c = op_cost(Op(name="x", kind=kind, cls=NONLINEAR, layer=0, phase="encoder", m=rows, n=width,
                   repeat=repeat), hw)
    assert c.cycles >= c.dram_bytes / hw.dram_bytes_per_cycle - 1e-6
    if not (kind == "softmax" and hw.attention_fusion):   # fused: scores stay on chip
        assert c.dram_bytes >= 2 * rows * width * repeat * hw.in_bytes
    if c.bound != "host":
        assert c.cycles >= rows * width * repeat / hw.sfu_lanes
    assert_energy_counts_actions(c, hw, macs=0)


@settings(max_examples=100, deadline=None)
@given(m=dims, k=dims, n=dims, small=st.sampled_from([4, 8, 16]), factor=st.sampled_from([2, 4]),
       dataflow=st.sampled_from(["ws", "os"]))
def test_larger_array_never_slows_a_compute_bound_gemm(m, k, n, small, factor, dataflow):
    """Same buffers and ample bandwidth (compute-bound): a bigger array is never slower on a
    GEMM that fills it. (On GEMMs smaller than the array it can be: fill and drain grow with the
    array, 2R + C - 2 cycles per fold, as in SCALE-Sim.)"""
    big = small * factor
    m, k, n = max(m, big), max(k, big), max(n, big)

    def hw(size):
        return HardwareConfig(rows=size, cols=size, dataflow=dataflow, dram_bytes_per_cycle=1e9,
                              scratchpad_kib=1024, accumulator_kib=1024)
    small_c = op_cost(gemm(m, k, n), hw(small))
    big_c = op_cost(gemm(m, k, n), hw(big))
    assert small_c.bound == "compute"
    assert big_c.cycles <= small_c.cycles


@settings(max_examples=60, deadline=None)
@given(seq=st.integers(8, 400), heads=st.integers(1, 4), head_dim=st.sampled_from([32, 64]),
       s1=st.floats(0.0, 0.99), s2=st.floats(0.0, 0.99),
       pattern=st.sampled_from(["global-local", "random"]))
def test_more_attention_sparsity_never_adds_attention_cycles(seq, heads, head_dim, s1, s2,
                                                             pattern):
    lo, hi = sorted((s1, s2))
    arch = Arch.uniform(1, 64, heads, 128, head_dim)
    hw, wl = PRESETS["vitcod"], Workload(seq=seq)

    def attention_cycles(sparsity):
        rep = simulate(arch, hw, wl, sparsity)
        return sum(c.cycles for c in rep.ops if c.op.cls == ACT_MATMUL or c.op.kind == "softmax")

    dense = attention_cycles(None)
    less = attention_cycles(AttentionSparsity(lo, pattern=pattern))
    more = attention_cycles(AttentionSparsity(hi, pattern=pattern))
    assert more <= less + 1e-9 <= dense + 2e-9
