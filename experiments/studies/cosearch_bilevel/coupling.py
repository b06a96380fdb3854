"""How much each hardware dimension couples with the architecture (issue 23, part 2).

Co-design can only beat sequential design (the architecture searched on a fixed accelerator,
then the best hardware for it) where the best architecture depends on the hardware. This probe
measures that for one hardware dimension at a time, as issue 23's probe did:

- architectures: `--archs` random architectures of `survey-kinds` (attention kinds per layer:
  softmax, taylor, sparse10, sparse25), plus its largest and smallest;
- hardware: a small base space around gemmini-transformer (16 or 32 PEs a side, 64 or 256 KiB
  scratchpad and accumulator, 16 or 32 bytes per cycle of DRAM, on-chip SFUs, one SFU lane per
  column), the base space with one dimension added (`DIMENSIONS`), and (for the prefill)
  `survey-hw` whole; every point within the area budget (that of edge-32x32, the largest
  preset: 3.70 mm2), each point's cost from a cost matrix (lut.matrix; cached in
  runs/cosearch-bilevel/coupling, and survey-hw's with the benchmark's);
- workloads: a 1024-token prefill and a 512-token prompt with 64 generated tokens (decoder,
  the char-level supernet's 65-token vocabulary as the LM head);
- quality: the non-embedding parameter count (issue 23's stand-in: more is better), and, with
  `--ckpt`, the perplexity of a supernet of the space (the first `--ppl-archs` architectures);
  quality levels are the best 50%, 20%, 5% and 1% of the sampled architectures.

At each level: `joint` is the lowest EDP of any (architecture at that level, point) pair;
`sequential_exhaustive` is the lowest EDP of the architecture with the lowest EDP on
gemmini-transformer, on its best point; `coupling` = sequential_exhaustive / joint (1: no
coupling, the architecture designed on gemmini-transformer is the best one everywhere);
`vs_presets` = the lowest EDP of any architecture at that level on any preset within the budget
(vitcod and vitality included) / joint; `hardware_only` = the sequential architecture on
gemmini-transformer / on its best point.

    python experiments/studies/cosearch_bilevel/coupling.py [--archs 3000] [--workers 1]
        [--ckpt runs/survey-kinds-supernet --ppl-archs 1000 --max-tokens 2048]

Writes coupling.json next to itself.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from costmodel.area import area
from costmodel.hardware import PRESETS
from costmodel.hwspace import HardwareSpace
from costmodel.workload import Workload
from lut.matrix import CostMatrix
from nas.core.distributed import Engine
from nas.core.arch import SearchSpace
from nas.core.provenance import write_result
from bilevel_common import HERE, ROOT, RUNS, StoredPerplexity, run_provenance

BUDGET_PRESET = "edge-32x32"             # the area budget: the largest preset's area
REFERENCE = "gemmini-transformer"        # sequential design's accelerator
VOCAB = 65                               # Tiny Shakespeare's characters (the supernet's)
SURVEY_WORKLOAD = Workload(seq=1024, mode="decoder", vocab=VOCAB)    # the benchmark's
WORKLOADS = {"prefill1024": SURVEY_WORKLOAD,
             "prompt512_gen64": Workload(seq=512, mode="decoder", gen=64, vocab=VOCAB)}
BASE = {"base": "gemmini-transformer", "rows": [16, 32], "cols": [16, 32],
        "scratchpad_kib": [64, 256], "accumulator_kib": [64, 256],
        "dram_bytes_per_cycle": [16, 32], "sfu": "onchip", "tie": {"sfu_lanes": "cols"}}
# each added to BASE (replacing BASE's genes of the same name)
DIMENSIONS = {
    "none": {},
    "sparse_engine": {"sparse_engine": [False, True], "sparse_pe_fraction": [0.25, 0.5],
                      "sparse_allocation": ["fixed", "dynamic"]},
    "attention_fusion": {"sparse_engine": [False, True], "attention_fusion": [False, True]},
    "qk_compression": {"sparse_engine": [False, True], "qk_compression": [1.0, 0.5]},
    "vitality_units": {"diag_pes": [0, 32], "preproc_lanes": [0, 16],
                       "taylor_pipeline": [False, True]},
    "dataflow_mapping": {"dataflow": ["ws", "os", "both"], "mapping": ["scalesim", "search"]},
    "pe_array": {"pe_array": ["systolic", "lines"]},
    "buffer_split": {"scratchpad_kib": [32, 64, 128, 256, 512],
                     "accumulator_kib": [32, 64, 128, 256, 512]},
    "sfu_lanes": {"sfu": ["onchip", "host"], "sfu_lanes": [4, 16, 64], "tie": {}},
    "dram_bandwidth": {"dram_bytes_per_cycle": [8, 16, 32, 64, 128]},
}
LEVELS = (0.5, 0.2, 0.05, 0.01)          # the best shares of the sampled architectures


def space_of(name: str, extra: dict) -> HardwareSpace:
    return HardwareSpace.from_dict({**BASE, **extra}, name=f"coupling-{name}")


def within_budget(hw_space: HardwareSpace, budget: float) -> list:
    return [hw for hw in hw_space.points() if area(hw).total_mm2 <= budget]


def per_arch(matrix: CostMatrix, archs: list, ref: int | None = None) -> dict[str, np.ndarray]:
    """Per architecture: its lowest EDP on the matrix's points, that point's index, and its
    EDP on point `ref` (streamed: no architectures x points array is kept)."""
    best, where, on_ref = (np.empty(len(archs)) for _ in range(3))
    for i, a in enumerate(archs):
        edp = matrix.arch_cost(a).edp
        where[i] = j = int(np.argmin(edp))
        best[i] = edp[j]
        on_ref[i] = edp[ref] if ref is not None else np.nan
    return {"best": best, "where": where.astype(int), "on_ref": on_ref}


def level_masks(quality: np.ndarray, higher_better: bool) -> dict[str, np.ndarray]:
    """Per level, the architectures among the best `share` by quality (NaN: not measured)."""
    known = ~np.isnan(quality)
    out = {}
    for share in LEVELS:
        vals = quality[known]
        cut = np.quantile(vals, 1 - share) if higher_better else np.quantile(vals, share)
        out[f"best {share:.0%}"] = known & ((quality >= cut) if higher_better
                                            else (quality <= cut))
    return out


def preset_levels(preset: dict[str, np.ndarray], masks: dict) -> dict:
    """Each preset's lowest EDP at each quality level."""
    return {level: {name: float(edp[np.flatnonzero(mask)].min()) for name, edp in preset.items()}
            for level, mask in masks.items()}


