"""Check the `vitcod` and `vitcod-sim` presets against ViTCoD's own simulator log (seed 000).

    python experiments/validation/vitcod_log/vitcod_log.py     # -> vitcod_log.json, a table

The reference: ViTCoD's simulator (github.com/GATECH-EIC/ViTCoD, Hardware/Simulator/) on
DeiT-Tiny with the 95% masks and 64 x 8 PEs, as the run log in ../shared/seeds/000_*.txt quotes
it: attention (SDDMM + SpMM) 9,492 cycles = max(preloading 9,492, processing 4,728 + computation
4,709), linear layers (Q, K, V, output projections) 681,492 and MLP (FFN1 + FFN2) 1,361,664.
The per-layer head-0 engine cycles below are from the full log of that run in the repository
(masks/deit_tiny_lowrank/vitcod_atten_0.95_wo.txt, run of 2023/06/27 21:16:22).

Ours: DeiT-Tiny on each preset with the same masks (../shared/data/vitcod, each layer's and
head's own statistics), operators classified as the log does: attention = `L{i}.qk` + `L{i}.av`,
linear = `.q_proj`, `.k_proj`, `.v_proj`, `.o_proj`, MLP = `.ffn1` + `.ffn2`. The softmax,
LayerNorms, GELU and residual adds are not in ViTCoD's counts (reported apart).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from costmodel.hardware import PRESETS, HardwareConfig
from costmodel.simulate import SIMULATOR_VERSION, Report, simulate
from costmodel.sparse_engine import decoder_cycles, head_work
from costmodel.sparsity import AttentionSparsity
from costmodel.workload import Workload
from nas.core.arch import NAMED_MODELS
from nas.core.provenance import provenance, write_result

ROOT = Path(__file__).resolve().parents[3]
MASK = ROOT.parent / "shared" / "data" / "vitcod" / "deit_tiny_attention_masks_0.95.npy"
OUT = Path(__file__).resolve().parent
MODEL = "deit-tiny"
TARGET_PCT = 25.0   # issue 11: attention within 25% with vitcod-sim, linear and MLP with vitcod

# seed 000 ("最终统计结果" and "FFN运行结果")
REFERENCE = {"attention_cycles": 9492, "linear_cycles": 681492, "mlp_cycles": 1361664,
             "attention_preloading_cycles": 9492, "attention_processing_cycles": 4728,
             "attention_computation_cycles": 4709}
# ViTCoD's log, head 0 of each layer: global tokens and the engines' PE cycles
LOG_HEAD0 = {
    "global_tokens": [1, 1, 70, 1, 1, 20, 17, 1, 1, 9, 10, 31],
    "sddmm_dense": [120, 30, 840, 54, 87, 300, 255, 87, 33, 135, 150, 372],
    "sddmm_sparse": [117, 30, 744, 54, 75, 270, 213, 84, 33, 117, 138, 303],
    "spmm_dense": [119, 29, 767, 54, 85, 269, 224, 85, 32, 121, 145, 316],
    "spmm_sparse": [115, 28, 745, 54, 74, 269, 211, 82, 31, 116, 136, 301],
    "decoder": [394] * 12,          # "Dense SpMM decoder" + "Sparse SpMM decoder" per layer
}
CLASSES = {"attention": ("qk", "av"),
           "linear": ("q_proj", "k_proj", "v_proj", "o_proj"),
           "mlp": ("ffn1", "ffn2")}


def _op_class(name: str) -> str:
    """'attention', 'linear', 'mlp' or 'other' for an op name such as 'L3.q_proj'."""
    short = name.split(".")[-1]
    return next((cls for cls, names in CLASSES.items() if short in names), "other")


def class_cycles(report: Report) -> dict[str, float]:
    """Cycles of ViTCoD's three classes (and of everything else, which ViTCoD does not count)."""
    out = {f"{cls}_cycles": 0.0 for cls in (*CLASSES, "other")}
    for c in report.ops:
        out[f"{_op_class(c.op.name)}_cycles"] += c.cycles
    return out


def run_deit(hw: HardwareConfig, sparsity: AttentionSparsity) -> Report:
    model = NAMED_MODELS[MODEL]
    return simulate(model.arch, hw, Workload(seq=model.seq), sparsity)


def head0_per_layer(hw: HardwareConfig, sparsity: AttentionSparsity) -> dict[str, list[int]]:
    """Our engine cycles of head 0 in each layer (what ViTCoD's log prints)."""
    model = NAMED_MODELS[MODEL]
    arch, n = model.arch, model.seq
    rows: dict[str, list[int]] = {key: [] for key in LOG_HEAD0}
    for layer, heads in enumerate(arch.heads):
        glob, nnz = sparsity.head_splits(n, n, layer, heads)[0]
        work = head_work(glob, nnz, n, arch.head_dim, heads, hw)
        for key, value in (("global_tokens", glob), ("sddmm_dense", work.sddmm_dense),
                           ("sddmm_sparse", work.sddmm_sparse), ("spmm_dense", work.spmm_dense),
                           ("spmm_sparse", work.spmm_sparse),
                           ("decoder", decoder_cycles(2 * n, heads, arch.head_dim, hw))):
            rows[key].append(value)
    return rows


