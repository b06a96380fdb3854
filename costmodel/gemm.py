"""Dense GEMMs on the whole PE array: a systolic array mapped by `costmodel.mapping`, or ViTCoD's
MAC lines; and an operator's batches and repeats of one GEMM, as an `OpCost`.

GEMM OUT[M, N] = A[M, K] @ B[K, N] (SCALE-Sim conventions). On a systolic array (`pe_array:
systolic`) the mapping mode of the hardware (`scalesim`, `gemmini` or `search`) picks the
tiling, loop order, dataflow and overlaps and costs them (costmodel.mapping). MAC lines
(`pe_array: lines`, ViTCoD's array) are costed here, after ViTCoD's simulator (sources in
costmodel.sparse_engine). Both are cached per GEMM shape and hardware; the sparse attention
engines (costmodel.sparse_engine) use this module for the products they hand to the whole array.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from functools import lru_cache

from costmodel.cost import OpCost, energy_pj
from costmodel.hardware import HardwareConfig
from costmodel.mapping import GemmCost, map_gemm
from costmodel.sparsity import PatternSparsity
from costmodel.workload import PROJECTION, QK, Op

# Fields a GEMM's mapping and cost never read (costmodel.mapping reads the array, buffers, DRAM
# bus, mapping mode and energy per action): hardware that differs only in them shares its GEMM
# mappings (`gemm_view`), e.g. the same accelerator with its non-linear units on chip or on
# the host, two points of a hardware search space (costmodel.hwspace).
GEMM_BLIND_FIELDS = ("sfu", "sfu_lanes", "sfu_cycles_per_element", "host_clock_hz",
                     "host_cycles_softmax", "host_cycles_layernorm", "host_cycles_gelu",
                     "host_cycles_add", "host_cycles_quant", "sparse_engine",
                     "sparse_pe_fraction", "sparse_allocation", "attention_fusion",
                     "qk_compression", "attention_lanes", "head_timing", "diag_pes",
                     "preproc_lanes", "taylor_pipeline")
_BLIND_DEFAULTS = {f.name: f.default for f in fields(HardwareConfig)
                   if f.name in GEMM_BLIND_FIELDS}


@lru_cache(maxsize=4096)
def gemm_view(hw: HardwareConfig) -> HardwareConfig:
    """`hw` with the fields GEMMs never read set to their defaults (and one name): the key
    under which `map_gemm` caches, so that such hardware shares GEMM mappings."""
    if all(getattr(hw, f) == v for f, v in _BLIND_DEFAULTS.items()) and hw.name == "gemm-view":
        return hw
    return replace(hw, name="gemm-view", description="", **_BLIND_DEFAULTS)


def gemm_cost(m: int, k: int, n: int, hw: HardwareConfig, bias: bool = False,
              batch: int = 1) -> GemmCost:
    """One M x K x N GEMM instance on the systolic array of `hw`, mapped by `hw.mapping`
    (costmodel.mapping, cached per shape and per `gemm_view` of `hw`). `bias`: the layer has a
    bias (moved in by Gemmini's tiler); `batch`: instances run back to back (what the search
    optimises)."""
    return map_gemm(m, k, n, gemm_view(hw), hw.rows, bias and hw.mapping == "gemmini",
                    batch if hw.mapping == "search" else 1)


@lru_cache(maxsize=65536)
def lines_gemm_cost(m: int, k: int, n: int, hw: HardwareConfig) -> GemmCost:
    """OUT[m, n] = A[m, k] @ B[k, n] on `rows` MAC lines of `cols` MACs (ViTCoD's array).

    The lines take `rows` outputs of one row of A at a time (A's values broadcast, each line
    reading its own column of B) and sum over K in their adder trees (no partial sums in the
    accumulator: each output is written once and drained once). B stays on chip in blocks of
    tn columns, next to `rows` rows of A (double-buffered); A is read once per block, B and the
    output once.
    """
    lines, width, ib = hw.rows, hw.cols, hw.in_bytes
    compute = math.ceil(m * n / lines) * math.ceil(k / width)   # ceil(M*N/lines) * ceil(K/width)
    room = hw.scratchpad_bytes // hw.buffers - lines * k * ib
    tn = max(1, min(n, room // (k * ib)))
    dram_a, dram_b, dram_out = m * k * ib * math.ceil(n / tn), k * n * ib, m * n * ib
    dram = (dram_a + dram_b + dram_out) / hw.dram_bytes_per_cycle
    # first A rows and B block in, last outputs out: not hidden by double buffering
    exposed = (lines * k + k * tn + lines * tn) * ib / hw.dram_bytes_per_cycle
    if not hw.double_buffer:
        compute, dram, exposed = compute + dram, 0.0, 0.0
    macs = m * k * n
    return GemmCost(compute=compute, dram=dram, exposed=exposed, dram_a=dram_a, dram_b=dram_b,
                    dram_out=dram_out, sp_read=(macs + macs / lines) * ib,
                    sp_write=dram_a + dram_b, acc_read=0.0, acc_write=m * n * hw.acc_bytes,
                    tile=(lines, k, tn), acc_drain=m * n * hw.acc_bytes)


def array_gemm_cost(m: int, k: int, n: int, hw: HardwareConfig, bias: bool = False,
                    batch: int = 1) -> GemmCost:
    """A dense GEMM on the whole PE array, whichever kind it is: MAC lines, or a systolic
    array mapped as `hw.mapping` says (`bias`: the layer adds one; `batch`: instances run back
    to back, which the mapping search ranks by)."""
    if hw.pe_array == "lines":
        return lines_gemm_cost(m, k, n, hw)
    return gemm_cost(m, k, n, hw, bias=bias, batch=batch)


def batched(g: GemmCost, batch: int, repeat: int, macs: float, hw: HardwareConfig,
            dense: float = 0.0, sparse: float = 0.0) -> OpCost:
    """`batch` back-to-back instances of `g` (transfers of one overlap compute of the next)
    repeated `repeat` times (separated by other operators: the exposed transfer is paid each
    time); `macs` per instance; `dense` / `sparse`: engine cycles per instance to report."""
    count = batch * repeat
    cycles = repeat * (batch * g.steady + g.exposed)
    energy = energy_pj(hw, cycles, macs=macs * count, sp=g.sp_bytes * count,
                       acc=g.acc_bytes * count, dram=g.dram_bytes * count)
    return OpCost(cycles=cycles, bound="compute" if g.compute >= g.dram else "memory",
                  utilization=macs * count / (cycles * hw.pes) if cycles else 0.0,
                  dram_bytes=g.dram_bytes * count, compute_cycles=g.compute * count,
                  memory_cycles=g.dram * count, dense_engine_cycles=dense * count,
                  sparse_engine_cycles=sparse * count, host_cycles=0.0,
                  traffic=g.traffic(count), energy=energy,
                  mapping=g.mapping.to_dict() if g.mapping else None)


def dense_gemm_op_cost(op: Op, hw: HardwareConfig) -> OpCost:
    """A GEMM operator on the whole array (a layer with a bias is a projection; systolic arrays
    map it as hw.mapping says)."""
    g = array_gemm_cost(op.m, op.k, op.n, hw, bias=op.cls == PROJECTION, batch=op.batch)
    return batched(g, op.batch, op.repeat, op.m * op.k * op.n, hw)


def kept_scores_op_cost(op: Op, hw: HardwareConfig, sp: PatternSparsity) -> OpCost:
    """A sparse kind's Q.K^T or A.V on hardware without a sparse engine: the kept scores only,
    as a dense GEMM of the same work (each query's ceil(kept / q) kept keys in one dense row)."""
    q, ctx = (op.m, op.n) if op.product == QK else (op.m, op.k)
    keys = max(1, math.ceil(sp.kept(q, ctx) / q))
    shape = (q, op.k, keys) if op.product == QK else (q, keys, op.n)
    g = array_gemm_cost(*shape, hw, batch=op.batch)
    return batched(g, op.batch, op.repeat, shape[0] * shape[1] * shape[2], hw)


__all__ = ["GEMM_BLIND_FIELDS", "gemm_view", "gemm_cost", "lines_gemm_cost", "array_gemm_cost",
           "batched", "dense_gemm_op_cost", "kept_scores_op_cost"]
