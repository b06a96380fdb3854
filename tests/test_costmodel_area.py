"""Area and leakage model (costmodel.area): sources reproduced, monotone, I-BERT share, CLI."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from costmodel.area import (IBERT_AREA_SHARE, SRAM_AREA_FIT, SRAM_POINTS, Area, adder, area,
                            mac_unit, multiplier, sram_leakage_mw, sram_mm2)
from costmodel.hardware import PRESETS, HardwareConfig, derive
from nas.cli import main


def test_every_preset_has_an_area_of_its_parts():
    for name, hw in PRESETS.items():
        a = area(hw)
        assert isinstance(a, Area)
        parts = (a.pe_array_mm2, a.scratchpad_mm2, a.accumulator_mm2, a.sfu_mm2, a.other_mm2)
        assert all(p >= 0 for p in parts) and a.leakage_mw > 0, name
        assert a.total_mm2 == pytest.approx(sum(parts))
        d = a.to_dict()
        assert d["total_mm2"] == a.total_mm2 and set(d) >= {"pe_array_mm2", "leakage_mw"}
    assert area(PRESETS["gemmini"]) is area(PRESETS["gemmini"])          # cached


def test_gemmini_default_lands_in_the_expected_range():
    """16x16 int8, 256 + 64 KiB at 40 nm: about 1.3 mm^2, two thirds of it SRAM."""
    a = area(PRESETS["gemmini"])
    assert 1.0 < a.total_mm2 < 1.6
    assert 0.5 < (a.scratchpad_mm2 + a.accumulator_mm2) / a.total_mm2 < 0.8
    assert a.sfu_mm2 == 0.0                                       # non-linear ops on the host


def test_ibert_units_are_14_percent_of_a_gemmini():
    """Survey (seed 002, Sec. 3.4.4): the I-BERT units added about 14% to Gemmini's area; the
    memory rebalance (256/64 -> 64/256 KiB) barely changes it."""
    base, tuned = area(PRESETS["gemmini"]), area(PRESETS["gemmini-transformer"])
    assert tuned.sfu_mm2 / (tuned.total_mm2 - tuned.sfu_mm2) == pytest.approx(IBERT_AREA_SHARE,
                                                                             rel=0.02)
    assert tuned.total_mm2 / base.total_mm2 == pytest.approx(1 + IBERT_AREA_SHARE, rel=0.03)


def test_host_non_linear_units_add_no_area():
    onchip = PRESETS["gemmini-transformer"]
    host = derive("gemmini-transformer", "host", sfu="host")
    assert area(host).sfu_mm2 == 0.0
    assert area(onchip).total_mm2 - area(host).total_mm2 == pytest.approx(area(onchip).sfu_mm2)
    # lanes scale the on-chip units
    wide = derive("gemmini-transformer", "wide", sfu_lanes=32)
    assert area(wide).sfu_mm2 == pytest.approx(2 * area(onchip).sfu_mm2)


@pytest.mark.parametrize("field,values", [
    ("rows", [4, 8, 16, 32, 64]), ("cols", [4, 8, 16, 32, 64]),
    ("scratchpad_kib", [32, 64, 128, 256, 512, 1024]),
    ("accumulator_kib", [32, 64, 128, 256, 512, 1024]),
    ("sfu_lanes", [4, 8, 16, 32]), ("dram_bytes_per_cycle", [8, 16, 32, 64]),
    ("input_bits", [8, 16]), ("acc_bits", [16, 32])])
def test_area_grows_with_every_size(field, values):
    totals, parts = [], []
    for v in values:
        hw = derive("gemmini-transformer", "x", **{field: v})
        a = area(hw)
        totals.append(a.total_mm2)
        parts.append({"rows": a.pe_array_mm2, "cols": a.pe_array_mm2,
                      "scratchpad_kib": a.scratchpad_mm2, "accumulator_kib": a.accumulator_mm2,
                      "sfu_lanes": a.sfu_mm2, "dram_bytes_per_cycle": a.other_mm2,
                      "input_bits": a.pe_array_mm2, "acc_bits": a.pe_array_mm2}[field])
    assert all(a < b for a, b in zip(totals, totals[1:])), totals
    assert all(a < b for a, b in zip(parts, parts[1:])), parts


def test_pe_array_scales_with_the_number_of_pes():
    small = area(derive("gemmini-transformer", "s", rows=8, cols=8))
    big = area(derive("gemmini-transformer", "b", rows=32, cols=32))
    assert big.pe_array_mm2 == pytest.approx(16 * small.pe_array_mm2)


def test_sram_fit_follows_the_cacti_points():
    """The power law is within 5% of every CACTI (Aladdin, 40 nm) point it was fitted to, and
    leakage is linear in size."""
    c, e = SRAM_AREA_FIT
    assert 0.9 < e < 1.0 and 3000 < c < 4000
    for kib, um2, mw in SRAM_POINTS:
        assert sram_mm2(kib) == pytest.approx(um2 * 1e-6, rel=0.05), kib
        assert sram_leakage_mw(kib) == pytest.approx(mw, rel=0.01), kib
    assert sram_mm2(256) == pytest.approx(0.684305, rel=0.05)


def test_logic_scaling_rules():
    """int8 x int8 multiplier = (8/32)^2 of Aladdin's 32-bit one; adders linear in width;
    slower clocks synthesise smaller units (Aladdin's 2 ns entries)."""
    assert multiplier(8, 8, 1e9)[0] == pytest.approx(6351.338 / 16)
    assert adder(16, 1e9)[0] == pytest.approx(277.9792 / 2)
    assert multiplier(32, 32, 5e8)[0] < multiplier(32, 32, 1e9)[0]
    fast = derive("gemmini-transformer", "f", clock_hz=1e9)
    slow = derive("gemmini-transformer", "s", clock_hz=5e8)
    assert area(slow).pe_array_mm2 < area(fast).pe_array_mm2
    assert area(slow).scratchpad_mm2 == area(fast).scratchpad_mm2
    # registers: double-buffered weights and a second partial sum for `both` cost area
    ws = derive("gemmini-transformer", "ws", dataflow="ws")
    assert mac_unit(derive("gemmini-transformer", "b", dataflow="both"))[0] > mac_unit(ws)[0]
    assert mac_unit(replace(ws, weight_double_buffer=False))[0] < mac_unit(ws)[0]


def test_sparse_engine_logic_is_counted():
    vitcod = PRESETS["vitcod"]
    dense = replace(vitcod, sparse_engine=False, attention_fusion=False)
    assert area(vitcod).other_mm2 > area(dense).other_mm2
    assert area(vitcod).pe_array_mm2 == area(dense).pe_array_mm2
    # fixed split: only the sparse rows carry the gather logic
    fixed = replace(vitcod, sparse_allocation="fixed")
    assert area(dense).other_mm2 < area(fixed).other_mm2 < area(vitcod).other_mm2
    # attention lanes beyond the array (vitcod-sim's counting convention) add nothing
    assert area(PRESETS["vitcod-sim"]).total_mm2 == area(vitcod).total_mm2


def test_leakage_grows_with_sram():
    small = area(derive("gemmini-transformer", "s", scratchpad_kib=32))
    big = area(derive("gemmini-transformer", "b", scratchpad_kib=512))
    assert big.leakage_mw - small.leakage_mw == pytest.approx(
        sram_leakage_mw(512) - sram_leakage_mw(32))


def test_area_is_plain_data_of_a_frozen_config():
    hw = HardwareConfig(name="a")
    twin = HardwareConfig(name="a")
    assert area(hw) == area(twin)
    assert math.isfinite(area(hw).total_mm2)


def test_cli_prints_area(capsys):
    assert main(["hw", "list"]) == 0
    out = capsys.readouterr().out
    assert "mm2" in out and f"{area(PRESETS['gemmini']).total_mm2:.2f}" in out
    assert "hardware space edge-hw" in out
    assert main(["hw", "show", "gemmini-transformer"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# hash: ") and "# area: " in out.splitlines()[1]
    assert f"{area(PRESETS['gemmini-transformer']).total_mm2:.3f} mm2" in out
