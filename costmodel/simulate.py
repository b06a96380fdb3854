"""Cycles, energy and EDP of every operator on a Gemmini-like accelerator (analytic, per op).

The cost of an operator is a pure function of (op, hardware, sparsity), and a model's totals are
exact sums over its operators (static energy = static power x that operator's own time), so
lookup tables can simulate each group of operators once and add. Every operator reads its
inputs from DRAM and writes its output back (layer-by-layer schedule, no fusion).

GEMM OUT[M, N] = A[M, K] @ B[K, N] on an R x C array (SCALE-Sim conventions):
- weight-stationary (WS): a fold preloads an R x C block of B, then streams the M rows of the
  tile through it; fold = 2R + C + M_tile - 2 cycles (preload R, fill R, drain C), as SCALE-Sim
  3.0.0 computes it; ceil(K/R) x ceil(N/C) folds per M tile.
- output-stationary (OS): each R x C output tile streams K: K + R + C - 2 cycles per K tile.
- Tiles (tm, tk, tn) are chosen to fit the scratchpad (A and B tiles) and the accumulator (int32
  output tile), double-buffered; DRAM traffic per operand follows from the tiling and loop
  order; with double buffering transfers overlap compute, except the first load and last store.
Non-linear operators run on special-function units (lanes x passes over the data) or on the
host CPU (data moved to the host and back, dequantize/requantize, host compute).
Attention products can run on a ViTCoD-like dense + sparse engine pair (see costmodel.sparsity).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from costmodel.hardware import HardwareConfig
from costmodel.sparsity import AttentionSparsity
from costmodel.workload import (ACT_MATMUL, ADD, GELU, GEMM, LAYERNORM, SOFTMAX, Op, Workload,
                                model_ops)
from nas.core.arch import Arch

SIMULATOR_VERSION = "1.0"   # bump whenever a cost formula changes (lookup tables check it)

# Passes an SFU makes over the data of one element (Kim et al. 2023 Sec. 3.3: reductions read
# the accumulator several times): softmax = max, exp+sum, normalise; LayerNorm = mean, variance,
# normalise (I-BERT); GELU and residual add are one element-wise pass.
SFU_PASSES = {SOFTMAX: 3, LAYERNORM: 3, GELU: 1, ADD: 1}
# Integer operations per element, for SFU energy (I-BERT, Kim et al. ICML 2021): softmax = max 1,
# i-exp 6 (shift + 2nd-order polynomial), normalise 2; LayerNorm = mean 1, variance 2, normalise 3;
# i-GELU = sign/clip + 2nd-order polynomial for erf + multiply = 6; add = add + requantise = 2.
SFU_OPS_PER_ELEMENT = {SOFTMAX: 9, LAYERNORM: 6, GELU: 6, ADD: 2}
HOST_KINDS = (SOFTMAX, LAYERNORM, GELU)   # residual adds stay on chip (Gemmini's accumulator add)
INDEX_BYTES = 2                           # column index per non-zero of a sparse attention map
PJ = 1e-12


@dataclass(frozen=True)
class OpCost:
    op: Op
    cycles: float                 # accelerator cycles for the whole op (all batches and repeats)
    energy_pj: float
    bound: str                    # "compute", "memory", "sfu", "host" or "sparse"
    utilization: float            # of the unit that runs the op (PE array, SFU lanes; 0 on host)
    dram_bytes: float
    sram_bytes: float             # scratchpad + accumulator reads and writes
    compute_cycles: float = 0.0   # array / SFU / engines busy, summed over batches and repeats
    memory_cycles: float = 0.0    # DRAM transfer time, summed
    dense_engine_cycles: float = 0.0   # sparse-engine hardware: dense engine (attention products)
    sparse_engine_cycles: float = 0.0  # sparse-engine hardware: sparse engine
    host_cycles: float = 0.0      # host CPU time, in accelerator cycles
    energy: dict = field(default_factory=dict, compare=False, hash=False)  # pJ by component
    traffic: dict = field(default_factory=dict, compare=False, hash=False)  # bytes by operand

    def to_dict(self) -> dict:
        return {"name": self.op.name, "kind": self.op.kind, "class": self.op.cls,
                "phase": self.op.phase, "layer": self.op.layer, "shape": self.op.shape,
                "cycles": self.cycles, "energy_pj": self.energy_pj, "bound": self.bound,
                "utilization": self.utilization, "dram_bytes": self.dram_bytes,
                "sram_bytes": self.sram_bytes, "compute_cycles": self.compute_cycles,
                "memory_cycles": self.memory_cycles,
                "dense_engine_cycles": self.dense_engine_cycles,
                "sparse_engine_cycles": self.sparse_engine_cycles,
                "host_cycles": self.host_cycles, "energy_breakdown_pj": dict(self.energy),
                "traffic_bytes": dict(self.traffic)}


# -- GEMM -----------------------------------------------------------------------------------

class GemmCost(NamedTuple):
    """One M x K x N GEMM instance on an array with `rows` rows (not yet repeated/batched)."""
    compute: float        # array busy cycles
    dram: float           # DRAM transfer cycles
    exposed: float        # transfers not hidden by double buffering (first load + last store)
    dram_a: float         # bytes of A read from DRAM
    dram_b: float         # bytes of B read from DRAM
    dram_out: float       # bytes of the output written to DRAM
    sp_read: float
    sp_write: float
    acc_read: float
    acc_write: float
    tile: tuple[int, int, int]

    @property
    def cycles(self) -> float:
        return max(self.compute, self.dram) + self.exposed

    @property
    def dram_bytes(self) -> float:
        return self.dram_a + self.dram_b + self.dram_out

    def traffic(self, count: int = 1) -> dict[str, float]:
        """Bytes per operand and buffer, for `count` instances."""
        return {"dram_read_a": self.dram_a * count, "dram_read_b": self.dram_b * count,
                "dram_write": self.dram_out * count, "scratchpad_read": self.sp_read * count,
                "scratchpad_write": self.sp_write * count,
                "accumulator_read": self.acc_read * count,
                "accumulator_write": self.acc_write * count}


def _tile_sizes(total: int, unit: int) -> list[int]:
    """Whole dimension, and multiples of the array size halving down to one array width."""
    sizes, t = {total}, unit
    while t < total:
        sizes.add(t)
        t *= 2
    return sorted(sizes)


def ws_compute_cycles(m: int, k: int, n: int, rows: int, cols: int, tm: int) -> float:
    """WS: ceil(K/R) * ceil(N/C) folds per M tile, fold = 2R + C + tm - 2 (SCALE-Sim 3.0.0)."""
    m_tiles = math.ceil(m / tm)
    return math.ceil(k / rows) * math.ceil(n / cols) * (m_tiles * (2 * rows + cols - 2) + m)


def os_compute_cycles(m: int, k: int, n: int, rows: int, cols: int, tk: int) -> float:
    """OS: ceil(M/R) * ceil(N/C) output tiles, each K + R + C - 2 cycles per K tile (SCALE-Sim)."""
    return math.ceil(m / rows) * math.ceil(n / cols) * (k + math.ceil(k / tk) * (rows + cols - 2))


def _dram_traffic(m: int, k: int, n: int, tm: int, tk: int, tn: int) -> tuple[int, int]:
    """Elements of A and B read from DRAM, best of the two output-tile loop orders (K innermost,
    partial sums stay in the accumulator): an operand tile that does not change between
    consecutive iterations is not re-read."""
    mt, nt = math.ceil(m / tm), math.ceil(n / tn)
    # M outer, N inner: the A row-block stays when it spans all of K
    a1 = m * k * (1 if tk == k else nt)
    b1 = k * n * (1 if (tk == k and tn == n) else mt)
    # N outer, M inner: the B column-block stays when it spans all of K
    b2 = k * n * (1 if tk == k else mt)
    a2 = m * k * (1 if (tk == k and tm == m) else nt)
    return (a1, b1) if a1 + b1 <= a2 + b2 else (a2, b2)


@lru_cache(maxsize=65536)
def gemm_cost(m: int, k: int, n: int, hw: HardwareConfig, rows: int | None = None) -> GemmCost:
    """Best tiling of one GEMM (fewest steady-state cycles, then least DRAM traffic) and its cost."""
    rows = rows or hw.rows
    cols, ib, ab, nbuf = hw.cols, hw.in_bytes, hw.acc_bytes, hw.buffers
    bw = hw.dram_bytes_per_cycle
    best: GemmCost | None = None
    best_rank: tuple = ()
    for tm in _tile_sizes(m, rows):
        for tn in _tile_sizes(n, cols):
            if nbuf * tm * tn * ab > hw.accumulator_bytes:           # int32 output tile
                continue
            for tk in _tile_sizes(k, rows):
                if nbuf * (tm * tk + tk * tn) * ib > hw.scratchpad_bytes:   # A + B tiles
                    continue
                if hw.dataflow == "ws":
                    compute = ws_compute_cycles(m, k, n, rows, cols, tm)
                    k_folds = math.ceil(k / rows)
                    sp_read = (m * k * math.ceil(n / cols) + k * n * math.ceil(m / tm)) * ib
                    acc_rw = m * n * k_folds * ab          # read-modify-write per K fold
                else:
                    compute = os_compute_cycles(m, k, n, rows, cols, tk)
                    sp_read = (m * k * math.ceil(n / cols) + k * n * math.ceil(m / rows)) * ib
                    acc_rw = m * n * math.ceil(k / tk) * ab
                a_el, b_el = _dram_traffic(m, k, n, tm, tk, tn)
                reads, writes = (a_el + b_el) * ib, m * n * ib   # outputs requantised to int8
                dram = (reads + writes) / bw
                if hw.double_buffer:
                    exposed = ((tm * tk + tk * tn) * ib + tm * tn * ib) / bw
                else:
                    compute, dram, exposed = compute + dram, 0.0, 0.0
                cost = GemmCost(compute, dram, exposed, a_el * ib, b_el * ib, writes, sp_read,
                                reads, acc_rw, acc_rw, (tm, tk, tn))
                # steady-state time first, then DRAM traffic (energy), then the exposed prologue
                rank = (max(compute, dram), reads + writes, exposed)
                if best is None or rank < best_rank:
                    best, best_rank = cost, rank
    if best is None:   # cannot happen: HardwareConfig checks the smallest tile fits
        raise AssertionError(f"no tile of {m}x{k}x{n} fits {hw.name}")
    return best


# -- per-op costs ---------------------------------------------------------------------------

class _Cost(NamedTuple):
    cycles: float
    bound: str
    utilization: float
    dram_bytes: float
    compute_cycles: float
    memory_cycles: float
    dense_engine_cycles: float
    sparse_engine_cycles: float
    host_cycles: float
    traffic: dict
    energy: dict


def _energy(hw: HardwareConfig, cycles: float, macs: float = 0, sp: float = 0, acc: float = 0,
            dram: float = 0, sfu_ops: float = 0, host_cycles: float = 0) -> dict:
    """Energy (pJ) = sum of actions x energy per action + static power x the op's time
    (`cycles` in accelerator cycles, `host_cycles` in host clock cycles)."""
    return {"mac": macs * hw.mac_pj, "rf": macs * hw.rf_pj_per_mac,
            "scratchpad": sp * hw.scratchpad_pj_per_byte,
            "accumulator": acc * hw.accumulator_pj_per_byte,
            "dram": dram * hw.dram_pj_per_byte, "sfu": sfu_ops * hw.sfu_pj_per_op,
            "host": host_cycles * hw.host_pj_per_cycle,
            "static": hw.static_power_w * cycles / hw.clock_hz / PJ}


def _batched(g: GemmCost, batch: int, repeat: int, macs: float, hw: HardwareConfig,
             dense: float = 0.0, sparse: float = 0.0, bound: str | None = None) -> _Cost:
    """`batch` back-to-back instances (transfers of one overlap compute of the next) repeated
    `repeat` times (separated by other operators: the exposed transfer is paid each time)."""
    count = batch * repeat
    cycles = repeat * (batch * max(g.compute, g.dram) + g.exposed)
    bound = bound or ("compute" if g.compute >= g.dram else "memory")
    energy = _energy(hw, cycles, macs=macs * count,
                     sp=(g.sp_read + g.sp_write) * count, acc=(g.acc_read + g.acc_write) * count,
                     dram=g.dram_bytes * count)
    util = macs * count / (cycles * hw.pes) if cycles else 0.0
    return _Cost(cycles, bound, util, g.dram_bytes * count, g.compute * count, g.dram * count,
                 dense * count, sparse * count, 0.0, g.traffic(count), energy)


def _sparse_attention_op(op: Op, hw: HardwareConfig, sp: AttentionSparsity) -> _Cost:
    """One attention product per head on the dense + sparse engines (ViTCoD), or on the whole
    array as a dense GEMM if that is faster (the scheduler's choice; never slower than dense)."""
    is_qk = op.product == "qk"
    q, hd = op.m, (op.k if is_qk else op.n)
    ctx = op.n if is_qk else op.k
    glob, nnz = sp.split(q, ctx, op.layer)
    d_rows, s_pes = hw.rows - hw.sparse_rows, hw.sparse_rows * hw.cols
    ib = hw.in_bytes
    # dense engine: the global columns as a GEMM on its share of the rows
    if glob:
        dense = gemm_cost(q, hd, glob, hw, d_rows) if is_qk else gemm_cost(q, glob, hd, hw, d_rows)
    else:
        dense = GemmCost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, (0, 0, 0))
    # sparse engine: one MAC per PE per cycle over the non-zeros outside the dense columns
    sparse_compute = math.ceil(nnz * hd / s_pes)
    # its DRAM traffic: the dense operand (Q, or V) once, the rows it gathers (K, or the sparse
    # scores with a column index per non-zero), and its output (sparse scores + indices, or A.V)
    sparse_scores = nnz * (ib + INDEX_BYTES)
    if not nnz:
        a_bytes = b_bytes = out_bytes = 0.0
    elif is_qk:
        a_bytes, b_bytes, out_bytes = q * hd * ib, ctx * hd * ib, sparse_scores
    else:
        a_bytes, b_bytes, out_bytes = sparse_scores, ctx * hd * ib, q * hd * ib
    sparse_bytes = a_bytes + b_bytes + out_bytes
    compute = max(dense.compute, sparse_compute)
    dram = (dense.dram_bytes + sparse_bytes) / hw.dram_bytes_per_cycle
    split = GemmCost(compute, dram, dense.exposed, dense.dram_a + a_bytes, dense.dram_b + b_bytes,
                     dense.dram_out + out_bytes,
                     dense.sp_read + nnz * hd * ib + nnz * INDEX_BYTES,
                     dense.sp_write + a_bytes + b_bytes, dense.acc_read + nnz * hw.acc_bytes,
                     dense.acc_write + nnz * hw.acc_bytes, dense.tile)
    macs = (q * glob + nnz) * hd
    full = gemm_cost(op.m, op.k, op.n, hw)
    bound = "sparse" if sparse_compute > dense.compute and compute >= split.dram else None
    on_engines = _batched(split, op.batch, op.repeat, macs, hw, dense.compute, sparse_compute,
                          bound)
    on_array = _batched(full, op.batch, op.repeat, op.m * op.k * op.n, hw, full.compute, 0.0)
    return on_engines if on_engines.cycles <= on_array.cycles else on_array


