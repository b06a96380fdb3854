"""Hardware search spaces (costmodel.hwspace): edge-hw, genomes, canonical points, YAML errors."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest
import yaml

from costmodel.area import area
from costmodel.hardware import PRESETS, derive, load_hardware
from costmodel.hwspace import HW_SPACE_PRESETS, HardwareSpace
from nas.core.errors import UserError

EDGE = HardwareSpace.load("edge-hw")


def space(tmp_path: Path, text: str, name: str = "s") -> HardwareSpace:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return HardwareSpace.load(path)


# -- edge-hw -------------------------------------------------------------------------------------

def test_edge_hw_is_built_in_and_sized_for_a_search():
    assert "edge-hw" in HW_SPACE_PRESETS
    assert EDGE.name == "edge-hw" and EDGE.base == "gemmini-transformer"
    assert 1e3 <= EDGE.size() <= 1e5
    genes = dict(EDGE.genes())
    for field in ("rows", "cols", "scratchpad_kib", "accumulator_kib", "dataflow", "sfu",
                  "dram_bytes_per_cycle", "clock_hz", "mapping"):
        assert field in genes and len(genes[field]) >= 2, field
    assert min(genes["rows"]) >= 8 and max(genes["rows"]) <= 32
    assert min(genes["scratchpad_kib"]) >= 32 and max(genes["scratchpad_kib"]) <= 512
    assert EDGE.size() == math.prod(len(v) for _, v in EDGE.genes())


@pytest.mark.parametrize("name", ["edge-hw", "edge-hw-wide"])
@pytest.mark.parametrize("preset", ["gemmini", "gemmini-transformer", "edge-32x32"])
def test_presets_are_points_of_edge_hw(preset, name):
    s = HardwareSpace.load(name)
    hw = PRESETS[preset]
    assert hw in s
    genome = s.encode(hw)
    point = s.decode(genome)
    assert point.hash() == hw.hash()                    # the very same configuration
    assert point.name == f"{name}:{hw.hash()}"
    assert area(point) == area(hw)


def test_edge_hw_wide_is_edge_hw_with_larger_arrays_and_buses():
    wide = HardwareSpace.load("edge-hw-wide")
    genes, edge = dict(wide.genes()), dict(EDGE.genes())
    assert wide.base == EDGE.base and genes.keys() == edge.keys()
    for field, choices in edge.items():
        grown = field in ("rows", "cols", "dram_bytes_per_cycle")
        assert set(choices) < set(genes[field]) if grown else choices == genes[field], field
    assert max(genes["rows"]) == max(genes["cols"]) == 2 * max(edge["rows"])
    # a point beyond edge-hw within edge-32x32's area: that budget can buy a larger array
    big = derive("gemmini-transformer", "big", rows=64, cols=32, sfu_lanes=32, clock_hz=1e9,
                 scratchpad_kib=32, accumulator_kib=32, dram_bytes_per_cycle=64)
    assert big in wide and big not in EDGE
    assert area(big).total_mm2 < area(PRESETS["edge-32x32"]).total_mm2


def test_presets_outside_edge_hw_are_named_by_field():
    assert PRESETS["vitcod"] not in EDGE
    with pytest.raises(UserError, match=r"outside hardware space 'edge-hw': rows=64"):
        EDGE.encode(PRESETS["vitcod"])
    odd = derive("gemmini-transformer", "odd", host_cycles_gelu=7.0)
    with pytest.raises(UserError, match=r"host_cycles_gelu=7.0, but every point has 50.0"):
        EDGE.encode(odd)
    untied = derive("gemmini-transformer", "untied", sfu_lanes=8)
    with pytest.raises(UserError, match=r"sfu_lanes=8, but tied to cols=16"):
        EDGE.encode(untied)
    assert "not hardware" not in EDGE


def test_decode_encode_round_trip_and_determinism():
    rng = random.Random(0)
    seen = {}
    for _ in range(300):
        genome = [rng.randrange(len(v)) for _, v in EDGE.genes()]
        hw = EDGE.decode(genome)
        assert EDGE.encode(hw) == genome
        assert hw.name == f"edge-hw:{hw.hash()}" and hw.sfu_lanes == hw.cols
        assert EDGE.decode(list(genome)) is hw                     # memoised, equal
        seen.setdefault(hw.hash(), tuple(genome))
        assert seen[hw.hash()] == tuple(genome)     # no two edge-hw genomes share a config
    again = HardwareSpace.load("edge-hw")
    assert again.decode(genome) == hw and again.decode(genome).hash() == hw.hash()
    a, b = EDGE.sample(random.Random(3)), EDGE.sample(random.Random(3))
    assert a == b


def test_within_area_steps_a_genome_down_to_the_budget():
    rng = random.Random(0)
    big = EDGE.encode(load_hardware("edge-32x32"))                      # 3.70 mm2
    assert EDGE.within_area(big, 4.0, rng) == big                      # fits: unchanged
    for budget in (3.0, 1.5, 0.8):
        fitted = EDGE.within_area(big, budget, rng)
        assert area(EDGE.decode(fitted)).total_mm2 <= budget
        assert fitted != big
    sizes = [area(EDGE.decode(EDGE.within_area(EDGE.encode(load_hardware(p)), 1.0,
                                               random.Random(s)))).total_mm2
             for p in ("edge-32x32", "gemmini") for s in range(5)]
    assert max(sizes) <= 1.0 and min(sizes) > 0.5                       # stops once it fits
    with pytest.raises(UserError, match="no point fits in 0.1 mm2"):
        EDGE.within_area(big, 0.1, rng)


def test_decode_rejects_bad_genomes():
    with pytest.raises(UserError, match="9 genes, got 2"):
        EDGE.decode([0, 0])
    with pytest.raises(UserError, match=r"gene 0 \(rows\) index 3 is not in 0..2"):
        EDGE.decode([3] + [0] * 8)
    with pytest.raises(UserError, match="index -1"):
        EDGE.decode([-1] + [0] * 8)
    with pytest.raises(UserError, match="index 1.0"):
        EDGE.decode([1.0] + [0] * 8)
    import numpy as np
    assert EDGE.decode(np.ones(9, dtype=np.int64)) is EDGE.decode([1] * 9)


def test_to_dict_round_trip(tmp_path):
    text = yaml.safe_dump(EDGE.to_dict(), sort_keys=False)
    again = space(tmp_path, text, "copy")
    assert again.genes() == EDGE.genes() and again.ties == EDGE.ties
    assert again.base == EDGE.base and again.name == "edge-hw"


def test_gene_order_is_the_fields_order(tmp_path):
    a = space(tmp_path, "base: gemmini\nsfu: [onchip, host]\nrows: [8, 16]\n", "a")
    b = space(tmp_path, "base: gemmini\nrows: [8, 16]\nsfu: [onchip, host]\n", "b")
    assert [n for n, _ in a.genes()] == ["rows", "sfu"] == [n for n, _ in b.genes()]


def test_hardware_dict_reads_back_to_the_same_hash(tmp_path):
    rng = random.Random(1)
    for hw in [EDGE.sample(rng) for _ in range(10)] + [PRESETS["gemmini"]]:
        path = tmp_path / "hw.yaml"
        path.write_text(yaml.safe_dump(EDGE.hardware_dict(hw), sort_keys=False))
        assert load_hardware(path).hash() == hw.hash()
    d = EDGE.hardware_dict(PRESETS["gemmini"])
    assert d["base"] == "gemmini-transformer" and "rows" not in d and d["sfu"] == "host"


# -- canonical points and repairs ----------------------------------------------------------------

def test_irrelevant_genes_decode_to_one_hash(tmp_path):
    s = space(tmp_path, """
