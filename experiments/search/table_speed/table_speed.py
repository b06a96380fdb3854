"""Lookup-table build time per hardware point (run by hand, not in CI).

    python experiments/search/table_speed/table_speed.py [--points 50] [--seed 0]
        [--hw-space edge-hw] [--out experiments/search/table_speed/table_speed.json]

A joint architecture x hardware search builds one lookup table per hardware point it meets
(`lut.cache.TableCache`), so the build must be cheap. Issue 13's targets: at most 50 ms per
point for the `tiny` space (decoder, prompt 64, vocab 96) and 0.5 s for `survey` (decoder,
prompt 1024, vocab 33278).

- `build`: `CostTable.build` on `--points` distinct random points of a built-in hardware
  space (`--hw-space`: `edge-hw` or `edge-hw-wide`), each once, in one process. A new accelerator means new operator shapes, so
  the per-shape caches (cleared by costmodel.simulate.clear_caches) miss on every point,
  as in a search (except GEMMs shared with an earlier point that differs only in fields GEMMs
  never read, e.g. `sfu`: costmodel.gemm.gemm_view).
- `build_caches_cleared`: the same with every cache cleared before each point (cold).
- `cache_build_and_save`, `cache_load_from_disk`: `TableCache.table` (build plus the atomic
  Parquet save) on a fresh folder, then reading the tables back in a new cache.
- `slowest_corner_caches_cleared`: the slowest points of the space (8x8 array, both dataflows,
  the mapping search: the most candidate mappings per GEMM), each buffer at its smallest and
  largest size, cold.

One warm-up build on the base preset comes first (imports, numpy's first calls); its time is
reported apart. Writes table_speed.json beside this script (or --out).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from costmodel.hardware import PRESETS                            # noqa: E402
from costmodel.hwspace import HardwareSpace                       # noqa: E402
from costmodel.simulate import SIMULATOR_VERSION, clear_caches    # noqa: E402
from costmodel.workload import Workload                           # noqa: E402
from lut.cache import TableCache                                  # noqa: E402
from lut.table import CostTable                                   # noqa: E402
from nas.core.arch import SearchSpace                             # noqa: E402
from nas.core.provenance import provenance, write_result          # noqa: E402

OUT = Path(__file__).resolve().parent / "table_speed.json"
CASES = {"tiny": (Workload(seq=64, mode="decoder", vocab=96), 0.05),
         "survey": (Workload(seq=1024, mode="decoder", vocab=33278), 0.5)}


def points(space: HardwareSpace, n: int, seed: int) -> list:
    """`n` distinct random points (by hash) of `space`."""
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        hw = space.sample(rng)
        if hw.hash() not in seen:
            seen.add(hw.hash())
            out.append(hw)
    return out


def corner(space: HardwareSpace) -> list:
    """The slowest points to build a table for: smallest array, both dataflows, mapping
    search, each buffer at its smallest and largest choice."""
    genes = dict(space.genes())
    out = []
    for sp in (min(genes["scratchpad_kib"]), max(genes["scratchpad_kib"])):
        for acc in (min(genes["accumulator_kib"]), max(genes["accumulator_kib"])):
            idx = [list(v).index({"rows": 8, "cols": 8, "dataflow": "both", "mapping": "search",
                                  "clock_hz": 1e9, "scratchpad_kib": sp, "accumulator_kib": acc,
                                  "dram_bytes_per_cycle": 16, "sfu": "onchip"}[name])
                   for name, v in space.genes()]
            out.append(space.decode(idx))
    return out


def summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "max_s": max(times), "min_s": min(times),
            "mean_s": statistics.fmean(times)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hw-space", default="edge-hw", help="edge-hw or edge-hw-wide")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    prov = provenance(simulator_version=SIMULATOR_VERSION)

    hw_space = HardwareSpace.load(args.hw_space)
    results = {}
    for name, (wl, target) in CASES.items():
        space = SearchSpace.load(name)
        pts = points(hw_space, args.points, args.seed)
        clear_caches()
        t = time.perf_counter()
        CostTable.build(space, PRESETS[hw_space.base], wl)
        warmup = time.perf_counter() - t

        warm_process = []                  # new hardware, process already running
        for hw in pts:
            t = time.perf_counter()
            CostTable.build(space, hw, wl)
            warm_process.append(time.perf_counter() - t)
        cleared = []                       # per-shape caches cleared before every point
        for hw in pts:
            clear_caches()
            t = time.perf_counter()
            CostTable.build(space, hw, wl)
            cleared.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as folder:
            clear_caches()
            cache = TableCache(space, wl, folder=folder)
            cached = []                    # build + atomic save through the cache
            for hw in pts:
                t = time.perf_counter()
                cache.table(hw)
                cached.append(time.perf_counter() - t)
            reload = TableCache(space, wl, folder=folder)
            loads = []
            for hw in pts:
                t = time.perf_counter()
                reload.table(hw)
                loads.append(time.perf_counter() - t)
        worst = []                         # the slowest corner, cold
        for hw in corner(hw_space):
            clear_caches()
            t = time.perf_counter()
            CostTable.build(space, hw, wl)
            worst.append(time.perf_counter() - t)
        by_mapping = {m: statistics.median(t for hw, t in zip(pts, warm_process)
                                           if hw.mapping == m)
                      for m in sorted({hw.mapping for hw in pts})}
        results[name] = {
            "space": name, "groups": len(CostTable.build(space, pts[0], wl)),
            "workload": wl.key, "target_s": target, "points": len(pts),
            "warmup_build_s": warmup,
            "build": summary(warm_process),
            "build_median_by_mapping_s": by_mapping,
            "build_caches_cleared": summary(cleared),
            "cache_build_and_save": summary(cached),
            "cache_load_from_disk": summary(loads),
            "slowest_corner_caches_cleared": {"points": [hw.description for hw in
                                                         corner(hw_space)], **summary(worst)},
            "meets_target": max(warm_process + cleared + worst) <= target,
        }
        r = results[name]
        print(f"{name}: {r['groups']} groups, {len(pts)} {hw_space.name} points: build median "
              f"{r['build']['median_s'] * 1e3:.1f} ms, max {r['build']['max_s'] * 1e3:.1f} ms "
              f"(caches cleared: max {r['build_caches_cleared']['max_s'] * 1e3:.1f} ms; "
              f"+save median {r['cache_build_and_save']['median_s'] * 1e3:.1f} ms; load median "
              f"{r['cache_load_from_disk']['median_s'] * 1e3:.1f} ms; slowest corner "
              f"{r['slowest_corner_caches_cleared']['max_s'] * 1e3:.1f} ms), target "
              f"{target * 1e3:g} ms: {'met' if r['meets_target'] else 'MISSED'}")
    data = {
        "load_average_at_end": list(os.getloadavg()), "hardware_space": hw_space.name,
        "hardware_space_size": hw_space.size(), **results}
    write_result(args.out, data, prov)
    print(f"wrote {args.out}")
    return 0 if all(r["meets_target"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