def _nonlinear_op(op: Op, hw: HardwareConfig, kept: float = 1.0) -> _Cost:
    """Softmax / LayerNorm / GELU / add on the SFUs or on the host CPU. `kept` < 1: a sparse
    softmax over the kept scores only."""
    elements = op.elements * kept
    inputs = 2 if op.kind == ADD else 1
    ib, bw = hw.in_bytes, hw.dram_bytes_per_cycle
    dram_bytes = elements * (inputs + 1) * ib                 # read the inputs, write the output
    traffic = {"dram_read_a": elements * ib, "dram_read_b": elements * ib * (inputs - 1),
               "dram_write": elements * ib}
    if hw.sfu == "host" and op.kind in HOST_KINDS:
        transfer = dram_bytes / bw                             # to the host and back over the bus
        host = elements * (hw.host_cycles_per_element(op.kind)
                           + (inputs + 1) * hw.host_cycles_quant)   # compute + dequant/requant
        host_acc_cycles = host * hw.clock_hz / hw.host_clock_hz
        cycles = transfer + host_acc_cycles                    # the host is not overlapped
        energy = _energy(hw, cycles, dram=dram_bytes, host_cycles=host)
        return _Cost(cycles, "host", 0.0, dram_bytes, 0.0, transfer, 0.0, 0.0, host_acc_cycles,
                     traffic, energy)
    passes = SFU_PASSES[op.kind]
    compute = math.ceil(elements * passes * hw.sfu_cycles_per_element / hw.sfu_lanes)
    memory = dram_bytes / bw
    if hw.double_buffer:
        exposed = op.n * (inputs + 1) * ib / bw * op.repeat  # first row in, last row out
        cycles = max(compute, memory) + exposed
    else:
        cycles = compute + memory
    # inputs pass through the scratchpad into the accumulator (int32); each pass reads the
    # accumulator, the result is written back once and leaves through the scratchpad
    traffic.update(scratchpad_write=elements * ib * inputs, scratchpad_read=elements * ib,
                   accumulator_write=elements * hw.acc_bytes * (inputs + 1),
                   accumulator_read=elements * hw.acc_bytes * passes)
    acc = traffic["accumulator_write"] + traffic["accumulator_read"]
    energy = _energy(hw, cycles, sp=dram_bytes, acc=acc,
                     dram=dram_bytes, sfu_ops=elements * SFU_OPS_PER_ELEMENT[op.kind])
    util = elements * passes * hw.sfu_cycles_per_element / (cycles * hw.sfu_lanes) if cycles else 0
    return _Cost(cycles, "sfu" if compute >= memory else "memory", util, dram_bytes, compute,
                 memory, 0.0, 0.0, 0.0, traffic, energy)


