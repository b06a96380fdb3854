"""Per-operator-group lookup tables of accelerator cost, filled by `costmodel` (see lut.table)."""

from lut.table import Cost, CostTable, space_groups

__all__ = ["Cost", "CostTable", "space_groups"]
