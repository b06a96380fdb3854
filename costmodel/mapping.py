"""How one GEMM is mapped onto the array and its buffers, and what that mapping costs.

GEMM OUT[M, N] = A[M, K] @ B[K, N] on an R x C array (SCALE-Sim conventions). A *mapping* says
which dataflow runs it, which tile (tm, tk, tn) of A, B and OUT the scratchpad and accumulator
hold, in which order the tiles are visited, and what overlaps what. Three mappers
(`HardwareConfig.mapping`) choose one:

- `scalesim`: the simulator's original model, validated against SCALE-Sim 3.0.0 (compute cycles
  within one cycle on all 18 reference runs, tests/test_costmodel_scalesim.py). Every
  weight-stationary fold pays preload + fill + drain (2R + C + rows - 2 cycles); tiles are picked
  from a grid of power-of-two multiples of the array size for the fewest steady-state cycles,
  then the least DRAM traffic; DRAM transfers overlap compute on double-buffered hardware.
- `gemmini`: Gemmini's own software tiler, `tiled_matmul_auto` in gemmini-rocc-tests'
  include/gemmini.h (read, not copied): square output tiles sized from the accumulator (80 x 80
  on the default 256 KiB scratchpad / 64 KiB accumulator, 176 x 176 on 64 / 256 KiB), grown
  while they fit, visited in a fixed i-j-k order with K innermost; every tile moves its A and B
  blocks in again (no reuse across tiles) and, for layers with a bias, an int32 bias tile into
  the accumulator before its first K step; outputs move out after the last. The array runs each
  weight block over the tile's rows with SCALE-Sim's fold timing, and DMA is not overlapped with
  compute: with full overlap every BERT matmul is compute-bound at 16 B/cycle and the survey's
  buffer rebalance (Kim et al. 2023, Sec. 3.4.3: -36% measured) would gain only -21%, from the
  fold overheads alone; serialised DMA gives -27% (see experiments/studies/accelerator/).
- `search`: a per-GEMM search over dataflows (both where `dataflow: both`), on-chip tile sizes
  (power-of-two and balanced splits of each dimension), the two tile loop orders with K
  innermost, single or double buffering, with the weight preload hidden behind the previous
  fold where the PEs double-buffer their weights (`weight_double_buffer`). It minimises the
  operator's latency, energy or EDP (`mapping_objective`). The `scalesim` mapping is one of its
  candidates, so with the latency objective it is never slower than `scalesim`.

All candidates of a mapper are evaluated at once with numpy, on a grid of (setting, tm, tn, tk)
whose terms are computed on the axes they depend on (`_grid_terms`, the same numbers as
`evaluate` per candidate), and `map_gemm` is cached on the GEMM's shape, so lookup tables stay
fast with the search on (a survey-space table per hardware point well under 0.5 s:
experiments/search/table_speed/table_speed.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from costmodel.cost import energy_pj
from costmodel.hardware import MAPPING_MODES, MAPPING_OBJECTIVES, HardwareConfig

LOOP_ORDERS = ("mnk", "nmk")   # tile loops, outermost first; K innermost keeps partial sums on chip
BALANCED_SPLITS = 16           # search: also tiles of ceil(dim / p) for p = 1..16 (less padding)
LATENCY_TOLERANCE = 0.005      # search, latency objective: cycles this close to the fewest tie


def cdiv(a, b):
    """Ceiling division of integers (or integer numpy arrays)."""
    return -(-a // b)


# -- records ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mapping:
    """The mapping chosen for one GEMM: what the JSON reports per operator."""

    mode: str                     # the mapper that chose it (MAPPING_MODES)
    dataflow: str                 # "ws" or "os"
    tile: tuple[int, int, int]    # (tm, tk, tn): elements of M, K, N held on chip per tile
    array: tuple[int, int]        # (R, C) of the array that runs it
    loop_order: str               # order of the tile loops (LOOP_ORDERS), outermost first
    tiles: tuple[int, int, int]   # tiles along M, K, N
    a_reads: int                  # times A is read from DRAM (1 = compulsory)
    b_reads: int                  # times B is read from DRAM
    reuse: bool                   # an unchanged operand tile stays on chip between tiles
    preload_overlap: bool         # WS: next weights preload while the current fold streams
    dma_overlap: bool             # DRAM transfers overlap compute (double-buffered tiles)
    acc_buffers: int              # output tiles the accumulator holds at once
    bias: bool                    # an int32 bias tile moved into the accumulator per output tile

    def to_dict(self) -> dict[str, Any]:
        tm, tk, tn = self.tile
        r, c = self.array
        return {"mode": self.mode, "dataflow": self.dataflow,
                "sram_tile_mkn": [tm, tk, tn],
                "array_tile_mkn": [tm, r, c] if self.dataflow == "ws" else [r, tk, c],
                "tiles_mkn": list(self.tiles), "loop_order": self.loop_order,
                "a_dram_reads": self.a_reads, "b_dram_reads": self.b_reads,
                "reuse": self.reuse, "preload_overlap": self.preload_overlap,
                "dma_overlap": self.dma_overlap, "accumulator_buffers": self.acc_buffers,
                "bias": self.bias}


class GemmCost(NamedTuple):
    """One M x K x N GEMM instance on an array with `rows` rows (not yet repeated/batched)."""
    compute: float        # array busy cycles
    dram: float           # DRAM transfer cycles
    exposed: float        # transfers not hidden by double buffering (first load + last store)
    dram_a: float         # bytes of A read from DRAM
    dram_b: float         # bytes of B read from DRAM
    dram_out: float       # bytes of the output written to DRAM
    sp_read: float
    sp_write: float
    acc_read: float       # accumulator reads to accumulate a partial sum (none on the first step)
    acc_write: float
    tile: tuple[int, int, int]
    dram_bias: float = 0.0    # bytes of bias moved into the accumulator (gemmini mapping)
    acc_drain: float = 0.0    # accumulator reads that move the finished outputs out
    overlap: bool = True      # DRAM transfers overlap compute
    mapping: Mapping | None = None

    @property
    def steady(self) -> float:
        """Cycles of the GEMM body, without the exposed prologue/epilogue."""
        return max(self.compute, self.dram) if self.overlap else self.compute + self.dram

    @property
    def cycles(self) -> float:
        return self.steady + self.exposed

    @property
    def dram_bytes(self) -> float:
        return self.dram_a + self.dram_b + self.dram_out + self.dram_bias

    @property
    def sp_bytes(self) -> float:
        return self.sp_read + self.sp_write

    @property
    def acc_bytes(self) -> float:
        return self.acc_read + self.acc_write + self.acc_drain

    def traffic(self, count: int = 1) -> dict[str, float]:
        """Bytes per operand and buffer, for `count` instances."""
        return {"dram_read_a": self.dram_a * count, "dram_read_b": self.dram_b * count,
                "dram_read_bias": self.dram_bias * count,
                "dram_write": self.dram_out * count, "scratchpad_read": self.sp_read * count,
                "scratchpad_write": self.sp_write * count,
                "accumulator_read": self.acc_read * count,
                "accumulator_drain_read": self.acc_drain * count,
                "accumulator_write": self.acc_write * count}


# -- cost formulas (pure, on ints or integer numpy arrays) ----------------------------------------

def ws_compute_cycles(m: int, k: int, n: int, rows: int, cols: int, tm,
                      preload_overlap: bool = False):
    """Weight-stationary array cycles with `tm` rows streamed per fold (the M tile).

    Without overlap: ceil(K/R) * ceil(N/C) folds per M tile, fold = 2R + C + rows - 2 (weight
    preload R, fill R, drain C; SCALE-Sim 3.0.0). With the PEs double-buffering their weights,
    the next weights (R cycles) preload while the current fold streams: a fold then takes
    max(rows, R), plus one preload, fill and drain for the whole sequence of folds.
    """
    folds_per_m_tile = cdiv(k, rows) * cdiv(n, cols)
    m_tiles = cdiv(m, tm)
    if not preload_overlap:
        return folds_per_m_tile * (m_tiles * (2 * rows + cols - 2) + m)
    last = m - (m_tiles - 1) * tm                   # rows of the last M tile
    streaming = folds_per_m_tile * ((m_tiles - 1) * np.maximum(tm, rows) + np.maximum(last, rows))
    # the last fold's period is its rows (nothing follows), then fill and drain
    return streaming - np.maximum(last, rows) + last + 2 * rows + cols - 2


def os_compute_cycles(m: int, k: int, n: int, rows: int, cols: int, tk):
    """OS: ceil(M/R) * ceil(N/C) output tiles, each K + R + C - 2 cycles per K tile (SCALE-Sim)."""
    return cdiv(m, rows) * cdiv(n, cols) * (k + cdiv(k, tk) * (rows + cols - 2))


def operand_reads(m_tiles, k_tiles, n_tiles, reuse: bool):
    """Times A and B are read from DRAM with the K loop innermost, for each loop order
    (LOOP_ORDERS): an operand tile that does not change between consecutive tile iterations is
    kept (`reuse`) instead of moved in again. Returns ((a_mnk, b_mnk), (a_nmk, b_nmk))."""
    one_k = (k_tiles == 1) & reuse
    a_mnk = np.where(one_k, 1, n_tiles)                        # A row-block spans all of K
    b_mnk = np.where(one_k & (n_tiles == 1), 1, m_tiles)
    b_nmk = np.where(one_k, 1, m_tiles)                        # B column-block spans all of K
    a_nmk = np.where(one_k & (m_tiles == 1), 1, n_tiles)
    return (a_mnk, b_mnk), (a_nmk, b_nmk)


class Terms(NamedTuple):
    """Costs of a set of candidate mappings of one GEMM (numpy arrays, one entry each)."""
    compute: np.ndarray
    dram: np.ndarray
    exposed: np.ndarray
    dram_a: np.ndarray
    dram_b: np.ndarray
    dram_bias: np.ndarray
    dram_out: np.ndarray
    sp_read: np.ndarray
    sp_write: np.ndarray
    acc_read: np.ndarray
    acc_write: np.ndarray
    acc_drain: np.ndarray
    steady: np.ndarray
    order: np.ndarray       # index into LOOP_ORDERS
    a_reads: np.ndarray
    b_reads: np.ndarray

    @property
    def dram_bytes(self) -> np.ndarray:
        return self.dram_a + self.dram_b + self.dram_bias + self.dram_out


@dataclass(frozen=True)
class Setting:
    """What a group of candidate mappings shares besides its tile sizes."""
    dataflow: str
    buffers: int                # copies of the input tiles the scratchpad holds (2: double)
    dma_overlap: bool           # DRAM transfers of the next tile overlap this tile's compute
    preload_overlap: bool       # WS: weights preload behind the previous fold
    reuse: bool                 # an unchanged operand tile is not moved in again
    bias: bool                  # an int32 bias tile moved into the accumulator per output tile
    gemmini_acc: bool = False   # accumulator holds `buffers` whole output tiles (Gemmini's tiler)


def accumulator_copies(m: int, n: int, cols: int, s: Setting, tm, tn):
    """Output tiles the accumulator must hold at once.

    With K innermost, an output tile's column blocks finish one after another during its last
    K step and each drains while the next accumulates, so the previous tile's last block drains
    while the next tile's first block fills another part of the accumulator: one copy is enough
    when the tile spans two or more array columns. A one-block tile needs `s.buffers` copies to
    overlap its drain (and Gemmini's tiler always halves its accumulator); a GEMM whose whole
    output is one tile needs one.
    """
    if s.gemmini_acc:
        return np.full(np.broadcast(tm, tn).shape, s.buffers)
    one_block = cdiv(tn, cols) == 1
    one_tile = (cdiv(m, tm) == 1) & (cdiv(n, tn) == 1)
    return np.where(one_block & ~one_tile, s.buffers, 1)


def evaluate(m: int, k: int, n: int, rows: int, cols: int, hw: HardwareConfig, s: Setting,
             tm, tk, tn) -> Terms:
    """Cycles and traffic of every candidate tile (tm, tk, tn) (broadcast arrays) under `s`."""
    ib, ab, bw = hw.in_bytes, hw.acc_bytes, hw.dram_bytes_per_cycle
    tm, tk, tn = (np.asarray(x, dtype=np.int64) for x in (tm, tk, tn))
    m_tiles, k_tiles, n_tiles = cdiv(m, tm), cdiv(k, tk), cdiv(n, tn)
    if s.dataflow == "ws":
        compute = ws_compute_cycles(m, k, n, rows, cols, tm, s.preload_overlap)
        k_steps = cdiv(k, rows)                 # partial sums added per output: one per K fold
        b_array_reads = m_tiles                 # each weight block preloaded once per M tile
    else:
        compute = os_compute_cycles(m, k, n, rows, cols, tk)
        k_steps = k_tiles                       # the array accumulates a whole K tile
        b_array_reads = cdiv(m, rows)
    (a1, b1), (a2, b2) = operand_reads(m_tiles, k_tiles, n_tiles, s.reuse)
    first = m * k * a1 + k * n * b1 <= m * k * a2 + k * n * b2   # fewer DRAM reads, mnk on ties
    a_reads, b_reads = np.where(first, a1, a2), np.where(first, b1, b2)
    dram_a, dram_b = m * k * a_reads * ib, k * n * b_reads * ib
    dram_out = m * n * ib                                      # outputs requantised to int8
    dram_bias = m * n * ab if s.bias else 0                    # one bias tile per output tile
    dram = (dram_a + dram_b + dram_bias + dram_out) / bw
    if s.dma_overlap:    # first tile in (A, B and bias) and last tile out are not hidden
        exposed = ((tm * tk + tk * tn) * ib + tm * tn * (ib + (ab if s.bias else 0))) / bw
        steady = np.maximum(compute, dram)
    else:
        exposed = np.zeros_like(dram)
        steady = compute + dram
    # A enters the array once per column fold, B once per M tile (WS) or output row block (OS)
    sp_read = (m * k * cdiv(n, cols) + k * n * b_array_reads) * ib
    sp_write = dram_a + dram_b                                 # DRAM reads land in the scratchpad
    acc_write = m * n * (k_steps + s.bias) * ab                # each K step (and the bias) writes
    acc_read = m * n * (k_steps - 1 + s.bias) * ab             # the first step has nothing to add
    acc_drain = m * n * ab                                     # finished outputs read to move out
    shape = np.broadcast(tm, tk, tn).shape

    def per_candidate(x, dtype=float) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, dtype=dtype), shape)

    return Terms(*(per_candidate(x) for x in (compute, dram, exposed, dram_a, dram_b, dram_bias,
                                              dram_out, sp_read, sp_write, acc_read, acc_write,
                                              acc_drain, steady)),
                 *(per_candidate(x, np.int64) for x in (np.where(first, 0, 1), a_reads, b_reads)))


def fits(m: int, n: int, cols: int, hw: HardwareConfig, s: Setting, tm, tk, tn) -> np.ndarray:
    """Which candidate tiles fit: `s.buffers` copies of the A and B tiles in the scratchpad, and
    `accumulator_copies` int32 output tiles in the accumulator."""
    ib, ab = hw.in_bytes, hw.acc_bytes
    sp_ok = s.buffers * (tm * tk + tk * tn) * ib <= hw.scratchpad_bytes
    acc_ok = accumulator_copies(m, n, cols, s, tm, tn) * tm * tn * ab <= hw.accumulator_bytes
    return sp_ok & acc_ok


# -- candidate tile sizes -------------------------------------------------------------------------

def power_of_two_tiles(total: int, unit: int) -> list[int]:
    """Whole dimension, and multiples of the array size doubling up from one array width."""
    sizes, t = {total}, unit
    while t < total:
        sizes.add(t)
        t *= 2
    return sorted(sizes)


def search_tiles(total: int, unit: int) -> list[int]:
    """`power_of_two_tiles`, plus balanced splits: ceil(total / p) rounded up to the array size,
    for p = 1..BALANCED_SPLITS (tiles that leave little padding in the last one)."""
    sizes = set(power_of_two_tiles(total, unit))
    for p in range(1, BALANCED_SPLITS + 1):
        sizes.add(min(total, cdiv(cdiv(total, p), unit) * unit))
    return sorted(sizes)


def _dataflows(hw: HardwareConfig) -> tuple[str, ...]:
    return ("ws", "os") if hw.dataflow == "both" else (hw.dataflow,)


# -- the three mappers ----------------------------------------------------------------------------

class _Group(NamedTuple):
    """Candidates of consecutive settings that share a tile-size function, as a broadcast grid
    of shape (settings, M sizes, N sizes, K sizes): flattened in C order this is the order of
    the original candidate list (setting by setting, then tm, tn, tk), which breaks ties."""
    terms: Terms             # each field broadcastable to `shape`
    ok: np.ndarray           # the candidate fits the buffers (broadcastable to `shape`)
    shape: tuple[int, int, int, int]
    first: int               # index of the group's first setting
    m_sizes: list[int]
    n_sizes: list[int]
    k_sizes: list[int]


def _grid_terms(m: int, k: int, n: int, rows: int, cols: int, hw: HardwareConfig,
                settings: list[Setting], m_sizes: list[int], n_sizes: list[int],
                k_sizes: list[int]) -> tuple[Terms, np.ndarray]:
    """`evaluate` and `fits` of every (setting, tm, tn, tk) at once, on broadcast axes: a
    term that depends on one tile dimension is computed on that axis only. Each branch on a
    setting is computed for every setting and picked per setting, with the same formulas and
    dtypes, so every number equals `evaluate`'s (and the whole grid costs a few numpy passes,
    which keeps lookup-table builds fast with the search on)."""
    ib, ab, bw = hw.in_bytes, hw.acc_bytes, hw.dram_bytes_per_cycle

    def per_setting(values: list, dtype=bool):
        """One value per setting on the settings axis, or the value itself when every
        setting has it (so a term that does not depend on it stays off that axis)."""
        if all(v == values[0] for v in values):
            return values[0]
        return np.array(values, dtype=dtype).reshape(-1, 1, 1, 1)

    def pick(flag, a, b):
        """np.where(flag, a, b), without building either branch's array when flag is one
        Python bool for every setting."""
        if isinstance(flag, bool):
            return a() if flag else b()
        return np.where(flag, a(), b())

    ws = per_setting([s.dataflow == "ws" for s in settings])
    dma = per_setting([s.dma_overlap for s in settings])
    pre = per_setting([s.preload_overlap for s in settings])
    reuse = per_setting([s.reuse for s in settings])
    bias = per_setting([s.bias for s in settings])
    buffers = per_setting([s.buffers for s in settings], np.int64)
    gemmini_acc = per_setting([s.gemmini_acc for s in settings])
    tm = np.array(m_sizes, dtype=np.int64).reshape(1, -1, 1, 1)
    tn = np.array(n_sizes, dtype=np.int64).reshape(1, 1, -1, 1)
    tk = np.array(k_sizes, dtype=np.int64).reshape(1, 1, 1, -1)

    m_tiles, k_tiles, n_tiles = cdiv(m, tm), cdiv(k, tk), cdiv(n, tn)
    compute = pick(ws, lambda: pick(pre, lambda: ws_compute_cycles(m, k, n, rows, cols, tm, True),
                                    lambda: ws_compute_cycles(m, k, n, rows, cols, tm, False)),
                   lambda: os_compute_cycles(m, k, n, rows, cols, tk))
    k_steps = pick(ws, lambda: cdiv(k, rows), lambda: k_tiles)
    b_array_reads = pick(ws, lambda: m_tiles, lambda: cdiv(m, rows))
    (a1, b1), (a2, b2) = operand_reads(m_tiles, k_tiles, n_tiles, reuse)
    first = m * k * a1 + k * n * b1 <= m * k * a2 + k * n * b2   # fewer DRAM reads, mnk on ties
    a_reads, b_reads = np.where(first, a1, a2), np.where(first, b1, b2)
    dram_a, dram_b = m * k * a_reads * ib, k * n * b_reads * ib
    dram_out = m * n * ib
    dram_bias = pick(bias, lambda: m * n * ab, lambda: 0)
    dram = (dram_a + dram_b + dram_bias + dram_out) / bw
    exposed = pick(dma, lambda: ((tm * tk + tk * tn) * ib
                                 + tm * tn * (ib + pick(bias, lambda: ab, lambda: 0))) / bw,
                   lambda: np.zeros(1))
    compute = np.asarray(compute, dtype=float)   # cast once, not per element while broadcasting
    steady = pick(dma, lambda: np.maximum(compute, dram), lambda: compute + dram)
    sp_read = (m * k * cdiv(n, cols) + k * n * b_array_reads) * ib
    bias_step = bias.astype(np.int64) if isinstance(bias, np.ndarray) else int(bias)
    as_float = lambda x: np.asarray(x, dtype=float)             # noqa: E731
    terms = Terms(compute=compute, dram=dram, exposed=as_float(exposed),
                  dram_a=as_float(dram_a), dram_b=as_float(dram_b),
                  dram_bias=as_float(dram_bias), dram_out=as_float(dram_out),
                  sp_read=as_float(sp_read), sp_write=as_float(dram_a + dram_b),
                  acc_read=as_float(m * n * (k_steps - 1 + bias_step) * ab),
                  acc_write=as_float(m * n * (k_steps + bias_step) * ab),
                  acc_drain=as_float(m * n * ab), steady=as_float(steady),
                  order=np.where(first, 0, 1), a_reads=a_reads, b_reads=b_reads)
    one_block = cdiv(tn, cols) == 1
    one_tile = (m_tiles == 1) & (n_tiles == 1)
    copies = pick(gemmini_acc, lambda: buffers,
                  lambda: np.where(one_block & ~one_tile, buffers, 1))
    ok = ((buffers * (tm * tk + tk * tn) * ib <= hw.scratchpad_bytes)
          & (copies * tm * tn * ab <= hw.accumulator_bytes))
    return terms, ok


def _pool(m: int, k: int, n: int, rows: int, cols: int, hw: HardwareConfig,
          settings: list[Setting], tile_sizes: list) -> list[_Group]:
    """Every candidate tile, for each setting with its tile-size function, as broadcast grids
    (with which of them fit)."""
    groups: list[_Group] = []
    start = 0
    while start < len(settings):
        sizes = tile_sizes[start]
        end = start
        while end < len(settings) and tile_sizes[end] is sizes:
            end += 1
        m_sizes, n_sizes, k_sizes = sizes(m, rows), sizes(n, cols), sizes(k, rows)
        terms, ok = _grid_terms(m, k, n, rows, cols, hw, settings[start:end], m_sizes,
                                n_sizes, k_sizes)
        groups.append(_Group(terms, ok, (end - start, len(m_sizes), len(n_sizes),
                                         len(k_sizes)), start, m_sizes, n_sizes, k_sizes))
        start = end
    if not any(np.any(g.ok) for g in groups):  # cannot happen: HardwareConfig checks one fits
        raise AssertionError(f"no tile of {m}x{k}x{n} fits {hw.name}")
    return groups


def _flat(groups: list[_Group], values) -> np.ndarray:
    """One array over every candidate of `groups` (in pool order) of `values(group)`, or of
    `values[i]` for group i when `values` is a list."""
    if isinstance(values, list):
        parts = [np.broadcast_to(v, g.shape).ravel() for g, v in zip(groups, values)]
    else:
        parts = [np.broadcast_to(values(g), g.shape).ravel() for g in groups]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _result(mode: str, m: int, k: int, n: int, rows: int, cols: int, s: Setting,
            value, tile: tuple[int, int, int]) -> GemmCost:
    """The GemmCost, with its Mapping, of one candidate (`value(field)`: its Terms value)."""
    tm, tk, tn = tile
    mapping = Mapping(mode, s.dataflow, tile, (rows, cols), LOOP_ORDERS[int(value("order"))],
                      (cdiv(m, tm), cdiv(k, tk), cdiv(n, tn)), int(value("a_reads")),
                      int(value("b_reads")), s.reuse, s.preload_overlap and s.dataflow == "ws",
                      s.dma_overlap, int(accumulator_copies(m, n, cols, s, tm, tn)), s.bias)
    # the cost fields GemmCost shares with Terms, for this candidate
    c = {name: float(value(name)) for name in GemmCost._fields if name in Terms._fields}
    return GemmCost(**c, tile=tile, overlap=s.dma_overlap, mapping=mapping)


def _first_min(alive: np.ndarray, keys: tuple) -> int:
    """Index of the candidate, among the `alive` ones, that sorts first by `keys` (most
    important first), then by index: np.lexsort((index,) + reversed(keys)) over the alive
    candidates, in linear time (narrow them to the smallest value of each key in turn)."""
    alive = alive.copy()
    for key in keys:
        key = np.broadcast_to(key, alive.shape)
        alive &= key == key[alive].min()
    return int(np.argmax(alive))


def _locate(groups: list[_Group], flat) -> list[tuple[_Group, tuple]]:
    """The group of each flat pool index in `flat` (ascending), and its index there."""
    found: list[tuple[_Group, tuple]] = []
    start = 0
    flat = np.asarray(flat)
    for g in groups:
        size = math.prod(g.shape)
        mine = flat[(flat >= start) & (flat < start + size)] - start
        if len(mine):
            found.append((g, np.unravel_index(mine, g.shape)))
        start += size
    return found


def _candidate(mode: str, m: int, k: int, n: int, rows: int, cols: int,
               settings: list[Setting], groups: list[_Group], best: int) -> GemmCost:
    """The GemmCost of candidate `best` (a flat pool index)."""
    ((g, (si, im, jn, lk)),) = _locate(groups, [best])
    idx = (int(si[0]), int(im[0]), int(jn[0]), int(lk[0]))

    def value(name: str):
        return np.broadcast_to(getattr(g.terms, name), g.shape)[idx]

    return _result(mode, m, k, n, rows, cols, settings[g.first + idx[0]], value,
                   (int(g.m_sizes[idx[1]]), int(g.k_sizes[idx[3]]), int(g.n_sizes[idx[2]])))


def _best(mode: str, m: int, k: int, n: int, rows: int, cols: int, settings: list[Setting],
          groups: list[_Group], keys: tuple) -> GemmCost:
    """The fitting candidate that sorts first by `keys` (flat arrays over the pool, most
    important first), then by its place in the pool."""
    best = _first_min(_flat(groups, lambda g: g.ok), keys)
    return _candidate(mode, m, k, n, rows, cols, settings, groups, best)


def scalesim_mapping(m: int, k: int, n: int, rows: int, cols: int,
                     hw: HardwareConfig) -> GemmCost:
    """The original model: power-of-two tiles, fewest steady-state cycles, then least DRAM
    traffic, then the smallest exposed prologue (first candidate on ties)."""
    settings = _scalesim_settings(hw)
    p = _pool(m, k, n, rows, cols, hw, settings, [power_of_two_tiles] * len(settings))
    return _best("scalesim", m, k, n, rows, cols, settings, p,
                 (_flat(p, lambda g: g.terms.steady), _flat(p, lambda g: g.terms.dram_bytes),
                  _flat(p, lambda g: g.terms.exposed)))


def _scalesim_settings(hw: HardwareConfig) -> list[Setting]:
    return [Setting(df, hw.buffers, hw.double_buffer, False, True, False)
            for df in _dataflows(hw)]


def gemmini_tiles(m: int, k: int, n: int, rows: int, cols: int, hw: HardwareConfig,
                  double_buffered: bool) -> tuple[int, int, int]:
    """Tile sizes (tm, tk, tn) in elements that Gemmini's `tiled_matmul_auto` picks.

    In blocks of one array (A: R x R, B: R x C, OUT: R x C): start from a square output tile of
    floor(sqrt(accumulator blocks)) per side and a K depth that fills half of the tile's
    scratchpad share with A, each capped at the matrix; then grow J, I and K by one block in turn while the A + B tiles
    fit the scratchpad and the output tile the accumulator. Double-buffered (WS), each tile may
    use half of each buffer. Gemmini's array is square; R x C arrays use the blocks above.
    """
    ib, ab = hw.in_bytes, hw.acc_bytes
    nbuf = 2 if double_buffered else 1
    sp_rows_bytes, acc_bytes = hw.scratchpad_bytes // nbuf, hw.accumulator_bytes // nbuf
    a_blk, b_blk, c_blk = rows * rows * ib, rows * cols * ib, rows * cols * ab
    blocks_i, blocks_k, blocks_j = cdiv(m, rows), cdiv(k, rows), cdiv(n, cols)
    side = max(1, math.isqrt(acc_bytes // c_blk))               # max_tile_i_j
    depth = max(1, (sp_rows_bytes // 2 // a_blk) // side)       # max_tile_k: A's partition
    ti, tj, tk = min(blocks_i, side), min(blocks_j, side), min(blocks_k, depth)

    def sp_fits(i: int, j: int, kk: int) -> bool:
        return i * kk * a_blk + kk * j * b_blk <= sp_rows_bytes

    def acc_fits(i: int, j: int) -> bool:
        return i * j * c_blk <= acc_bytes

    while not sp_fits(ti, tj, tk) and tk > 1:   # guard for non-Gemmini shapes (R != C)
        tk -= 1
    while True:                                  # "fill scratchpad as much as possible"
        grown = False
        if tj < blocks_j and sp_fits(ti, tj + 1, tk) and acc_fits(ti, tj + 1):
            tj, grown = tj + 1, True
        if ti < blocks_i and sp_fits(ti + 1, tj, tk) and acc_fits(ti + 1, tj):
            ti, grown = ti + 1, True
        if tk < blocks_k and sp_fits(ti, tj, tk + 1):
            tk, grown = tk + 1, True
        if not grown:
            break
    return min(m, ti * rows), min(k, tk * rows), min(n, tj * cols)


def gemmini_mapping(m: int, k: int, n: int, rows: int, cols: int, hw: HardwareConfig,
                    bias: bool) -> GemmCost:
    """Gemmini's tiler (see `gemmini_tiles`), i-j-k order, every tile's A and B moved in again,
    the bias tile moved into the accumulator before the first K step, DMA not overlapped."""
    dataflow = "os" if hw.dataflow == "os" else "ws"      # WS on "both": what BERT runs use
    double = hw.double_buffer and dataflow == "ws"         # Gemmini double-buffers WS tiles only
    tile = gemmini_tiles(m, k, n, rows, cols, hw, double)
    s = Setting(dataflow, 2 if double else 1, False, False, False, bias, gemmini_acc=True)
    t = evaluate(m, k, n, rows, cols, hw, s, *([x] for x in tile))
    return _result("gemmini", m, k, n, rows, cols, s, lambda name: getattr(t, name)[0], tile)


def search_mapping(m: int, k: int, n: int, rows: int, cols: int, hw: HardwareConfig,
                   batch: int = 1) -> GemmCost:
    """The best mapping for `hw.mapping_objective` over `batch` back-to-back instances.

    Candidates: each allowed dataflow x {double, single} buffering x tiles from `search_tiles`,
    operand tiles kept when unchanged, the preload hidden where the PEs double-buffer weights
    (never slower than not hiding it). The `scalesim` candidates are a subset, so with the
    latency objective the result is never slower than `scalesim_mapping`.
    """
    buffering = ((2, True), (1, False)) if hw.double_buffer else ((1, False),)
    settings = [Setting(df, nbuf, overlap, hw.weight_double_buffer, True, False)
                for df in _dataflows(hw) for nbuf, overlap in buffering]
    sizes = [search_tiles] * len(settings)
    # the scalesim candidates: with the preload overlap they are dominated, but keeping them
    # makes "never slower than scalesim" hold by construction
    extra = [s for s in _scalesim_settings(hw) if s not in settings]
    settings, sizes = settings + extra, sizes + [power_of_two_tiles] * len(extra)
    p = _pool(m, k, n, rows, cols, hw, settings, sizes)

    def times(x):                        # batch * x (1 * x is x: skip the pass when batch is 1)
        return x if batch == 1 else batch * x

    per_group = []
    for g in p:
        t = g.terms
        cycles = times(t.steady) + t.exposed
        energy = sum(energy_pj(hw, cycles, macs=batch * m * k * n,
                               sp=times(t.sp_read + t.sp_write),
                               acc=times(t.acc_read + t.acc_write + t.acc_drain),
                               dram=times(t.dram_bytes)).values())
        per_group.append((cycles, energy))
    cycles = _flat(p, [c for c, _ in per_group])
    energy = _flat(p, [e for _, e in per_group])
    ok = _flat(p, lambda g: g.ok)
    if hw.mapping_objective == "latency":
        # the fewest cycles; within LATENCY_TOLERANCE of them (and never slower than the
        # scalesim candidates), the least energy: a hair of latency is not worth re-reading
        # an operand many times over. (The first key, "within", is 0 for the fastest
        # candidate, so it narrows the candidates to those within.)
        scalesim_ids = [i for i, s in enumerate(settings) if s in _scalesim_settings(hw)]
        scalesim = _flat(p, lambda g: np.isin(np.arange(g.first, g.first + g.shape[0]),
                                              scalesim_ids).reshape(-1, 1, 1, 1))
        slowest = min(cycles[ok].min() * (1 + LATENCY_TOLERANCE), cycles[scalesim & ok].min())
        best = _first_min(ok & (cycles <= slowest), (energy, cycles))
        return _candidate("search", m, k, n, rows, cols, settings, p, best)
    keys = {"energy": (energy, cycles), "edp": (energy * cycles, cycles)}[hw.mapping_objective]
    return _candidate("search", m, k, n, rows, cols, settings, p, _first_min(ok, keys))


@lru_cache(maxsize=65536)
def map_gemm(m: int, k: int, n: int, hw: HardwareConfig, rows: int, bias: bool = False,
             batch: int = 1) -> GemmCost:
    """Cost of one GEMM instance mapped by `hw.mapping` on `rows` x hw.cols PEs. `bias` (a
    layer with a bias) matters to the gemmini mapping only, `batch` (back-to-back instances)
    to the search only; callers pass neutral values otherwise (see gemm.gemm_cost)."""
    if hw.mapping == "gemmini":
        return gemmini_mapping(m, k, n, rows, hw.cols, hw, bias)
    if hw.mapping == "search":
        return search_mapping(m, k, n, rows, hw.cols, hw, batch)
    return scalesim_mapping(m, k, n, rows, hw.cols, hw)


def with_mapping(hw: HardwareConfig, mode: str | None = None,
                 objective: str | None = None) -> HardwareConfig:
    """`hw` mapped by another mapper (and/or search objective); same name, new hash."""
    return replace(hw, mapping=mode or hw.mapping,
                   mapping_objective=objective or hw.mapping_objective)


__all__ = ["MAPPING_MODES", "MAPPING_OBJECTIVES", "LOOP_ORDERS", "Mapping", "GemmCost",
           "Terms", "Setting", "evaluate", "fits", "map_gemm", "scalesim_mapping",
           "gemmini_mapping", "gemmini_tiles", "search_mapping", "with_mapping",
           "ws_compute_cycles", "os_compute_cycles", "operand_reads", "power_of_two_tiles",
           "search_tiles", "cdiv"]
