"""Speed of the bilevel search's parts (issue 23): the inner hardware solve, lookup tables for
the survey spaces, and the cost matrix build.

- `inner_solve`: `ExhaustiveHardware.solve` for `--archs` random `tiny` architectures against
  every one of the 24,300 `edge-hw` points (the `tiny` supernet's workload: a 64-token decoder
  prefill, 65-token vocabulary), the area budget of edge-32x32 applied as the search does;
  milliseconds per architecture and table look-ups per second (each architecture reads its
  groups' cycles and energy on every point). Target: at most 20 ms per architecture.
- `tables`: lookup tables on `--points` random `edge-hw` points for `survey` and
  `survey-kinds` at a 1024-token prefill (vocabulary 33,278 as experiments/cosearch's
  table_speed.py), in one process (the issue's 56-107 ms): as `CostTable.build` builds them
  now (each distinct operator once, the workload's operators worked out once) and as it built
  them before (`per_operator_build`), the two on the same points in the same run, interleaved,
  each from cleared cost caches, with the same entries.
- `matrix`: `CostMatrix.build` of `survey-kinds` at 1024 tokens over `--matrix-points`
  consecutive `survey-hw` points, with 1 and with 2 worker processes (cold caches each).

    python experiments/studies/cosearch_bilevel/inner_speed.py [--archs 300] [--points 50]
        [--matrix-points 256]

Writes inner_speed.json next to itself (the edge-hw matrix is cached in
runs/cosearch-bilevel/speed).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import numpy as np

from costmodel.area import area
from costmodel.hardware import PRESETS
from costmodel.hwspace import HardwareSpace
from costmodel.simulate import clear_caches, simulate_ops
from costmodel.workload import Workload, group_ops
from lut.matrix import CostMatrix
from lut.table import CostTable, space_groups
from nas.core.distributed import Engine
from nas.core.arch import SearchSpace
from nas.search.bilevel import ExhaustiveHardware
from nas.search.config import SearchConfig
from nas.core.provenance import write_result
from bilevel_common import HERE, RUNS, run_provenance


def inner_solve(n_archs: int, workers: int) -> dict:
    hw_space = HardwareSpace.load("edge-hw")
    t0 = time.perf_counter()
    points = list(hw_space.points())
    enumerate_s = time.perf_counter() - t0
    space = SearchSpace.load("tiny")
    t0 = time.perf_counter()
    matrix = CostMatrix.build(space, points, Workload(seq=64, mode="decoder", vocab=65),
                              folder=RUNS / "cosearch-bilevel" / "speed",
                              engine=Engine(workers=workers), progress=True)
    matrix_s = time.perf_counter() - t0
    budget = area(PRESETS["edge-32x32"]).total_mm2
    solver = ExhaustiveHardware(matrix, [area(hw).total_mm2 for hw in points],
                                SearchConfig(max_area_mm2=budget))
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(n_archs)]
    solver.solve(archs[0])                                       # numpy's first calls
    times, lookups = [], 0
    for a in archs:
        before = solver.lookups
        t = time.perf_counter()
        solver.solve(a)
        times.append(time.perf_counter() - t)
        lookups += solver.lookups - before
    return {"hw_space": "edge-hw", "points": len(points), "groups": matrix.shape[0],
            "points_within_budget": int(solver.allowed.sum()), "area_budget_mm2": budget,
            "architectures": n_archs, "ms_per_architecture_median": 1e3 * statistics.median(times),
            "ms_per_architecture_p90": 1e3 * float(np.quantile(times, 0.9)),
            "ms_per_architecture_max": 1e3 * max(times),
            "lookups_per_architecture_mean": lookups / n_archs,
            "lookups_per_second": lookups / sum(times),
            "enumerate_points_s": enumerate_s, "matrix_build_or_load_s": matrix_s,
            "target_ms": 20.0}


def per_operator_build(space: SearchSpace, hw, workload: Workload) -> list[tuple[float, float]]:
    """A table's entries as CostTable.build simulated them before issue 23: every operator of
    every group, its workload rebuilt per point (the reference the tables are timed against)."""
    out = []
    for key in space_groups(space):
        costs = simulate_ops(group_ops(key, workload), hw)
        out.append((sum(c.cycles for c in costs), sum(c.energy_pj for c in costs)))
    return out


def tables(n_points: int) -> dict:
    """Per space, both builds on every point, interleaved (their order alternating from point
    to point, so a change of the machine's load hits both alike), each from cleared cost
    caches; the entries must agree."""
    hw_space = HardwareSpace.load("edge-hw")
    rng = random.Random(0)
    points = list({hw.hash(): hw for hw in (hw_space.sample(rng) for _ in range(n_points))}
                  .values())
    out = {}
    workload = Workload(seq=1024, mode="decoder", vocab=33278)
    builds = {"per_operator": per_operator_build, "distinct_operators": CostTable.build}
    for name in ("survey", "survey-kinds"):
        space = SearchSpace.load(name)
        for build in builds.values():                                       # warm-up
            build(space, PRESETS["gemmini-transformer"], workload)
        times: dict[str, list[float]] = {method: [] for method in builds}
        for i, hw in enumerate(points):
            entries = []
            for method in (list(builds) if i % 2 == 0 else list(builds)[::-1]):
                clear_caches()
                t = time.perf_counter()
                built = builds[method](space, hw, workload)
                times[method].append(time.perf_counter() - t)
                entries.append(built if isinstance(built, list)
                               else [built.entry(k) for k in space_groups(space)])
            assert entries[0] == entries[1], (name, hw.hash())
        out[name] = {"points": len(points), "workload": vars(workload), **{
            method: {"ms_median": 1e3 * statistics.median(ts), "ms_max": 1e3 * max(ts)}
            for method, ts in times.items()}}
        out[name]["speedup_median"] = (out[name]["per_operator"]["ms_median"]
                                       / out[name]["distinct_operators"]["ms_median"])
    return out


def matrix(n_points: int) -> dict:
    hw_space = HardwareSpace.load("survey-hw")
    points = []
    for hw in hw_space.points():
        points.append(hw)
        if len(points) == n_points:
            break
    space = SearchSpace.load("survey-kinds")
    workload = Workload(seq=1024, mode="decoder", vocab=65)
    out = {"hw_space": "survey-hw", "points": len(points), "space": "survey-kinds",
           "workload": vars(workload)}
    for workers in (1, 2):
        clear_caches()
        t = time.perf_counter()
        CostMatrix.build(space, points, workload, engine=Engine(workers=workers))
        secs = time.perf_counter() - t
        out[f"workers_{workers}"] = {"seconds": secs, "ms_per_point": 1e3 * secs / len(points)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=300)
    ap.add_argument("--points", type=int, default=50)
    ap.add_argument("--matrix-points", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2, help="building the edge-hw matrix")
    args = ap.parse_args()
    prov = run_provenance()
    doc = {"inner_solve": inner_solve(args.archs, args.workers), "tables": tables(args.points),
           "matrix": matrix(args.matrix_points)}
    out = write_result(HERE / "inner_speed.json", doc, prov)
    print(json_summary(doc))
    print(f"wrote {out}")
    return 0


def json_summary(doc: dict) -> str:
    s = doc["inner_solve"]
    return (f"inner solve over {s['points']:,} edge-hw points: median "
            f"{s['ms_per_architecture_median']:.2f} ms per architecture, "
            f"{s['lookups_per_second']:.3g} look-ups/s; tables: "
            + ", ".join(f"{k} median {v['distinct_operators']['ms_median']:.0f} ms (before: "
                        f"{v['per_operator']['ms_median']:.0f} ms)"
                        for k, v in doc["tables"].items())
            + "; matrix: " + ", ".join(f"{k} {v['ms_per_point']:.0f} ms/point"
                                       for k, v in doc["matrix"].items()
                                       if k.startswith("workers")))


if __name__ == "__main__":
    sys.exit(main())
