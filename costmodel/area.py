"""Silicon area and leakage of an accelerator configuration: a pure function of `HardwareConfig`.

What the area constraint of a hardware search needs: mm^2 and leakage (mW) per unit, each
number with its source, like the energy constants of `costmodel.hardware`. Everything is at a
40 nm-class node (Aladdin's commercial 40 nm library and the CACTI tables it ships, the same
generation as the 45 nm energy constants of Horowitz, ISSCC 2014), with no node scaling.
The simulated cycles and energies do not use this module: static energy stays
`HardwareConfig.static_power_w` x time; `Area.leakage_mw` is reported next to it.

Units and their models:

- **PE array** (`pe_array_mm2`): per MAC, an int multiplier, an accumulator-width adder and the
  PE's pipeline registers. Aladdin (Shao et al., ISCA 2014; harvard-acc/ALADDIN,
  `common/power_func.h`, "Function units power model normalized to a commercial 40g"), per
  synthesised cycle time of 1..6 ns: 32-bit integer multiplier 6,351 um^2 at 1 ns (5,138 at
  2 ns), 32-bit adder 278 um^2 (179 at 2 ns), register 5.98 um^2 per bit. Scaling rules: the
  multiplier's area goes with the product of its operand widths (an array multiplier has one
  partial-product cell per bit pair: (8/32)^2 of the 32-bit one for int8 x int8; Aladdin's
  older width table, `common/Scratchpad.cpp`, gives 302 um^2 at 8 bits and 5,252 at 32, a
  17.4x ratio for the rule's 16x), the adder's linearly with its width (a carry chain), the
  registers with their bits. A systolic PE holds the input it passes on (input_bits), its
  weight(s) (input_bits, twice with `weight_double_buffer`) and a partial sum (acc_bits), plus
  one more partial sum for `dataflow: both` (an output-stationary accumulator beside the
  weight-stationary path). A MAC of a line (`pe_array: lines`) holds its two operands; each
  line adds one acc_bits output register. The table entry used is the one for the clock's
  cycle time (1 ns at 1 GHz, 2 ns at 500 MHz; faster clocks use the 1 ns entry).
- **SRAMs** (`scratchpad_mm2`, `accumulator_mm2`): CACTI figures at 40 nm as Aladdin ships
  them (`common/Scratchpad.cpp`, MEM_area / MEM_lk_power by size in 32-bit words), fitted by
  least squares in log-log over 16 KiB..2 MiB (`SRAM_POINTS`): area = 3,398 um^2 x
  KiB^0.957 (within 4.3% of every point in the range; 256 KiB = 0.68 mm^2), leakage =
  0.0526 mW per KiB (linear: exponent 0.9999). The accumulator adds its read-modify-write
  adders and its output scaling (requantising int32 sums to int8, what the survey's baseline
  Gemmini does with int-float multipliers, seed 002, Sec. 3.4.1): per output lane (array
  column, or line) one acc_bits adder and one 32-bit multiplier.
- **Non-linear units** (`sfu_mm2`): the survey's Gemmini case study (Kim et al. 2023, seed
  002, Sec. 3.4.4): the I-BERT normalisation and activation units (16 activation lanes) added
  about 14% to the accelerator's area (ASAP7 synthesis). One lane is therefore 14% of this
  model's Gemmini default (16x16, 256 KiB + 64 KiB, no SFUs) / 16; `sfu_lanes` scales it.
  Non-linear operators on the host (`sfu: host`) add no accelerator area.
- **Other** (`other_mm2`): the controller, DMA, TLB and command queues: `CONTROL_MM2`
  (this project's assumption, 0.05 mm^2, no published breakdown found), plus the DMA's beat
  buffer of the DRAM bus (`DMA_BEATS` beats of dram_bytes_per_cycle bytes in registers, an
  assumption), plus, with a sparse attention engine, its index decoding and operand gather
  (`SPARSE_LOGIC_SHARE` = 10% of the area of the MACs that can work sparse: the sparse rows
  of a fixed split, every line with ViTCoD's dynamic split; this project's assumption).
  Attention lanes beyond the array (`attention_lanes`, a simulator convention of vitcod-sim)
  add nothing: area counts the rows x cols MACs that exist.
- **Linear Taylor attention units** (ViTALiTy, seed 003): SA-Diag's `diag_pes` PEs are MACs
  like the array's and count in `pe_array_mm2`; the pre-processors count in `other_mm2`, per
  lane (`preproc_lanes`) of each array: the accumulator array an acc_bits adder and an acc_bits
  register (its running sum), the adder array an acc_bits adder, the divider array a 32 x 32-bit
  multiplier and a 32-bit register (one Newton-Raphson iteration per pass; this project's
  assumption, no published breakdown was found).

Leakage: SRAMs from the CACTI table above; logic (MACs, adders, registers, scaling) from
Aladdin's leakage power of each unit; SFUs and control at the leakage density of the PE
array.

Comparison with published figures: no published area of Gemmini's default configuration was
found in the material searched (the Gemmini papers' abstracts and pages, Chipyard's and
Gemmini's documentation, their issue trackers), so there is nothing to compare with; this model
gives it 1.29 mm^2 at 40 nm (PE array 0.26, scratchpad 0.69, accumulator 0.29, other 0.06),
two thirds of it SRAM arrays, and the survey's transformer-tuned Gemmini 1.48 mm^2 (+14%).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

from costmodel.hardware import HardwareConfig

UM2 = 1e-6   # mm^2 per um^2

# -- logic at 40 nm (Aladdin, common/power_func.h): cycle time (ns) -> (area um^2, leakage mW)
MUL32_BY_NS = {1: (6351.338, 7.786052e-2), 2: (5137.736, 4.831147e-2),
               3: (4974.349, 4.668189e-2), 4: (4619.555, 4.853217e-2),
               5: (4595.000, 4.817683e-2), 6: (4595.000, 4.817683e-2)}
ADD32_BY_NS = {1: (277.9792, 2.249908e-3), 2: (179.4430, 2.380803e-3),
               3: (179.4430, 2.380803e-3), 4: (179.4430, 2.380803e-3),
               5: (179.4430, 2.380803e-3), 6: (179.4430, 2.380803e-3)}
REG_UM2_PER_BIT = 5.981433      # REG_*ns_area, the same at every cycle time
REG_MW_PER_BIT = 7.395312e-05   # REG_*ns_leakage_power

# -- SRAM at 40 nm: CACTI as Aladdin ships it (common/Scratchpad.cpp): KiB -> (um^2, mW leakage)
# (sizes there are in 32-bit words: 4,096 words = 16 KiB ... 524,288 words = 2 MiB)
SRAM_POINTS = ((16, 49709.9, 0.841640), (32, 94523.9, 1.682850), (64, 174459.0, 3.365650),
               (128, 352194.0, 6.729040), (256, 684305.0, 13.459700),
               (512, 1319220.0, 26.916200), (1024, 2554980.0, 53.832100),
               (2048, 5167380.0, 107.658000))

IBERT_AREA_SHARE = 0.14        # survey (seed 002), Sec. 3.4.4: I-BERT units +14% of the area
IBERT_LANES = 16               # ... a set of 16 activation units in parallel (same section)
CONTROL_MM2 = 0.05             # controller, DMA, TLB, queues: this project's assumption
DMA_BEATS = 16                 # bus beats buffered by the DMA: this project's assumption
SPARSE_LOGIC_SHARE = 0.10      # sparse engine index/gather logic per MAC: an assumption
REQUANT_BITS = 32              # output scaling multiplier width (int32 -> int8, per lane)


def _fit_power_law(points: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """(coefficient, exponent) of y = c * x^e, least squares in log-log."""
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    e = (sum((x - mx) * (y - my) for x, y in zip(xs, ys))
         / sum((x - mx) ** 2 for x in xs))
    return math.exp(my - e * mx), e


SRAM_AREA_FIT = _fit_power_law(tuple((k, a) for k, a, _ in SRAM_POINTS))     # ~(3398, 0.957)
SRAM_LEAK_FIT = _fit_power_law(tuple((k, w) for k, _, w in SRAM_POINTS))     # ~(0.0526, 1.0)


def sram_mm2(kib: float) -> float:
    """Area of an SRAM of `kib` KiB (CACTI 40 nm fit, see SRAM_POINTS)."""
    c, e = SRAM_AREA_FIT
    return c * kib ** e * UM2


def sram_leakage_mw(kib: float) -> float:
    """Leakage of an SRAM of `kib` KiB (CACTI 40 nm fit)."""
    c, e = SRAM_LEAK_FIT
    return c * kib ** e


def _cycle_entry(table: dict[int, tuple[float, float]], clock_hz: float) -> tuple[float, float]:
    """The entry synthesised for the clock's cycle time: the largest tabulated cycle time
    that is not longer than it (1..6 ns)."""
    ns = min(6, max(1, int(math.floor(1e9 / clock_hz + 1e-9))))
    return table[ns]


def multiplier(a_bits: int, b_bits: int, clock_hz: float) -> tuple[float, float]:
    """(um^2, mW leakage) of an a x b-bit integer multiplier: Aladdin's 32-bit one scaled by
    the partial-product count a*b / 32^2."""
    area, leak = _cycle_entry(MUL32_BY_NS, clock_hz)
    s = a_bits * b_bits / 32 ** 2
    return area * s, leak * s


def adder(bits: int, clock_hz: float) -> tuple[float, float]:
    """(um^2, mW leakage) of a `bits`-wide adder: Aladdin's 32-bit one scaled linearly."""
    area, leak = _cycle_entry(ADD32_BY_NS, clock_hz)
    return area * bits / 32, leak * bits / 32


