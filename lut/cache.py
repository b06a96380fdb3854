"""Lookup tables built lazily, one per hardware point, cached in memory and on disk.

A joint architecture x hardware search meets many accelerators; each needs its own table
(`lut.table.CostTable`) for the same search space, workload and attention sparsity.
`TableCache.table(hw)` returns it from memory, else from `<folder>/<hw.hash()>.parquet` (loaded
and checked), else builds it and saves it there atomically (a temporary file renamed over the
target, so a crash never leaves half a table).

What a file in the folder may be, and what the cache does with it:

- a table for this space, workload, sparsity and hardware: loaded (`loaded` counts them);
- unreadable, truncated, not a lookup table, or of another table format or simulator version:
  stale, so it is rebuilt and overwritten (`rebuilt` counts them, `stale` keeps the reasons);
- a valid table built for another search space, workload, sparsity or hardware: a UserError
  naming the difference. The folder then belongs to another search, and rebuilding would
  make two searches overwrite each other's tables; give each its own folder.

Without a folder, tables live in memory only.
"""

from __future__ import annotations

from pathlib import Path

from lut.table import CostTable
from nas.core.arch import SearchSpace
from nas.core.errors import UserError
from costmodel.workload import Workload


class TableCache:
    """Tables per hardware point for one (search space, workload, sparsity)."""

    def __init__(self, space: SearchSpace, workload: Workload, sparsity=None,
                 folder: str | Path | None = None):
        self.space = space
        self.workload = workload
        self.sparsity = sparsity
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None and self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"lookup-table cache folder {self.folder} is a file, not a folder")
        self._tables: dict[str, CostTable] = {}
        self.built = 0        # tables simulated (CostTable.build)
        self.loaded = 0       # tables read from the folder
        self.hits = 0         # tables found in memory
        self.rebuilt = 0      # stale files replaced (counted in `built` too)
        self.stale: list[str] = []   # why each stale file was replaced

    def path(self, hw) -> Path | None:
        """Where the table of `hw` lives on disk (None without a folder)."""
        return None if self.folder is None else self.folder / f"{hw.hash()}.parquet"

    def __len__(self) -> int:
        return len(self._tables)

    def __contains__(self, hw) -> bool:
        return hw.hash() in self._tables

    def table(self, hw) -> CostTable:
        """The table of `hw`: from memory, else from the folder, else built (and saved)."""
        key = hw.hash()
        table = self._tables.get(key)
        if table is not None:
            self.hits += 1
            return table
        path = self.path(hw)
        if path is not None and path.is_file():
            table = self._load(path)
            if table is not None:
                table.check(self.space, self.workload, self.sparsity, hw)
                self.loaded += 1
                self._tables[key] = table
                return table
        table = CostTable.build(self.space, hw, self.workload, self.sparsity)
        self.built += 1
        if path is not None:
            table.save(path)
        self._tables[key] = table
        return table

    def _load(self, path: Path) -> CostTable | None:
        """The table in `path`, or None (noted in `stale`) when it cannot be used as it is."""
        try:
            return CostTable.load(path)
        except (UserError, ValueError, KeyError, TypeError) as exc:   # ValueError: bad JSON
            self.rebuilt += 1
            self.stale.append(f"{path.name}: {exc}")
            return None

    def stats(self) -> dict[str, int]:
        return {"tables": len(self._tables), "built": self.built, "loaded": self.loaded,
                "hits": self.hits, "rebuilt": self.rebuilt}


__all__ = ["TableCache"]
