"""ViTCoD's dense + sparse attention engines and MAC-line array (You et al., HPCA 2023).

Sources: the ViTCoD simulator (github.com/GATECH-EIC/ViTCoD, Hardware/Simulator/: ViTCoD.py for
attention, ViT_FFN.py for linear and MLP layers, SRAM.py for the memory system, reorder.py for
the dense/sparse split) and its run log on DeiT-Tiny with the 95% masks (seed 000). The presets
`vitcod` (the 64 x 8 hardware) and `vitcod-sim` (the simulator's own counting) say which number
comes from where; this docstring says which rule does.

MAC lines (`pe_array: lines`, costed by `costmodel.gemm.lines_gemm_cost`). The array is `rows`
lines of `cols` MACs (ViTCoD: PE_width = 64 lines of PE_height = 8). A line reduces `cols`
products per cycle into one output (adder tree); the lines work on different outputs. A dense
GEMM OUT[M, N] = A[M, K] @ B[K, N] takes ceil(M*N / rows) * ceil(K / cols) cycles: every MAC
busy when the lines divide the outputs, as ViT_FFN.py counts linear and MLP layers (MACs / 512).
No weight preload, fill or drain.

Split (costmodel.sparsity). After ViTCoD's reordering, head h's q x ctx attention map has G_h
dense ("global token") columns, computed whole on the dense engine, and nnz_h non-zeros in the
other columns, on the sparse engine; a column is dense when more than 50 of 197 rows keep it.

Heads and lanes. Heads run in parallel ("head parallel", ViTCoD.py), each on lanes / heads MAC
lanes: every line gives each head w = lanes / (rows * heads) MACs (lanes = `attention_lanes`,
or rows * cols). Each head's lines are split between its engines: `dynamic` (ViTCoD.py) gives
the dense engine int(rows * G*q / (G*q + nnz)) lines, at least one to each engine that has
work; `fixed` gives it the rows that `sparse_pe_fraction` leaves.

Compute, per head (ViTCoD.py's loops; Ld dense lines, Ls sparse lines, d = head dimension):
    Q.K^T (SDDMM)  dense   G * ceil(q / Ld) * ceil(d / w)   a line computes one score at a time
                   sparse  ceil(nnz / Ls) * ceil(d / w)
    A.V (SpMM)     dense   ceil(q * d * G / int(Ld * w))    the engine's MACs pooled
                   sparse  ceil(nnz * d / int(Ls * w))
The engines work at once: a product takes the longer of the two. With `head_timing: slowest`
an attention product lasts as long as its slowest head; with `first`, as head 0 (ViTCoD.py
simulates head 0 only).

Q/K compression (`qk_compression` r). ViTCoD's auto-encoder stores the heads' Q and K as
heads * r channels (r = 2/3 for DeiT-Tiny's 3 heads: ViTCoD.py `ratio = 2/3`); the decoder
rebuilds them on the PE lines before the SDDMM, ceil(heads * r * d / int(rows*cols / heads))
cycles per token of Q and of K (ViTCoD.py's "decoder" cycles, on one head's share of the MACs),
serial with the engines' work, as ViTCoD.py adds it to the compute side. The projections that
produce Q and K keep writing them uncompressed (their encoder is not modelled: ViT_FFN.py
charges it nothing either).

Memory. Q.K^T reads the compressed Q and K and the sparse pattern (2 bytes per non-zero: row
and column indices of 8 bits, ViTCoD.py's preload_index); A.V reads V and writes its output.
Transfers overlap the engines (double-buffered loads, as ViTCoD.py's max(preloading,
processing + computation)); a product lasts max(its transfers, its engines' work).
Unfused (`attention_fusion: false`), Q.K^T writes every score it computes to DRAM (the dense
block, and the non-zeros with their indices) and A.V reads them back; the scheduler then runs a
product as a dense GEMM on the whole array when that is faster.
Fused, Q.K^T -> softmax -> A.V is one kernel per sequence whose scores never leave the chip
(the softmax runs on them in place, costmodel.simulate): the kernel lasts max(all its
transfers, decoding + SDDMM + SpMM). Q.K^T is charged max(its own transfers, decoding + SDDMM),
A.V the rest of the kernel, so that the two products add up to it. Fused hardware runs dense
attention on its engines too (every column dense).

Energy actions: one MAC per product (plus the decoder's heads * r MACs per rebuilt value); in
the scratchpad, every loaded byte written once, one streamed operand read per MAC, the
stationary operand (K rows, for K-stationary SDDMM as ViTCoD.py's comments say) read once, the
pattern read by each product; in the accumulator, every score written once and read by A.V
(unfused: read out to DRAM), A.V's outputs written once and read out once.

Why `vitcod-sim` does not give ViTCoD's log exactly: its simulator overlaps the whole model's
loads with the whole model's compute (the max of 12-layer totals), where a layer's Q, K, V
exist only after the layer before it; it rounds every token's load up to a whole cycle (a
128-byte compressed K row is 1 cycle, a 192-byte V row 2 cycles at 165 B/cycle); and it loads
no sparse pattern and stores no attention output. We overlap within one layer's kernel and
count bytes / bandwidth, the pattern and the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from costmodel.cost import OpCost, energy_pj
from costmodel.gemm import array_gemm_cost, batched
from costmodel.hardware import HardwareConfig
from costmodel.sparsity import AttentionSparsity
from costmodel.workload import QK, Op

INDEX_BYTES = 2   # per non-zero of a sparse attention map: 8-bit row and column (ViTCoD.py)


def _ceil(x: float) -> int:
    """ceil, deaf to float noise: 64 / (64 / 3) is 3, not 4."""
    return math.ceil(round(x, 9))


# -- one head on the two engines -----------------------------------------------------------------

@dataclass(frozen=True)
class HeadWork:
    """Busy cycles of one head's engines for Q.K^T (SDDMM) and A.V (SpMM)."""
    sddmm_dense: int
    sddmm_sparse: int
    spmm_dense: int
    spmm_sparse: int

    @property
    def sddmm(self) -> int:
        return max(self.sddmm_dense, self.sddmm_sparse)

    @property
    def spmm(self) -> int:
        return max(self.spmm_dense, self.spmm_sparse)