@lru_cache(maxsize=65536)
def _shape_cost(kind: str, cls: str, product: str, m: int, k: int, n: int, batch: int,
                repeat: int, layer: int | None, hw: HardwareConfig,
                sparsity: AttentionSparsity | None) -> _Cost:
    op = Op("", kind, cls, (), layer, "", m, k, n, batch, repeat, product=product)
    if kind == GEMM:
        if sparsity is not None and hw.sparse_engine and cls == ACT_MATMUL:
            return _sparse_attention_op(op, hw, sparsity)
        return _batched(gemm_cost(m, k, n, hw), batch, repeat, m * k * n, hw)
    kept = 1.0
    if kind == SOFTMAX and sparsity is not None and hw.sparse_engine:
        kept = sparsity.kept_fraction(layer)
    return _nonlinear_op(op, hw, kept)


def op_cost(op: Op, hw: HardwareConfig, sparsity: AttentionSparsity | None = None) -> OpCost:
    """Cost of one operator: a pure function of (op shape, hw, sparsity), cached."""
    sparse_here = sparsity is not None and hw.sparse_engine and (
        op.cls == ACT_MATMUL or op.kind == SOFTMAX)
    # only what the cost depends on goes into the cache key
    c = _shape_cost(op.kind, op.cls, op.product if sparse_here else "", op.m, op.k, op.n,
                    op.batch, op.repeat, op.layer if sparse_here and sparsity.per_layer else None, hw,
                    sparsity if sparse_here else None)
    sram = sum(v for k, v in c.traffic.items() if not k.startswith("dram"))
    return OpCost(op, c.cycles, sum(c.energy.values()), c.bound, c.utilization, c.dram_bytes,
                  sram, c.compute_cycles, c.memory_cycles, c.dense_engine_cycles,
                  c.sparse_engine_cycles, c.host_cycles, dict(c.energy), dict(c.traffic))


