"""Study 2: the survey's Gemmini accelerator studies (Kim et al. 2023, Sec. 3.4) on BERT-Base.

    python experiments/studies/accelerator/accelerator.py      # -> accelerator.json, .png
    python experiments/studies/accelerator/accelerator.py --mapping gemmini   # one mode only

(a) Buffer split: Gemmini's default 256 KiB scratchpad / 64 KiB accumulator against 64 KiB /
    256 KiB; latency, DRAM traffic and energy of all matmuls (published: 36% lower matmul
    latency). Repeated over DRAM bandwidths, since the split can only matter where traffic does.
(b) Non-linear operators: softmax, LayerNorm and GELU on the host CPU (Gemmini's default)
    against on-chip integer units; end-to-end latency and the classes' shares (published:
    39.6x faster end to end, the matmuls dominating again). Also the survey's tuned design
    (`gemmini-transformer`: both changes at once).
Both run in each GEMM mapping mode (costmodel.mapping: scalesim, gemmini, search; --mapping
picks some), and (c) shows the mechanism of (a) per BERT operator at seq 512 and 16 B/cycle:
tiles, A/B re-reads from DRAM, DRAM bytes and cycles with each buffer split. The top-level
"buffers" and "nonlinear" are those of the first mode (scalesim: the validated model).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))        # experiments/studies: common.py

from common import (
    class_shares,
    fmt_table,
    matmuls,
    pyplot,
    save_figure,
    study_main,
    total,
)

from costmodel.hardware import MAPPING_MODES, PRESETS, derive
from costmodel.mapping import with_mapping
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
    mappings: tuple[str, ...] = MAPPING_MODES    # GEMM mapping modes to run (first: top level)
    mechanism_seq: int = 512                    # (c): the survey's BERT-Base setting
    mechanism_bandwidth: float = 16             # (c): Gemmini's 128-bit bus


def buffer_designs(cfg: Config, bw: float, mode: str):
    """The baseline (256 KiB / 64 KiB) and the rebalanced split at `bw` bytes/cycle, mapped by
    `mode`."""
    base = derive(cfg.baseline, f"{cfg.baseline}-bw{bw:g}", dram_bytes_per_cycle=bw)
    split = derive(cfg.baseline, f"{cfg.baseline}-64k-256k-bw{bw:g}", dram_bytes_per_cycle=bw,
                   **cfg.buffers)
    return with_mapping(base, mode), with_mapping(split, mode)


def buffer_study(cfg: Config, mode: str) -> list[dict]:
    """(a): matmul cycles, DRAM bytes and energy with each buffer split, per seq and bandwidth."""
    model = NAMED_MODELS[cfg.model]
    rows = []
    for seq in cfg.seqs:
        wl = Workload(seq=seq, vocab=model.vocab if cfg.lm_head else 0)
        for bw in cfg.bandwidths:
            base, split = buffer_designs(cfg, bw, mode)
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


def mechanism(cfg: Config, mode: str) -> list[dict]:
    """(c): why (a) comes out as it does, per GEMM of one BERT layer (every layer is the same):
    the mapping (tile, tiles per dimension, A and B read from DRAM how many times), DRAM bytes
    and cycles with each buffer split, at the survey's sequence length and Gemmini's bus."""
    model = NAMED_MODELS[cfg.model]
    wl = Workload(seq=cfg.mechanism_seq, vocab=model.vocab if cfg.lm_head else 0)
    reports = [simulate(model.arch, hw, wl)
               for hw in buffer_designs(cfg, cfg.mechanism_bandwidth, mode)]
    rows = []
    for base, split in zip(*(matmuls(r) for r in reports)):
        if base.op.layer != 0:
            continue
        row: dict = {"op": base.op.name.split(".", 1)[1], "shape": base.op.shape}
        for tag, c in (("256k_64k", base), ("64k_256k", split)):
            m = c.mapping or {}
            row[tag] = {"cycles": c.cycles, "compute_cycles": c.compute_cycles,
                        "memory_cycles": c.memory_cycles, "dram_bytes": c.dram_bytes,
                        "bound": c.bound, "tile_mkn": m.get("sram_tile_mkn"),
                        "tiles_mkn": m.get("tiles_mkn"), "a_dram_reads": m.get("a_dram_reads"),
                        "b_dram_reads": m.get("b_dram_reads")}
        row["latency_change"] = row["64k_256k"]["cycles"] / row["256k_64k"]["cycles"] - 1
        rows.append(row)
    return rows


def nonlinear_study(cfg: Config, mode: str) -> list[dict]:
    """(b): end-to-end latency, non-linear ops on the host, on chip, and the tuned design."""
    model = NAMED_MODELS[cfg.model]
    designs = {"host": PRESETS[cfg.baseline],
               "onchip": derive(cfg.baseline, f"{cfg.baseline}-onchip-sfu", sfu="onchip"),
               "tuned": PRESETS[cfg.tuned]}
    designs = {tag: with_mapping(hw, mode) for tag, hw in designs.items()}
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
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.4))
    cfg = result["config"]
    modes = list(result["mappings"])
    seq = max(cfg["seqs"])
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        rows = [r for r in result["mappings"][mode]["buffers"] if r["seq"] == seq]
        xs = [j + i * width for j in range(len(rows))]
        ax1.bar(xs, [100 * r["latency_reduction"] for r in rows], width, label=mode)
    ax1.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(cfg["bandwidths"]))])
    ax1.set_xticklabels([f"{bw:g} B/cyc" for bw in cfg["bandwidths"]])
    ax1.axhline(100 * cfg["published_matmul_reduction"], color="k", ls="--", lw=1,
                label="published (36%)")
    ax1.set_ylabel("matmul latency reduction (%)")
    ax1.set_title(f"(a) 64 KiB sp / 256 KiB acc vs 256 / 64, seq {seq},\nper GEMM mapping",
                  fontsize=10)
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
    ax2.set_title(f"(b) non-linear ops on host vs on chip ({modes[0]})", fontsize=10)
    ax2.legend(fontsize=8)
    mode = "gemmini" if "gemmini" in modes else modes[0]
    mech = result["mappings"][mode]["mechanism"]
    ys = range(len(mech))
    for k, (tag, colour) in enumerate((("256k_64k", "tab:gray"), ("64k_256k", "tab:green"))):
        ax3.barh([y + (k - 0.5) * 0.38 for y in ys], [r[tag]["cycles"] / 1e6 for r in mech],
                 0.38, color=colour, label=tag.replace("k_", " KiB sp / ").replace("k", " KiB acc"))
        for y, r in zip(ys, mech):
            m = r[tag]
            if m["tile_mkn"]:
                ax3.text(m["cycles"] / 1e6, y + (k - 0.5) * 0.38,
                         f" tile {'x'.join(map(str, m['tile_mkn']))}, A x{m['a_dram_reads']}, "
                         f"B x{m['b_dram_reads']}", va="center", fontsize=6)
    ax3.set_yticks(list(ys), [f"{r['op']} ({100 * r['latency_change']:+.0f}%)" for r in mech])
    ax3.invert_yaxis()
    ax3.set_xlabel("cycles per layer (M)")
    ax3.set_xlim(0, 1.6 * max(r["256k_64k"]["cycles"] for r in mech) / 1e6)
    ax3.set_title(f"(c) why, per operator ({mode} mapping, seq {cfg['mechanism_seq']}, "
                  f"{cfg['mechanism_bandwidth']:g} B/cyc)", fontsize=10)
    ax3.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.suptitle(f"{cfg['model']} on {cfg['baseline']} (simulated)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def survey_change(cfg: Config, buffers: list[dict]) -> float | None:
    """Matmul latency change (%) of the rebalance at the survey's setting (negative = faster)."""
    for r in buffers:
        if r["seq"] == cfg.mechanism_seq and r["dram_bytes_per_cycle"] == cfg.mechanism_bandwidth:
            return -100 * r["latency_reduction"]
    return None