def split_lines(glob: int, nnz: float, q: int, hw: HardwareConfig) -> tuple[int, int]:
    """(dense lines, sparse lines) of one head: fixed, or ViTCoD's dynamic allocation."""
    rows = hw.rows
    if hw.sparse_allocation == "fixed":
        return rows - hw.sparse_rows, hw.sparse_rows
    if not nnz:
        return rows, 0
    if not glob:
        return 0, rows
    dense = int(rows * glob * q / (glob * q + nnz))   # ViTCoD.py: int(PE_width * dense_ratio)
    dense = min(max(dense, 1), rows - 1)
    return dense, rows - dense


def head_work(glob: int, nnz: float, q: int, d: int, heads: int,
              hw: HardwareConfig) -> HeadWork:
    """ViTCoD.py's cycle counts of one head (see the module docstring for the formulas)."""
    dense_lines, sparse_lines = split_lines(glob, nnz, q, hw)
    w = hw.engine_lanes / (hw.rows * heads)        # MACs of one line per head
    per_score = _ceil(d / w)                       # a line's cycles for one score
    return HeadWork(
        sddmm_dense=glob * _ceil(q / dense_lines) * per_score if glob else 0,
        sddmm_sparse=_ceil(nnz / sparse_lines) * per_score if nnz else 0,
        spmm_dense=_ceil(q * d * glob / max(1, int(dense_lines * w))) if glob else 0,
        spmm_sparse=_ceil(nnz * d / max(1, int(sparse_lines * w))) if nnz else 0)


