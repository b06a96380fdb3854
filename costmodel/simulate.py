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
or not (costmodel.sparse_engine, costmodel.sparsity), and GEMMs on ViTCoD's MAC lines instead of
a systolic array (costmodel.gemm).

Attention kinds (costmodel.workload lists their operators):
- softmax: as above; `sparsity` (--sparsity/--mask: ViTCoD's pruned softmax attention) applies
  to these layers only.
- sparseNN: the kind's own pattern (costmodel.sparsity.PatternSparsity) replaces `sparsity`. On
  hardware with a sparse engine the products run on the engines with the pattern's split (global
  columns dense, window sparse). Elsewhere the array computes the kept scores only, as a dense
  GEMM of the same work: each query's kept keys gathered into one dense row of ceil(kept / q)
  keys (the gather itself is not charged), and the softmax runs over the kept scores.
- taylor: its GEMMs (K^T V, Q G, and the causal chunk products) run on the array (SA-General)
  like any GEMM. Its vector operators run on ViTALiTy's units where the hardware has them, else
  on the SFUs (or the host): costmodel.nonlinear.

This module only dispatches: `op_cost` hands each operator to its model (costmodel.gemm,
costmodel.sparse_engine, costmodel.nonlinear), whose costs come back as `costmodel.cost.OpCost`
records; `Report` sums them (the chain of modules: costmodel/__init__.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from costmodel import gemm, mapping, sparse_engine
from costmodel.cost import Cost, OpCost
from costmodel.gemm import dense_gemm_op_cost, kept_scores_op_cost
from costmodel.hardware import HardwareConfig
from costmodel.nonlinear import nonlinear_cost, vector_cost
from costmodel.sparse_engine import attention_product_cost
from costmodel.sparsity import AttentionSparsity, PatternSparsity, op_sparsity
from costmodel.workload import (AV, GEMM, QK, SOFTMAX, TAYLOR_VECTOR_KINDS, Op, Workload,
                                model_ops)
from nas.core.arch import Arch

SIMULATOR_VERSION = "2.0"   # bump whenever a cost formula changes (lookup tables check it)


def on_engines(op: Op, hw: HardwareConfig,
               sparsity: AttentionSparsity | PatternSparsity | None) -> bool:
    """Attention products and softmax run through the sparse engine model on hardware that has
    one, given a sparsity, or always when it fuses attention (dense = every column dense)."""
    return (hw.sparse_engine and (sparsity is not None or hw.attention_fusion)
            and (op.product in (QK, AV) or op.kind == SOFTMAX))


@lru_cache(maxsize=65536)
def _shape_cost(shape: Op, hw: HardwareConfig,
                sparsity: AttentionSparsity | PatternSparsity | None, engines: bool,
                q: int) -> OpCost:
    """The cost of an operator of this `shape` (an Op stripped of what its cost does not read,
    see `op_cost`); `engines`: it runs on the sparse engines; `q`: query rows of each map of a
    sparse kind's softmax."""
    pattern = isinstance(sparsity, PatternSparsity)
    if shape.kind == GEMM:
        if engines:
            return attention_product_cost(shape, hw, sparsity)
        if pattern:
            return kept_scores_op_cost(shape, hw, sparsity)
        return dense_gemm_op_cost(shape, hw)
    if shape.kind in TAYLOR_VECTOR_KINDS:
        return vector_cost(shape, hw)
    if engines:   # the softmax of the kept scores, in place when attention is fused
        kept = sparsity.kept_share(q, shape.n, shape.layer) if sparsity is not None else 1.0
        return nonlinear_cost(shape, hw, kept, fused=hw.attention_fusion)
    if pattern:   # a sparse kind's softmax over its kept scores, on the SFUs or the host
        return nonlinear_cost(shape, hw, sparsity.kept_share(q, shape.n))
    return nonlinear_cost(shape, hw)


def op_cost(op: Op, hw: HardwareConfig, sparsity: AttentionSparsity | None = None) -> OpCost:
    """Cost of one operator: a pure function of (op shape, hw, sparsity), cached."""
    sparsity = op_sparsity(op, sparsity)
    engines = on_engines(op, hw, sparsity)
    per_layer = engines and sparsity is not None and sparsity.per_layer
    pattern = isinstance(sparsity, PatternSparsity)
    # only what the cost depends on goes into the cache key
    keep = engines or (pattern and (op.product in (QK, AV) or op.kind == SOFTMAX))
    q = op.queries if keep and op.kind == SOFTMAX and pattern else 0
    shape = _copy_with(op, name="", group=None, phase="", attention="", pattern=(),
                       product=op.product if keep else "",
                       layer=op.layer if per_layer else None, heads=op.heads if engines else 0)
    c = _shape_cost(shape, hw, sparsity if keep else None, engines, q)
    return _copy_with(c, op=op, energy=dict(c.energy), traffic=dict(c.traffic),
                      mapping=dict(c.mapping) if c.mapping else None)


def _copy_with(record, **changes):
    """`dataclasses.replace` for the frozen records Op and OpCost (no __post_init__ to re-run),
    without calling __init__: 1 us instead of 7 per copy, and op_cost makes two per operator."""
    copy = object.__new__(type(record))
    copy.__dict__.update(record.__dict__, **changes)
    return copy


def simulate_ops(ops: list[Op], hw: HardwareConfig,
                 sparsity: AttentionSparsity | None = None) -> list[OpCost]:
    return [op_cost(op, hw, sparsity) for op in ops]


def clear_caches() -> None:
    """Forget every cached cost (benchmarks that time a cold simulator)."""
    for cached in (_shape_cost, gemm.gemm_view, gemm.lines_gemm_cost, mapping.map_gemm,
                   sparse_engine.attention_kernel):
        cached.cache_clear()


# -- reports --------------------------------------------------------------------------------

@dataclass
class Report:
    ops: list[OpCost]
    hw: HardwareConfig
    workload: Workload
    sparsity: AttentionSparsity | None = None

    @property
    def cost(self) -> Cost:
        """The totals: cycles and energy at the hardware's clock."""
        return Cost.total(self.ops, self.hw.clock_hz)

    # the totals by their names in reports (see Cost)
    cycles = property(lambda self: self.cost.cycles)
    seconds = property(lambda self: self.cost.latency_s)
    latency_ms = property(lambda self: self.cost.latency_ms)
    energy_j = property(lambda self: self.cost.energy_j)
    energy_mj = property(lambda self: self.cost.energy_mj)
    edp = property(lambda self: self.cost.edp, doc="Energy-delay product in J*s.")

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
        return self.cost.to_dict()

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


__all__ = ["SIMULATOR_VERSION", "OpCost", "Report", "on_engines", "op_cost",
           "simulate_ops", "simulate", "clear_caches"]
