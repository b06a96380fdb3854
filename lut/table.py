"""Lookup tables: the simulated cost of every operator group a search space can produce.

A transformer's operators depend only on a few widths (see `costmodel.workload`): each layer is
one attention group ("attn", d, heads, head_dim) plus one FFN group ("ffn", d, ffn), and the model
ends with one ("head", d) group. A space with |d| widths, |H| head counts and |F| FFN widths has
only |d| * (|H| + |F| + 1) groups, so `CostTable.build` simulates each once and a candidate's
cost is a sum of table entries (exact, because the simulator's cost is additive over operators).

Tables are Parquet files: one row per group (kind, d, heads, head_dim, ffn, cycles, energy_pj)
and, in the schema metadata, what they were built for (hardware config and its hash, workload,
search space, simulator version). `CostTable.load` refuses a table built for anything else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from nas.atomic import atomic_path
from nas.arch import Arch, SearchSpace
from nas.errors import UserError
from costmodel.workload import Workload, arch_groups, group_ops

META_KEY = b"transformer-hw-nas.lut"
FORMAT_VERSION = 1
COLUMNS = ("kind", "d", "heads", "head_dim", "ffn", "cycles", "energy_pj")


@dataclass(frozen=True)
class Cost:
    """Cost of one forward pass (encoder) or prefill + generation (decoder) of a candidate."""

    cycles: float
    latency_s: float
    energy_j: float

    @property
    def edp(self) -> float:
        """Energy-delay product in J*s."""
        return self.energy_j * self.latency_s

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1e3

    @property
    def energy_mj(self) -> float:
        return self.energy_j * 1e3


def space_groups(space: SearchSpace) -> list[tuple]:
    """Every distinct group key that architectures of `space` can produce."""
    keys: list[tuple] = []
    for d in space.d:
        keys += [("attn", d, h, space.head_dim) for h in space.heads]
        keys += [("ffn", d, f) for f in space.ffn]
        keys.append(("head", d))
    return keys


def _row(key: tuple, cycles: float, energy_pj: float) -> dict[str, Any]:
    kind, d = key[0], key[1]
    return {"kind": kind, "d": d,
            "heads": key[2] if kind == "attn" else 0,
            "head_dim": key[3] if kind == "attn" else 0,
            "ffn": key[2] if kind == "ffn" else 0,
            "cycles": float(cycles), "energy_pj": float(energy_pj)}


def _key(row: dict[str, Any]) -> tuple:
    kind, d = row["kind"], int(row["d"])
    if kind == "attn":
        return ("attn", d, int(row["heads"]), int(row["head_dim"]))
    if kind == "ffn":
        return ("ffn", d, int(row["ffn"]))
    return ("head", d)


def _space_choices(space_dict: dict[str, Any]) -> dict[str, Any]:
    """What matters about a space for a table (its choices, not its name)."""
    return {k: v for k, v in space_dict.items() if k != "name"}


class CostTable:
    """Cycles and energy of each operator group, for one (space, hardware, workload, simulator).

    Build with `CostTable.build(space, hw, workload)`, save with `.save(path)`, load with
    `CostTable.load(path, expect_hw=..., expect_space=..., expect_workload=...)`, and look costs
    up with `.cost(arch)` (or `.costs(archs)`).
    """

    def __init__(self, rows: list[dict[str, Any]], meta: dict[str, Any]):
        self.rows = rows
        self.meta = meta
        self.clock_hz = float(meta["clock_hz"])
        # Look-up structure: group key -> (cycles, energy in pJ).
        self._entries: dict[tuple, tuple[float, float]] = {
            _key(r): (float(r["cycles"]), float(r["energy_pj"])) for r in rows}

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
    def build(cls, space: SearchSpace, hw, workload: Workload, sparsity=None,
              progress: bool = False) -> CostTable:
        """Simulate every group of `space` once on `hw` for `workload`."""
        from tqdm import tqdm

        from costmodel.simulate import SIMULATOR_VERSION, simulate_ops

        rows = []
        keys = space_groups(space)
        for key in tqdm(keys, desc=f"lut {space.name} on {hw.name}", unit="group",
                        disable=not progress):
            costs = simulate_ops(group_ops(key, workload), hw, sparsity)
            rows.append(_row(key, sum(c.cycles for c in costs), sum(c.energy_pj for c in costs)))
        meta = {
            "format_version": FORMAT_VERSION,
            "hw_name": hw.name,
            "hw_hash": hw.hash(),
            "hw": hw.to_dict(),
            "clock_hz": float(hw.clock_hz),
            "workload": asdict(workload),
            "space": space.to_dict(),
            "simulator_version": SIMULATOR_VERSION,
            "sparsity": _sparsity_meta(sparsity),
        }
        return cls(rows, meta)

    # -- look-ups --------------------------------------------------------------------------
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
        return Cost(cycles=cycles, latency_s=cycles / self.clock_hz, energy_j=energy_pj * 1e-12)

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
    def load(cls, path: str | Path, expect_hw=None, expect_space: SearchSpace | None = None,
             expect_workload: Workload | None = None, check_simulator: bool = True) -> CostTable:
        """Read a table; refuse it (UserError naming what differs) if it was built for another
        hardware, space, workload or simulator version than expected."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise UserError(f"lookup table not found: {path} (build one with `nas build-lut`)")
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"lookup table {path}: not a readable Parquet file ({exc})") from None
        raw = (table.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise UserError(f"lookup table {path}: no lookup-table metadata (not written by "
                            f"`nas build-lut`)")
        meta = json.loads(raw)
        missing = set(COLUMNS) - set(table.column_names)
        if missing:
            raise UserError(f"lookup table {path}: missing column(s) {sorted(missing)}")
        lut = cls(table.to_pylist(), meta)
        lut.check(expect_hw=expect_hw, expect_space=expect_space, expect_workload=expect_workload,
                  check_simulator=check_simulator, where=str(path))
        return lut

    def check(self, expect_hw=None, expect_space: SearchSpace | None = None,
              expect_workload: Workload | None = None, check_simulator: bool = True,
              where: str = "lookup table") -> None:
        """Raise UserError if the table does not match what the caller is about to use."""
        meta = self.meta
        if check_simulator:
            from costmodel.simulate import SIMULATOR_VERSION
            if meta["simulator_version"] != SIMULATOR_VERSION:
                raise UserError(f"{where}: built with simulator version "
                                f"{meta['simulator_version']}, but this is version "
                                f"{SIMULATOR_VERSION}; rebuild it with `nas build-lut`")
        if expect_hw is not None and meta["hw_hash"] != expect_hw.hash():
            raise UserError(f"{where}: built for hardware '{meta['hw_name']}' (hash "
                            f"{meta['hw_hash']}), not for '{expect_hw.name}' (hash "
                            f"{expect_hw.hash()})")
        if expect_space is not None:
            ours, theirs = _space_choices(meta["space"]), _space_choices(expect_space.to_dict())
            if ours != theirs:
                diff = [k for k in theirs if ours.get(k) != theirs[k]]
                raise UserError(f"{where}: built for search space '{meta['space'].get('name')}', "
                                f"not '{expect_space.name}' (they differ in {', '.join(diff)})")
        if expect_workload is not None:
            ours, theirs = meta["workload"], asdict(expect_workload)
            if ours != theirs:
                diff = [f"{k}={ours.get(k)} (expected {v})" for k, v in theirs.items()
                        if ours.get(k) != v]
                raise UserError(f"{where}: built for workload {Workload(**ours).key}, not "
                                f"{expect_workload.key}: {', '.join(diff)}")

    def describe(self) -> str:
        m = self.meta
        sparse = m.get("sparsity")
        sparse = (f", attention sparsity {sparse['sparsity']:.3g} ({sparse['pattern']})"
                  if isinstance(sparse, dict) and "sparsity" in sparse else "")
        return (f"lookup table {self.id}: {len(self)} groups, space '{m['space'].get('name')}', "
                f"hardware '{m['hw_name']}' ({m['hw_hash']}), workload {self.workload.key}, "
                f"simulator {m['simulator_version']}{sparse}")


def _schema():
    import pyarrow as pa
    return pa.schema([("kind", pa.string()), ("d", pa.int64()), ("heads", pa.int64()),
                      ("head_dim", pa.int64()), ("ffn", pa.int64()), ("cycles", pa.float64()),
                      ("energy_pj", pa.float64())])


def _sparsity_meta(sparsity) -> Any:
    """JSON-able description of the attention sparsity the table was simulated with."""
    if sparsity is None:
        return None
    if hasattr(sparsity, "to_dict"):
        return sparsity.to_dict()
    try:
        return asdict(sparsity)
    except TypeError:
        return repr(sparsity)
