"""The simulator against its three references, in every mapping mode (issue 11).

1. SCALE-Sim 3.0.0 (../shared/oracles): compute cycles of 18 GEMMs (scalesim mode; the other
   modes are different schedules by design and are shown for information).
2. The survey's Sec. 3.4.3 (seed 002): on Gemmini, a 64 KiB scratchpad / 256 KiB accumulator
   instead of 256 / 64 cuts BERT-Base's total matmul latency by 36% (measured on FireSim).
3. ViTCoD's simulator log (seed 000): DeiT-Tiny with the 95% masks on 64x8 PEs: attention
   9,492 cycles, linear layers 681,492, MLP 1,361,664 (whole model).

    python experiments/validation/fidelity/fidelity.py

Writes experiments/validation/fidelity/fidelity.json and fidelity.md (the README table).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPERIMENTS = HERE.parents[1]
sys.path[:0] = [str(EXPERIMENTS / "validation" / "scalesim_compare"),
                str(EXPERIMENTS / "validation" / "vitcod_log"),
                str(EXPERIMENTS / "studies" / "accelerator"), str(EXPERIMENTS / "studies")]

import accelerator                      # noqa: E402  study 2
import scalesim_compare                 # noqa: E402
import vitcod_log                       # noqa: E402

from costmodel.mapping import MAPPING_MODES  # noqa: E402
from costmodel.simulate import SIMULATOR_VERSION  # noqa: E402
from nas.core.atomic import atomic_write_text  # noqa: E402
from nas.core.provenance import provenance, write_result  # noqa: E402

SURVEY_REBALANCE_PCT = -36.0            # Kim et al. 2023, Sec. 3.4.3 (seed 002)


def scalesim_errors() -> dict:
    runs = [json.loads(line) for line in scalesim_compare.ORACLE.read_text().splitlines()
            if line.strip()]
    rows = [scalesim_compare.compare(r) for r in runs]
    return {"runs": len(rows), "max_err_pct": max(abs(r["error_pct"]) for r in rows),
            "max_err_cycles": max(abs(r["ours_compute_cycles"] - r["scalesim_compute_cycles"])
                                  for r in rows),
            "search_speedup_min": min(r["search_speedup"] for r in rows),
            "search_speedup_max": max(r["search_speedup"] for r in rows)}


def rebalance_by_mode() -> dict[str, float]:
    cfg = accelerator.Config(mappings=MAPPING_MODES)
    out = {}
    for mode in MAPPING_MODES:
        out[mode] = accelerator.survey_change(cfg, accelerator.buffer_study(cfg, mode))
    return out


def table(doc: dict) -> str:
    v, ref = doc["vitcod_log"], doc["vitcod_log"]["reference"]
    s = doc["scalesim"]
    rows = [
        ["SCALE-Sim 3.0.0, 18 GEMMs: compute cycles", "scalesim", "exact formula",
         f"max {s['max_err_pct']:.3f}% ({s['max_err_cycles']:.0f} cycle)", "1.000",
         "same fold formula; SCALE-Sim ends one cycle earlier"],
        ["", "search", "", f"{s['search_speedup_min']:.2f}-{s['search_speedup_max']:.2f}x "
         "faster", "-", "hides the weight preload (Gemmini's PEs double-buffer weights) and "
         "searches tiles per GEMM"],
    ]
    for mode, change in doc["survey_3_4_matmul_latency_change_pct"].items():
        why = {"scalesim": "output tile may shrink to one array width and compute depends only "
                           "on the row tile: the accumulator never reaches latency",
               "gemmini": "Gemmini's tiler: 80x80 -> 176x176 output tiles, fewer A/B/bias "
                          "re-reads and fold overheads; DMA serialised with compute (with "
                          "overlap: about -21%)",
               "search": "the search already finds a compute-bound mapping for both buffer "
                         "splits at 16 B/cycle: the split does not matter"}[mode]
        rows.append(["Survey Sec. 3.4.3: BERT-Base matmul latency, 64/256 vs 256/64 KiB"
                     if mode == "scalesim" else "", mode, f"{SURVEY_REBALANCE_PCT:+.0f}%",
                     f"{change:+.1f}%", f"{change / SURVEY_REBALANCE_PCT:.2f}", why])
    for cls in ("attention", "linear", "mlp"):
        for preset in ("vitcod", "vitcod_sim"):
            ours = v[preset][f"{cls}_cycles"]
            why = {("attention", "vitcod"): "512 PEs shared by 3 heads (171 lanes each), "
                                            "while ViTCoD's simulator gives each head 1,365",
                   ("attention", "vitcod_sim"): "head 0 per layer equals the log; the log "
                                                "overlaps the whole model's loads with compute, "
                                                "we overlap within a layer",
                   }.get((cls, preset), "MACs/512 plus each op's first load and last store")
            rows.append([f"ViTCoD log, DeiT-Tiny 95%: {cls} cycles" if preset == "vitcod"
                         else "", preset.replace("_", "-"), f"{ref[f'{cls}_cycles']:,.0f}",
                         f"{ours:,.0f}", f"{ours / ref[f'{cls}_cycles']:.3f}", why])
    head = ["reference", "mode / preset", "published", "ours", "ratio", "why they differ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    prov = provenance(simulator_version=SIMULATOR_VERSION)
    v = vitcod_log.compare()
    doc = {
        "scalesim_max_err_pct": None,
        "survey_3_4_matmul_latency_change_pct": rebalance_by_mode(),
        "vitcod": {k: v["vitcod"][k] for k in ("attention_cycles", "linear_cycles",
                                                "mlp_cycles")},
        "vitcod_sim": {k: v["vitcod_sim"][k] for k in ("attention_cycles", "linear_cycles",
                                                        "mlp_cycles")},
        "references": {"scalesim": "SCALE-Sim 3.0.0 runs, ../shared/oracles "
                                   "(compute cycles, 18 GEMMs)",
                       "survey_3_4_matmul_latency_change_pct": SURVEY_REBALANCE_PCT,
                       "vitcod_log": v["reference"]},
        "scalesim": scalesim_errors(),
        "vitcod_log": v,
        "targets": {"scalesim_max_err_pct": "<= 0.1",
                    "survey_3_4 (gemmini mode)": "<= -25",
                    "vitcod_sim attention": "within 25%",
                    "vitcod linear and mlp": "within 25%"},
    }
    doc["scalesim_max_err_pct"] = doc["scalesim"]["max_err_pct"]
    err = lambda ours, ref: abs(ours / ref - 1)  # noqa: E731
    ref = v["reference"]
    doc["met"] = {
        "scalesim": doc["scalesim_max_err_pct"] <= 0.1,
        "survey_3_4_gemmini": doc["survey_3_4_matmul_latency_change_pct"]["gemmini"] <= -25,
        "vitcod_sim_attention": err(doc["vitcod_sim"]["attention_cycles"],
                                    ref["attention_cycles"]) <= 0.25,
        "vitcod_linear": err(doc["vitcod"]["linear_cycles"], ref["linear_cycles"]) <= 0.25,
        "vitcod_mlp": err(doc["vitcod"]["mlp_cycles"], ref["mlp_cycles"]) <= 0.25,
    }
    write_result(HERE / "fidelity.json", doc, prov)
    md = table(doc)
    atomic_write_text(HERE / "fidelity.md", md)
    print(md)
    print("targets met:", doc["met"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
