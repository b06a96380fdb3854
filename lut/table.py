"""Lookup tables: the simulated cost of every operator group a search space can produce.

A transformer's operators depend only on a few widths (see `costmodel.workload`): each layer is
one attention group (d, heads, head_dim, attention kind) plus one FFN group (d, ffn), and the
model ends with one head group (d); a `GroupKey` each. A space with |d| widths, |H| head counts,
|A| attention kinds and |F| FFN widths has only |d| * (|H| * |A| + |F| + 1) groups, so
`CostTable.build` simulates each once and a candidate's cost is a sum of table entries (exact,
because the simulator's cost is additive over operators).

Tables are Parquet files: one row per group (the fields of its `GroupKey`: kind, d, heads,
head_dim, attention, ffn; then cycles, energy_pj) and, in the schema metadata, what they were
built for (hardware config and its hash, workload, search space, attention sparsity or mask,
simulator and format version).
`CostTable.load` refuses another simulator version or an unknown format; format 2 (before
attention kinds: no `attention` column) is read as softmax attention, which is what it was.
`CostTable.check` refuses a table built for another space, workload, sparsity or hardware,
naming each difference.
"""

from __future__ import annotations

import gc
import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from costmodel.cost import Cost
from costmodel.hardware import HardwareConfig
from costmodel.simulate import SIMULATOR_VERSION, op_cost
from costmodel.workload import (ATTN, FFN, GroupKey, Op, Workload, arch_groups, attn_group,
                                ffn_group, group_ops, head_group)
from nas.core.arch import Arch, SearchSpace
from nas.core.atomic import atomic_path, existing_file
from nas.core.attention import SOFTMAX
from nas.core.errors import UserError
from nas.core.progress import progress as progress_bar

META_KEY = b"transformer-hw-nas.lut"
FORMAT_VERSION = 3          # 2: sparsity without a seed; tables checked for all they encode
                            # 3: attention kinds (an `attention` column)
READABLE_FORMATS = (2, 3)   # format 2 tables hold softmax attention groups only
COLUMNS = (*(f.name for f in fields(GroupKey)), "cycles", "energy_pj")
COLUMNS_V2 = tuple(c for c in COLUMNS if c != "attention")


def space_groups(space: SearchSpace) -> list[GroupKey]:
    """Every distinct group key that architectures of `space` can produce."""
    keys: list[GroupKey] = []
    for d in space.d:
        keys += [attn_group(d, h, space.head_dim, kind) for h in space.heads
                 for kind in space.attention]
        keys += [ffn_group(d, f) for f in space.ffn]
        keys.append(head_group(d))
    return keys


@lru_cache(maxsize=64)
def _distinct_ops(keys: tuple[GroupKey, ...], workload: Workload
                  ) -> tuple[tuple[Op, ...], tuple[tuple[int, ...], ...]]:
    """The operators of every group in `keys`, each distinct one once (operators that differ
    only in their name and group cost the same), and per group the indices of its operators
    in that list, in the group's order. A pure function of the widths and the workload, so it
    is worked out once for every hardware point (a sparse kind's pattern takes a bisection
    over the sequence)."""
    index: dict[Op, int] = {}
    distinct: list[Op] = []
    per_group = []
    for key in keys:
        rows = []
        for op in group_ops(key, workload):
            bare = replace(op, name="", group=None)
            if bare not in index:
                index[bare] = len(distinct)
                distinct.append(op)
            rows.append(index[bare])
        per_group.append(tuple(rows))
    return tuple(distinct), tuple(per_group)


@contextmanager
def gc_paused():
    """Python's cyclic garbage collector off inside, as it was after. The simulator's
    records hold no cycles (reference counting frees them), but they churn the caches of
    costmodel (lru_cache, 65,536 entries), and every full collection then walks those caches:
    with 128 generated tokens, 40% of a cost matrix's build was collections (survey-kinds on
    survey-hw, 0.43-0.56 s a point with them, 0.27-0.30 s without them over a whole chunk of
    points, lut.matrix; 0.36 s paused only within each point)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def group_costs(keys: Sequence[GroupKey], hw: HardwareConfig, workload: Workload,
                sparsity=None) -> list[tuple[float, float]]:
    """(cycles, energy in pJ) of each group of `keys` on `hw`: the sums of its operators'
    costs in the group's order (what simulating the group's operators one by one gives),
    every distinct operator simulated once (without pauses for garbage collection:
    `gc_paused`)."""
    ops, per_group = _distinct_ops(tuple(keys), workload)
    with gc_paused():
        costs = [op_cost(op, hw, sparsity) for op in ops]
    cycles = [c.cycles for c in costs]
    energy = [c.energy_pj for c in costs]
    return [(sum(cycles[i] for i in rows), sum(energy[i] for i in rows)) for rows in per_group]


def key_row(key: GroupKey, cycles: float, energy_pj: float) -> dict[str, Any]:
    """A table row: the key's fields, then its cost."""
    return {**asdict(key), "cycles": float(cycles), "energy_pj": float(energy_pj)}


