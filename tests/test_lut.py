"""Lookup tables: exact sums of the simulator's costs, metadata checks, file handling, CLI."""

from __future__ import annotations

import gc
import random
from collections import Counter

import pytest

from costmodel.hardware import DEFAULT_HARDWARE, load_hardware
from costmodel.simulate import simulate
from costmodel.workload import SOFTMAX, Workload, arch_groups, model_ops
from lut.table import CostTable, space_groups
from nas.core.arch import SearchSpace
from nas.cli import main
from nas.core.errors import UserError

HW = load_hardware(DEFAULT_HARDWARE)             # what build-lut uses without --hw
SURVEY, TINY = SearchSpace.load("survey"), SearchSpace.load("tiny")
DECODER = Workload(seq=128, batch=2, mode="decoder", gen=3, vocab=1000)


def test_groups_are_those_of_model_ops():
    rng = random.Random(0)
    for _ in range(20):
        arch = SURVEY.sample(rng)
        ops = model_ops(arch, DECODER)
        blocks = {(op.layer, op.group) for op in ops}          # one block = one table entry
        keys = [key for key, _layer in arch_groups(arch)]
        assert Counter(g for _, g in blocks) == Counter(keys)
        assert set(keys) <= set(space_groups(SURVEY))
    assert len(space_groups(SURVEY)) == len(SURVEY.d) * (len(SURVEY.heads) + len(SURVEY.ffn) + 1)


def test_costs_are_simulated_without_collections_and_the_collector_is_restored(monkeypatch):
    import lut.matrix
    import lut.table
    seen, real = [], lut.table.op_cost

    def op_cost(op, hw, sparsity=None):
        seen.append(gc.isenabled())
        if op.kind == SOFTMAX and fail:
            raise RuntimeError("simulator failed")
        return real(op, hw, sparsity)

    monkeypatch.setattr(lut.table, "op_cost", op_cost)
    keys = space_groups(TINY)
    assert gc.isenabled()
    fail = False
    cycles, _ = lut.matrix._chunk_costs((keys, [HW, HW], DECODER, None))
    assert seen and not any(seen) and gc.isenabled()
    assert cycles[:, 0].tolist() == [c for c, _ in lut.table.group_costs(keys, HW, DECODER)]
    fail = True
    with pytest.raises(RuntimeError, match="simulator failed"):
        lut.table.group_costs(keys, HW, DECODER)
    assert gc.isenabled()
    gc.disable()                                    # a caller's choice is kept
    try:
        fail = False
        lut.table.group_costs(keys, HW, DECODER)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("workload", [DECODER, Workload(seq=64, mode="encoder")],
                         ids=["decoder", "encoder"])
def test_table_sum_equals_full_simulation_for_200_archs(workload):
    table = CostTable.build(SURVEY, HW, workload)
    rng = random.Random(1)
    for _ in range(200):
        arch = SURVEY.sample(rng)
        report, cost = simulate(arch, HW, workload), table.cost(arch)
        assert cost.cycles == pytest.approx(report.cycles, rel=1e-3)
        assert cost.energy_j == pytest.approx(report.energy_j, rel=1e-3)
        assert cost.latency_s == pytest.approx(report.seconds, rel=1e-3)
        assert cost.edp == pytest.approx(report.edp, rel=1e-3)


def test_save_load_round_trip_and_refusals(tmp_path):
    wl = Workload(seq=32, mode="decoder", vocab=65)
    table = CostTable.build(TINY, HW, wl)
    path = table.save(tmp_path / "t.parquet")
    back = CostTable.load(path)
    back.check(TINY, wl, hw=HW)
    assert back.id == table.id and back.meta == table.meta
    arch = TINY.sample(random.Random(0))
    assert back.cost(arch) == table.cost(arch)
    assert not list(tmp_path.glob(".*tmp"))                    # no temporary file left behind

    with pytest.raises(UserError, match="hardware 'gemmini-transformer'.*not 'gemmini'"):
        back.check(TINY, wl, hw=load_hardware("gemmini"))
    with pytest.raises(UserError, match="search space 'tiny', not 'survey'"):
        back.check(SURVEY, wl)
    with pytest.raises(UserError, match=r"workload .*seq=32 \(expected 64\)"):
        back.check(TINY, Workload(seq=64, mode="decoder", vocab=65))
    with pytest.raises(UserError, match="outside the table's search space"):
        back.cost(SURVEY.largest())
    # a table of tiny-kinds for a tiny supernet: the choice only the table's space has is named
    # (issue 21: "they differ in ()")
    kinds = CostTable.build(SearchSpace.load("tiny-kinds"), HW, wl)
    with pytest.raises(UserError, match=r"search space 'tiny-kinds', not 'tiny' \(they differ "
                                        r"in attention\)"):
        kinds.check(TINY, wl)


