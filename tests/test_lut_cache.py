"""Lookup tables per hardware point (lut.cache.TableCache): memory, disk, stale, foreign files."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest

from costmodel import gemm, mapping
from costmodel.hardware import PRESETS, derive
from costmodel.hwspace import HardwareSpace
from costmodel.sparsity import AttentionSparsity
from costmodel.workload import Workload
from lut.cache import TableCache
from lut.table import META_KEY, CostTable
from nas.core.arch import SearchSpace
from nas.core.errors import UserError

TINY = SearchSpace.load("tiny")
WL = Workload(seq=64, mode="decoder", vocab=96)
EDGE = HardwareSpace.load("edge-hw")


def points(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    return [EDGE.sample(rng) for _ in range(n)]


def test_builds_once_then_hits_in_memory():
    cache = TableCache(TINY, WL)
    hw = PRESETS["gemmini-transformer"]
    first = cache.table(hw)
    assert (cache.built, cache.loaded, cache.hits) == (1, 0, 0)
    assert cache.table(hw) is first and cache.table(derive("gemmini-transformer", "twin")) \
        is first                                          # same hash, same table
    assert (cache.built, cache.loaded, cache.hits) == (1, 0, 2)
    assert hw in cache and len(cache) == 1 and cache.path(hw) is None
    assert first.rows == CostTable.build(TINY, hw, WL).rows
    first.check(TINY, WL, None, hw)


def test_saves_and_reloads_from_disk_in_a_new_cache(tmp_path):
    hws = points(4)
    cache = TableCache(TINY, WL, folder=tmp_path / "luts")
    tables = [cache.table(hw) for hw in hws]
    assert cache.built == len({hw.hash() for hw in hws})
    for hw in hws:
        assert (tmp_path / "luts" / f"{hw.hash()}.parquet").is_file()
    assert not [p for p in (tmp_path / "luts").iterdir() if p.name.startswith(".")]  # no temps
    again = TableCache(TINY, WL, folder=tmp_path / "luts")
    for hw, table in zip(hws, tables):
        loaded = again.table(hw)
        assert loaded.rows == table.rows and loaded.hw_hash == hw.hash()
    assert again.built == 0 and again.loaded == len({hw.hash() for hw in hws})
    again.table(hws[0])
    assert again.hits == 1 + len(hws) - again.loaded


def test_corrupted_or_stale_files_are_rebuilt(tmp_path):
    hw_a, hw_b = PRESETS["gemmini"], PRESETS["edge-32x32"]
    cache = TableCache(TINY, WL, folder=tmp_path)
    good_b = cache.table(hw_b).rows
    cache.path(hw_a).write_bytes(b"not parquet at all")          # corrupted
    # another simulator version: a table the loader refuses
    path_b = cache.path(hw_b)
    table = pq.read_table(path_b)
    meta = json.loads(table.schema.metadata[META_KEY])
    meta["simulator_version"] = "0.1"
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), path_b)

    fresh = TableCache(TINY, WL, folder=tmp_path)
    assert fresh.table(hw_a).rows == CostTable.build(TINY, hw_a, WL).rows
    assert fresh.table(hw_b).rows == good_b
    assert (fresh.built, fresh.loaded, fresh.rebuilt) == (2, 0, 2)
    assert any("not a readable Parquet file" in s for s in fresh.stale)
    assert any("simulator version" in s for s in fresh.stale)
    # the files were replaced by good ones
    third = TableCache(TINY, WL, folder=tmp_path)
    third.table(hw_a), third.table(hw_b)
    assert (third.built, third.loaded, third.rebuilt) == (0, 2, 0)


def test_a_table_for_another_search_is_refused(tmp_path):
    hw = PRESETS["gemmini-transformer"]
    TableCache(TINY, Workload(seq=32, mode="decoder", vocab=96), folder=tmp_path).table(hw)
    with pytest.raises(UserError, match=r"workload decoder-seq32.*expected 64"):
        TableCache(TINY, WL, folder=tmp_path).table(hw)
    other = SearchSpace.from_dict({**TINY.to_dict(), "ffn": [128, 256]}, name="tiny2")
    with pytest.raises(UserError, match="search space"):
        TableCache(other, Workload(seq=32, mode="decoder", vocab=96), folder=tmp_path).table(hw)
    with pytest.raises(UserError, match="attention sparsity"):
        TableCache(TINY, Workload(seq=32, mode="decoder", vocab=96),
                   AttentionSparsity(0.5), folder=tmp_path).table(hw)
    # a file copied under another hardware's name
    other_hw = PRESETS["gemmini"]
    (tmp_path / f"{other_hw.hash()}.parquet").write_bytes(
        (tmp_path / f"{hw.hash()}.parquet").read_bytes())
    with pytest.raises(UserError, match=r"hardware 'gemmini-transformer'"):
        TableCache(TINY, Workload(seq=32, mode="decoder", vocab=96),
                   folder=tmp_path).table(other_hw)


def test_folder_that_is_a_file(tmp_path):
    f = tmp_path / "luts"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        TableCache(TINY, WL, folder=f)


def test_stats_and_sparsity_are_kept(tmp_path):
    sp = AttentionSparsity(0.9)
    cache = TableCache(TINY, Workload(seq=64), sp, folder=tmp_path)
    t = cache.table(PRESETS["vitcod"])
    t.check(TINY, Workload(seq=64), sp, PRESETS["vitcod"])
    assert cache.stats() == {"tables": 1, "built": 1, "loaded": 0, "hits": 0, "rebuilt": 0}


def test_gemms_are_shared_between_hardware_that_differs_only_where_gemms_do_not_look():
    """gemm.gemm_view: the same accelerator with its SFUs on chip or on the host maps its
    GEMMs once, and the mappings equal those computed for each config on its own."""
    for hw in points(12, 5) + [PRESETS["vitcod"], PRESETS["gemmini"]]:
        view = gemm.gemm_view(hw)
        for m, k, n in ((64, 96, 128), (1, 128, 96), (200, 64, 300)):
            for batch in (1, 3):
                assert mapping.map_gemm.__wrapped__(m, k, n, hw, hw.rows, True, batch) == \
                    mapping.map_gemm.__wrapped__(m, k, n, view, hw.rows, True, batch)
    onchip = derive("gemmini-transformer", "a", mapping="search")
    host = derive("gemmini-transformer", "b", mapping="search", sfu="host")
    assert gemm.gemm_view(onchip) == gemm.gemm_view(host)
    cache = TableCache(TINY, WL)
    cache.table(onchip)
    before = mapping.map_gemm.cache_info().misses
    cache.table(host)
    assert mapping.map_gemm.cache_info().misses == before      # no GEMM mapped again
    assert cache.table(host).rows == CostTable.build(TINY, host, WL).rows