def registers(bits: int) -> tuple[float, float]:
    """(um^2, mW leakage) of `bits` flip-flops."""
    return bits * REG_UM2_PER_BIT, bits * REG_MW_PER_BIT


def _add(*parts: tuple[float, float]) -> tuple[float, float]:
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def mac_unit(hw: HardwareConfig) -> tuple[float, float]:
    """(um^2, mW leakage) of one MAC with its registers (see the module docstring)."""
    ib, ab, f = hw.input_bits, hw.acc_bits, hw.clock_hz
    if hw.pe_array == "lines":
        regs = 2 * ib
    else:
        regs = ib + ib * (2 if hw.weight_double_buffer else 1) + ab
        regs += ab if hw.dataflow == "both" else 0
    return _add(multiplier(ib, ib, f), adder(ab, f), registers(regs))


@dataclass(frozen=True)
class Area:
    """Area (mm^2) per unit and total leakage (mW) of one accelerator configuration."""

    pe_array_mm2: float
    scratchpad_mm2: float
    accumulator_mm2: float
    sfu_mm2: float
    other_mm2: float
    leakage_mw: float

    @property
    def total_mm2(self) -> float:
        return (self.pe_array_mm2 + self.scratchpad_mm2 + self.accumulator_mm2 + self.sfu_mm2
                + self.other_mm2)

    def to_dict(self) -> dict:
        return {**asdict(self), "total_mm2": self.total_mm2}


