"""Study 2: the survey's Gemmini accelerator studies (Kim et al. 2023, Sec. 3.4) on BERT-Base.

    python experiments/studies/accelerator.py          # -> accelerator.json, accelerator.png

(a) Buffer split: Gemmini's default 256 KiB scratchpad / 64 KiB accumulator against 64 KiB /
    256 KiB; latency, DRAM traffic and energy of all matmuls (published: 36% lower matmul
    latency). Repeated over DRAM bandwidths, since the split can only matter where traffic does.
(b) Non-linear operators: softmax, LayerNorm and GELU on the host CPU (Gemmini's default)
    against on-chip integer units; end-to-end latency and the classes' shares (published:
    39.6x faster end to end, the matmuls dominating again). Also the survey's tuned design
    (`gemmini-transformer`: both changes at once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import (
    class_shares,
    fmt_table,
    matmuls,
    pyplot,
    save_figure,
    study_main,
    total,
)

from costmodel.hardware import PRESETS, derive
from costmodel.simulate import simulate
from costmodel.workload import GELU, LAYERNORM, SOFTMAX, Workload
from nas.core.arch import NAMED_MODELS


@dataclass
class Config:
    model: str = "bert-base"
    seqs: tuple[int, ...] = (128, 512)          # BERT's usual lengths; 512 is its maximum
    lm_head: bool = False                       # encoder only: no masked-LM head
    baseline: str = "gemmini"                   # 256 KiB sp / 64 KiB acc, non-linear on host
    tuned: str = "gemmini-transformer"          # the survey's tuned design (both changes)
    buffers: dict = field(default_factory=lambda: {"scratchpad_kib": 64, "accumulator_kib": 256})
    bandwidths: tuple[float, ...] = (16, 8, 4, 2)   # DRAM bytes/cycle; 16 = Gemmini's 128-bit bus
    published_matmul_reduction: float = 0.36    # Kim et al. 2023, Sec. 3.4
    published_nonlinear_speedup: float = 39.6   # Kim et al. 2023, Sec. 3.4


def buffer_study(cfg: Config) -> list[dict]:
    """(a): matmul cycles, DRAM bytes and energy with each buffer split, per seq and bandwidth."""
    model = NAMED_MODELS[cfg.model]
    rows = []
    for seq in cfg.seqs:
        wl = Workload(seq=seq, vocab=model.vocab if cfg.lm_head else 0)
        for bw in cfg.bandwidths:
            base = derive(cfg.baseline, f"{cfg.baseline}-bw{bw:g}",
                                    dram_bytes_per_cycle=bw)
            split = derive(cfg.baseline, f"{cfg.baseline}-64k-256k-bw{bw:g}",
                                     dram_bytes_per_cycle=bw, **cfg.buffers)
            mm_base = matmuls(simulate(model.arch, base, wl))
            mm_split = matmuls(simulate(model.arch, split, wl))
            row = {"seq": seq, "dram_bytes_per_cycle": bw}
            for tag, mm in (("256k_64k", mm_base), ("64k_256k", mm_split)):
                row[f"matmul_cycles_{tag}"] = total(mm)
                row[f"matmul_dram_bytes_{tag}"] = total(mm, "dram_bytes")
                row[f"matmul_energy_pj_{tag}"] = total(mm, "energy_pj")
                row[f"memory_bound_matmuls_{tag}"] = sum(c.bound == "memory" for c in mm)
            row["matmuls"] = len(mm_base)
            for what, key in (("latency", "matmul_cycles"), ("dram", "matmul_dram_bytes"),
                              ("energy", "matmul_energy_pj")):
                row[f"{what}_reduction"] = 1 - row[f"{key}_64k_256k"] / row[f"{key}_256k_64k"]
            rows.append(row)
    return rows


def nonlinear_study(cfg: Config) -> list[dict]:
    """(b): end-to-end latency, non-linear ops on the host, on chip, and the tuned design."""
    model = NAMED_MODELS[cfg.model]
    designs = {"host": PRESETS[cfg.baseline],
               "onchip": derive(cfg.baseline, f"{cfg.baseline}-onchip-sfu",
                                          sfu="onchip"),
               "tuned": PRESETS[cfg.tuned]}
    rows = []
    for seq in cfg.seqs:
        wl = Workload(seq=seq, vocab=model.vocab if cfg.lm_head else 0)
        row: dict = {"seq": seq}
        for tag, hw in designs.items():
            rep = simulate(model.arch, hw, wl)
            kinds = rep.by_kind()
            row[tag] = {"hardware": hw.name, "latency_ms": rep.latency_ms,
                        "energy_mj": rep.energy_mj, "cycles": rep.cycles,
                        "class_share": class_shares(rep),
                        "matmul_share": total(matmuls(rep)) / rep.cycles,
                        "kind_share": {k: kinds.get(k, {"cycles": 0.0})["cycles"] / rep.cycles
                                       for k in (SOFTMAX, LAYERNORM, GELU)}}
        row["speedup_onchip"] = row["host"]["cycles"] / row["onchip"]["cycles"]
        row["speedup_tuned"] = row["host"]["cycles"] / row["tuned"]["cycles"]
        row["energy_ratio_onchip"] = row["host"]["energy_mj"] / row["onchip"]["energy_mj"]
        rows.append(row)
    return rows


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    cfg = result["config"]
    width = 0.8 / len(cfg["seqs"])
    for i, seq in enumerate(cfg["seqs"]):
        rows = [r for r in result["buffers"] if r["seq"] == seq]
        xs = [j + i * width for j in range(len(rows))]
        ax1.bar(xs, [100 * r["latency_reduction"] for r in rows], width, label=f"seq {seq}")
    ax1.set_xticks([j + width * (len(cfg["seqs"]) - 1) / 2 for j in range(len(cfg["bandwidths"]))])
    ax1.set_xticklabels([f"{bw:g} B/cyc" for bw in cfg["bandwidths"]])
    ax1.axhline(100 * cfg["published_matmul_reduction"], color="k", ls="--", lw=1,
                label="published (36%)")
    ax1.set_ylabel("matmul latency reduction (%)")
    ax1.set_title("(a) 64 KiB sp / 256 KiB acc vs 256 / 64", fontsize=10)
    ax1.legend(fontsize=8)
    labels, bottoms = [], []
    for r in result["nonlinear"]:
        for tag in ("host", "onchip"):
            labels.append(f"{tag}\nseq {r['seq']}")
            bottoms.append((r[tag]["latency_ms"], r[tag]["class_share"]))
    left = [0.0] * len(labels)
    for cls in ("projection", "act-to-act matmul", "non-linear"):
        vals = [ms * share[cls] for ms, share in bottoms]
        ax2.bar(labels, vals, bottom=left, label=cls)
        left = [a + b for a, b in zip(left, vals)]
    ax2.set_yscale("log")
    ax2.set_ylabel("end-to-end latency (ms, log)")
    ax2.set_title("(b) non-linear ops on host vs on chip", fontsize=10)
    ax2.legend(fontsize=8)
    fig.suptitle(f"{cfg['model']} on {cfg['baseline']} (simulated)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def run(cfg: Config) -> dict:
    return {"study": "accelerator (survey Sec. 3.4)", "config": asdict(cfg),
            "buffers": buffer_study(cfg), "nonlinear": nonlinear_study(cfg)}


def report(result: dict) -> str:
    a = fmt_table(["seq", "B/cycle", "matmul cycles 256K/64K", "matmul cycles 64K/256K",
                   "latency", "DRAM bytes", "energy"],
                  [[r["seq"], r["dram_bytes_per_cycle"], r["matmul_cycles_256k_64k"],
                    r["matmul_cycles_64k_256k"], f"{-100 * r['latency_reduction']:+.1f}%",
                    f"{-100 * r['dram_reduction']:+.1f}%", f"{-100 * r['energy_reduction']:+.1f}%"]
                   for r in result["buffers"]])
    b = fmt_table(["seq", "host ms", "on-chip ms", "speedup", "tuned ms", "speedup",
                   "matmul share host", "matmul share on-chip"],
                  [[r["seq"], r["host"]["latency_ms"], r["onchip"]["latency_ms"],
                    f"{r['speedup_onchip']:.1f}x", r["tuned"]["latency_ms"],
                    f"{r['speedup_tuned']:.1f}x", f"{100 * r['host']['matmul_share']:.1f}%",
                    f"{100 * r['onchip']['matmul_share']:.1f}%"] for r in result["nonlinear"]])
    return f"(a) buffer split\n{a}\n\n(b) non-linear operators\n{b}"


def main(argv: list[str] | None = None) -> int:
    return study_main("accelerator", __doc__, lambda: run(Config()), plot, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
