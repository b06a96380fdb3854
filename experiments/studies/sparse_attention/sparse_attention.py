"""Study 3: ViTCoD-style sparse attention (You et al., HPCA 2023) on DeiT-Tiny.

    python experiments/studies/sparse_attention/sparse_attention.py  # -> its .json, .png

DeiT-Tiny (12 layers, 3 heads of width 64, embedding 192, 197 tokens) on two presets: `vitcod`,
ViTCoD's published hardware (64 MAC lines x 8 MACs, each head's lines split between a dense and
a sparse engine in proportion to their work, fused attention, Q/K auto-encoder), and
`vitcod-sim`, the same as ViTCoD's simulator counts it (64 x 64 attention lanes, head 0's time;
costmodel/presets/*.yaml). Cases: dense attention against generated masks at 90% and 95%
sparsity, and the real DeiT-Tiny masks released with ViTCoD (../shared/data/vitcod, 95% pruned),
averaged over layers and heads, and layer by layer and head by head. For each case:
attention-product cycles, linear (Q, K, V, output projections) and MLP cycles as ViTCoD's log
classifies them, the dense and sparse engines' busy cycles per layer, the preload (DRAM
transfer) share of the attention time, and the projections' share of the whole model. The check
against ViTCoD's own log is experiments/validation/vitcod_log/vitcod_log.py.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))        # experiments/studies: common.py

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
    hardware: tuple[str, ...] = ("vitcod", "vitcod-sim")
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


def _named(rep, names: tuple[str, ...]) -> float:
    """Cycles of the ops called L{i}.<name> for a name in `names`."""
    return total(c for c in rep.ops if c.op.name.split(".")[-1] in names)


def one_case(cfg: Config, hardware: str, sparsity: AttentionSparsity | None) -> dict:
    model = NAMED_MODELS[cfg.model]
    hw, arch = PRESETS[hardware], model.arch
    rep = simulate(arch, hw, Workload(seq=model.seq), sparsity)
    attn = [c for c in rep.ops if c.op.cls == ACT_MATMUL]
    layers = range(arch.layers)
    per_layer = {
        "dense_engine_cycles": [total((c for c in attn if c.op.layer == i), "dense_engine_cycles")
                                for i in layers],
        "sparse_engine_cycles": [total((c for c in attn if c.op.layer == i), "sparse_engine_cycles")
                                 for i in layers],
        "attention_cycles": [total(c for c in attn if c.op.layer == i) for i in layers]}
    if sparsity is not None:   # what each head's 197 x 197 map splits into, per layer
        splits = [sparsity.head_splits(model.seq, model.seq, i, h)
                  for i, h in zip(layers, arch.heads)]
        per_layer["dense_columns"] = [[g for g, _ in heads] for heads in splits]
        per_layer["sparse_nonzeros"] = [[nnz for _, nnz in heads] for heads in splits]
    dense_eng, sparse_eng = total(attn, "dense_engine_cycles"), total(attn, "sparse_engine_cycles")
    cycles = total(attn)
    return {
        "sparsity": sparsity.to_dict() if sparsity else None,
        "kept_fraction": sparsity.kept_fraction() if sparsity else 1.0,
        "model_cycles": rep.cycles, "model_latency_ms": rep.latency_ms,
        "model_energy_mj": rep.energy_mj,
        "attention_cycles": cycles,
        "linear_cycles": _named(rep, ("q_proj", "k_proj", "v_proj", "o_proj")),
        "mlp_cycles": _named(rep, ("ffn1", "ffn2")),
        "softmax_cycles": total(c for c in rep.ops if c.op.kind == SOFTMAX),
        "dense_engine_cycles_per_layer": dense_eng / arch.layers,
        "sparse_engine_cycles_per_layer": sparse_eng / arch.layers,
        # None when attention ran on the whole array (dense case): no engine split
        "dense_engine_share": dense_eng / (dense_eng + sparse_eng) if sparsity else None,
        "preload_share": total(attn, "memory_cycles") / cycles,
        "attention_bound": sorted({c.bound for c in attn}),
        "projection_share": class_shares(rep)[PROJECTION],
        "ffn_share": _named(rep, ("ffn1", "ffn2")) / rep.cycles,
        "per_layer": per_layer,
    }


def run_hardware(cfg: Config, hardware: str) -> dict:
    results = {name: one_case(cfg, hardware, sp) for name, sp in cases(cfg).items()}
    dense = results["dense"]
    for r in results.values():
        r["attention_speedup"] = dense["attention_cycles"] / r["attention_cycles"]
        r["model_speedup"] = dense["model_cycles"] / r["model_cycles"]
    return {"description": PRESETS[hardware].description, "cases": results}


def run(cfg: Config) -> dict:
    notes = [] if Path(cfg.mask).is_file() else [f"mask file {cfg.mask} absent: real masks skipped"]
    return {"study": "sparse attention (ViTCoD)", "config": asdict(cfg),
            "hardware": {hw: run_hardware(cfg, hw) for hw in cfg.hardware}, "notes": notes}


def report(result: dict) -> str:
    tables = []
    for hw, res in result["hardware"].items():
        rows = [[name, f"{r['kept_fraction']:.3f}", r["attention_cycles"],
                 f"{r['attention_speedup']:.2f}x", r["linear_cycles"], r["mlp_cycles"],
                 r["dense_engine_cycles_per_layer"], r["sparse_engine_cycles_per_layer"],
                 "n/a" if r["dense_engine_share"] is None
                 else f"{100 * r['dense_engine_share']:.0f}%",
                 f"{100 * r['preload_share']:.0f}%", f"{100 * r['projection_share']:.1f}%",
                 f"{r['model_speedup']:.2f}x"]
                for name, r in res["cases"].items()]
        tables.append(f"{hw}:\n" + fmt_table(
            ["case", "kept", "attention cycles", "vs dense", "linear cycles", "MLP cycles",
             "dense engine / layer", "sparse engine / layer", "dense-engine share",
             "preload share", "projection share", "model vs dense"], rows))
    return "\n\n".join(tables)


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    hardware = list(result["hardware"])
    names = list(result["hardware"][hardware[0]]["cases"])
    height = 0.8 / len(hardware)
    for i, hw in enumerate(hardware):
        ax1.barh([j + i * height for j in range(len(names))],
                 [result["hardware"][hw]["cases"][n]["attention_cycles"] / 1e3 for n in names],
                 height=height, label=hw)
    ax1.set_yticks([j + height * (len(hardware) - 1) / 2 for j in range(len(names))], names)
    ax1.invert_yaxis()
    ax1.set_xlabel("attention-product cycles (thousands, whole model)")
    ax1.set_title("Q.K^T + scores.V", fontsize=10)
    ax1.legend(fontsize=7)
    cases_hw0 = result["hardware"][hardware[0]]["cases"]
    for name, style in (("global-local 95%", "--"), ("real masks (per layer)", "-")):
        if name not in cases_hw0:
            continue
        pl = cases_hw0[name]["per_layer"]
        xs = range(len(pl["dense_engine_cycles"]))
        ax2.plot(xs, pl["dense_engine_cycles"], style, marker="o", color="tab:blue",
                 label=f"dense engine, {name}")
        ax2.plot(xs, pl["sparse_engine_cycles"], style, marker="s", color="tab:orange",
                 label=f"sparse engine, {name}")
    ax2.set_xlabel("layer")
    ax2.set_ylabel("busy cycles (Q.K^T + scores.V)")
    ax2.set_title(f"engine balance per layer at 95% sparsity ({hardware[0]})", fontsize=10)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    return study_main("sparse_attention", __doc__, lambda: run(Config()), plot, report, argv,
                      folder=HERE)


if __name__ == "__main__":
    raise SystemExit(main())
