"""Analytic profile of a workload: FLOPs, ideal memory operations and arithmetic intensity.

Hardware-independent (the survey's Sec. 2.2 analysis, Kim et al. 2023):
- FLOPs: a GEMM multiply-accumulate is 2 FLOPs. Per output element of the non-linear operators
  (`FLOPS_PER_ELEMENT`): softmax 5 (max, subtract, exp, sum, divide), LayerNorm 7 (mean,
  subtract, square, sum, divide by the standard deviation, scale, shift), GELU 8 (tanh form:
  cube, 2 multiplies, add, tanh, add, 2 multiplies; tanh counted as 1), residual add 1.
- Ideal memory operations (MOPs): every operand and the output moved exactly once, in bytes at
  `bytes_per_element` (1 = int8): GEMM (M*K + K*N + M*N) per instance, softmax/LayerNorm/GELU
  2 elements (in, out), add 3 (two inputs, output).
- Taylor attention's vector operators (per element of work, m x n): column/prefix sums,
  centring and diagonal scaling 1 FLOP, the normaliser's multiply-add 2, a reciprocal 1; their
  MOPs are the elements they read and write (`Op.reads`, `Op.writes`).
- sparseNN attention: Q.K^T, softmax and scores.V count the kept scores of the kind's pattern
  only (their FLOPs and score traffic times the kept share).
- Arithmetic intensity = FLOPs / MOPs (FLOPs per byte).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from costmodel.sparsity import op_sparsity
from costmodel.workload import (ADD, CENTRE, COLSUM, CUMSUM, GELU, GEMM, LAYERNORM, NORM, RECIP,
                                SCALE, SOFTMAX, TAYLOR_VECTOR_KINDS, Op)

FLOPS_PER_ELEMENT = {SOFTMAX: 5, LAYERNORM: 7, GELU: 8, ADD: 1, COLSUM: 1, CUMSUM: 1, CENTRE: 1,
                     NORM: 2, RECIP: 1, SCALE: 1}
TENSORS_MOVED = {SOFTMAX: 2, LAYERNORM: 2, GELU: 2, ADD: 3}   # per output element


@dataclass(frozen=True)
class OpProfile:
    op: Op
    flops: int
    mops: float          # bytes

    @property
    def intensity(self) -> float:
        return self.flops / self.mops if self.mops else 0.0


def _kept_share(op: Op) -> float:
    """Share of a sparse kind's scores its op computes (1 for every other op)."""
    if not op.pattern:
        return 1.0
    return op_sparsity(op).kept_share(op.queries, op.context)


def profile_op(op: Op, bytes_per_element: float = 1.0) -> OpProfile:
    count = op.batch * op.repeat
    kept = _kept_share(op)
    if op.kind == GEMM:
        scores = op.m * (op.n if op.product == "qk" else op.k)        # the q x ctx map
        moved = (op.m * op.k + op.k * op.n + op.m * op.n - (1 - kept) * scores) * count
        return OpProfile(op, round(2 * op.macs * kept), moved * bytes_per_element)
    if kept < 1.0:                                                    # a sparse softmax
        return OpProfile(op, round(FLOPS_PER_ELEMENT[op.kind] * op.elements * kept),
                         TENSORS_MOVED[op.kind] * op.elements * kept * bytes_per_element)
    if op.kind in TAYLOR_VECTOR_KINDS:
        return OpProfile(op, FLOPS_PER_ELEMENT[op.kind] * op.elements,
                         (op.reads + op.writes) * count * bytes_per_element)
    return OpProfile(op, FLOPS_PER_ELEMENT[op.kind] * op.elements,
                     TENSORS_MOVED[op.kind] * op.elements * bytes_per_element)


@dataclass
class Profile:
    ops: list[OpProfile]

    @property
    def flops(self) -> int:
        return sum(p.flops for p in self.ops)

    @property
    def mops(self) -> float:
        return sum(p.mops for p in self.ops)

    @property
    def intensity(self) -> float:
        return self.flops / self.mops if self.mops else 0.0

    def by_class(self) -> dict[str, dict[str, float]]:
        """{class: {flops, mops, intensity, flops_share}} for PROJECTION, ACT_MATMUL, NONLINEAR."""
        out: dict[str, dict[str, float]] = defaultdict(lambda: {"flops": 0, "mops": 0.0})
        for p in self.ops:
            out[p.op.cls]["flops"] += p.flops
            out[p.op.cls]["mops"] += p.mops
        total = self.flops or 1
        for row in out.values():
            row["intensity"] = row["flops"] / row["mops"] if row["mops"] else 0.0
            row["flops_share"] = row["flops"] / total
        return dict(out)

    def to_dict(self) -> dict:
        return {"total": {"flops": self.flops, "mops": self.mops, "intensity": self.intensity},
                "by_class": self.by_class(),
                "ops": [{"name": p.op.name, "kind": p.op.kind, "class": p.op.cls,
                         "shape": p.op.shape, "flops": p.flops, "mops": p.mops,
                         "intensity": p.intensity} for p in self.ops]}


def profile(ops: list[Op], bytes_per_element: float = 1.0) -> Profile:
    return Profile([profile_op(op, bytes_per_element) for op in ops])


__all__ = ["FLOPS_PER_ELEMENT", "TENSORS_MOVED", "OpProfile", "Profile", "profile_op", "profile"]