def measure(costs: dict[str, np.ndarray], preset_best: np.ndarray, masks: dict, archs: list,
            points: list) -> dict:
    """The coupling figures at each quality level (see the module docstring)."""
    out = {}
    for name, mask in masks.items():
        idx = np.flatnonzero(mask)
        a_j = idx[np.argmin(costs["best"][idx])]
        a_seq = idx[np.argmin(costs["on_ref"][idx])]
        joint, seq_exh = costs["best"][a_j], costs["best"][a_seq]
        out[name] = {"architectures": int(len(idx)), "joint": float(joint),
                     "sequential_exhaustive": float(seq_exh),
                     "coupling": float(seq_exh / joint),
                     "hardware_only": float(costs["on_ref"][a_seq] / seq_exh),
                     "vs_presets": float(preset_best[idx].min() / joint),
                     "joint_arch": archs[a_j].key, "sequential_arch": archs[a_seq].key,
                     "joint_hw": points[costs["where"][a_j]].description.split(": ", 1)[-1]}
    return out


def perplexities(ckpt: str, archs: list, max_tokens: int) -> np.ndarray:
    """The supernet's perplexities, kept with the benchmark's (bilevel_common.StoredPerplexity)."""
    stored = StoredPerplexity(ROOT / ckpt, max_tokens, RUNS / "cosearch-bilevel" / "survey-hw")
    values: list[float] = []
    for i in range(0, len(archs), 50):
        values += stored.memo(archs[i:i + 50])
        stored.save()
    return np.array(values)