def run(cfg: Config) -> dict:
    by_mode = {}
    for mode in cfg.mappings:
        buffers = buffer_study(cfg, mode)
        by_mode[mode] = {"buffers": buffers, "nonlinear": nonlinear_study(cfg, mode),
                         "mechanism": mechanism(cfg, mode),
                         "matmul_latency_change_pct": survey_change(cfg, buffers)}
    first = by_mode[cfg.mappings[0]]
    return {"study": "accelerator (survey Sec. 3.4)", "config": asdict(cfg),
            "buffers": first["buffers"], "nonlinear": first["nonlinear"],
            "survey_3_4_matmul_latency_change_pct": {
                mode: r["matmul_latency_change_pct"] for mode, r in by_mode.items()},
            "mappings": by_mode}


def report(result: dict) -> str:
    parts = []
    for mode, res in result["mappings"].items():
        a = fmt_table(["seq", "B/cycle", "matmul cycles 256K/64K", "matmul cycles 64K/256K",
                       "latency", "DRAM bytes", "energy"],
                      [[r["seq"], r["dram_bytes_per_cycle"], r["matmul_cycles_256k_64k"],
                        r["matmul_cycles_64k_256k"], f"{-100 * r['latency_reduction']:+.1f}%",
                        f"{-100 * r['dram_reduction']:+.1f}%",
                        f"{-100 * r['energy_reduction']:+.1f}%"]
                       for r in res["buffers"]])
        c = fmt_table(["op", "shape", "cycles 256K/64K", "cycles 64K/256K", "change",
                       "tile 256K/64K", "tile 64K/256K", "A, B reads", "A, B reads"],
                      [[r["op"], r["shape"], r["256k_64k"]["cycles"], r["64k_256k"]["cycles"],
                        f"{100 * r['latency_change']:+.1f}%",
                        "x".join(map(str, r["256k_64k"]["tile_mkn"] or [])),
                        "x".join(map(str, r["64k_256k"]["tile_mkn"] or [])),
                        f"{r['256k_64k']['a_dram_reads']}, {r['256k_64k']['b_dram_reads']}",
                        f"{r['64k_256k']['a_dram_reads']}, {r['64k_256k']['b_dram_reads']}"]
                       for r in res["mechanism"]])
        b = fmt_table(["seq", "host ms", "on-chip ms", "speedup", "tuned ms", "speedup",
                       "matmul share host", "matmul share on-chip"],
                      [[r["seq"], r["host"]["latency_ms"], r["onchip"]["latency_ms"],
                        f"{r['speedup_onchip']:.1f}x", r["tuned"]["latency_ms"],
                        f"{r['speedup_tuned']:.1f}x", f"{100 * r['host']['matmul_share']:.1f}%",
                        f"{100 * r['onchip']['matmul_share']:.1f}%"] for r in res["nonlinear"]])
        parts.append(f"== mapping {mode}\n(a) buffer split\n{a}\n\n(c) per operator, one "
                     f"layer\n{c}\n\n(b) non-linear operators\n{b}")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(add_help=False)   # the rest is study_main's command line
    ap.add_argument("--mapping", action="append", choices=MAPPING_MODES,
                    help="GEMM mapping mode to run (repeatable; default: all)")
    known, rest = ap.parse_known_args(argv)
    cfg = Config(mappings=tuple(known.mapping) if known.mapping else MAPPING_MODES)
    return study_main("accelerator", __doc__, lambda: run(cfg), plot, report, rest,
                      folder=HERE)


if __name__ == "__main__":
    raise SystemExit(main())