def decoder_cycles(tokens: int, heads: int, d: int, hw: HardwareConfig) -> int:
    """Rebuilding compressed Q or K rows: ceil(heads*r*d / int(PEs / heads)) cycles per token."""
    if hw.qk_compression >= 1.0:
        return 0
    return tokens * _ceil(heads * hw.qk_compression * d / max(1, hw.pes // heads))


# -- the attention kernel of one sequence ---------------------------------------------------------

@dataclass(frozen=True)
class ProductCost:
    """One attention product (all heads of one sequence) on the engines."""
    cycles: float
    busy: float                 # decoder + engines of the timed head
    memory: float               # DRAM transfer cycles of this product's own traffic
    dense: float                # dense engine busy cycles (the timed head)
    sparse: float               # sparse engine busy cycles (the timed head)
    macs: float                 # every head's
    traffic: dict[str, float] = field(default_factory=dict, compare=False, hash=False)

    @property
    def dram_bytes(self) -> float:
        return sum(v for k, v in self.traffic.items() if k.startswith("dram"))


@dataclass(frozen=True)
class AttentionKernel:
    qk: ProductCost
    av: ProductCost


@lru_cache(maxsize=16384)
def attention_kernel(q: int, ctx: int, d: int, heads: int, layer: int | None,
                     hw: HardwareConfig, sp: AttentionSparsity | None) -> AttentionKernel:
    """Q.K^T and A.V of one sequence's `heads` heads (q queries, ctx keys, head dimension d)."""
    splits = sp.head_splits(q, ctx, layer, heads) if sp is not None else ((ctx, 0.0),) * heads
    each = {s: head_work(*s, q, d, heads, hw) for s in dict.fromkeys(splits)}  # heads alike
    work = [each[s] for s in splits]

    def timed(values: list[float]) -> float:      # the head the product waits for
        return values[0] if hw.head_timing == "first" else max(values)

    ib, acc, bw, fused = hw.in_bytes, hw.acc_bytes, hw.dram_bytes_per_cycle, hw.attention_fusion
    r = hw.qk_compression
    scores = sum(q * g + nnz for g, nnz in splits)            # computed scores, all heads
    index = sum(nnz for _, nnz in splits) * INDEX_BYTES      # the sparse pattern
    q_bytes, k_bytes = q * heads * d * r * ib, ctx * heads * d * r * ib   # compressed
    outputs = q * heads * d                                  # A.V's output values
    v_bytes, out_bytes = ctx * heads * d * ib, outputs * ib
    score_bytes = 0.0 if fused else scores * ib + index       # unfused: to DRAM and back
    rebuilt = (q + ctx) * heads * d * ib if r < 1.0 else 0.0  # decoded Q and K rows
    decode = decoder_cycles(q + ctx, heads, d, hw)
    macs = scores * d

    qk_traffic = {"dram_read_a": q_bytes, "dram_read_b": k_bytes + index,
                  "dram_write": score_bytes,
                  "scratchpad_write": q_bytes + k_bytes + index + rebuilt,
                  "scratchpad_read": (q_bytes + k_bytes if r < 1.0 else 0.0) + macs * ib
                                     + ctx * heads * d * ib + index,
                  "accumulator_write": scores * acc,
                  "accumulator_read": 0.0 if fused else scores * acc}
    av_traffic = {"dram_read_a": score_bytes, "dram_read_b": v_bytes, "dram_write": out_bytes,
                  "scratchpad_write": v_bytes + score_bytes,
                  "scratchpad_read": macs * ib + index,
                  "accumulator_write": outputs * acc,
                  "accumulator_read": scores * acc + outputs * acc}
    qk_memory = sum(v for k, v in qk_traffic.items() if k.startswith("dram")) / bw
    av_memory = sum(v for k, v in av_traffic.items() if k.startswith("dram")) / bw
    qk_busy = decode + timed([w.sddmm for w in work])
    qk_cycles = max(qk_memory, qk_busy)
    if fused:   # one kernel: A.V gets what the kernel takes beyond Q.K^T's own time
        busy = decode + timed([w.sddmm + w.spmm for w in work])
        av_busy = busy - qk_busy
        av_cycles = max(qk_memory + av_memory, busy) - qk_cycles
    else:
        av_busy = timed([w.spmm for w in work])
        av_cycles = max(av_memory, av_busy)
    decoder_macs = (q + ctx) * heads * d * heads * r if r < 1.0 else 0.0
    return AttentionKernel(
        qk=ProductCost(qk_cycles, qk_busy, qk_memory, timed([w.sddmm_dense for w in work]),
                       timed([w.sddmm_sparse for w in work]), macs + decoder_macs, qk_traffic),
        av=ProductCost(av_cycles, av_busy, av_memory, timed([w.spmm_dense for w in work]),
                       timed([w.spmm_sparse for w in work]), macs, av_traffic))


def attention_product_cost(op: Op, hw: HardwareConfig, sp: AttentionSparsity | None) -> OpCost:
    """Cost of an attention product op (`op.product` "qk" or "av") on the engines: its part of
    each sequence's kernel, times the sequences and repeats. Unfused, a product runs as a dense
    GEMM on the whole array instead when that is faster (the scheduler's choice)."""
    heads = op.heads or 1
    is_qk = op.product == QK
    q, d, ctx = (op.m, op.k, op.n) if is_qk else (op.m, op.n, op.k)
    kernel = attention_kernel(q, ctx, d, heads, op.layer, hw, sp)
    part = kernel.qk if is_qk else kernel.av
    count = op.batch // heads * op.repeat
    cycles = part.cycles * count
    if part.memory >= part.busy:
        bound = "memory"
    else:
        bound = "sparse" if part.sparse > part.dense else "compute"
    traffic = {k: v * count for k, v in part.traffic.items()}
    energy = energy_pj(hw, cycles, macs=part.macs * count,
                       sp=traffic["scratchpad_read"] + traffic["scratchpad_write"],
                       acc=traffic["accumulator_read"] + traffic["accumulator_write"],
                       dram=part.dram_bytes * count)
    on_engines = OpCost(cycles=cycles, bound=bound,
                        utilization=part.macs * count / (cycles * hw.engine_lanes) if cycles
                        else 0.0, dram_bytes=part.dram_bytes * count,
                        compute_cycles=part.busy * count, memory_cycles=part.memory * count,
                        dense_engine_cycles=part.dense * count,
                        sparse_engine_cycles=part.sparse * count, host_cycles=0.0,
                        traffic=traffic, energy=energy)
    if hw.attention_fusion:
        return on_engines
    full = array_gemm_cost(op.m, op.k, op.n, hw)
    on_array = batched(full, op.batch, op.repeat, op.m * op.k * op.n, hw, full.compute, 0.0)
    return on_engines if on_engines.cycles <= on_array.cycles else on_array


__all__ = ["INDEX_BYTES", "HeadWork", "split_lines",
           "head_work", "decoder_cycles", "ProductCost", "AttentionKernel", "attention_kernel",
           "attention_product_cost"]
