"""Study 4: how BERT-Base and GPT-2 scale with sequence length (the survey's Sec. 2.2).

    python experiments/studies/scaling/scaling.py        # -> scaling.json, scaling.png

For 128 to 4096 tokens: FLOPs, ideal memory operations (MOPs, int8 bytes) and arithmetic
intensity per operator class (projections, act-to-act matmuls, non-linear) from
`costmodel.profile`, and the simulated latency share of each class (and the simulated DRAM
bytes) on one accelerator from `costmodel.simulate`.

BERT-Base runs as an encoder over the whole sequence (no masked-LM head). GPT-2 generates the
sequence token by token (a 1-token prompt, then N - 1 decode steps with a KV cache, each with
its LM head), the generative use the survey contrasts with BERT. GPT-2's learned positions stop
at 1024; beyond that the shapes are extrapolated, as in the survey's analysis.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))        # experiments/studies: common.py

from common import (
    CLASSES,
    class_shares,
    fmt_table,
    pyplot,
    save_figure,
    study_main,
)

from costmodel.hardware import PRESETS
from costmodel.profile import profile
from costmodel.simulate import simulate
from costmodel.workload import SOFTMAX, Workload, model_ops
from nas.core.arch import NAMED_MODELS


@dataclass
class Config:
    models: tuple[str, ...] = ("bert-base", "gpt2")
    seqs: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096)
    hardware: str = "gemmini-transformer"   # the survey's tuned Gemmini (on-chip non-linear units)
    bytes_per_element: float = 1.0         # int8 MOPs, as the simulated accelerator moves them


def workload(model: str, seq: int) -> Workload:
    named = NAMED_MODELS[model]
    if named.mode == "decoder":     # generate all `seq` tokens one at a time from a 1-token prompt
        return Workload(seq=1, mode="decoder", gen=seq - 1, vocab=named.vocab)
    return Workload(seq=seq, mode="encoder", vocab=0)


def one_point(cfg: Config, model: str, seq: int) -> dict:
    arch, wl = NAMED_MODELS[model].arch, workload(model, seq)
    prof = profile(model_ops(arch, wl), cfg.bytes_per_element)
    rep = simulate(arch, PRESETS[cfg.hardware], wl)
    by_class = prof.by_class()
    dram: dict[str, float] = {cls: 0.0 for cls in CLASSES}
    for c in rep.ops:
        dram[c.op.cls] += c.dram_bytes
    return {
        "model": model, "seq": seq, "workload": vars(wl).copy(),
        "flops": prof.flops, "mops": prof.mops, "intensity": prof.intensity,
        "classes": {cls: {"flops": by_class[cls]["flops"], "mops": by_class[cls]["mops"],
                          "intensity": by_class[cls]["intensity"],
                          "flops_share": by_class[cls]["flops_share"],
                          "simulated_dram_bytes": dram[cls]} for cls in CLASSES},
        "latency_ms": rep.latency_ms, "energy_mj": rep.energy_mj,
        "latency_share": class_shares(rep),
        "softmax_latency_share": rep.by_kind().get(SOFTMAX, {"cycles": 0.0})["cycles"] / rep.cycles,
    }


def run(cfg: Config) -> dict:
    points = [one_point(cfg, m, s) for m in cfg.models for s in cfg.seqs]
    return {"study": "scaling with sequence length (survey Sec. 2.2)", "config": asdict(cfg),
            "points": points}


def report(result: dict) -> str:
    rows = []
    for p in result["points"]:
        c = p["classes"]
        rows.append([p["model"], p["seq"], f"{p['flops'] / 1e9:.4g}", f"{p['mops'] / 1e6:.4g}",
                     f"{p['intensity']:.3g}",
                     *(f"{c[cls]['intensity']:.3g}" for cls in CLASSES),
                     *(f"{100 * c[cls]['flops_share']:.1f}%" for cls in CLASSES),
                     *(f"{100 * p['latency_share'][cls]:.1f}%" for cls in CLASSES),
                     f"{p['latency_ms']:.4g}"])
    short = {"projection": "proj", "act-to-act matmul": "act-act", "non-linear": "nonlin"}
    header = (["model", "seq", "GFLOPs", "MOPs (MB)", "intensity"]
              + [f"AI {short[c]}" for c in CLASSES] + [f"FLOPs {short[c]}" for c in CLASSES]
              + [f"latency {short[c]}" for c in CLASSES] + ["latency ms"])
    return fmt_table(header, rows)


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    styles = {"bert-base": "-", "gpt2": "--"}
    colors = {"projection": "tab:blue", "act-to-act matmul": "tab:orange",
              "non-linear": "tab:green"}
    for model in result["config"]["models"]:
        pts = [p for p in result["points"] if p["model"] == model]
        seqs = [p["seq"] for p in pts]
        axes[0].plot(seqs, [p["intensity"] for p in pts], styles[model], color="k", marker="o",
                     label=f"{model} total")
        for cls in CLASSES:
            axes[0].plot(seqs, [p["classes"][cls]["intensity"] for p in pts], styles[model],
                         color=colors[cls], label=f"{model} {cls}")
            axes[1].plot(seqs, [100 * p["classes"][cls]["flops_share"] for p in pts],
                         styles[model], color=colors[cls], marker=".", label=f"{model} {cls}")
            axes[2].plot(seqs, [100 * p["latency_share"][cls] for p in pts], styles[model],
                         color=colors[cls], marker=".", label=f"{model} {cls}")
    titles = ("arithmetic intensity (FLOPs / byte)", "share of FLOPs (%)",
              f"share of simulated latency (%), {result['config']['hardware']}")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length")
        ax.set_title(title, fontsize=9)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle("BERT-Base (encoder, solid) and GPT-2 (token-by-token generation, dashed)",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    return study_main("scaling", __doc__, lambda: run(Config()), plot, report, argv,
                      folder=HERE)


if __name__ == "__main__":
    raise SystemExit(main())
