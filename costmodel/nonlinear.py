"""Element-wise and row-wise operators: softmax, LayerNorm, GELU and residual adds on the
special-function units (SFUs) or on the host CPU, and Taylor attention's vector operators
(costmodel.workload) on ViTALiTy's units, the SFUs or the host.

SFUs: `sfu_lanes` lanes make `SFU_PASSES` passes over the data of each element. Host
(`sfu: host`): the data moves to the host over the DRAM bus and back, is dequantized and
requantized, and the host computes at `host_cycles_<kind>` per element; nothing overlaps.
ViTALiTy (Dass et al., HPCA 2023; seed 003): the pre-processors (`preproc_lanes`: column/prefix
sums, centring, reciprocals) and SA-Diag (`diag_pes`: the normaliser's dot products and the
diagonal scaling) take one element per lane per cycle. With `taylor_pipeline` (the intra-layer
pipeline) they work on chunks of `rows` tokens beside SA-General with their intermediates on
chip: an op is charged only the first chunk's time (pipeline fill; ceil(tokens / rows) chunks)
and no DRAM traffic. This assumes they keep pace with SA-General (the study reports that
balance); without the pipeline they read their inputs from and write their outputs to DRAM like
every other operator.
"""

from __future__ import annotations

import math

from costmodel.cost import OpCost, energy_pj
from costmodel.hardware import HardwareConfig
from costmodel.workload import (ADD, CENTRE, COLSUM, CUMSUM, GELU, LAYERNORM, NORM, RECIP, SCALE,
                                SOFTMAX, Op)

# Passes an SFU makes over the data of one element (Kim et al. 2023 Sec. 3.3: reductions read
# the accumulator several times): softmax = max, exp+sum, normalise; LayerNorm = mean, variance,
# normalise (I-BERT); GELU and residual add are one element-wise pass.
SFU_PASSES = {SOFTMAX: 3, LAYERNORM: 3, GELU: 1, ADD: 1}
# Integer operations per element, for SFU energy (I-BERT, Kim et al. ICML 2021): softmax = max 1,
# i-exp 6 (shift + 2nd-order polynomial), normalise 2; LayerNorm = mean 1, variance 2, normalise 3;
# i-GELU = sign/clip + 2nd-order polynomial for erf + multiply = 6; add = add + requantise = 2.
SFU_OPS_PER_ELEMENT = {SOFTMAX: 9, LAYERNORM: 6, GELU: 6, ADD: 2}
HOST_KINDS = (SOFTMAX, LAYERNORM, GELU)   # residual adds stay on chip (Gemmini's accumulator add)

# Taylor attention's vector operators (costmodel.workload), per element of work: integer
# operations (energy at sfu_pj_per_op on SFUs and pre-processors), the ViTALiTy unit that runs
# them, and the host routine of the same cost on `sfu: host`. A sum, a centring subtraction and
# a scaling multiply are 1 op; the normaliser's multiply-add 2; a reciprocal 6 (Newton-Raphson
# from a seed: 2 iterations of 2 multiplies and 1 add; this project's assumption).
TAYLOR_OPS_PER_ELEMENT = {COLSUM: 1, CUMSUM: 1, CENTRE: 1, NORM: 2, RECIP: 6, SCALE: 1}
SA_DIAG_KINDS = (NORM, SCALE)                 # ViTALiTy: "matrix and diagonal matrix" products
TAYLOR_HOST_ROUTINE = {COLSUM: ADD, CUMSUM: ADD, CENTRE: ADD, NORM: ADD, SCALE: ADD,
                       RECIP: LAYERNORM}      # a divide costs like LayerNorm's divide/sqrt


def on_host(hw: HardwareConfig, host: float, dram: float, traffic: dict) -> OpCost:
    """An operator on the host CPU: `dram` bytes over the bus to the host and back, then `host`
    host-clock cycles of compute, not overlapped."""
    transfer = dram / hw.dram_bytes_per_cycle
    host_acc_cycles = host * hw.clock_hz / hw.host_clock_hz
    cycles = transfer + host_acc_cycles
    return OpCost(cycles=cycles, bound="host", utilization=0.0, dram_bytes=dram,
                  compute_cycles=0.0, memory_cycles=transfer, dense_engine_cycles=0.0,
                  sparse_engine_cycles=0.0, host_cycles=host_acc_cycles, traffic=traffic,
                  energy=energy_pj(hw, cycles, dram=dram, host_cycles=host))


def nonlinear_cost(op: Op, hw: HardwareConfig, kept: float = 1.0, fused: bool = False) -> OpCost:
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
        host = elements * (hw.host_cycles_per_element(op.kind)
                           + (inputs + 1) * hw.host_cycles_quant)   # compute + dequant/requant
        return on_host(hw, host, dram_bytes, traffic)
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
    energy = energy_pj(hw, cycles, sp=dram_bytes, acc=acc,
                       dram=dram_bytes, sfu_ops=elements * SFU_OPS_PER_ELEMENT[op.kind])
    util = elements * passes * hw.sfu_cycles_per_element / (cycles * hw.sfu_lanes) if cycles else 0
    return OpCost(cycles=cycles, bound="sfu" if compute >= memory else "memory",
                  utilization=util, dram_bytes=dram_bytes, compute_cycles=compute,
                  memory_cycles=memory, dense_engine_cycles=0.0, sparse_engine_cycles=0.0,
                  host_cycles=0.0, traffic=traffic, energy=energy)


def vector_cost(op: Op, hw: HardwareConfig) -> OpCost:
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
    if not unit and hw.sfu == "host":       # to the host and back over the bus, host routine
        host = work * hw.host_cycles_per_element(TAYLOR_HOST_ROUTINE[op.kind]) + (
            op.reads + op.writes) * count * hw.host_cycles_quant
        return on_host(hw, host, dram, traffic)
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
    sp, acc_bytes = 2 * reads, traffic["accumulator_write"] + traffic["accumulator_read"]
    if diag and unit:                        # SA-Diag: one MAC (PE) per element, as the array's
        energy = energy_pj(hw, cycles, macs=work, sp=sp, acc=acc_bytes, dram=dram)
    else:
        energy = energy_pj(hw, cycles, sp=sp, acc=acc_bytes, dram=dram,
                           sfu_ops=work * TAYLOR_OPS_PER_ELEMENT[op.kind])
    lanes, busy = unit or hw.sfu_lanes, compute if pipelined else cycles
    util = work * (1 if unit else hw.sfu_cycles_per_element) / (busy * lanes) if busy else 0.0
    return OpCost(cycles=cycles, bound=bound if compute >= memory else "memory",
                  utilization=util, dram_bytes=dram, compute_cycles=compute,
                  memory_cycles=memory, dense_engine_cycles=0.0, sparse_engine_cycles=0.0,
                  host_cycles=0.0, traffic=traffic, energy=energy)


__all__ = ["SFU_PASSES", "SFU_OPS_PER_ELEMENT", "HOST_KINDS", "TAYLOR_OPS_PER_ELEMENT",
           "SA_DIAG_KINDS", "TAYLOR_HOST_ROUTINE", "on_host", "nonlinear_cost", "vector_cost"]