def _error_pct(ours: float, reference: float) -> float:
    return 100.0 * (ours - reference) / reference


def compare(mask: Path = MASK) -> dict:
    """{"vitcod": {attention_cycles, linear_cycles, mlp_cycles, ...}, "vitcod_sim": {...},
    "reference": {...}} plus errors, the per-layer check and the vitcod / vitcod-sim gap."""
    sparsity = AttentionSparsity.from_mask(mask, per_layer=True)
    sim = PRESETS["vitcod-sim"]
    ours = {key: class_cycles(run_deit(PRESETS[name], sparsity))
            for key, name in (("vitcod", "vitcod"), ("vitcod_sim", "vitcod-sim"))}
    errors = {key: {cls: _error_pct(r[cls], REFERENCE[cls])
                    for cls in ("attention_cycles", "linear_cycles", "mlp_cycles")}
              for key, r in ours.items()}
    # the attention gap, one field of vitcod-sim at a time turned into vitcod's
    slowest = replace(sim, name="vitcod-sim+slowest-head", head_timing="slowest")
    gap = {"vitcod_sim": ours["vitcod_sim"]["attention_cycles"],
           "vitcod_sim_slowest_head": class_cycles(run_deit(slowest, sparsity))["attention_cycles"],
           "vitcod (also 512 lanes, not 4096)": ours["vitcod"]["attention_cycles"]}
    per_layer = head0_per_layer(sim, sparsity)
    return {
        "model": MODEL, "mask": str(mask),
        **ours, "reference": REFERENCE, "error_pct": errors,
        "targets_met": {"vitcod_sim_attention": abs(errors["vitcod_sim"]["attention_cycles"])
                        <= TARGET_PCT,
                        "vitcod_linear": abs(errors["vitcod"]["linear_cycles"]) <= TARGET_PCT,
                        "vitcod_mlp": abs(errors["vitcod"]["mlp_cycles"]) <= TARGET_PCT},
        "head0_per_layer": {"ours_vitcod_sim": per_layer, "vitcod_log": LOG_HEAD0,
                            "equal": per_layer == LOG_HEAD0},
        "attention_gap": gap,
        "why": {
            "vitcod_sim_attention": (
                "per layer, head 0's engine and decoder cycles equal the log's exactly; the "
                "total differs because ViTCoD overlaps the whole model's loads with the whole "
                "model's compute (max of the 12-layer totals: 9,492 vs 9,437), while we overlap "
                "inside each layer's fused kernel (a layer whose compute exceeds its loads, "
                "like layer 2's 70 global tokens, pays its excess), and because we count bytes / "
                "bandwidth plus the sparse pattern and the attention output where ViTCoD rounds "
                "each token's load up to a cycle and loads neither"),
            "linear_mlp": (
                "both presets run them on 64 MAC lines of 8 MACs: ceil(M*N/64) * ceil(K/8) "
                "cycles, MACs/512 for DeiT-Tiny's shapes, as ViT_FFN.py counts; ours adds each "
                "operator's exposed first load and last store (double buffering)"),
            "vitcod_vs_vitcod_sim": (
                "ViTCoD's simulator gives each head 64 x 64 / 3 = 1,365 lanes for SDDMM and "
                "SpMM where the 64 x 8 array has 512 / 3 = 171 (8x the compute), and times "
                "head 0 only; vitcod times the slowest head on the real lanes"),
        },
    }


def report(result: dict) -> str:
    rows = ["| class | ViTCoD log | vitcod | error | vitcod-sim | error |",
            "|---|---|---|---|---|---|"]
    for cls in ("attention_cycles", "linear_cycles", "mlp_cycles"):
        rows.append(f"| {cls.removesuffix('_cycles')} | {result['reference'][cls]:,} | "
                    f"{result['vitcod'][cls]:,.0f} | {result['error_pct']['vitcod'][cls]:+.1f}% | "
                    f"{result['vitcod_sim'][cls]:,.0f} | "
                    f"{result['error_pct']['vitcod_sim'][cls]:+.1f}% |")
    rows.append(f"\nhead 0 per layer equals the log: {result['head0_per_layer']['equal']}")
    rows.append("attention gap: " + ", ".join(f"{k} {v:,.0f}"
                                              for k, v in result["attention_gap"].items()))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    prov = provenance(simulator_version=SIMULATOR_VERSION)
    if not MASK.is_file():
        print(f"ViTCoD masks not found at {MASK}", file=sys.stderr)
        return 1
    result = compare()
    write_result(OUT / "vitcod_log.json", result, prov)
    print(report(result))
    print(f"wrote {OUT / 'vitcod_log.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
