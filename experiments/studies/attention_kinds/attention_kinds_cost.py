"""Study 4a: the cost of each attention kind on the accelerator built for it (issue 12).

    python experiments/studies/attention_kinds/attention_kinds_cost.py  # -> its .json, .png

DeiT-Tiny as an encoder (12 layers, d 192, 3 heads of 64, no LM head), simulated by
`costmodel.simulate`:
- at 197 tokens (DeiT-Tiny's 196 patches + the class token): dense softmax attention on
  `gemmini-transformer`, sparse attention on `vitcod` and ViTALiTy's linear Taylor attention on
  `vitality`; every kind on every one of the three presets for context. The sparse kind is
  sparse10 (10% of the scores kept): ViTCoD prunes DeiT's attention maps by 90% (its released
  DeiT-Tiny masks and the seed-000 run use 90-95%), and sparse10 is the kind's pattern
  (`nas.core.attention.sparse_pattern`: a local window + global tokens) at that keep ratio;
- over 128..4096 tokens (powers of two, and 197): latency, energy and EDP, and the attention's
  own latency (Q.K^T, softmax, scores.V, or Taylor's operators), per kind and preset; the length
  where Taylor on `vitality` overtakes dense softmax on `gemmini-transformer` and sparse10 on
  `vitcod` (bisected to the token), and Taylor's 4096 / 1024 attention-cycle ratio.

ViTALiTy's published figures (Dass et al., HPCA 2023; the abstract, arXiv 2211.05109): "3x
faster and 3x energy-efficient under comparable accuracy, with respect to the state-of-the-art
solution". Seed 003 (its project page) describes the accelerator but gives neither sizes nor
these figures; of the paper only the abstract could be read here, which names neither that
baseline nor its hardware budget nor per-model figures; `costmodel/presets/vitality.yaml` says
which numbers are assumed.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))        # experiments/studies: common.py

from common import fmt_table, pyplot, save_figure, study_main

from costmodel.hardware import PRESETS
from costmodel.simulate import Report, simulate
from costmodel.workload import CENTRE, COLSUM, CUMSUM, NORM, RECIP, SCALE, Workload
from nas.core.arch import NAMED_MODELS

PUBLISHED = {"source": "Dass et al., ViTALiTy, HPCA 2023, abstract (arXiv 2211.05109): "
                       "'3x faster and 3x energy-efficient under comparable accuracy, with "
                       "respect to the state-of-the-art solution' (end to end; the abstract "
                       "names neither the baseline, its hardware budget nor the model; the "
                       "paper's body, with its setup and per-model figures, was not readable "
                       "here)",
             "speedup": 3.0, "energy_efficiency": 3.0}
VECTOR_KINDS = (COLSUM, CUMSUM, CENTRE, NORM, RECIP, SCALE)


@dataclass(frozen=True)
class Config:
    model: str = "deit-tiny"
    seq: int = 197
    presets: tuple[str, ...] = ("gemmini-transformer", "vitcod", "vitality")
    kinds: tuple[str, ...] = ("softmax", "sparse10", "taylor")
    # each kind on the accelerator built for it
    pairs: tuple[tuple[str, str], ...] = (("softmax", "gemmini-transformer"),
                                          ("sparse10", "vitcod"), ("taylor", "vitality"))
    sweep: tuple[int, ...] = (128, 197, 256, 512, 1024, 2048, 4096)


def is_attention(c) -> bool:
    """The attention itself: the ops a kind owns (softmax's Q.K^T, softmax, scores.V)."""
    return bool(c.op.attention or c.op.product or c.op.kind == "softmax")


@lru_cache(maxsize=None)
def point(cfg: Config, kind: str, hw: str, seq: int) -> dict:
    arch = NAMED_MODELS[cfg.model].arch.with_attention(kind)
    rep: Report = simulate(arch, PRESETS[hw], Workload(seq=seq))
    att = [c for c in rep.ops if is_attention(c)]
    clock = PRESETS[hw].clock_hz
    out = {"kind": kind, "hw": hw, "seq": seq, "cycles": rep.cycles,
           "latency_ms": rep.latency_ms, "energy_mj": rep.energy_mj, "edp_js": rep.edp,
           "attention_cycles": sum(c.cycles for c in att),
           "attention_ms": sum(c.cycles for c in att) / clock * 1e3,
           "attention_energy_mj": sum(c.energy_pj for c in att) * 1e-9,
           "attention_latency_share": sum(c.cycles for c in att) / rep.cycles}
    if kind == "taylor":   # SA-General's Taylor GEMMs vs the vector units' own busy time
        gemm = sum(c.compute_cycles for c in att if c.op.product)
        vec = sum(c.compute_cycles for c in att if c.op.kind in VECTOR_KINDS)
        out["vector_busy_over_gemm_busy"] = vec / gemm
    return out


def crossover(cfg: Config, ours: tuple[str, str], other: tuple[str, str], field: str,
              lo: int = 16, hi: int = 4096) -> int | None:
    """Smallest sequence length in [lo, hi] from which `ours` has the lower `field` (bisected;
    None if it never does, lo if it always does). Checks that the sign changes once on a grid."""
    def wins(t: int) -> bool:
        return point(cfg, *ours, t)[field] < point(cfg, *other, t)[field]

    grid = sorted({lo, hi, *range(32, hi, 32)})
    signs = [wins(t) for t in grid]
    flips = sum(a != b for a, b in zip(signs, signs[1:]))
    if flips > 1:
        raise RuntimeError(f"{ours} vs {other} on {field}: the winner changes {flips} times")
    if signs[0]:
        return lo
    if not signs[-1]:
        return None
    a, b = lo, hi                      # wins(b), not wins(a)
    while b - a > 1:
        mid = (a + b) // 2
        a, b = (a, mid) if wins(mid) else (mid, b)
    return b


def run(cfg: Config) -> dict:
    at = {(k, h): dict(point(cfg, k, h, cfg.seq)) for k in cfg.kinds for h in cfg.presets}
    dense, sparse, taylor = (at[p] for p in cfg.pairs)
    sweep = [dict(point(cfg, k, h, t)) for k in cfg.kinds for h in cfg.presets
             for t in cfg.sweep]

    def find(kind, hw, seq):
        return next(p for p in sweep if (p["kind"], p["hw"], p["seq"]) == (kind, hw, seq))

    ours = cfg.pairs[2]
    cross = {}
    for other in cfg.pairs[:2] + (("softmax", "vitality"), ("sparse10", "vitality")):
        for field in ("latency_ms", "attention_ms", "energy_mj", "edp_js"):
            cross[f"{other[0]}@{other[1]}:{field}"] = crossover(cfg, ours, other, field)
    ratio = {hw: find("taylor", hw, 4096)["attention_cycles"]
             / find("taylor", hw, 1024)["attention_cycles"] for hw in cfg.presets}
    result = {
        "study": "4a: attention kinds on their accelerators (DeiT-Tiny)", "config": asdict(cfg),
        "at_197": [at[k, h] for k in cfg.kinds for h in cfg.presets],
        "headline": {"dense_softmax_gemmini_transformer": dense, "sparse10_vitcod": sparse,
                     "taylor_vitality": taylor},
        "vitality_vs_dense_speedup": dense["latency_ms"] / taylor["latency_ms"],
        "vitality_vs_vitcod_speedup": sparse["latency_ms"] / taylor["latency_ms"],
        "vitality_vs_dense_energy_ratio": dense["energy_mj"] / taylor["energy_mj"],
        "vitality_vs_vitcod_energy_ratio": sparse["energy_mj"] / taylor["energy_mj"],
        "vitality_vs_dense_edp_ratio": dense["edp_js"] / taylor["edp_js"],
        "vitality_vs_vitcod_edp_ratio": sparse["edp_js"] / taylor["edp_js"],
        "attention_only": {
            "vitality_vs_dense_speedup": dense["attention_ms"] / taylor["attention_ms"],
            "vitality_vs_vitcod_speedup": sparse["attention_ms"] / taylor["attention_ms"],
            "vitality_vs_dense_energy_ratio":
                dense["attention_energy_mj"] / taylor["attention_energy_mj"],
            "vitality_vs_vitcod_energy_ratio":
                sparse["attention_energy_mj"] / taylor["attention_energy_mj"]},
        "amdahl_bound_dense": 1 / (1 - dense["attention_latency_share"]),
        "published": PUBLISHED,
        "sweep": sweep,
        "crossover_tokens": cross,
        "taylor_attention_cycles_4096_over_1024": ratio["vitality"],
        "taylor_attention_cycles_4096_over_1024_by_hw": ratio,
        "notes": [
            "speedup = baseline latency / vitality's; energy ratio = baseline energy / "
            "vitality's (> 1: vitality uses less); attention_only: the attention operators only",
            "amdahl_bound_dense: the end-to-end speedup on gemmini-transformer if its attention "
            "took no time at all",
            "crossover_tokens: the smallest length from which taylor on vitality is lower "
            "(16 = already at the smallest length tried, None = not up to 4096)",
            "taylor on vitcod is memory-bound beyond about 2048 tokens: its MAC-line GEMMs do "
            "not tile K (costmodel.sparse_engine.lines_gemm_cost), see the 4096/1024 ratio by hw",
            "published is the abstract's end-to-end headline against an unnamed 'state-of-the-"
            "art solution' on hardware of its own; our ratios compare assumed iso-resource "
            "presets (vitality sized like vitcod: 512 MACs, 500 MHz, 76.8 GB/s) on DeiT-Tiny "
            "at 197 tokens, so the two are not the same comparison",
        ],
    }
    return result


def report(result: dict) -> str:
    rows = [[p["kind"], p["hw"], f"{p['latency_ms']:.4g}", f"{p['energy_mj']:.4g}",
             f"{p['edp_js']:.3g}", f"{p['attention_ms']:.4g}",
             f"{100 * p['attention_latency_share']:.1f}%"] for p in result["at_197"]]
    out = [fmt_table(["kind", "hardware", "latency ms", "energy mJ", "EDP J*s", "attention ms",
                      "attention share"], rows), ""]
    att = result["attention_only"]
    out.append(fmt_table(
        ["vitality (taylor) vs", "speedup", "energy ratio", "EDP ratio", "attention speedup",
         "attention energy ratio", "published"],
        [["gemmini-transformer (softmax)", f"{result['vitality_vs_dense_speedup']:.3g}",
          f"{result['vitality_vs_dense_energy_ratio']:.3g}",
          f"{result['vitality_vs_dense_edp_ratio']:.3g}",
          f"{att['vitality_vs_dense_speedup']:.3g}", f"{att['vitality_vs_dense_energy_ratio']:.3g}",
          "3x / 3x"],
         ["vitcod (sparse10)", f"{result['vitality_vs_vitcod_speedup']:.3g}",
          f"{result['vitality_vs_vitcod_energy_ratio']:.3g}",
          f"{result['vitality_vs_vitcod_edp_ratio']:.3g}",
          f"{att['vitality_vs_vitcod_speedup']:.3g}", f"{att['vitality_vs_vitcod_energy_ratio']:.3g}",
          "3x / 3x"]]))
    out.append("")
    out.append(fmt_table(["taylor@vitality overtakes", "on", "from tokens"],
                         [[k.split(":")[0], k.split(":")[1], v]
                          for k, v in result["crossover_tokens"].items()]))
    out.append("")
    seqs = result["config"]["sweep"]
    rows = []
    for kind in result["config"]["kinds"]:
        for hw in result["config"]["presets"]:
            pts = {p["seq"]: p for p in result["sweep"] if p["kind"] == kind and p["hw"] == hw}
            rows.append([kind, hw] + [f"{pts[t]['latency_ms']:.3g} / {pts[t]['attention_ms']:.3g}"
                                      for t in seqs])
    out.append("latency ms / attention ms")
    out.append(fmt_table(["kind", "hardware"] + [str(t) for t in seqs], rows))
    out.append(f"\ntaylor attention cycles 4096/1024: "
               + ", ".join(f"{hw} {r:.3f}" for hw, r in
                           result["taylor_attention_cycles_4096_over_1024_by_hw"].items()))
    bal = [f"{p['seq']}: {p['vector_busy_over_gemm_busy']:.2f}" for p in result["sweep"]
           if p["kind"] == "taylor" and p["hw"] == "vitality"]
    out.append("vitality pipeline balance (vector units busy / SA-General Taylor GEMMs busy): "
               + ", ".join(bal))
    return "\n".join(out)


COLOURS = {"softmax": "tab:blue", "sparse10": "tab:orange", "taylor": "tab:green"}
STYLES = {"gemmini-transformer": "-", "vitcod": "--", "vitality": ":"}


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    cfg = result["config"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    width = 0.26
    at = {(p["kind"], p["hw"]): p for p in result["at_197"]}
    for j, hw in enumerate(cfg["presets"]):
        for i, kind in enumerate(cfg["kinds"]):
            p = at[kind, hw]
            x = j + (i - 1) * width
            paired = [kind, hw] in [list(q) for q in cfg["pairs"]]
            for ax, field in ((axes[0], "latency_ms"), (axes[1], "energy_mj")):
                ax.bar(x, p[field], width, color=COLOURS[kind], edgecolor="black" if paired
                       else "none", linewidth=1.6)
                ax.text(x, p[field], f"{p[field]:.3g}", ha="center", va="bottom", fontsize=7)
    for ax, title in ((axes[0], f"latency at {cfg['seq']} tokens (ms)"),
                      (axes[1], f"energy at {cfg['seq']} tokens (mJ)")):
        ax.set_xticks(range(len(cfg["presets"])), cfg["presets"], fontsize=8)
        ax.set_title(title + "\nblack edge: the kind on its own accelerator", fontsize=9)
        ax.set_ylim(0, 1.25 * ax.get_ylim()[1])
        ax.legend([plt.Rectangle((0, 0), 1, 1, color=COLOURS[k]) for k in cfg["kinds"]],
                  cfg["kinds"], fontsize=8, ncol=3, loc="upper center")
    ax = axes[2]
    for kind in cfg["kinds"]:
        for hw in cfg["presets"]:
            pts = sorted((p["seq"], p["attention_ms"]) for p in result["sweep"]
                         if p["kind"] == kind and p["hw"] == hw)
            ax.plot([t for t, _ in pts], [v for _, v in pts], STYLES[hw], color=COLOURS[kind],
                    marker="o" if [kind, hw] in [list(q) for q in cfg["pairs"]] else None,
                    markersize=3, label=f"{kind} on {hw}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (tokens)")
    ax.set_title("attention latency (ms) vs length; markers: the kind on its own accelerator",
                 fontsize=9)
    ax.legend(fontsize=6, ncol=1)
    fig.suptitle(f"DeiT-Tiny: dense softmax on gemmini-transformer, sparse10 on vitcod, "
                 f"Taylor on vitality (speedup {result['vitality_vs_dense_speedup']:.2f}x / "
                 f"{result['vitality_vs_vitcod_speedup']:.2f}x; published 3x)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    return study_main("attention_kinds_cost", __doc__, lambda: run(Config()), plot, report, argv,
                      folder=HERE)


if __name__ == "__main__":
    raise SystemExit(main())
