"""Study 3: ViTCoD-style sparse attention (You et al., HPCA 2023) on DeiT-Tiny.

    python experiments/studies/sparse_attention.py     # -> sparse_attention.json, .png

DeiT-Tiny (12 layers, 3 heads of width 64, embedding 192, 197 tokens) on the `vitcod` preset
(64x8 PEs split 2:1 between a dense and a sparse attention engine): dense attention against
generated masks at 90% and 95% sparsity, and the real DeiT-Tiny masks released with ViTCoD
(../shared/data/vitcod, 95% pruned), averaged over layers and layer by layer. For each case:
attention-product cycles, the dense and sparse engines' busy cycles per layer, the preload
(DRAM transfer) share of the attention time, and the projections' (FFN + QKV/output) share of
the whole model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from common import (
    VITCOD_MASK,
    class_shares,
    fmt_table,
    pyplot,
    save_figure,
    study_main,
    total,
)

from costmodel.hardware import PRESETS
from costmodel.simulate import simulate
from costmodel.sparsity import AttentionSparsity
from costmodel.workload import ACT_MATMUL, PROJECTION, SOFTMAX, Workload
from nas.core.arch import NAMED_MODELS


@dataclass
class Config:
    model: str = "deit-tiny"
    hardware: str = "vitcod"
    sparsities: tuple[float, ...] = (0.90, 0.95)   # generated masks
    patterns: tuple[str, ...] = ("global-local", "random")
    global_share: float = 0.5       # global-local: share of a row's kept scores in global columns
    mask: str = str(VITCOD_MASK)    # real masks; skipped (with a note) when the file is absent


def cases(cfg: Config) -> dict[str, AttentionSparsity | None]:
    out: dict[str, AttentionSparsity | None] = {"dense": None}
    for pattern in cfg.patterns:
        for s in cfg.sparsities:
            out[f"{pattern} {s:.0%}"] = AttentionSparsity(s, pattern, cfg.global_share)
    if Path(cfg.mask).is_file():
        out["real masks (layer mean)"] = AttentionSparsity.from_mask(cfg.mask)
        out["real masks (per layer)"] = AttentionSparsity.from_mask(cfg.mask, per_layer=True)
    return out


def one_case(cfg: Config, sparsity: AttentionSparsity | None) -> dict:
    model = NAMED_MODELS[cfg.model]
    hw, arch = PRESETS[cfg.hardware], model.arch
    rep = simulate(arch, hw, Workload(seq=model.seq), sparsity)
    attn = [c for c in rep.ops if c.op.cls == ACT_MATMUL]
    layers = range(arch.layers)
    per_layer = {
        "dense_engine_cycles": [total((c for c in attn if c.op.layer == i), "dense_engine_cycles")
                                for i in layers],
        "sparse_engine_cycles": [total((c for c in attn if c.op.layer == i), "sparse_engine_cycles")
                                 for i in layers],
        "attention_cycles": [total(c for c in attn if c.op.layer == i) for i in layers]}
    if sparsity is not None:   # what one head's 197 x 197 map splits into, per layer
        splits = [sparsity.split(model.seq, model.seq, i if sparsity.per_layer else None)
                  for i in layers]
        per_layer["dense_columns"] = [g for g, _ in splits]
        per_layer["sparse_nonzeros"] = [nnz for _, nnz in splits]
    dense_eng, sparse_eng = total(attn, "dense_engine_cycles"), total(attn, "sparse_engine_cycles")
    cycles = total(attn)
    return {
        "sparsity": sparsity.to_dict() if sparsity else None,
        "kept_fraction": sparsity.kept_fraction() if sparsity else 1.0,
        "model_cycles": rep.cycles, "model_latency_ms": rep.latency_ms,
        "model_energy_mj": rep.energy_mj,
        "attention_cycles": cycles,
        "softmax_cycles": total(c for c in rep.ops if c.op.kind == SOFTMAX),
        "dense_engine_cycles_per_layer": dense_eng / arch.layers,
        "sparse_engine_cycles_per_layer": sparse_eng / arch.layers,
        # None when attention ran on the whole array (dense case): no engine split
        "dense_engine_share": dense_eng / (dense_eng + sparse_eng) if sparsity else None,
        "preload_share": total(attn, "memory_cycles") / cycles,
        "attention_bound": sorted({c.bound for c in attn}),
        "projection_share": class_shares(rep)[PROJECTION],
        "ffn_share": total(c for c in rep.ops if c.op.name.split(".")[-1] in ("ffn1", "ffn2"))
                     / rep.cycles,
        "per_layer": per_layer,
    }


def run(cfg: Config) -> dict:
    results = {name: one_case(cfg, sp) for name, sp in cases(cfg).items()}
    dense = results["dense"]
    for r in results.values():
        r["attention_speedup"] = dense["attention_cycles"] / r["attention_cycles"]
        r["model_speedup"] = dense["model_cycles"] / r["model_cycles"]
    notes = [] if Path(cfg.mask).is_file() else [f"mask file {cfg.mask} absent: real masks skipped"]
    return {"study": "sparse attention (ViTCoD)", "config": asdict(cfg), "cases": results,
            "notes": notes}


def report(result: dict) -> str:
    rows = [[name, f"{r['kept_fraction']:.3f}", r["attention_cycles"],
             f"{r['attention_speedup']:.2f}x", r["dense_engine_cycles_per_layer"],
             r["sparse_engine_cycles_per_layer"], "n/a" if r["dense_engine_share"] is None
             else f"{100 * r['dense_engine_share']:.0f}%",
             f"{100 * r['preload_share']:.0f}%", f"{100 * r['projection_share']:.1f}%",
             f"{100 * r['ffn_share']:.1f}%", f"{r['model_speedup']:.2f}x"]
            for name, r in result["cases"].items()]
    return fmt_table(["case", "kept", "attention cycles", "vs dense", "dense engine / layer",
                      "sparse engine / layer", "dense-engine share", "preload share",
                      "projection share", "FFN share", "model vs dense"], rows)


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    names = list(result["cases"])
    ax1.barh(names, [result["cases"][n]["attention_cycles"] / 1e3 for n in names])
    ax1.invert_yaxis()
    ax1.set_xlabel("attention-product cycles (thousands, whole model)")
    ax1.set_title("Q.K^T + scores.V on the vitcod preset", fontsize=10)
    for name, style in (("global-local 95%", "--"), ("real masks (per layer)", "-")):
        if name not in result["cases"]:
            continue
        pl = result["cases"][name]["per_layer"]
        xs = range(len(pl["dense_engine_cycles"]))
        ax2.plot(xs, pl["dense_engine_cycles"], style, marker="o", color="tab:blue",
                 label=f"dense engine, {name}")
        ax2.plot(xs, pl["sparse_engine_cycles"], style, marker="s", color="tab:orange",
                 label=f"sparse engine, {name}")
    ax2.set_xlabel("layer")
    ax2.set_ylabel("busy cycles (Q.K^T + scores.V)")
    ax2.set_title("engine balance per layer at 95% sparsity", fontsize=10)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    return study_main("sparse_attention", __doc__, lambda: run(Config()), plot, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