def dimension_rows(space: SearchSpace, archs: list, qualities: dict, workload: Workload,
                   preset_best: np.ndarray, budget: float, workers: int,
                   whole: bool = False) -> dict:
    """The coupling figures of the base space with each dimension added, and (`whole`) of
    survey-hw, whose matrix the benchmark's survey setting builds (and this reads)."""
    folder = RUNS / "cosearch-bilevel"
    spaces = {dim: space_of(dim, extra) for dim, extra in DIMENSIONS.items()}
    if whole:
        spaces["survey-hw"] = HardwareSpace.load("survey-hw")
    rows = {}
    for dim, hw_space in spaces.items():
        points = within_budget(hw_space, budget)
        matrix = CostMatrix.build(space, points, workload, engine=Engine(workers=workers),
                                  progress=True,
                                  folder=folder / ("survey-hw" if dim == "survey-hw"
                                                   else "coupling"))
        ref = [hw.hash() for hw in points].index(PRESETS[REFERENCE].hash())
        costs = per_arch(matrix, archs, ref)
        rows[dim] = {"points": len(points), "genes": hw_space.to_dict()}
        for qname, (q, higher) in qualities.items():
            rows[dim][qname] = measure(costs, preset_best, level_masks(q, higher), archs,
                                       points)
        print(dim, len(points), {q: [round(v["coupling"], 3) for v in rows[dim][q].values()]
                                 for q in qualities}, flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="processes building the matrices")
    ap.add_argument("--ckpt", help="a survey-kinds supernet: also measure with its perplexity")
    ap.add_argument("--ppl-archs", type=int, default=1000)
    ap.add_argument("--max-tokens", type=int, default=1024)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--out", type=Path, default=HERE / "coupling.json")
    args = ap.parse_args()
    prov = run_provenance()
    t0 = time.perf_counter()
    space = SearchSpace.load("survey-kinds")
    rng = random.Random(args.seed)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(args.archs)]
    archs = list({a.key: a for a in archs}.values())
    params = np.array([a.params() for a in archs], dtype=float)
    qualities = {"params": (params, True)}
    if args.ckpt:
        ppl = np.full(len(archs), np.nan)
        ppl[:args.ppl_archs] = perplexities(args.ckpt, archs[:args.ppl_archs],
                                            args.max_tokens)
        qualities["perplexity"] = (ppl, False)
    budget = area(PRESETS[BUDGET_PRESET]).total_mm2
    presets = [hw for hw in PRESETS.values() if area(hw).total_mm2 <= budget]
    doc = {"archs": len(archs), "area_budget_mm2": budget, "reference": REFERENCE,
           "presets": [hw.name for hw in presets], "base": BASE, "workloads": {}}
    for wname in args.workloads:
        workload = WORKLOADS[wname]
        preset_m = CostMatrix.build(space, presets, workload,
                                    folder=RUNS / "cosearch-bilevel" / "coupling")
        preset = {hw.name: np.array([preset_m.arch_cost(a).edp[j] for a in archs])
                  for j, hw in enumerate(presets)}
        rows = dimension_rows(space, archs, qualities, workload,
                              np.min(list(preset.values()), axis=0), budget, args.workers,
                              whole=workload == SURVEY_WORKLOAD)
        doc["workloads"][wname] = {
            "workload": vars(workload), "dimensions": rows,
            "presets": {q: preset_levels(preset, level_masks(v, higher))
                        for q, (v, higher) in qualities.items()}}
    doc["seconds"] = time.perf_counter() - t0
    write_result(args.out, doc, prov)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
