"""A cost matrix: every operator group of a search space on every point of a hardware space.

A bilevel co-design search (nas.search.bilevel) gives each architecture its best hardware
point. Over a space that can be enumerated this is an exact minimum over a `CostMatrix`: rows
are the space's operator groups (`lut.table.space_groups`), columns hardware points, and an
entry is what the point's lookup table holds for the group (`lut.table.group_costs`, the same
numbers `CostTable.build` writes). An architecture's cost on every point at once is the sum of
its groups' rows (`arch_cost`), added in the order `CostTable.cost` adds them, so each
column's total equals that point's table's, bit for bit.

`CostMatrix.build` simulates the points in chunks of consecutive points (neighbours in genome
order share their GEMM mappings, costmodel.gemm.gemm_view) on an `Engine` (local processes,
or Ray tasks: nas.core.distributed), and with a folder saves every chunk as it is done
(`<folder>/matrix-<id>/chunk-*.npz`, atomically) and the whole matrix at the end
(`<folder>/matrix-<id>.npz`), so an interrupted build continues where it stopped and a second
build of the same matrix only reads the file. The id hashes what the
entries depend on: search space, workload, attention sparsity, simulator version and the
points' hardware hashes.

`MatrixTables` serves a matrix's columns as lookup tables (`.table(hw)`, as
`lut.cache.TableCache` does), so a flat joint search can run on a matrix built once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from costmodel.cost import Cost
from costmodel.hardware import HardwareConfig
from costmodel.simulate import SIMULATOR_VERSION
from costmodel.workload import GroupKey, Workload, arch_groups
from lut.table import (CostTable, gc_paused, group_costs, key_row, space_groups, sparsity_meta,
                       table_meta)
from nas.core.arch import Arch, SearchSpace
from nas.core.atomic import atomic_path
from nas.core.distributed import Engine, task_executor
from nas.core.errors import UserError
from nas.core.progress import progress as progress_bar

CHUNK = 128             # points per chunk: one unit of work and one file of a build


def matrix_id(space: SearchSpace, workload: Workload, sparsity, hashes: Sequence[str]) -> str:
    """12 hex chars naming what a matrix's entries depend on."""
    ident = {"space": {k: v for k, v in space.to_dict().items() if k != "name"},
             "workload": asdict(workload), "sparsity": sparsity_meta(sparsity),
             "simulator_version": SIMULATOR_VERSION, "points": list(hashes)}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def _chunk_costs(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, energy) [groups x points] of one chunk of points (a worker's job), without
    garbage collection until it is done (lut.table.gc_paused)."""
    keys, points, workload, sparsity = job
    cycles = np.empty((len(keys), len(points)))
    energy = np.empty((len(keys), len(points)))
    with gc_paused():
        for j, hw in enumerate(points):
            for i, (c, e) in enumerate(group_costs(keys, hw, workload, sparsity)):
                cycles[i, j], energy[i, j] = c, e
    return cycles, energy


def _save_npz(path: Path, cycles: np.ndarray, energy_pj: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, cycles=cycles, energy_pj=energy_pj)


def _load_npz(path: Path | None, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """(cycles, energy) saved at `path`, or None when there is no such file or it cannot be
    used as it is (unreadable, truncated, another shape): then it is simulated again."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as f:
            cycles, energy = f["cycles"], f["energy_pj"]
    except (OSError, ValueError, KeyError, EOFError):
        return None
    return (cycles, energy) if cycles.shape == energy.shape == shape else None


class CostMatrix:
    """Cycles and energy of every group (rows) on every hardware point (columns)."""

    def __init__(self, groups: Sequence[GroupKey], points: Sequence[HardwareConfig],
                 cycles: np.ndarray, energy_pj: np.ndarray, meta: dict[str, Any]):
        self.groups, self.points = list(groups), list(points)
        self.cycles, self.energy_pj = cycles, energy_pj
        self.meta = meta
        self.clock_hz = np.array([hw.clock_hz for hw in self.points])
        self.row = {key: i for i, key in enumerate(self.groups)}
        self._rows: dict[str, np.ndarray] = {}

    @property
    def id(self) -> str:
        return self.meta["id"]

    @property
    def shape(self) -> tuple[int, int]:
        return self.cycles.shape

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def build(cls, space: SearchSpace, points: Sequence[HardwareConfig], workload: Workload,
              sparsity=None, folder: str | Path | None = None, engine: Engine = Engine(),
              progress: bool = False) -> CostMatrix:
        """The matrix of `space` over `points` for `workload` (see the module docstring):
        read from `folder` when it holds it, else simulated (on `engine`), each
        chunk saved there as it is done."""
        if not points:
            raise UserError("a cost matrix needs at least one hardware point")
        keys = space_groups(space)
        mid = matrix_id(space, workload, sparsity, [hw.hash() for hw in points])
        meta = {"id": mid, "space": space.to_dict(), "workload": asdict(workload),
                "sparsity": sparsity_meta(sparsity), "simulator_version": SIMULATOR_VERSION}
        whole = Path(folder) / f"matrix-{mid}.npz" if folder is not None else None
        saved = _load_npz(whole, (len(keys), len(points)))
        if saved is not None:
            return cls(keys, points, *saved, meta)
        cycles, energy = cls._simulate(keys, list(points), workload, sparsity, whole, engine,
                                       progress)
        if whole is not None:
            _save_npz(whole, cycles=cycles, energy_pj=energy)
            shutil.rmtree(whole.with_suffix(""), ignore_errors=True)
        return cls(keys, points, cycles, energy, meta)

    @staticmethod
    def _simulate(keys: list[GroupKey], points: list[HardwareConfig], workload: Workload,
                  sparsity, whole: Path | None, engine: Engine, progress: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Every chunk of points, read from its file when an earlier build saved it."""
        parts = whole.with_suffix("") if whole is not None else None
        starts = list(range(0, len(points), CHUNK))
        done: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for s in starts:
            saved = _load_npz(parts / f"chunk-{s}.npz" if parts is not None else None,
                              (len(keys), len(points[s:s + CHUNK])))
            if saved is not None:
                done[s] = saved
        todo = [s for s in starts if s not in done]
        jobs = [(keys, points[s:s + CHUNK], workload, sparsity) for s in todo]
        bar = progress_bar(len(points), f"cost matrix: {len(keys)} groups x hardware points",
                           unit="point", initial=len(points) - sum(len(j[1]) for j in jobs),
                           enabled=progress)

        def save(i: int, costs: tuple[np.ndarray, np.ndarray]) -> None:   # as each is done
            done[todo[i]] = costs
            if parts is not None:
                parts.mkdir(parents=True, exist_ok=True)
                _save_npz(parts / f"chunk-{todo[i]}.npz", cycles=costs[0], energy_pj=costs[1])
            bar.update(len(jobs[i][1]))

        runner = task_executor(_chunk_costs, engine)
        try:
            runner.map(jobs, on_done=save)
        finally:
            runner.close()
            bar.close()
        return (np.concatenate([done[s][0] for s in starts], axis=1),
                np.concatenate([done[s][1] for s in starts], axis=1))

    # -- look-ups ------------------------------------------------------------------------------
    def rows(self, arch: Arch) -> np.ndarray:
        """Row indices of `arch`'s groups, in execution order (repeats included)."""
        found = self._rows.get(arch.key)
        if found is None:
            try:
                found = np.array([self.row[key] for key, _ in arch_groups(arch)])
            except KeyError as exc:
                raise UserError(f"architecture {arch.key} is outside the cost matrix's search "
                                f"space '{self.meta['space'].get('name')}' (no row for "
                                f"{exc.args[0]})") from None
            self._rows[arch.key] = found
        return found

    def arch_cost(self, arch: Arch) -> Cost:
        """`arch`'s cost on every point at once: a `Cost` whose fields are arrays over the
        points. Rows are added one after the other, as `CostTable.cost` adds entries."""
        rows = self.rows(arch)
        cycles, energy = self.cycles[rows[0]].copy(), self.energy_pj[rows[0]].copy()
        for r in rows[1:]:
            cycles += self.cycles[r]
            energy += self.energy_pj[r]
        return Cost(cycles=cycles, energy_pj=energy, clock_hz=self.clock_hz)

    def cost(self, arch: Arch, j: int) -> Cost:
        """`arch`'s cost on point `j` (what the point's lookup table gives: the same sums)."""
        rows = self.rows(arch)
        cycles, energy = float(self.cycles[rows[0], j]), float(self.energy_pj[rows[0], j])
        for r in rows[1:]:
            cycles += float(self.cycles[r, j])
            energy += float(self.energy_pj[r, j])
        return Cost(cycles=cycles, energy_pj=energy, clock_hz=float(self.clock_hz[j]))

    def table(self, j: int) -> CostTable:
        """Column `j` as a lookup table (equal to `CostTable.build` on point `j`)."""
        hw = self.points[j]
        rows = [key_row(key, self.cycles[i, j], self.energy_pj[i, j])
                for i, key in enumerate(self.groups)]
        meta = table_meta(hw, self.meta["workload"], self.meta["space"], self.meta["sparsity"],
                          self.meta["simulator_version"])
        return CostTable(rows, meta, where=f"cost matrix {self.id}, column {j}")


class MatrixTables:
    """A matrix's columns as lookup tables, by hardware (what `lut.cache.TableCache` serves,
    without simulating: a point outside the matrix is a UserError)."""

    def __init__(self, matrix: CostMatrix, folder: str | Path | None = None):
        self.matrix, self.folder = matrix, folder
        self.column = {hw.hash(): j for j, hw in enumerate(matrix.points)}
        self._tables: dict[int, CostTable] = {}
        self.built = self.loaded = self.hits = 0

    def table(self, hw: HardwareConfig) -> CostTable:
        j = self.column.get(hw.hash())
        if j is None:
            raise UserError(f"hardware '{hw.name}' is not a point of cost matrix "
                            f"{self.matrix.id}")
        if j in self._tables:
            self.hits += 1
        else:
            self.loaded += 1
            self._tables[j] = self.matrix.table(j)
        return self._tables[j]


__all__ = ["CostMatrix", "MatrixTables", "matrix_id", "CHUNK"]
