"""Accelerator hardware configurations: one frozen dataclass, YAML presets, one-line validation errors.

A `HardwareConfig` describes a Gemmini-like accelerator: an R x C systolic array (weight- or
output-stationary) or R MAC lines of C MACs (ViTCoD's engines), a scratchpad for inputs and
weights, an accumulator for int32 partial sums, a DRAM bus, special-function units (SFUs) for
softmax/LayerNorm/GELU/add on chip or on the host CPU, and optionally a ViTCoD-like dense +
sparse attention engine pair (see costmodel.sparse_engine for its model and sources).

Every default number carries its source in a comment. Energies are per action in picojoules.
Presets live in `costmodel/presets/<name>.yaml` and only list what differs from the defaults.
Silicon area and leakage, with their sources: `costmodel.area`; search spaces of configurations
around a preset: `costmodel.hwspace`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import yaml

from nas.core.yamlfile import load_mapping
from nas.core.errors import UserError

DATAFLOWS = ("ws", "os", "both")  # weight-stationary (Gemmini default), output-stationary,
                                  # or both, chosen per GEMM (Gemmini can switch at run time)
# How GEMMs are mapped onto the array and buffers (costmodel.mapping): SCALE-Sim's schedule,
# Gemmini's software tiler, or a per-GEMM mapping search minimising an objective.
MAPPING_MODES = ("scalesim", "gemmini", "search")
MAPPING_OBJECTIVES = ("latency", "energy", "edp")
SFU_PLACES = ("onchip", "host")   # where softmax, LayerNorm, GELU and residual adds run
PE_ARRAYS = ("systolic", "lines")  # R x C systolic array, or R MAC lines of C MACs (ViTCoD)
SPARSE_ALLOCATIONS = ("fixed", "dynamic")  # how the attention engines share the PE rows/lines
HEAD_TIMINGS = ("slowest", "first")        # which head's time an attention product takes
DEFAULT_HARDWARE = "gemmini-transformer"   # the preset every command uses when none is given


# -- energy of an SRAM access as a function of its size -----------------------------------------
# Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm): a 64-bit read costs 10 pJ from an
# 8 KB SRAM, 20 pJ from 32 KB and 100 pJ from 1 MB. Between the points we interpolate log-log,
# i.e. a power law E ~ size^a (a = 0.50 from 8 to 32 KB, 0.46 from 32 KB to 1 MB: the
# square-root growth of wordline and bitline length with capacity that the points follow), and
# charge writes like reads (the paper gives one figure per access). Until simulator 1.0 this
# interpolated linearly in log2(size), which puts 256 KiB at 68 pJ instead of 53 pJ per 64 bits
# and needed a floor below 4 KB; the power law stays positive without one.
_SRAM_POINTS_KIB_PJ64 = ((8.0, 10.0), (32.0, 20.0), (1024.0, 100.0))


def sram_pj_per_byte(size_kib: float) -> float:
    """Energy of reading or writing one byte of an SRAM of `size_kib` KiB (Horowitz 2014, 45 nm),
    piecewise linear in log(size)-log(energy), extrapolated from the nearest segment outside
    8 KB..1 MB."""
    (s0, e0), (s1, e1), (s2, e2) = _SRAM_POINTS_KIB_PJ64
    x = math.log(max(size_kib, 1e-9))
    if x > math.log(s1):
        (s0, e0), (s1, e1) = (s1, e1), (s2, e2)
    t = (x - math.log(s0)) / (math.log(s1) - math.log(s0))
    return math.exp(math.log(e0) + t * (math.log(e1) - math.log(e0))) / 8.0


# -- energy of the PE registers per MAC ----------------------------------------------------------
# Aladdin's 40 nm register model (Shao et al., ISCA 2014; the table Accelergy's Aladdin plug-in
# ships): 0.009 pJ per bit accessed. Per MAC a PE reads its three operands (input, weight,
# partial sum) and writes two registers (the input passed to its neighbour, the new partial sum):
# 3 x 8 + 2 x 32 = 88 bits for int8/int32, 0.79 pJ. Until simulator 1.0 this was 0.3 pJ, "about
# one MAC" after Eyeriss's register-file figure (Chen et al., ISCA 2016), which is per access, not
# per MAC: it charged about one 32-bit access where a MAC makes four or five.
REGISTER_PJ_PER_BIT = 0.009


def register_pj_per_mac(input_bits: int, acc_bits: int) -> float:
    """PE-register energy of one MAC: (3 input-width + 2 accumulator-width accesses) x pJ/bit."""
    return (3 * input_bits + 2 * acc_bits) * REGISTER_PJ_PER_BIT


@dataclass(frozen=True)
class HardwareConfig:
    name: str = "custom"
    description: str = ""               # what the design is and where its numbers come from

    # -- systolic array (Genc et al., "Gemmini", DAC 2021: 16x16 WS mesh by default)
    rows: int = 16                      # R: PE rows (reduction dimension K in weight-stationary)
    cols: int = 16                      # C: PE columns (output dimension N)
    dataflow: str = "ws"
    # PEs hold two sets of weights, so the next fold's weights preload while the current fold
    # streams (Gemmini's PEs double-buffer their weights: Genc et al. DAC 2021); only the
    # "search" mapping exploits it (SCALE-Sim and Gemmini's tiler pay every preload)
    weight_double_buffer: bool = True
    # -- GEMM mapping (costmodel.mapping): "scalesim" (the validated default), "gemmini"
    # (tiled_matmul_auto), "search" (per-GEMM search); the objective of "search"
    mapping: str = "scalesim"
    mapping_objective: str = "latency"
    # "systolic": the R x C array above (SCALE-Sim conventions); "lines": R MAC lines of C MACs
    # with an adder tree each (ViTCoD's engines, PE_width x PE_height; costmodel.sparse_engine),
    # a line reducing C products per cycle into one output, no preload/fill/drain (dataflow unused)
    pe_array: str = "systolic"
    clock_hz: float = 1.0e9             # Gemmini ASIC evaluations run at 1 GHz (Genc et al. 2021)
    input_bits: int = 8                 # int8 inputs and weights (Gemmini default)
    acc_bits: int = 32                  # int32 accumulation (Gemmini default)

    # -- on-chip buffers (Gemmini default: 256 KiB scratchpad, 64 KiB accumulator)
    scratchpad_kib: float = 256.0       # inputs + weights, double-buffered
    accumulator_kib: float = 64.0       # int32 partial sums / outputs, double-buffered
    double_buffer: bool = True          # overlap DRAM transfers of the next tile with compute

    # -- DRAM (Gemmini default system bus: 128 bits = 16 bytes per cycle)
    dram_bytes_per_cycle: float = 16.0

    # -- special-function units
    sfu: str = "host"                   # Gemmini default: non-linear ops on the host CPU
    sfu_lanes: int = 16                 # elements per cycle per pass (one lane per array column)
    sfu_cycles_per_element: float = 1.0  # per lane and pass, pipelined integer units (I-BERT style)
    # Host CPU (Gemmini's Rocket in-order core, at the accelerator clock): cycles per element in
    # scalar floating point, including the software exp/erf/sqrt. These are this model's
    # assumptions (order of magnitude of a scalar in-order core calling libm), not measurements.
    host_clock_hz: float = 1.0e9
    host_cycles_softmax: float = 60.0   # max, exp (software), sum, divide
    host_cycles_layernorm: float = 30.0  # mean, variance, sqrt/divide, scale+shift
    host_cycles_gelu: float = 50.0      # tanh/erf (software)
    host_cycles_add: float = 4.0        # load, load, add, store
    host_cycles_quant: float = 4.0      # dequantize int8->fp32 or requantize fp32->int8, per element

    # -- ViTCoD-like sparse attention engine (You et al., HPCA 2023; costmodel.sparse_engine)
    sparse_engine: bool = False         # attention products split into a dense and a sparse engine
    sparse_pe_fraction: float = 1.0 / 3.0  # share of the array's rows given to the sparse engine
    # "fixed": the split above for every head; "dynamic": ViTCoD's per-head split of the rows in
    # proportion to the dense and sparse work (ViTCoD.py: dense_PE_width = int(PE_width x ratio))
    sparse_allocation: str = "fixed"
    # Q.K^T -> softmax -> A.V fused on chip: scores never go to DRAM; on such hardware dense
    # attention also runs on the engines (every column dense)
    attention_fusion: bool = False
    qk_compression: float = 1.0         # Q and K kept in DRAM at this share of their size by
                                        # ViTCoD's auto-encoder, decoded on chip (1 = none)
    attention_lanes: int = 0            # MAC lanes of the attention engines, 0 = rows x cols
    head_timing: str = "slowest"        # heads run in parallel on equal shares of the lanes; an
                                        # attention product lasts as long as its slowest head, or
                                        # head 0 ("first": what ViTCoD's simulator counts)

    # -- linear Taylor attention units (ViTALiTy, Dass et al. HPCA 2023, seed 003: "the systolic
    # array (SA) is partitioned into a smaller sub-array named SA-Diag to compute the matrix and
    # diagonal matrix multiplications ... and a larger sub-array dubbed SA-General"; "the
    # pre-processors include an accumulator array for performing column(token)-wise summation,
    # and a divider array and a adder array"; "an intra-layer pipeline"). rows x cols above is
    # SA-General; these add the rest. 0 / false = none: Taylor attention's vector operators run
    # on the SFUs (or the host), as on any other hardware (costmodel.simulate).
    diag_pes: int = 0                   # SA-Diag multipliers: normaliser dot products, diagonal
                                        # scaling (one multiply per PE per cycle)
    preproc_lanes: int = 0              # lanes of each pre-processor array (accumulator array:
                                        # column/prefix sums; adder array: centring; divider
                                        # array: reciprocals), one element per lane per cycle
    taylor_pipeline: bool = False       # intra-layer pipeline: the pre/post-processors and
                                        # SA-Diag work on token chunks beside SA-General, their
                                        # intermediates stay on chip (costmodel.simulate)

    # -- energy per action (pJ); 0 = derive from the sizes above
    mac_pj: float = 0.3                 # Horowitz 2014 45 nm: 8-bit mult 0.2 pJ + 32-bit add 0.1 pJ
    rf_pj_per_mac: float = 0.0          # PE registers; 0 -> register_pj_per_mac(input_bits, acc_bits)
    scratchpad_pj_per_byte: float = 0.0  # 0 -> sram_pj_per_byte(scratchpad_kib)
    accumulator_pj_per_byte: float = 0.0  # 0 -> sram_pj_per_byte(accumulator_kib)
    dram_pj_per_byte: float = 162.5     # Horowitz 2014: DRAM 1.3-2.6 nJ per 64 bits (low end)
    sfu_pj_per_op: float = 1.6          # one int32 op, Horowitz 2014: mean of add 0.1 and mult 3.1 pJ
    host_pj_per_cycle: float = 34.0     # Rocket core 0.034 mW/MHz (Asanovic et al. 2016, Rocket Chip report)
    static_power_w: float = 0.05        # assumption: leakage ~10% of a ~0.5 W edge accelerator

    def __post_init__(self) -> None:
        for f in fields(self):
            try:
                object.__setattr__(self, f.name, field_value(f.name, getattr(self, f.name)))
            except ValueError as exc:
                raise UserError(f"hardware '{self.name}': {exc}") from None
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                raise UserError(f"hardware '{self.name}': {name} must be positive, "
                                f"got {getattr(self, name)}")
        for name in NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise UserError(f"hardware '{self.name}': {name} must be >= 0, "
                                f"got {getattr(self, name)}")
        self._check_combinations()
        for name, value in derived_energies(vars(self)).items():
            if getattr(self, name) == 0:                    # 0 = derive from the sizes
                object.__setattr__(self, name, value)

    def _check_combinations(self) -> None:
        """The rules between fields (each a function of this module, which hwspace uses too)."""
        if not fusion_allowed(vars(self)):
            raise UserError(f"hardware '{self.name}': attention_fusion needs sfu: onchip (the "
                            "softmax runs on the scores inside the fused kernel)")
        if not 0.0 < self.qk_compression <= 1.0:
            raise UserError(f"hardware '{self.name}': qk_compression must be in (0, 1], "
                            f"got {self.qk_compression}")
        if self.input_bits % 8 or self.acc_bits % 8:
            raise UserError(f"hardware '{self.name}': input_bits and acc_bits must be whole bytes")
        if self.sparse_engine and not sparse_split_ok(self.rows, self.sparse_pe_fraction):
            raise UserError(f"hardware '{self.name}': sparse_pe_fraction={self.sparse_pe_fraction} "
                            f"must leave at least one PE row to each engine of the {self.rows}-row array")
        for buffer, need in tile_bytes(vars(self)).items():
            if not holds(getattr(self, buffer), need):
                raise UserError(f"hardware '{self.name}': {buffer}={getattr(self, buffer):g} is "
                                f"too small for one {self.rows}x{self.cols} tile (needs "
                                f"{need / 1024:g} KiB)")

    # -- derived sizes ----------------------------------------------------------------------
    @property
    def in_bytes(self) -> int:
        return self.input_bits // 8

    @property
    def acc_bytes(self) -> int:
        return self.acc_bits // 8

    @property
    def buffers(self) -> int:
        return 2 if self.double_buffer else 1

    @property
    def scratchpad_bytes(self) -> int:
        return int(self.scratchpad_kib * 1024)

    @property
    def accumulator_bytes(self) -> int:
        return int(self.accumulator_kib * 1024)

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def sparse_rows(self) -> int:
        """PE rows of the sparse attention engine (the rest form the dense engine)."""
        return sparse_engine_rows(self.rows, self.sparse_pe_fraction) if self.sparse_engine else 0

    @property
    def engine_lanes(self) -> int:
        """MAC lanes the attention engines share (attention_lanes, or every PE)."""
        return self.attention_lanes or self.pes

    def host_cycles_per_element(self, kind: str) -> float:
        return getattr(self, f"host_cycles_{kind}")

    # -- identity ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field by name (all plain values: asdict's deep copy would be 50 us a call)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def hash(self) -> str:
        """12 hex chars of the sha1 of every cost-relevant field (name and description excluded;
        fields added since simulator 2.0 only when they differ from their default, so earlier
        configurations keep their hashes and lookup tables)."""
        return self._hash

    @cached_property
    def _hash(self) -> str:     # computed once: the configuration is frozen
        d = {k: v for k, v in self.to_dict().items() if k not in ("name", "description")
             and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "custom") -> HardwareConfig:
        if not isinstance(data, dict):
            raise UserError(f"hardware '{name}': expected a mapping, got {type(data).__name__}")
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"hardware '{data.get('name', name)}': unknown field(s) {unknown}")
        data.setdefault("name", name)
        return cls(**data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# -- the rules a configuration obeys ---------------------------------------------------------------
# One place for each: HardwareConfig checks them, costmodel.hwspace keeps its points inside them.
# They read a mapping of field values (a config's `vars`, or a space's point before it is built).

# fields whose value is one of a few names
CHOICES = {"dataflow": DATAFLOWS, "mapping": MAPPING_MODES, "mapping_objective": MAPPING_OBJECTIVES,
           "sfu": SFU_PLACES, "pe_array": PE_ARRAYS, "sparse_allocation": SPARSE_ALLOCATIONS,
           "head_timing": HEAD_TIMINGS}
POSITIVE = ("rows", "cols", "clock_hz", "input_bits", "acc_bits", "scratchpad_kib",
            "accumulator_kib", "dram_bytes_per_cycle", "sfu_lanes", "sfu_cycles_per_element",
            "host_clock_hz", "host_cycles_softmax", "host_cycles_layernorm", "host_cycles_gelu",
            "host_cycles_add")
NON_NEGATIVE = ("mac_pj", "rf_pj_per_mac", "scratchpad_pj_per_byte", "host_cycles_quant",
                "accumulator_pj_per_byte", "dram_pj_per_byte", "sfu_pj_per_op",
                "host_pj_per_cycle", "static_power_w", "attention_lanes", "diag_pes",
                "preproc_lanes")
# the sparse-engine fields, and the fields that matter on a systolic array only
SPARSE_FIELDS = ("sparse_pe_fraction", "sparse_allocation", "attention_fusion", "qk_compression",
                 "attention_lanes", "head_timing")
SYSTOLIC_FIELDS = ("dataflow", "mapping", "mapping_objective")
_TYPES = {f.name: f.type for f in fields(HardwareConfig)}


def field_value(name: str, value: Any) -> Any:
    """`value` as field `name` holds it: numbers typed (YAML 1.1 reads 1e9, with no dot, as
    text), booleans and choices checked; else a ValueError saying what it must be."""
    kind = _TYPES[name]
    if kind in ("int", "float"):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if kind == "int" and value != int(value):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value) if kind == "int" else float(value)
    if kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"unknown {name} {value!r} ({name} must be one of "
                         f"{', '.join(CHOICES[name])})")
    return value


def tile_bytes(values: Mapping[str, Any]) -> dict[str, int]:
    """Bytes the smallest tile needs, per buffer field: R x R inputs and R x C weights in the
    scratchpad, R x C int32 sums in the accumulator, twice each when double-buffered."""
    buffers = 2 if values["double_buffer"] else 1
    r, c = values["rows"], values["cols"]
    return {"scratchpad_kib": buffers * (r * r + r * c) * (values["input_bits"] // 8),
            "accumulator_kib": buffers * r * c * (values["acc_bits"] // 8)}


def holds(kib: float, need_bytes: int) -> bool:
    """A buffer of `kib` KiB holds `need_bytes` (tile_bytes)."""
    return int(kib * 1024) >= need_bytes


def sparse_engine_rows(rows: int, fraction: float) -> int:
    """PE rows `fraction` of a `rows`-row array gives the sparse engine."""
    return int(round(rows * fraction))


def sparse_split_ok(rows: int, fraction: float) -> bool:
    """The split leaves at least one PE row to each engine."""
    return 0.0 < fraction < 1.0 and 1 <= sparse_engine_rows(rows, fraction) < rows


def fusion_allowed(values: Mapping[str, Any]) -> bool:
    """Attention fusion runs the softmax inside the fused kernel: it needs on-chip SFUs."""
    return not values["attention_fusion"] or values["sfu"] == "onchip"


def derived_energies(values: Mapping[str, Any]) -> dict[str, float]:
    """The energies per action a field left at 0 takes: SRAM accesses from the buffer sizes,
    PE registers from the operand widths."""
    return {"scratchpad_pj_per_byte": sram_pj_per_byte(values["scratchpad_kib"]),
            "accumulator_pj_per_byte": sram_pj_per_byte(values["accumulator_kib"]),
            "rf_pj_per_mac": register_pj_per_mac(values["input_bits"], values["acc_bits"])}


def unused_fields(values: Mapping[str, Any]) -> set[str]:
    """Fields whose value cannot change cost or area at a point with these `values`: the
    sparse-engine fields without a sparse engine (the split with ViTCoD's dynamic allocation),
    the systolic array's dataflow and mapping on MAC lines, the search objective unless the
    mapping searches, ViTALiTy's intra-layer pipeline without its units."""
    out: set[str] = set()
    if not values["diag_pes"] and not values["preproc_lanes"]:
        out.add("taylor_pipeline")              # costmodel.nonlinear pipelines the units only
    if not values["sparse_engine"]:
        out.update(SPARSE_FIELDS)
    elif values["sparse_allocation"] == "dynamic":
        out.add("sparse_pe_fraction")
    if values["pe_array"] == "lines":
        out.update(SYSTOLIC_FIELDS)
    elif values["mapping"] != "search":
        out.add("mapping_objective")
    return out


# Fields added after simulator 2.0 (attention kinds), with their defaults: left out of `hash`
# at those defaults.
LATER_FIELDS = {"diag_pes": 0, "preproc_lanes": 0, "taylor_pipeline": False}

PRESET_DIR = Path(__file__).resolve().parent / "presets"


def _load_preset(path: Path) -> HardwareConfig:
    return HardwareConfig.from_dict(yaml.safe_load(path.read_text()), name=path.stem)


# Built-in designs, by name: costmodel/presets/<name>.yaml (each documents its source).
PRESETS: dict[str, HardwareConfig] = {p.stem: _load_preset(p)
                                      for p in sorted(PRESET_DIR.glob("*.yaml"))}


def scalesim_equivalent(rows: int, cols: int, dataflow: str = "ws", ifmap_kb: float = 128,
                        filter_kb: float = 128, ofmap_kb: float = 64) -> HardwareConfig:
    """The configuration SCALE-Sim runs are compared against: its ifmap + filter SRAMs form our
    shared scratchpad, its ofmap SRAM of 1-byte words holds as many int32 sums in our accumulator
    (4 x the bytes), and DRAM bandwidth is ample (compute cycles are what is compared)."""
    return HardwareConfig(name=f"scalesim-{rows}x{cols}-{dataflow}", rows=rows, cols=cols,
                          dataflow=dataflow, scratchpad_kib=ifmap_kb + filter_kb,
                          accumulator_kib=4 * ofmap_kb, dram_bytes_per_cycle=1e9)


def derive(base: str, name: str, description: str = "", **changes: Any) -> HardwareConfig:
    """Preset `base` with some fields changed (what a hardware YAML with `base:` gives); the
    SRAM and register energies are re-derived from the new sizes unless given in `changes`."""
    if base not in PRESETS:
        raise UserError(f"hardware: base '{base}' is not a preset ({', '.join(PRESETS)})")
    data = PRESETS[base].to_dict()
    data.update(dict.fromkeys(derived_energies(data), 0.0))                # 0 = re-derive
    data.update(name=name, description=description or f"{base} with {changes}")
    data.update(changes)
    return HardwareConfig.from_dict(data, name=name)


# what a hardware file holds, for the errors of `load_hardware`
HW_FILE = ("a hardware YAML: `base: PRESET` and the fields to change (e.g. `rows: 32`; "
           "`nas hw show PRESET` lists every field)")


def load_hardware(name_or_path: str | Path) -> HardwareConfig:
    """A preset name (see `PRESETS`) or a YAML file; a file may start from a preset with `base:`."""
    key = str(name_or_path)
    if key in PRESETS:
        return PRESETS[key]
    path = Path(key)
    if not path.suffix and not path.exists():
        raise UserError(f"unknown hardware '{key}'; presets: {', '.join(PRESETS)} (or a YAML file)")
    data = load_mapping(path, "hardware", HW_FILE)
    base = data.pop("base", None)
    if base is not None:
        try:
            return derive(str(base), data.pop("name", path.stem),
                          data.pop("description", f"{path.name}, based on preset {base}"), **data)
        except UserError as exc:
            raise UserError(f"hardware file {path}: {exc}") from None
    data.setdefault("name", path.stem)
    return HardwareConfig.from_dict(data, name=path.stem)


__all__ = ["HardwareConfig", "PRESETS", "DEFAULT_HARDWARE", "load_hardware", "derive",
           "scalesim_equivalent", "sram_pj_per_byte", "register_pj_per_mac", "DATAFLOWS",
           "MAPPING_MODES", "MAPPING_OBJECTIVES", "SFU_PLACES", "PE_ARRAYS", "SPARSE_ALLOCATIONS",
           "HEAD_TIMINGS", "CHOICES", "SPARSE_FIELDS", "SYSTOLIC_FIELDS", "field_value",
           "tile_bytes", "holds", "sparse_engine_rows", "sparse_split_ok", "fusion_allowed",
           "derived_energies", "unused_fields"]
