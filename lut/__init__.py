"""Per-operator-group lookup tables of accelerator cost, filled by `costmodel` (see lut.table)."""

from lut.table import Cost, CostTable, arch_groups, space_groups

__all__ = ["Cost", "CostTable", "arch_groups", "space_groups"]
