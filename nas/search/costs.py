"""The cost source: what a design costs in hardware, a part of its own beside the evaluator.

A `CostSource` maps designs (nas.search.genome.Design) to (cost, HardwarePoint) pairs, where a
cost has `latency_ms`, `energy_mj`, `edp` and `cycles` (`lut.table.Cost`). It also says what
the genome holds: `hw_space` None means the architecture alone is searched; a hardware space
adds one gene per field (a joint search, `nas.pipeline.JointCosts`: a lookup table per
hardware point), and `anchor_hw` is then the point the largest and smallest subnet run on.
`id` names the costs for the state file (a search resumes only on the same costs).

This module does not import the simulator or the tables: the sources that need them are built
above the search (nas.pipeline).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from nas.search.candidate import HardwarePoint
from nas.search.genome import Design


class CostSource(Protocol):
    id: str | None
    hw_space: Any           # a hardware space searched with the architecture, or None
    anchor_hw: Any          # with hw_space: the point of it the anchors run on

    def __call__(self, designs: Sequence[Design]) -> list[tuple[Any, HardwarePoint | None]]: ...


class FixedHardware:
    """The cost source of an architecture-only search: one lookup table (anything with
    `.costs(archs)`), and the hardware it was built for (`HardwarePoint`, or None)."""

    hw_space = None
    anchor_hw = None

    def __init__(self, table, hardware: HardwarePoint | None = None):
        self.table, self.hardware = table, hardware
        self.id = getattr(table, "id", None)

    def __call__(self, designs: Sequence[Design]) -> list[tuple[Any, HardwarePoint | None]]:
        return [(c, self.hardware) for c in self.table.costs([d.arch for d in designs])]