base: gemmini-transformer
rows: [8, 16]
mapping: [scalesim, search]
mapping_objective: [latency, edp]
sparse_engine: [false, true]
sparse_pe_fraction: [0.25, 0.5]
""")
    assert s.size() == 32
    hashes = {}
    for r in range(2):
        for m in range(2):
            for o in range(2):
                for e in range(2):
                    for f in range(2):
                        hw = s.decode([r, m, o, e, f])
                        hashes.setdefault(hw.hash(), set()).add((r, m, o, e, f))
                        assert hw in s
                        assert s.decode(s.encode(hw)).hash() == hw.hash()
    # no engine: the share does not matter; scalesim: the objective does not matter
    assert len(hashes) == 2 * (1 + 2) * (1 + 2)
    plain = s.decode([0, 0, 0, 0, 0])
    assert plain.hash() == s.decode([0, 0, 1, 0, 1]).hash()
    assert plain.sparse_pe_fraction == 1 / 3 and plain.mapping_objective == "latency"
    assert s.decode([0, 0, 0, 1, 0]).hash() != s.decode([0, 0, 0, 1, 1]).hash()


def test_taylor_pipeline_without_vitality_units_decodes_to_one_hash(tmp_path):
    s = space(tmp_path, """
base: gemmini-transformer
diag_pes: [0, 32]
taylor_pipeline: [false, true]
""")
    assert s.decode([0, 0]).hash() == s.decode([0, 1]).hash() == \
        PRESETS["gemmini-transformer"].hash()
    assert s.decode([1, 0]).hash() != s.decode([1, 1]).hash()
    assert len(list(s.points())) == 3


def test_survey_hw_couples_with_the_architecture_and_holds_its_base():
    survey = HardwareSpace.load("survey-hw")
    genes = dict(survey.genes())
    # the dimensions that interact with attention kinds and the workload are genes
    for name in ("sparse_engine", "sparse_allocation", "attention_fusion", "diag_pes",
                 "preproc_lanes", "sfu_lanes", "dram_bytes_per_cycle", "dataflow", "mapping",
                 "scratchpad_kib", "accumulator_kib"):
        assert len(genes[name]) > 1, name
    assert PRESETS["gemmini-transformer"] in survey and survey.base == "gemmini-transformer"
    assert survey.size() == 36864
    hw = survey.decode([len(v) - 1 for _, v in survey.genes()])
    assert hw.taylor_pipeline and hw.sfu_lanes == 64 and hw.rows == 64


def test_survey_hw_wide_holds_survey_hws_fast_searched_points_and_finer_steps():
    import random
    survey, wide = HardwareSpace.load("survey-hw"), HardwareSpace.load("survey-hw-wide")
    rng = random.Random(0)
    searched = [hw for hw in (survey.sample(rng) for _ in range(400))
                if hw.mapping == "search" and hw.dram_bytes_per_cycle >= 64]
    assert len(searched) > 50 and all(hw in wide for hw in searched)
    genes = dict(wide.genes())
    for name in ("scratchpad_kib", "accumulator_kib", "dram_bytes_per_cycle", "sfu_lanes"):
        assert set(genes[name]) > set(dict(survey.genes())[name]) - {16, 32}, name
    assert wide.size() == 147456          # genomes (92,160 distinct points)
    # its base (SCALE-Sim's mapping) is not a point: searches anchor on the nearest one
    base = PRESETS["gemmini-transformer"]
    assert base not in wide and survey.base_genome() == survey.encode(base)
    near = wide.decode(wide.base_genome())
    assert near.mapping == "search" and all(
        getattr(near, f) == getattr(base, f) for f in ("rows", "cols", "scratchpad_kib",
                                                       "accumulator_kib", "sfu_lanes"))


def test_mac_lines_ignore_dataflow_and_mapping(tmp_path):
    s = space(tmp_path, "base: vitcod\ndataflow: [ws, os]\nmapping: [scalesim, gemmini]\n"
                        "sparse_pe_fraction: [0.25, 0.5]\n")
    hashes = {s.decode([d, m, f]).hash() for d in range(2) for m in range(2) for f in range(2)}
    assert hashes == {PRESETS["vitcod"].hash()}      # dynamic split: the share is nominal
    assert PRESETS["vitcod"] in s


def test_fusion_needs_onchip_sfus(tmp_path):
    s = space(tmp_path, "base: vitcod\nsfu: [onchip, host]\n")
    onchip, host = s.decode([0]), s.decode([1])
    assert onchip.attention_fusion and not host.attention_fusion and host.sfu == "host"


def test_buffers_too_small_for_the_array_are_repaired(tmp_path):
    s = space(tmp_path, "base: gemmini\nrows: [8, 64]\ncols: [8, 64]\n"
                        "scratchpad_kib: [4, 16, 64]\naccumulator_kib: [4, 32, 64]\n")
    big = s.decode([1, 1, 0, 0])                 # 64x64 needs 16 KiB and 32 KiB
    assert (big.scratchpad_kib, big.accumulator_kib) == (16, 32)
    assert big.hash() == s.decode([1, 1, 1, 1]).hash()
    small = s.decode([0, 0, 0, 0])
    assert (small.scratchpad_kib, small.accumulator_kib) == (4, 4)


def test_every_genome_of_a_small_space_decodes(tmp_path):
    s = space(tmp_path, """
