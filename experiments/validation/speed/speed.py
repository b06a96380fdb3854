"""Simulator speed (run by hand, not in CI).

    python experiments/validation/speed/speed.py [--repeats 20]

Times `costmodel.simulate` of a 12-layer BERT-Base at sequence length 512 on
gemmini-transformer in each GEMM mapping mode (costmodel.mapping: scalesim, gemmini, search):
"cold" clears the per-shape caches before every run (every GEMM is mapped from scratch), "warm"
reuses them (what lookup-table builds and repeated calls see). Reports the median (and minimum)
over the repeats and the load average (the 2 cores may be shared). Targets (issue 11): BERT-Base
cold median <= 10 ms and the survey-space lookup table (decoder, seq 1024, vocab 33278) built in
<= 5 s, with the search on. Then times each GEMM of the SCALE-Sim reference runs cold and gives
the ratio to SCALE-Sim's wall time on the same GEMM (`wall_s` in ../shared/oracles, measured on
a 2-core machine). Writes speed.json next to itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from costmodel import simulate as sim
from costmodel.gemm import gemm_cost
from costmodel.hardware import MAPPING_MODES, PRESETS, scalesim_equivalent
from costmodel.mapping import with_mapping
from costmodel.workload import Workload, model_ops
from lut.table import CostTable
from nas.core.arch import NAMED_MODELS, SearchSpace
from nas.core.provenance import provenance, write_result

ROOT = Path(__file__).resolve().parents[3]
ORACLE = ROOT.parent / "shared" / "oracles" / "scalesim-3.0.0-ws.jsonl"
OUT = Path(__file__).resolve().parent / "speed.json"


TARGET_BERT_MS, TARGET_TABLE_S = 10.0, 5.0     # issue 11, with the search on


def times_ms(fn, repeats: int, cold: bool) -> list[float]:
    times = []
    for _ in range(repeats):
        if cold:
            sim.clear_caches()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def median_ms(fn, repeats: int, cold: bool) -> float:
    return statistics.median(times_ms(fn, repeats, cold))


def table_build_s(hw, repeats: int) -> float:
    """Median seconds to build the survey-space lookup table from cold caches (decoder, prompt
    1024, vocab 33278: the co-design study's setting)."""
    space = SearchSpace.load("survey")
    wl = Workload(seq=1024, mode="decoder", vocab=33278)
    return median_ms(lambda: CostTable.build(space, hw, wl), repeats, cold=True) / 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    prov = provenance(simulator_version=sim.SIMULATOR_VERSION)

    model = NAMED_MODELS["bert-base"]
    preset, wl = PRESETS["gemmini-transformer"], Workload(seq=512, vocab=model.vocab)
    ops = model_ops(model.arch, wl)
    by_mode = {}
    for mode in MAPPING_MODES:
        hw = with_mapping(preset, mode)
        run = lambda: sim.simulate(model.arch, hw, wl)      # noqa: E731
        bert = {"model": "bert-base (12 layers, vocab 30522)", "seq": 512, "hardware": hw.name,
                "mapping": mode, "operators": len(ops), "cycles": run().cycles,
                "load_average_before": list(os.getloadavg())}
        for cache in ("cold", "warm"):
            t = times_ms(run, args.repeats, cold=cache == "cold")
            bert[f"{cache}_ms_median"], bert[f"{cache}_ms_min"] = statistics.median(t), min(t)
        bert["table_build_s"] = table_build_s(hw, max(3, args.repeats // 5))
        bert["meets_targets"] = (bert["cold_ms_median"] <= TARGET_BERT_MS
                                 and bert["table_build_s"] <= TARGET_TABLE_S)
        by_mode[mode] = bert
        print(f"{mode:8s} BERT-Base seq 512, {len(ops)} operators: cold "
              f"{bert['cold_ms_median']:.2f} ms, warm {bert['warm_ms_median']:.2f} ms (median of "
              f"{args.repeats}; minimum {bert['cold_ms_min']:.2f} / {bert['warm_ms_min']:.2f} ms)"
              f"; survey table {bert['table_build_s']:.3f} s")

    gemms = []
    if ORACLE.is_file():
        for line in ORACLE.read_text().splitlines():
            r = json.loads(line)
            cfg = scalesim_equivalent(r["rows"], r["cols"], r["dataflow"], r["ifmap_kb"],
                                      r["filter_kb"], r["ofmap_kb"])
            ms = median_ms(lambda: gemm_cost(r["M"], r["K"], r["N"], cfg), args.repeats,
                           cold=True)
            gemms.append({"shape": r["shape"], "M": r["M"], "K": r["K"], "N": r["N"],
                          "array": f"{r['rows']}x{r['cols']}", "ours_ms": ms,
                          "scalesim_s": r["wall_s"], "speedup": r["wall_s"] * 1e3 / ms})
            print(f"{r['shape']:16s} {r['M']}x{r['K']}x{r['N']} on {r['rows']}x{r['cols']}: "
                  f"ours {ms:.3f} ms, SCALE-Sim {r['wall_s']} s, {gemms[-1]['speedup']:,.0f}x")
    result = {
        "load_average_at_end": list(os.getloadavg()),  # the machine may be shared
        "targets": {"bert_base_cold_ms_median": TARGET_BERT_MS,
                    "survey_table_build_s": TARGET_TABLE_S},
        "bert_base_seq512": by_mode["scalesim"], "by_mapping": by_mode,
        "scalesim_gemms": gemms,
        "bert_ffn1_16x16_speedup": next((g["speedup"] for g in gemms
                                         if g["shape"] == "bert_ffn1" and g["array"] == "16x16"),
                                        None),
    }
    write_result(OUT, result, prov)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