def simulate_ops(ops: list[Op], hw: HardwareConfig,
                 sparsity: AttentionSparsity | None = None) -> list[OpCost]:
    return [op_cost(op, hw, sparsity) for op in ops]


# -- reports --------------------------------------------------------------------------------

@dataclass
class Report:
    ops: list[OpCost]
    hw: HardwareConfig
    workload: Workload
    sparsity: AttentionSparsity | None = None

    @property
    def cycles(self) -> float:
        return sum(c.cycles for c in self.ops)

    @property
    def seconds(self) -> float:
        return self.cycles / self.hw.clock_hz

    @property
    def energy_j(self) -> float:
        return sum(c.energy_pj for c in self.ops) * PJ

    @property
    def edp(self) -> float:
        """Energy-delay product in J*s."""
        return self.energy_j * self.seconds

    @property
    def latency_ms(self) -> float:
        return self.seconds * 1e3

    @property
    def energy_mj(self) -> float:
        return self.energy_j * 1e3

    def _group(self, key) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(lambda: {"cycles": 0.0, "energy_pj": 0.0})
        for c in self.ops:
            row = out[key(c)]
            row["cycles"] += c.cycles
            row["energy_pj"] += c.energy_pj
        return dict(out)

    def by_class(self) -> dict[str, dict[str, float]]:
        return self._group(lambda c: c.op.cls)

    def by_kind(self) -> dict[str, dict[str, float]]:
        return self._group(lambda c: c.op.kind)

    def by_phase(self) -> dict[str, dict[str, float]]:
        return self._group(lambda c: c.op.phase)

    def energy_breakdown(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for c in self.ops:
            for k, v in c.energy.items():
                out[k] += v
        return dict(out)

    def totals(self) -> dict[str, float]:
        return {"cycles": self.cycles, "seconds": self.seconds, "latency_ms": self.latency_ms,
                "energy_j": self.energy_j, "energy_mj": self.energy_mj, "edp_js": self.edp}

    def to_dict(self) -> dict:
        return {"simulator_version": SIMULATOR_VERSION, "hardware": self.hw.to_dict(),
                "hardware_hash": self.hw.hash(), "workload": vars(self.workload).copy(),
                "sparsity": vars(self.sparsity).copy() if self.sparsity else None,
                "totals": self.totals(), "by_class": self.by_class(),
                "by_phase": self.by_phase(), "energy_breakdown_pj": self.energy_breakdown(),
                "ops": [c.to_dict() for c in self.ops]}


def simulate(arch: Arch, hw: HardwareConfig, workload: Workload,
             sparsity: AttentionSparsity | None = None, rescale_mask: bool = False) -> Report:
    """Simulate every operator of `arch` running `workload` on `hw`. A mask file made for
    another sequence length is a UserError unless `rescale_mask` (see `check_seq`)."""
    if sparsity is not None:
        sparsity.check_seq(workload.seq, rescale_mask)
    return Report(simulate_ops(model_ops(arch, workload), hw, sparsity), hw, workload, sparsity)


__all__ = ["SIMULATOR_VERSION", "OpCost", "Report", "GemmCost", "gemm_cost", "op_cost",
           "simulate_ops", "simulate", "ws_compute_cycles", "os_compute_cycles"]
