"""Cross-check GEMM cycles against SCALE-Sim 3.0.0 (run by hand, not in CI).

    python experiments/validation/scalesim_compare/scalesim_compare.py

Reads the reference runs in ../shared/oracles/scalesim-3.0.0-ws.jsonl (SCALE-Sim 3.0.0,
weight-stationary, arrays 16x16 / 32x32 / 64x8, 128 KB ifmap / 128 KB filter / 64 KB ofmap SRAM,
1-byte words), simulates the same GEMMs with `costmodel` on the matching configuration
(`costmodel.hardware.scalesim_equivalent`: ample DRAM bandwidth) and compares compute cycles.
It also runs our model at SCALE-Sim's DRAM bandwidth (16 words/cycle) and puts its DRAM traffic
and total cycles beside SCALE-Sim's, to show where and why the totals differ. All of this uses
the `scalesim` GEMM mapping (costmodel.mapping), the one validated here; for information, the
`search` mapping's cycles on the same hardware show what a per-GEMM mapping search gains.
Writes scalesim_compare.json and .md next to itself.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from costmodel.hardware import scalesim_equivalent
from costmodel.mapping import with_mapping
from costmodel.gemm import gemm_cost
from costmodel.simulate import SIMULATOR_VERSION
from nas.core.atomic import atomic_write_text
from nas.core.provenance import provenance, write_result

ROOT = Path(__file__).resolve().parents[3]
ORACLE = ROOT.parent / "shared" / "oracles" / "scalesim-3.0.0-ws.jsonl"
OUT = Path(__file__).resolve().parent
TOLERANCE_PCT = 5.0


def compare(run: dict) -> dict:
    hw = with_mapping(scalesim_equivalent(run["rows"], run["cols"], run["dataflow"],
                                          run["ifmap_kb"], run["filter_kb"], run["ofmap_kb"]),
                      "scalesim")
    ample = gemm_cost(run["M"], run["K"], run["N"], hw)
    # same array and buffers at SCALE-Sim's DRAM bandwidth (words are bytes here)
    real_hw = replace(hw, dram_bytes_per_cycle=float(run["dram_bw_words_per_cycle"]))
    real_bw = gemm_cost(run["M"], run["K"], run["N"], real_hw)
    searched = gemm_cost(run["M"], run["K"], run["N"], with_mapping(real_hw, "search"))
    theirs = run["compute_cycles"]
    err = 100.0 * (ample.compute - theirs) / theirs
    why = ("" if abs(err) <= TOLERANCE_PCT else
           "gap above 5%: see the explanation in scalesim_compare.md")
    if abs(err) < 0.1:
        why = ("same fold formula ceil(K/R)*ceil(N/C)*(2R+C+M-2); SCALE-Sim subtracts one "
               "final cycle" if ample.compute - theirs == 1 else "exact")
    return {
        "shape": run["shape"], "M": run["M"], "K": run["K"], "N": run["N"],
        "array": f"{run['rows']}x{run['cols']}", "dataflow": run["dataflow"],
        "ours_compute_cycles": ample.compute, "ours_total_cycles_ample_bw": ample.cycles,
        "scalesim_compute_cycles": theirs, "error_pct": err, "explanation": why,
        "ours_tile_mkn": list(ample.tile),
        "ours_total_cycles_at_scalesim_bw": real_bw.cycles,
        "scalesim_total_cycles": run["total_cycles"],
        "ours_dram_bytes": real_bw.dram_bytes,
        "scalesim_dram_bytes": run["dram_reads"] + run["dram_writes"],
        "compulsory_dram_bytes": run["M"] * run["K"] + run["K"] * run["N"] + run["M"] * run["N"],
        "scalesim_wall_s": run["wall_s"],
        "mapping": ample.mapping.to_dict(),
        "ours_search_cycles_at_scalesim_bw": searched.cycles,
        "search_speedup": real_bw.cycles / searched.cycles,
        "search_mapping": searched.mapping.to_dict(),
    }


def main() -> int:
    prov = provenance(simulator_version=SIMULATOR_VERSION)
    if not ORACLE.is_file():
        print(f"SCALE-Sim reference runs not found: {ORACLE}", file=sys.stderr)
        return 2
    runs = [json.loads(line) for line in ORACLE.read_text().splitlines() if line.strip()]
    rows = [compare(r) for r in runs]
    worst = max(abs(r["error_pct"]) for r in rows)
    result = {
        "oracle": str(ORACLE.relative_to(ROOT.parent)),
        "mapping": "scalesim", "tolerance_pct": TOLERANCE_PCT, "max_abs_error_pct": worst,
        "all_within_tolerance": worst <= TOLERANCE_PCT, "runs": rows,
    }
    write_result(OUT / "scalesim_compare.json", result, prov)

    md = [
        "# GEMM cycles: costmodel vs SCALE-Sim 3.0.0 (weight-stationary)", "",
        f"Command: `{prov['command']}` (simulator {SIMULATOR_VERSION}). Reference: "
        f"`{result['oracle']}`. Our configuration: `scalesim_equivalent()` (256 KiB shared "
        "scratchpad = 128 KB ifmap + 128 KB filter, accumulator holding the 64 KB ofmap's "
        "elements as int32, ample DRAM bandwidth).", "",
        f"Compute cycles: largest |error| {worst:.3f}% over {len(rows)} runs "
        f"(target <= {TOLERANCE_PCT:g}%).", "",
        "| shape | M x K x N | array | ours | SCALE-Sim | error | our tile (m,k,n) | "
        "ours @16 B/cyc | SCALE-Sim total | our DRAM MB | SCALE-Sim DRAM MB | compulsory MB | "
        "search @16 B/cyc |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['shape']} | {r['M']}x{r['K']}x{r['N']} | {r['array']} | "
                  f"{r['ours_compute_cycles']:,.0f} | {r['scalesim_compute_cycles']:,} | "
                  f"{r['error_pct']:+.3f}% | {tuple(r['ours_tile_mkn'])} | "
                  f"{r['ours_total_cycles_at_scalesim_bw']:,.0f} | {r['scalesim_total_cycles']:,} | "
                  f"{r['ours_dram_bytes'] / 1e6:.2f} | {r['scalesim_dram_bytes'] / 1e6:.2f} | "
                  f"{r['compulsory_dram_bytes'] / 1e6:.2f} | "
                  f"{r['ours_search_cycles_at_scalesim_bw']:,.0f} ({r['search_speedup']:.2f}x) |")
    md += ["",
           "Compute cycles agree to one cycle in every run: both count ceil(K/R) x ceil(N/C) "
           "folds of 2R + C + M - 2 cycles (weight preload R, fill R, drain C); SCALE-Sim's "
           "count ends one cycle earlier. No run has a gap above 5%.", "",
           "Totals at SCALE-Sim's DRAM bandwidth (16 words/cycle) are not expected to agree and "
           "are shown for information: SCALE-Sim's buffer policy re-fetches operands far beyond "
           "the compulsory traffic (for example, FFN1 on 16x16 reads 188.7 MB against 2.5 MB "
           "compulsory) and writes partial sums to DRAM after every reduction tile, so its stall "
           "cycles dominate the FFN GEMMs. Our tiling keeps partial sums in the accumulator until "
           "the reduction finishes and picks the tile that minimises time then traffic, so our "
           "DRAM traffic stays within a small factor of the compulsory bytes and these GEMMs stay "
           "compute-bound. For the small attention GEMMs our total at 16 B/cycle exceeds "
           "SCALE-Sim's `total_cycles` because ours includes the first, un-overlapped tile load, "
           "which SCALE-Sim reports separately (`total_cycles_incl_prefetch`, e.g. 10,111 "
           "cycles for gpt_small on 16x16).", "",
           "The last column is the `search` mapping on the same hardware at 16 B/cycle, with the "
           "weight preload hidden behind the previous fold (PEs that double-buffer their "
           "weights, as Gemmini's do) and tiles searched per GEMM: its speedup over the "
           "SCALE-Sim schedule is largest on the 64x8 array, where only a few rows stream "
           "through each 64-row weight fold.", ""]
    atomic_write_text(OUT / "scalesim_compare.md", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
