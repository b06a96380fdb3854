"""Study 5: decoder inference, GPT-2 generating 128 tokens after a 128-token prompt.

    python experiments/studies/decoder/decoder.py        # -> decoder.json, decoder.png

Latency and energy of the prefill (the prompt in one pass) against each generated token (one
query row per step, KV cache), per step and on average, with the profile's arithmetic
intensity and the simulated throughput set against the roofline bound (min of the array's peak
and intensity x DRAM bandwidth). Then the same run over DRAM bandwidths and with both dataflows,
to show which resource bounds token generation: DRAM bandwidth, or (weight-stationary) loading
each weight block into the array for a single row of activations.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))        # experiments/studies: common.py

from common import (
    fmt_table,
    pyplot,
    save_figure,
    study_main,
    total,
)

from costmodel.hardware import PRESETS, derive
from costmodel.profile import profile
from costmodel.simulate import Report, simulate
from costmodel.workload import Workload
from nas.core.arch import NAMED_MODELS

STEP = re.compile(r"@t(\d+)$")   # decode operators whose shape changes per step end in @t<step>


@dataclass
class Config:
    model: str = "gpt2"
    prompt: int = 128
    gen: int = 128
    hardware: str = "gemmini-transformer"
    bandwidths: tuple[float, ...] = (2, 4, 8, 16, 32, 64)   # DRAM bytes/cycle sweep
    dataflows: tuple[str, ...] = ("ws", "os")


def phase_figures(rep: Report, phase: str, tokens: int) -> dict:
    """Totals of one phase, per token, and what bounds its cycles."""
    ops = [c for c in rep.ops if c.op.phase == phase]
    prof = profile([c.op for c in ops])
    cycles = total(ops)
    hw = rep.hw
    energy: dict[str, float] = defaultdict(float)
    for c in ops:
        for k, v in c.energy.items():
            energy[k] += v
    flops_per_cycle = prof.flops / cycles
    roofline = min(2 * hw.pes, prof.intensity * hw.dram_bytes_per_cycle)   # FLOPs per cycle
    return {
        "tokens": tokens, "cycles": cycles, "latency_ms": cycles / hw.clock_hz * 1e3,
        "energy_mj": total(ops, "energy_pj") * 1e-9,
        "latency_ms_per_token": cycles / hw.clock_hz * 1e3 / tokens,
        "energy_mj_per_token": total(ops, "energy_pj") * 1e-9 / tokens,
        "dram_energy_share": energy["dram"] / sum(energy.values()),
        "memory_bound_cycle_share": total(c for c in ops if c.bound == "memory") / cycles,
        "dram_transfer_cycles": total(ops, "memory_cycles"),
        "array_busy_cycles": total(ops, "compute_cycles"),
        "intensity": prof.intensity, "flops": prof.flops, "mops": prof.mops,
        "flops_per_cycle": flops_per_cycle, "roofline_flops_per_cycle": roofline,
        "peak_flops_per_cycle": 2 * hw.pes,
        "fraction_of_roofline": flops_per_cycle / roofline,
    }


def per_step(rep: Report, gen: int) -> list[dict]:
    """Cycles and energy of each decode step: operators folded over the steps (`repeat` = gen)
    count 1/gen each, attention products and softmax (shape grows with the context) their own."""
    shared_cycles = shared_energy = 0.0
    steps = [{"cycles": 0.0, "energy_pj": 0.0} for _ in range(gen)]
    for c in rep.ops:
        if c.op.phase != "decode":
            continue
        m = STEP.search(c.op.name)
        if m:
            steps[int(m[1])]["cycles"] += c.cycles
            steps[int(m[1])]["energy_pj"] += c.energy_pj
        else:
            shared_cycles += c.cycles / gen
            shared_energy += c.energy_pj / gen
    return [{"step": t, "context": rep.workload.seq + t + 1,
             "latency_ms": (s["cycles"] + shared_cycles) / rep.hw.clock_hz * 1e3,
             "energy_mj": (s["energy_pj"] + shared_energy) * 1e-9} for t, s in enumerate(steps)]


def run(cfg: Config) -> dict:
    named = NAMED_MODELS[cfg.model]
    wl = Workload(seq=cfg.prompt, mode="decoder", gen=cfg.gen, vocab=named.vocab)
    rep = simulate(named.arch, PRESETS[cfg.hardware], wl)
    prefill = phase_figures(rep, "prefill", cfg.prompt)
    decode = phase_figures(rep, "decode", cfg.gen)
    steps = per_step(rep, cfg.gen)
    sweep = []
    for dataflow in cfg.dataflows:
        for bw in cfg.bandwidths:
            hw = derive(cfg.hardware, f"{cfg.hardware}-{dataflow}-bw{bw:g}",
                                  dataflow=dataflow, dram_bytes_per_cycle=bw)
            r = simulate(named.arch, hw, wl)
            p, d = phase_figures(r, "prefill", cfg.prompt), phase_figures(r, "decode", cfg.gen)
            sweep.append({"dataflow": dataflow, "dram_bytes_per_cycle": bw,
                          "prefill_ms": p["latency_ms"],
                          "decode_ms_per_token": d["latency_ms_per_token"],
                          "decode_memory_bound_share": d["memory_bound_cycle_share"],
                          "decode_fraction_of_roofline": d["fraction_of_roofline"],
                          "prefill_memory_bound_share": p["memory_bound_cycle_share"]})
    return {"study": "decoder inference", "config": asdict(cfg), "workload": vars(wl).copy(),
            "total_latency_ms": rep.latency_ms, "total_energy_mj": rep.energy_mj,
            "prefill": prefill, "decode": decode,
            "decode_vs_prefill_per_token_latency": decode["latency_ms_per_token"]
                                                    / prefill["latency_ms_per_token"],
            "decode_vs_prefill_per_token_energy": decode["energy_mj_per_token"]
                                                   / prefill["energy_mj_per_token"],
            "steps": steps, "bandwidth_sweep": sweep}


def report(result: dict) -> str:
    rows = []
    for name in ("prefill", "decode"):
        r = result[name]
        rows.append([name, r["tokens"], r["latency_ms"], r["latency_ms_per_token"],
                     r["energy_mj"], r["energy_mj_per_token"], f"{r['intensity']:.3g}",
                     f"{r['flops_per_cycle']:.3g}", f"{r['roofline_flops_per_cycle']:.3g}",
                     f"{100 * r['memory_bound_cycle_share']:.0f}%",
                     f"{100 * r['dram_energy_share']:.0f}%"])
    a = fmt_table(["phase", "tokens", "ms", "ms/token", "mJ", "mJ/token", "FLOPs/B",
                   "FLOPs/cycle", "roofline FLOPs/cycle", "memory-bound cycles", "DRAM energy"],
                  rows)
    steps = result["steps"]
    s = (f"decode step latency: first {steps[0]['latency_ms']:.4g} ms (context "
         f"{steps[0]['context']}), last {steps[-1]['latency_ms']:.4g} ms (context "
         f"{steps[-1]['context']})")
    b = fmt_table(["dataflow", "B/cycle", "prefill ms", "decode ms/token", "decode memory-bound",
                   "decode / roofline"],
                  [[r["dataflow"], r["dram_bytes_per_cycle"], r["prefill_ms"],
                    r["decode_ms_per_token"], f"{100 * r['decode_memory_bound_share']:.0f}%",
                    f"{100 * r['decode_fraction_of_roofline']:.0f}%"]
                   for r in result["bandwidth_sweep"]])
    return f"{a}\n\n{s}\n\n{b}"


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = result["steps"]
    ax1.plot([s["context"] for s in steps], [s["latency_ms"] for s in steps],
             label="decode step (1 token)")
    ax1.axhline(result["prefill"]["latency_ms_per_token"], color="tab:orange", ls="--",
                label="prefill, per prompt token")
    ax1.set_xlabel("context length")
    ax1.set_ylabel("latency (ms)")
    ax1.set_yscale("log")
    ax1.set_title(f"{result['config']['model']} on {result['config']['hardware']}", fontsize=10)
    ax1.legend(fontsize=8)
    for dataflow, style in zip(result["config"]["dataflows"], ("-", "--")):
        rows = [r for r in result["bandwidth_sweep"] if r["dataflow"] == dataflow]
        bws = [r["dram_bytes_per_cycle"] for r in rows]
        ax2.plot(bws, [r["decode_ms_per_token"] for r in rows], style, marker="o",
                 color="tab:blue", label=f"decode ms/token ({dataflow})")
        ax2.plot(bws, [r["prefill_ms"] / result["config"]["prompt"] for r in rows], style,
                 marker="s", color="tab:orange", label=f"prefill ms/prompt token ({dataflow})")
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel("DRAM bandwidth (bytes/cycle)")
    ax2.set_ylabel("latency (ms)")
    ax2.set_title("bandwidth sweep", fontsize=10)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    return study_main("decoder", __doc__, lambda: run(Config()), plot, report, argv,
                      folder=HERE)


if __name__ == "__main__":
    raise SystemExit(main())