def row_key(row: dict[str, Any]) -> GroupKey:
    """The key of a table row; a format-2 row (no `attention` column) is softmax attention."""
    kind, d = row["kind"], int(row["d"])
    if kind == ATTN:
        return attn_group(d, int(row["heads"]), int(row["head_dim"]),
                          row.get("attention") or SOFTMAX)
    if kind == FFN:
        return ffn_group(d, int(row["ffn"]))
    return head_group(d)


def _space_choices(space_dict: dict[str, Any]) -> dict[str, Any]:
    """What matters about a space for a table (its choices, not its name)."""
    return {k: v for k, v in space_dict.items() if k != "name"}


class CostTable:
    """Cycles and energy of each operator group, for one (space, hardware, workload, simulator).

    Build with `CostTable.build(space, hw, workload)`, save with `.save(path)`, load with
    `CostTable.load(path)`, check it against its use with `.check(space, workload, sparsity,
    hw)`, and look costs up with `.cost(arch)` (or `.costs(archs)`).
    """

    def __init__(self, rows: list[dict[str, Any]], meta: dict[str, Any],
                 where: str = "lookup table"):
        self.rows = rows
        self.meta = meta
        self.where = where              # the file it came from, for error messages
        self.clock_hz = float(meta["clock_hz"])
        # Look-up structure: group key -> (cycles, energy in pJ).
        self._entries: dict[GroupKey, tuple[float, float]] = {
            row_key(r): (float(r["cycles"]), float(r["energy_pj"])) for r in rows}

    # -- identity --------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """Stable 12-hex id of what the table was built for (rows follow from it)."""
        ident = {k: self.meta[k] for k in ("hw_hash", "workload", "space", "simulator_version",
                                           "sparsity")}
        blob = json.dumps(ident, sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]

    @property
    def hw_name(self) -> str:
        return self.meta["hw_name"]

    @property
    def hw_hash(self) -> str:
        return self.meta["hw_hash"]

    @property
    def hardware(self) -> HardwareConfig:
        """The hardware config the table was built for."""
        return HardwareConfig.from_dict(self.meta["hw"], name=self.meta["hw_name"])

    @property
    def workload(self) -> Workload:
        return Workload(**self.meta["workload"])

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.meta["space"], name=self.meta["space"].get("name",
                                                                                     "custom"))

    def __len__(self) -> int:
        return len(self.rows)

    # -- building --------------------------------------------------------------------------
    @classmethod
    def build(cls, space: SearchSpace, hw: HardwareConfig, workload: Workload, sparsity=None,
              progress: bool = False) -> CostTable:
        """Simulate every group of `space` once on `hw` for `workload`."""
        keys = space_groups(space)
        bar = progress_bar(len(keys), f"lut {space.name} on {hw.name}", unit="group",
                           enabled=progress)
        rows = [key_row(key, cycles, energy)
                for key, (cycles, energy) in zip(keys, group_costs(keys, hw, workload, sparsity))]
        bar.update(len(keys))
        bar.close()
        return cls(rows, table_meta(hw, asdict(workload), space.to_dict(),
                                    sparsity_meta(sparsity)))

    # -- look-ups --------------------------------------------------------------------------
    def entry(self, key: GroupKey) -> tuple[float, float]:
        """(cycles, energy in pJ) of one group."""
        return self._entries[key]

    def cost(self, arch: Arch) -> Cost:
        """Sum of the table entries of `arch`'s blocks."""
        cycles = energy_pj = 0.0
        entries = self._entries
        try:
            for key, _layer in arch_groups(arch):
                c, e = entries[key]
                cycles += c
                energy_pj += e
        except KeyError:
            raise UserError(f"architecture {arch.key} is outside the table's search space "
                            f"'{self.meta['space'].get('name')}' (no entry for {key})") from None
        return Cost(cycles=cycles, energy_pj=energy_pj, clock_hz=self.clock_hz)

    def costs(self, archs: Iterable[Arch]) -> list[Cost]:
        return [self.cost(a) for a in archs]

    # -- files -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write Parquet atomically (temporary file in the same folder, then rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        table = pa.Table.from_pylist(self.rows, schema=_schema())
        table = table.replace_schema_metadata({META_KEY: json.dumps(self.meta).encode()})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CostTable:
        """Read a table written by `save`; refuse a file of another format or simulator
        version. Check it against what it will be used for with `check`."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = existing_file(path, "lookup table", " (build one with `nas build-lut`)")
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"lookup table {path}: not a readable Parquet file ({exc})") from None
        raw = (table.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise UserError(f"lookup table {path}: no lookup-table metadata (not written by "
                            f"`nas build-lut`)")
        meta = json.loads(raw)
        version = meta.get("format_version")
        if version not in READABLE_FORMATS:
            raise UserError(f"lookup table {path}: format version {version}, this program reads "
                            f"version {FORMAT_VERSION}; rebuild it with `nas build-lut`")
        if meta.get("simulator_version") != SIMULATOR_VERSION:
            raise UserError(f"lookup table {path}: built with simulator version "
                            f"{meta.get('simulator_version')}, but this is version "
                            f"{SIMULATOR_VERSION}; rebuild it with `nas build-lut`")
        missing = set(COLUMNS if version >= 3 else COLUMNS_V2) - set(table.column_names)
        if missing:
            raise UserError(f"lookup table {path}: missing column(s) {sorted(missing)}")
        return cls(table.to_pylist(), meta, where=f"lookup table {path}")

    def check(self, space: SearchSpace, workload: Workload, sparsity=None, hw=None) -> None:
        """Raise UserError naming every difference between what the table was built for and
        what the caller is about to use: search space, workload (mode, seq, batch, gen, vocab),
        attention sparsity or mask (None = dense), and hardware (unless `hw` is None: then the
        table's hardware is what the caller uses)."""
        meta, problems = self.meta, []
        if hw is not None and meta["hw_hash"] != hw.hash():
            problems.append(f"hardware '{meta['hw_name']}' (hash {meta['hw_hash']}), not "
                            f"'{hw.name}' (hash {hw.hash()})")
        ours, theirs = _space_choices(meta["space"]), _space_choices(space.to_dict())
        if ours != theirs:
            diff = [k for k in {**ours, **theirs} if ours.get(k) != theirs.get(k)]
            problems.append(f"search space '{meta['space'].get('name')}', not '{space.name}' "
                            f"(they differ in {', '.join(diff)})")
        ours, theirs = meta["workload"], asdict(workload)
        if ours != theirs:
            diff = [f"{k}={ours.get(k)} (expected {v})" for k, v in theirs.items()
                    if ours.get(k) != v]
            problems.append(f"workload {Workload(**ours).key}, not {workload.key}: "
                            f"{', '.join(diff)}")
        if meta.get("sparsity") != sparsity_meta(sparsity):
            problems.append(f"{_describe_sparsity(meta.get('sparsity'))}, not "
                            f"{_describe_sparsity(sparsity_meta(sparsity))}")
        if problems:
            raise UserError(f"{self.where}: built for "
                            + "; ".join(problems))

    def describe(self) -> str:
        m = self.meta
        sparse = f", {_describe_sparsity(m.get('sparsity'))}" if m.get("sparsity") else ""
        return (f"lookup table {self.id}: {len(self)} groups, space '{m['space'].get('name')}', "
                f"hardware '{m['hw_name']}' ({m['hw_hash']}), workload {self.workload.key}, "
                f"simulator {m['simulator_version']}{sparse}")


def _schema():
    """The Parquet columns: the GroupKey's fields (text or int64), then the cost (float64)."""
    import pyarrow as pa
    return pa.schema([(f.name, pa.string() if f.type == "str" else pa.int64())
                      for f in fields(GroupKey)]
                     + [("cycles", pa.float64()), ("energy_pj", pa.float64())])


def table_meta(hw: HardwareConfig, workload: dict[str, Any], space: dict[str, Any],
               sparsity: dict[str, Any] | None,
               simulator_version: str = SIMULATOR_VERSION) -> dict[str, Any]:
    """What a table records of where its entries come from (its id hashes part of it)."""
    return {"format_version": FORMAT_VERSION, "hw_name": hw.name, "hw_hash": hw.hash(),
            "hw": hw.to_dict(), "clock_hz": float(hw.clock_hz), "workload": workload,
            "space": space, "simulator_version": simulator_version, "sparsity": sparsity}


def sparsity_meta(sparsity) -> dict[str, Any] | None:
    """JSON-able description of the attention sparsity the table was simulated with."""
    return None if sparsity is None else sparsity.to_dict()


def _describe_sparsity(meta: dict[str, Any] | None) -> str:
    if not meta:
        return "dense attention"
    source = f"mask {meta['mask_path']}" if meta.get("mask_path") else meta.get("pattern", "?")
    return f"attention sparsity {meta.get('sparsity', 0):.3g} ({source})"