def test_check_names_every_difference_of_the_workload_and_sparsity(tmp_path):
    """The finding: an encoder table (seq 999, vocabulary 7, sparsity 0.5) was accepted for a
    decoder supernet with context 16. Every encoded field is compared, all differences named."""
    from costmodel.sparsity import AttentionSparsity
    odd = CostTable.build(TINY, HW, Workload(seq=999, mode="encoder", vocab=7),
                          sparsity=AttentionSparsity(0.5))
    back = CostTable.load(odd.save(tmp_path / "odd.parquet"))
    with pytest.raises(UserError) as err:
        back.check(TINY, Workload(seq=16, mode="decoder", vocab=96))
    message = str(err.value)
    for part in ("odd.parquet", "mode=encoder (expected decoder)", "seq=999 (expected 16)",
                 "vocab=7 (expected 96)", "attention sparsity 0.5", "not dense attention"):
        assert part in message, part
    assert "\n" not in message
    back.check(TINY, Workload(seq=999, mode="encoder", vocab=7),
               sparsity=AttentionSparsity(0.5))                # what it was built for: accepted


def test_table_of_another_format_version_is_refused(tmp_path, monkeypatch):
    import lut.table as table_mod
    path = CostTable.build(TINY, HW, Workload(seq=16)).save(tmp_path / "t.parquet")
    monkeypatch.setattr(table_mod, "FORMAT_VERSION", 99)
    monkeypatch.setattr(table_mod, "READABLE_FORMATS", (99,))
    with pytest.raises(UserError, match="format version 3, this program reads version 99"):
        CostTable.load(path)


def test_table_from_another_simulator_version_is_refused(tmp_path, monkeypatch):
    import lut.table as table_mod
    path = CostTable.build(TINY, HW, Workload(seq=16)).save(tmp_path / "t.parquet")
    monkeypatch.setattr(table_mod, "SIMULATOR_VERSION", "999")
    with pytest.raises(UserError, match="simulator version .* this is version 999"):
        CostTable.load(path)


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        CostTable.load(tmp_path / "none.parquet")
    with pytest.raises(UserError, match="is a folder"):
        CostTable.load(tmp_path)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match="not a readable Parquet"):
        CostTable.load(junk)
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"a": [1]}), tmp_path / "plain.parquet")
    with pytest.raises(UserError, match="no lookup-table metadata"):
        CostTable.load(tmp_path / "plain.parquet")


def test_sparsity_changes_attention_entries_only():
    from costmodel.sparsity import AttentionSparsity
    wl = Workload(seq=256, mode="encoder")
    vitcod = load_hardware("vitcod")
    dense = CostTable.build(TINY, vitcod, wl)
    sparse = CostTable.build(TINY, vitcod, wl, sparsity=AttentionSparsity(0.9))
    assert sparse.id != dense.id
    for key in space_groups(TINY):
        if key.kind == "attn":
            assert sparse.entry(key)[0] < dense.entry(key)[0]
        else:
            assert sparse.entry(key) == dense.entry(key)


@pytest.mark.parametrize("space, hw", [("tiny", "gemmini"), ("tiny-kinds", "vitality")])
def test_cli_build_lut(tmp_path, capsys, space, hw):
    out = tmp_path / "lut.parquet"
    assert main(["build-lut", "--space", space, "--hw", hw, "--seq", "32",
                 "--vocab", "65", "--out", str(out)]) == 0
    table, space = CostTable.load(out), SearchSpace.load(space)
    table.check(space, Workload(seq=32, mode="decoder", vocab=65), hw=load_hardware(hw))
    assert len(table) == len(space_groups(space))
    assert {r["attention"] for r in table.rows if r["kind"] == "attn"} == set(space.attention)
    assert table.id in capsys.readouterr().out


def test_cli_build_lut_refuses_bad_hardware_and_workloads(tmp_path, capsys):
    out = tmp_path / "lut.parquet"
    assert main(["build-lut", "--hw", "no-such-hw", "--out", str(out)]) == 2
    assert "no-such-hw" in capsys.readouterr().err
    assert main(["build-lut", "--seq", "0", "--out", str(out)]) == 2


def test_build_lut_refuses_a_folder_or_bad_sparsity_before_simulating(tmp_path, capsys):
    assert main(["build-lut", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["build-lut", "--sparsity", "0.5", "--mask", "m.npy",
                 "--out", str(tmp_path / "t.parquet")]) == 2
    assert "either --sparsity or --mask" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_build_lut_mapping_override_is_part_of_the_hardware(tmp_path, capsys):
    out = tmp_path / "search.parquet"
    assert main(["build-lut", "--seq", "32", "--mapping", "search", "--out", str(out)]) == 0
    table = CostTable.load(out)
    assert table.hardware.mapping == "search" and table.hardware.hash() != HW.hash()
    with pytest.raises(UserError, match="hash"):
        table.check(TINY, Workload(seq=32, mode="decoder"), hw=HW)      # scalesim-mapped HW
    plain = CostTable.build(TINY, HW, Workload(seq=32, mode="decoder"))
    # the search never maps slower than scalesim: no group costs more cycles
    assert all(table.entry(k)[0] <= plain.entry(k)[0] * (1 + 1e-9) for k in space_groups(TINY))
