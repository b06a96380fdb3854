"""Cycles, energy and EDP of every operator on a Gemmini-like accelerator (analytic, per op).

The cost of an operator is a pure function of (op, hardware, sparsity), and a model's totals are
exact sums over its operators (static energy = static power x that operator's own time), so
lookup tables can simulate each group of operators once and add. Every operator reads its
inputs from DRAM and writes its output back (layer-by-layer schedule, no fusion), except on
hardware that fuses attention (`attention_fusion`): there Q.K^T, softmax and A.V keep the
scores on chip.

GEMM OUT[M, N] = A[M, K] @ B[K, N] on an R x C array (SCALE-Sim conventions): its tiling, loop
order, dataflow and overlaps (its *mapping*) and the cycles and traffic that follow come from
`costmodel.mapping`, by the hardware's `mapping` mode ("scalesim", "gemmini" or "search").
Non-linear operators run on special-function units (lanes x passes over the data) or on the
host CPU (data moved to the host and back, dequantize/requantize, host compute).
Attention products can run on a ViTCoD-like dense + sparse engine pair, fused with their softmax
or not, and GEMMs on ViTCoD's MAC lines instead of a systolic array (costmodel.sparse_engine,
costmodel.sparsity).

Attention kinds (costmodel.workload lists their operators):
- softmax: as above; `sparsity` (--sparsity/--mask: ViTCoD's pruned softmax attention) applies
  to these layers only.
- sparseNN: the kind's own pattern (costmodel.sparsity.PatternSparsity) replaces `sparsity`. On
  hardware with a sparse engine the products run on the engines with the pattern's split (global
  columns dense, window sparse). Elsewhere the array computes the kept scores only, as a dense
  GEMM of the same work: each query's kept keys gathered into one dense row of ceil(kept / q)
  keys (the gather itself is not charged), and the softmax runs over the kept scores.
- taylor: its GEMMs (K^T V, Q G, and the causal chunk products) run on the array (SA-General)
  like any GEMM. Its vector operators run on ViTALiTy's units where the hardware has them
  (`preproc_lanes`: column/prefix sums, centring, reciprocals; `diag_pes`: SA-Diag for the
  normaliser's dot products and the diagonal scaling), else on the SFUs (or the host). With
  `taylor_pipeline` (ViTALiTy's intra-layer pipeline) they work on chunks of `rows` tokens beside
  SA-General with their intermediates on chip: an op is charged only the first chunk's time
  (pipeline fill; ceil(tokens / rows) chunks) and no DRAM traffic. This assumes they keep pace
  with SA-General (the study reports that balance); without the pipeline they read their inputs
  from and write their outputs to DRAM like every other operator.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import NamedTuple

from costmodel.hardware import HardwareConfig
from costmodel.mapping import GemmCost, map_gemm, os_compute_cycles, ws_compute_cycles
from costmodel.sparsity import AttentionSparsity, PatternSparsity
from costmodel.workload import (ACT_MATMUL, ADD, AV, CENTRE, COLSUM, CUMSUM, GELU, GEMM, LAYERNORM,
                                NORM, PROJECTION, QK, RECIP, SCALE, SOFTMAX, TAYLOR_VECTOR_KINDS,
                                Op, Workload, model_ops)
from nas.core.arch import Arch

SIMULATOR_VERSION = "2.0"   # bump whenever a cost formula changes (lookup tables check it)

# Passes an SFU makes over the data of one element (Kim et al. 2023 Sec. 3.3: reductions read
# the accumulator several times): softmax = max, exp+sum, normalise; LayerNorm = mean, variance,
# normalise (I-BERT); GELU and residual add are one element-wise pass.
SFU_PASSES = {SOFTMAX: 3, LAYERNORM: 3, GELU: 1, ADD: 1}
# Integer operations per element, for SFU energy (I-BERT, Kim et al. ICML 2021): softmax = max 1,
# i-exp 6 (shift + 2nd-order polynomial), normalise 2; LayerNorm = mean 1, variance 2, normalise 3;
# i-GELU = sign/clip + 2nd-order polynomial for erf + multiply = 6; add = add + requantise = 2.
SFU_OPS_PER_ELEMENT = {SOFTMAX: 9, LAYERNORM: 6, GELU: 6, ADD: 2}
HOST_KINDS = (SOFTMAX, LAYERNORM, GELU)   # residual adds stay on chip (Gemmini's accumulator add)
PJ = 1e-12

# Taylor attention's vector operators (costmodel.workload), per element of work: integer
# operations (energy at sfu_pj_per_op on SFUs and pre-processors), the ViTALiTy unit that runs
# them, and the host routine of the same cost on `sfu: host`. A sum, a centring subtraction and
# a scaling multiply are 1 op; the normaliser's multiply-add 2; a reciprocal 6 (Newton-Raphson
# from a seed: 2 iterations of 2 multiplies and 1 add; this project's assumption).
TAYLOR_OPS_PER_ELEMENT = {COLSUM: 1, CUMSUM: 1, CENTRE: 1, NORM: 2, RECIP: 6, SCALE: 1}
SA_DIAG_KINDS = (NORM, SCALE)                 # ViTALiTy: "matrix and diagonal matrix" products
TAYLOR_HOST_ROUTINE = {COLSUM: ADD, CUMSUM: ADD, CENTRE: ADD, NORM: ADD, SCALE: ADD,
                       RECIP: LAYERNORM}      # a divide costs like LayerNorm's divide/sqrt


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
    mapping: dict | None = field(default=None, compare=False, hash=False)  # GEMMs: Mapping.to_dict

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
                "traffic_bytes": dict(self.traffic), "mapping": self.mapping,
                **({"attention": self.op.attention} if self.op.attention else {})}


# -- GEMM -----------------------------------------------------------------------------------

# Fields a GEMM's mapping and cost never read (costmodel.mapping reads the array, buffers, DRAM
# bus, mapping mode and energy per action): hardware that differs only in them shares its GEMM
# mappings (`_gemm_view`), e.g. the same accelerator with its non-linear units on chip or on
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
def _gemm_view(hw: HardwareConfig) -> HardwareConfig:
    """`hw` with the fields GEMMs never read set to their defaults (and one name): the key
    under which `map_gemm` caches, so that such hardware shares GEMM mappings."""
    if all(getattr(hw, f) == v for f, v in _BLIND_DEFAULTS.items()) and hw.name == "gemm-view":
        return hw
    return replace(hw, name="gemm-view", description="", **_BLIND_DEFAULTS)


def gemm_cost(m: int, k: int, n: int, hw: HardwareConfig, rows: int | None = None,
              bias: bool = False, batch: int = 1) -> GemmCost:
    """One M x K x N GEMM instance on `rows` (default: all) rows of `hw`, mapped by
    `hw.mapping` (costmodel.mapping, cached per shape and per `_gemm_view` of `hw`). `bias`:
    the layer has a bias (moved in by Gemmini's tiler); `batch`: instances run back to back
    (what the search optimises)."""
    return map_gemm(m, k, n, _gemm_view(hw), rows or hw.rows, bias and hw.mapping == "gemmini",
                    batch if hw.mapping == "search" else 1)


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
    mapping: dict | None = None


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
    cycles = repeat * (batch * g.steady + g.exposed)
    bound = bound or ("compute" if g.compute >= g.dram else "memory")
    energy = _energy(hw, cycles, macs=macs * count, sp=g.sp_bytes * count,
                     acc=g.acc_bytes * count, dram=g.dram_bytes * count)
    util = macs * count / (cycles * hw.pes) if cycles else 0.0
    return _Cost(cycles, bound, util, g.dram_bytes * count, g.compute * count, g.dram * count,
                 dense * count, sparse * count, 0.0, g.traffic(count), energy,
                 g.mapping.to_dict() if g.mapping else None)


def _nonlinear_op(op: Op, hw: HardwareConfig, kept: float = 1.0, fused: bool = False) -> _Cost:
    """Softmax / LayerNorm / GELU / add on the SFUs or on the host CPU. `kept` < 1: a sparse
    softmax over the kept scores only. `fused`: a softmax inside a fused attention kernel, on
    the scores where Q.K^T left them in the accumulator (no DRAM or scratchpad traffic)."""
    elements = op.elements * kept
    inputs = 2 if op.kind == ADD else 1
    ib, bw = hw.in_bytes, hw.dram_bytes_per_cycle
    dram_bytes = 0.0 if fused else elements * (inputs + 1) * ib   # read inputs, write output
    traffic = {"dram_read_a": dram_bytes / (inputs + 1),
               "dram_read_b": dram_bytes * (inputs - 1) / (inputs + 1),
               "dram_write": dram_bytes / (inputs + 1)}
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
    if fused:
        cycles = compute
    elif hw.double_buffer:
        exposed = op.n * (inputs + 1) * ib / bw * op.repeat  # first row in, last row out
        cycles = max(compute, memory) + exposed
    else:
        cycles = compute + memory
    # inputs pass through the scratchpad into the accumulator (int32); each pass reads the
    # accumulator, the result is written back once and leaves through the scratchpad (fused:
    # the scores are already in the accumulator, and stay there for A.V)
    staged = 0.0 if fused else elements * ib
    traffic.update(scratchpad_write=staged * inputs, scratchpad_read=staged,
                   accumulator_write=elements * hw.acc_bytes * (1 if fused else inputs + 1),
                   accumulator_read=elements * hw.acc_bytes * passes)
    acc = traffic["accumulator_write"] + traffic["accumulator_read"]
    energy = _energy(hw, cycles, sp=dram_bytes, acc=acc,
                     dram=dram_bytes, sfu_ops=elements * SFU_OPS_PER_ELEMENT[op.kind])
    util = elements * passes * hw.sfu_cycles_per_element / (cycles * hw.sfu_lanes) if cycles else 0
    return _Cost(cycles, "sfu" if compute >= memory else "memory", util, dram_bytes, compute,
                 memory, 0.0, 0.0, 0.0, traffic, energy)


def _on_engines(op: Op, hw: HardwareConfig, sparsity: AttentionSparsity | None) -> bool:
    """Attention products and softmax run through the sparse engine model on hardware that has
    one, given a sparsity, or always when it fuses attention (dense = every column dense)."""
    return (hw.sparse_engine and (sparsity is not None or hw.attention_fusion)
            and (op.product in (QK, AV) or op.kind == SOFTMAX))


def _vector_op(op: Op, hw: HardwareConfig) -> _Cost:
    """A Taylor attention vector operator (see the module docstring): on ViTALiTy's
    pre-processors or SA-Diag when `hw` has them, else on the SFUs or the host."""
    count = op.batch * op.repeat
    work = op.m * op.n * count
    ib, acc, bw = hw.in_bytes, hw.acc_bytes, hw.dram_bytes_per_cycle
    reads, writes = op.reads * count * ib, op.writes * count * ib
    diag = op.kind in SA_DIAG_KINDS
    unit = hw.diag_pes if diag else hw.preproc_lanes
    pipelined = bool(unit) and hw.taylor_pipeline
    dram = 0.0 if pipelined else reads + writes
    traffic = {"dram_read_a": 0.0 if pipelined else reads, "dram_read_b": 0.0,
               "dram_write": 0.0 if pipelined else writes, "scratchpad_write": reads,
               "scratchpad_read": reads, "accumulator_write": op.writes * count * acc,
               "accumulator_read": op.writes * count * acc}
    ops = work * TAYLOR_OPS_PER_ELEMENT[op.kind]
    if not unit and hw.sfu == "host":       # to the host and back over the bus, host routine
        transfer = dram / bw
        host = work * hw.host_cycles_per_element(TAYLOR_HOST_ROUTINE[op.kind]) + (
            op.reads + op.writes) * count * hw.host_cycles_quant
        host_acc_cycles = host * hw.clock_hz / hw.host_clock_hz
        cycles = transfer + host_acc_cycles
        energy = _energy(hw, cycles, dram=dram, host_cycles=host)
        return _Cost(cycles, "host", 0.0, dram, 0.0, transfer, 0.0, 0.0, host_acc_cycles,
                     traffic, energy)
    if unit:                                 # one element per lane (or SA-Diag PE) per cycle
        compute = math.ceil(op.m * op.n / unit) * count
        bound = "sa-diag" if diag else "preproc"
    else:
        compute = math.ceil(work * hw.sfu_cycles_per_element / hw.sfu_lanes)
        bound = "sfu"
    memory = dram / bw
    if pipelined:                            # beside SA-General: only the first chunk shows
        cycles = compute / math.ceil(op.m / hw.rows)
    elif hw.double_buffer:                   # first row in, last row out
        cycles = max(compute, memory) + (op.reads + op.writes) / max(op.m, 1) * ib / bw * op.repeat
    else:
        cycles = compute + memory
    sram = {"sp": 2 * reads, "acc": traffic["accumulator_write"] + traffic["accumulator_read"]}
    if diag and unit:                        # SA-Diag: one MAC (PE) per element, as the array's
        energy = _energy(hw, cycles, macs=work, sp=sram["sp"], acc=sram["acc"], dram=dram)
    else:
        energy = _energy(hw, cycles, sp=sram["sp"], acc=sram["acc"], dram=dram, sfu_ops=ops)
    lanes, busy = unit or hw.sfu_lanes, compute if pipelined else cycles
    util = work * (1 if unit else hw.sfu_cycles_per_element) / (busy * lanes) if busy else 0.0
    return _Cost(cycles, bound if compute >= memory else "memory", util, dram, compute, memory,
                 0.0, 0.0, 0.0, traffic, energy)


def _kept_gemm(m: int, k: int, n: int, batch: int, repeat: int, product: str,
               hw: HardwareConfig, sp: PatternSparsity) -> _Cost:
    """A sparse kind's Q.K^T or A.V on hardware without a sparse engine: the kept scores only,
    as a dense GEMM of the same work (each query's ceil(kept / q) kept keys in one dense row)."""
    from costmodel import sparse_engine
    q, ctx = (m, n) if product == QK else (m, k)
    keys = max(1, math.ceil(sp.kept(q, ctx) / q))
    shape = (q, k, keys) if product == QK else (q, keys, n)
    g = sparse_engine.array_gemm_cost(*shape, hw, batch=batch)
    return _batched(g, batch, repeat, shape[0] * shape[1] * shape[2], hw)


@lru_cache(maxsize=65536)
def _shape_cost(kind: str, cls: str, product: str, m: int, k: int, n: int, batch: int,
                repeat: int, layer: int | None, hw: HardwareConfig,
                sparsity: AttentionSparsity | PatternSparsity | None, heads: int = 0,
                on_engines: bool = False, q: int = 0, reads: int = 0,
                writes: int = 0) -> _Cost:
    from costmodel import sparse_engine   # here: sparse_engine builds on this module
    op = Op("", kind, cls, (), layer, "", m, k, n, batch, repeat, heads, product=product,
            reads=reads, writes=writes)
    pattern = isinstance(sparsity, PatternSparsity)
    if kind == GEMM:
        if on_engines:
            return sparse_engine.attention_product_cost(op, hw, sparsity)
        if pattern:
            return _kept_gemm(m, k, n, batch, repeat, product, hw, sparsity)
        # a layer with a bias is a projection; systolic arrays map it as hw.mapping says
        g = sparse_engine.array_gemm_cost(m, k, n, hw, bias=cls == PROJECTION, batch=batch)
        return _batched(g, batch, repeat, m * k * n, hw)
    if kind in TAYLOR_VECTOR_KINDS:
        return _vector_op(op, hw)
    if on_engines:   # the softmax of the kept scores, in place when attention is fused
        kept = sparsity.kept_share(q, n, layer) if sparsity is not None else 1.0
        return _nonlinear_op(op, hw, kept, fused=hw.attention_fusion)
    if pattern:      # a sparse kind's softmax over its kept scores, on the SFUs or the host
        return _nonlinear_op(op, hw, sparsity.kept_share(q, n))
    return _nonlinear_op(op, hw)


def op_sparsity(op: Op, sparsity: AttentionSparsity | None
                ) -> AttentionSparsity | PatternSparsity | None:
    """The sparsity an op's cost sees: a sparse kind's own pattern on its ops, `sparsity`
    (pruned softmax attention) on the others."""
    if op.pattern:
        return PatternSparsity(op.pattern[0], op.pattern[1], causal=op.phase != "encoder")
    return sparsity


def op_cost(op: Op, hw: HardwareConfig, sparsity: AttentionSparsity | None = None) -> OpCost:
    """Cost of one operator: a pure function of (op shape, hw, sparsity), cached."""
    sparsity = op_sparsity(op, sparsity)
    engines = _on_engines(op, hw, sparsity)
    per_layer = engines and sparsity is not None and sparsity.per_layer
    pattern = isinstance(sparsity, PatternSparsity)
    # only what the cost depends on goes into the cache key
    keep = engines or (pattern and (op.product in (QK, AV) or op.kind == SOFTMAX))
    q = 0
    if keep and op.kind == SOFTMAX and pattern:      # query rows of each map of the op
        q = 1 if op.phase == "decode" else op.n
    c = _shape_cost(op.kind, op.cls, op.product if keep else "", op.m, op.k, op.n,
                    op.batch, op.repeat, op.layer if per_layer else None, hw,
                    sparsity if keep else None, op.heads if engines else 0, engines, q,
                    op.reads, op.writes)
    sram = sum(v for k, v in c.traffic.items() if not k.startswith("dram"))
    return OpCost(op, c.cycles, sum(c.energy.values()), c.bound, c.utilization, c.dram_bytes,
                  sram, c.compute_cycles, c.memory_cycles, c.dense_engine_cycles,
                  c.sparse_engine_cycles, c.host_cycles, dict(c.energy), dict(c.traffic),
                  dict(c.mapping) if c.mapping else None)


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
