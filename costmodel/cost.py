"""What an operator costs, and what a model costs: energy per action, the two cost records, units.

- `energy_pj`: an operator's energy, by component, as actions x energy per action (the
  `HardwareConfig` fields, each with its source) plus static power x the operator's own time.
- `OpCost`: one operator's cycles, energy, bound, utilisation and traffic. The per-op models
  (costmodel.gemm, costmodel.sparse_engine, costmodel.nonlinear) return one without its `op`,
  cached per shape; `costmodel.simulate.op_cost` attaches the operator.
- `Cost`: cycles and energy of a whole model (a simulation's `Report`, or a lookup table's sum)
  at a clock, from which latency, energy in joules and the energy-delay product are derived,
  here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from costmodel.workload import Op

if TYPE_CHECKING:
    from costmodel.hardware import HardwareConfig

PJ = 1e-12      # joules per picojoule
MS = 1e3        # milliseconds per second
MJ = 1e3        # millijoules per joule


def energy_pj(hw: HardwareConfig, cycles: float, *, macs: float = 0, sp: float = 0,
              acc: float = 0, dram: float = 0, sfu_ops: float = 0,
              host_cycles: float = 0) -> dict[str, float]:
    """Energy (pJ) by component = actions x energy per action, + static power x the op's time:
    `macs` MACs (and their PE-register accesses), `sp` scratchpad and `acc` accumulator bytes,
    `dram` DRAM bytes, `sfu_ops` integer SFU operations, `host_cycles` host clock cycles;
    `cycles` accelerator cycles."""
    return {"mac": macs * hw.mac_pj, "rf": macs * hw.rf_pj_per_mac,
            "scratchpad": sp * hw.scratchpad_pj_per_byte,
            "accumulator": acc * hw.accumulator_pj_per_byte,
            "dram": dram * hw.dram_pj_per_byte, "sfu": sfu_ops * hw.sfu_pj_per_op,
            "host": host_cycles * hw.host_pj_per_cycle,
            "static": hw.static_power_w * cycles / hw.clock_hz / PJ}


@dataclass(frozen=True, kw_only=True)
class OpCost:
    """Cost of one operator: every batch and repeat of it."""

    op: Op | None = None          # None while cached per shape (simulate.op_cost attaches it)
    cycles: float                 # accelerator cycles for the whole op (all batches and repeats)
    bound: str                    # "compute", "memory", "sfu", "host", "sparse", "preproc", ...
    utilization: float            # of the unit that runs the op (PE array, SFU lanes; 0 on host)
    dram_bytes: float
    compute_cycles: float = 0.0   # array / SFU / engines busy, summed over batches and repeats
    memory_cycles: float = 0.0    # DRAM transfer time, summed
    dense_engine_cycles: float = 0.0   # sparse-engine hardware: dense engine (attention products)
    sparse_engine_cycles: float = 0.0  # sparse-engine hardware: sparse engine
    host_cycles: float = 0.0      # host CPU time, in accelerator cycles
    energy: dict = field(default_factory=dict, compare=False, hash=False)   # pJ by component
    traffic: dict = field(default_factory=dict, compare=False, hash=False)  # bytes by operand
    mapping: dict | None = field(default=None, compare=False, hash=False)   # Mapping.to_dict

    @property
    def energy_pj(self) -> float:
        return sum(self.energy.values())

    @property
    def sram_bytes(self) -> float:
        """Scratchpad and accumulator reads and writes."""
        return sum(v for k, v in self.traffic.items() if not k.startswith("dram"))

    def to_dict(self) -> dict:
        op = self.op
        return {"name": op.name, "kind": op.kind, "class": op.cls, "phase": op.phase,
                "layer": op.layer, "shape": op.shape, "cycles": self.cycles,
                "energy_pj": self.energy_pj, "bound": self.bound,
                "utilization": self.utilization, "dram_bytes": self.dram_bytes,
                "sram_bytes": self.sram_bytes, "compute_cycles": self.compute_cycles,
                "memory_cycles": self.memory_cycles,
                "dense_engine_cycles": self.dense_engine_cycles,
                "sparse_engine_cycles": self.sparse_engine_cycles,
                "host_cycles": self.host_cycles, "energy_breakdown_pj": dict(self.energy),
                "traffic_bytes": dict(self.traffic), "mapping": self.mapping,
                **({"attention": op.attention} if op.attention else {})}


@dataclass(frozen=True, kw_only=True)
class Cost:
    """Cost of one forward pass (encoder) or prefill + generation (decoder) of a model."""

    cycles: float
    energy_pj: float
    clock_hz: float

    @classmethod
    def total(cls, costs: Iterable[OpCost], clock_hz: float) -> Cost:
        costs = list(costs)
        return cls(cycles=sum(c.cycles for c in costs),
                   energy_pj=sum(c.energy_pj for c in costs), clock_hz=clock_hz)

    @property
    def latency_s(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def latency_ms(self) -> float:
        return self.latency_s * MS

    @property
    def energy_j(self) -> float:
        return self.energy_pj * PJ

    @property
    def energy_mj(self) -> float:
        return self.energy_j * MJ

    @property
    def edp(self) -> float:
        """Energy-delay product in J*s."""
        return self.energy_j * self.latency_s

    def to_dict(self) -> dict[str, float]:
        return {"cycles": self.cycles, "seconds": self.latency_s, "latency_ms": self.latency_ms,
                "energy_j": self.energy_j, "energy_mj": self.energy_mj, "edp_js": self.edp}


__all__ = ["PJ", "MS", "MJ", "energy_pj", "OpCost", "Cost"]
