"""Lookup-table benchmark: build time of the `survey` table, look-up rate, and agreement with
the full simulation.

    python experiments/search/bench_lut/bench_lut.py        # writes lut_speed.json beside it

Targets (issue 4): the survey table builds in under a minute; >= 10,000 look-ups per second;
table sums within 0.1% of the full simulation.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from costmodel.hardware import load_hardware
from costmodel.simulate import SIMULATOR_VERSION, simulate
from costmodel.workload import Workload
from lut.table import CostTable
from nas.core.arch import NAMED_MODELS, SearchSpace
from nas.core.provenance import provenance, write_result

HERE = Path(__file__).resolve().parent


def clear_simulator_caches() -> None:
    from costmodel.simulate import clear_caches
    clear_caches()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="gemmini-transformer")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--candidates", type=int, default=10_000)
    ap.add_argument("--out", default=str(HERE / "lut_speed.json"))
    args = ap.parse_args()
    prov = provenance(simulator_version=SIMULATOR_VERSION)

    hw, space = load_hardware(args.hw), SearchSpace.load("survey")
    model = NAMED_MODELS["survey-6l"]      # the survey's case study: WikiText-2, context 1024
    workloads = {
        "prefill-1024": Workload(seq=model.seq, mode="decoder", vocab=model.vocab),
        "prefill-1024+gen-128": Workload(seq=model.seq, mode="decoder", gen=128,
                                         vocab=model.vocab),
    }
    rng = random.Random(0)
    candidates = [space.sample(rng) for _ in range(args.candidates)]
    results = {}
    for name, wl in workloads.items():
        builds, rates = [], []
        for _ in range(args.repeats):
            clear_simulator_caches()            # time cold builds, not the simulator's memo
            t0 = time.perf_counter()
            table = CostTable.build(space, hw, wl)
            builds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            table.costs(candidates)
            rates.append(len(candidates) / (time.perf_counter() - t0))
        clear_simulator_caches()
        t0 = time.perf_counter()
        worst = 0.0
        for arch in candidates[:200]:
            rep, cost = simulate(arch, hw, wl), table.cost(arch)
            worst = max(worst, abs(cost.cycles / rep.cycles - 1),
                        abs(cost.energy_j / rep.energy_j - 1))
        full_sim = (time.perf_counter() - t0) / 200
        results[name] = {
            "workload": wl.key, "groups": len(table),
            "build_s_median": statistics.median(builds), "build_s_all": builds,
            "lookups_per_s_median": statistics.median(rates),
            "full_simulation_ms_per_candidate": full_sim * 1e3,
            "max_relative_error_200_archs": worst,
        }
        print(name, json.dumps(results[name]))
    doc = {"hardware": hw.name, "hw_hash": hw.hash(), "space": "survey", "results": results}
    write_result(args.out, doc, prov)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