base: vitcod
rows: [8, 64]
sfu: [onchip, host]
sparse_engine: [false, true]
sparse_allocation: [fixed, dynamic]
sparse_pe_fraction: [0.25, 0.5]
attention_fusion: [false, true]
""")
    for genome in itertools.product(*(range(len(v)) for _, v in s.genes())):
        hw = s.decode(list(genome))
        assert hw in s
    # points(): each distinct configuration once, and exactly the configurations genomes reach
    points = list(s.points())
    hashes = [hw.hash() for hw in points]
    assert len(set(hashes)) == len(hashes) < s.size()
    assert set(hashes) == {s.decode(list(g)).hash() for g in
                           itertools.product(*(range(len(v)) for _, v in s.genes()))}


# -- bad files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,fragment", [
    ("base: gemmini\nrowz: [8]\n", "unknown field(s) ['rowz']"),
    ("base: gemmini\nrows: []\n", "rows has no choices"),
    ("base: gemmini\nrows: [8, 8]\n", "rows lists 8 twice"),
    ("base: gemmini\nrows: [8.5]\n", "rows choice 8.5: rows must be an integer"),
    ("base: gemmini\nrows: [0]\n", "rows choice 0: rows must be positive"),
    ("base: gemmini\nscratchpad_kib: [-1]\n", "scratchpad_kib must be positive"),
    ("base: gemmini\ndataflow: [ws, xs]\n",
     "dataflow choice 'xs': unknown dataflow 'xs' (dataflow must be one of ws, os, both)"),
    ("base: gemmini\ndouble_buffer: [yes please]\n",
     "double_buffer choice 'yes please': double_buffer must be true or false"),
    ("base: gemmini\nsfu: {a: 1}\n", "sfu must be a list of choices"),
    ("rows: [8]\n", "missing 'base'"),
    ("base: tpu\nrows: [8]\n", "base 'tpu' is not a preset"),
    ("base: gemmini\n", "no genes"),
    ("base: gemmini\nname: [8]\nrows: [8]\n", "name must be a string"),
    ("base: gemmini\nrows: [8, 64]\nscratchpad_kib: [4]\n", "no scratchpad_kib choice holds"),
    ("base: gemmini\nrows: [8, 512]\n", "no scratchpad_kib choice holds one tile of the 512x16"),
    ("base: vitcod\nrows: [2, 8]\nsparse_pe_fraction: [0.9]\n", "leaves an engine of the 2-row"),
    ("base: gemmini\nrows: [8]\ntie: {sfu_lanes: colz}\n", "tie source 'colz' is not"),
    ("base: gemmini\nrows: [8]\ntie: {rows: cols}\n", "'rows' is a gene and tied"),
    ("base: gemmini\nrows: [8]\ntie: {sfu: cols}\n", "mixes a str with a int"),
    ("base: gemmini\nrows: [8]\ntie: [sfu_lanes]\n", "tie must map a field"),
    ("- rows\n", "expected a mapping at the top level"),
    ("base: gemmini\nrows: [8\n", "malformed YAML"),
])
def test_bad_space_files_are_one_line_errors(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as exc:
        HardwareSpace.load(path)
    assert fragment in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_bad_space_names_and_paths(tmp_path):
    with pytest.raises(UserError, match="unknown hardware space 'edge'; built-in: edge-hw"):
        HardwareSpace.load("edge")
    with pytest.raises(UserError, match="is a folder"):
        HardwareSpace.load(tmp_path)
    with pytest.raises(UserError, match="not found"):
        HardwareSpace.load(tmp_path / "missing.yaml")


def test_scalar_choices_and_number_strings(tmp_path):
    s = space(tmp_path, "base: gemmini\nrows: [8, 16]\nclock_hz: [5.0e8, 1.0e+9]\n"
                        "sfu_lanes: 8\n")
    assert dict(s.genes())["clock_hz"] == (5e8, 1e9)
    assert dict(s.genes())["sfu_lanes"] == (8,)
    assert s.decode([0, 0, 0]).sfu_lanes == 8