def _core(hw: HardwareConfig) -> tuple[Area, float]:
    """Everything but the SFUs: (Area with sfu 0 and leakage without the SFUs, leakage
    density of the PE array in mW/mm^2)."""
    mac_um2, mac_mw = mac_unit(hw)
    pe_um2, pe_mw = mac_um2 * (hw.pes + hw.diag_pes), mac_mw * (hw.pes + hw.diag_pes)
    if hw.pe_array == "lines":                        # one output register per line
        r_um2, r_mw = registers(hw.acc_bits)
        pe_um2, pe_mw = pe_um2 + r_um2 * hw.rows, pe_mw + r_mw * hw.rows

    out_lanes = hw.rows if hw.pe_array == "lines" else hw.cols
    lane_um2, lane_mw = _add(adder(hw.acc_bits, hw.clock_hz),
                             multiplier(REQUANT_BITS, REQUANT_BITS, hw.clock_hz))
    acc_mm2 = sram_mm2(hw.accumulator_kib) + lane_um2 * out_lanes * UM2
    sp_mm2 = sram_mm2(hw.scratchpad_kib)
    density = pe_mw / (pe_um2 * UM2)                  # mW per mm^2 of logic

    dma_um2, dma_mw = registers(int(round(DMA_BEATS * hw.dram_bytes_per_cycle * 8)))
    other_mm2, other_mw = CONTROL_MM2 + dma_um2 * UM2, CONTROL_MM2 * density + dma_mw
    if hw.sparse_engine:
        sparse_macs = hw.pes if hw.sparse_allocation == "dynamic" else hw.sparse_rows * hw.cols
        extra = SPARSE_LOGIC_SHARE * sparse_macs * mac_um2 * UM2
        other_mm2, other_mw = other_mm2 + extra, other_mw + extra * density

    if hw.preproc_lanes:
        ab, f = hw.acc_bits, hw.clock_hz
        lane = _add(adder(ab, f), registers(ab),                     # accumulator array
                    adder(ab, f),                                    # adder array
                    multiplier(32, 32, f), registers(32))            # divider array
        other_mm2 += lane[0] * hw.preproc_lanes * UM2
        other_mw += lane[1] * hw.preproc_lanes

    leak = (pe_mw + sram_leakage_mw(hw.scratchpad_kib) + sram_leakage_mw(hw.accumulator_kib)
            + lane_mw * out_lanes + other_mw)
    return Area(pe_um2 * UM2, sp_mm2, acc_mm2, 0.0, other_mm2, leak), density


@lru_cache(maxsize=1)
def sfu_lane_mm2() -> float:
    """Area of one on-chip SFU lane: 14% of the Gemmini default's area (without SFUs) / 16
    (seed 002, Sec. 3.4.4)."""
    gemmini = HardwareConfig(name="gemmini-default", rows=16, cols=16, scratchpad_kib=256,
                             accumulator_kib=64, sfu="host", clock_hz=1e9)
    core, _ = _core(gemmini)
    return IBERT_AREA_SHARE * core.total_mm2 / IBERT_LANES


@lru_cache(maxsize=4096)
def area(hw: HardwareConfig) -> Area:
    """Area (mm^2 per unit) and leakage (mW) of `hw` (see the module docstring)."""
    core, density = _core(hw)
    if hw.sfu != "onchip":
        return core
    sfu = hw.sfu_lanes * sfu_lane_mm2()
    return Area(core.pe_array_mm2, core.scratchpad_mm2, core.accumulator_mm2, sfu,
                core.other_mm2, core.leakage_mw + sfu * density)


__all__ = ["Area", "area", "sram_mm2", "sram_leakage_mw", "sfu_lane_mm2", "mac_unit",
           "multiplier", "adder", "registers", "SRAM_POINTS", "SRAM_AREA_FIT", "SRAM_LEAK_FIT",
           "IBERT_AREA_SHARE"]
