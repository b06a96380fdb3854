"""Racing vs exact perplexity in the search (run by hand; results committed here).

Per seed, one NSGA-II search with the exact evaluator (every candidate on all `--max-tokens`
tokens) and one with the racing evaluator (`nas search --racing`, nas/search/racing.py), same
population, generations and seed, on one torch thread. Reports the seconds spent on perplexity
per search, the windows scored, and the hypervolume of each final front; racing's front is
re-scored with the exact evaluator first (the same numbers by construction, checked), both
normalised by the same anchors (the largest and smallest subnet).

    python experiments/search/racing/racing.py --ckpt runs/cosearch-supernet
        [--seeds 0 1 2] [--population 24] [--generations 15] [--max-tokens 8192]

Writes racing.json and racing.png (hypervolume per generation) beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from costmodel.hardware import load_hardware
from costmodel.simulate import SIMULATOR_VERSION
from nas.core.plotting import pyplot, save_figure
from nas.core.provenance import provenance, write_result
from nas.pipeline import build_table, supernet_workload
from nas.search.build import build_search
from nas.search.config import SearchConfig
from nas.search.costs import FixedHardware
from nas.search.pareto import Normaliser, pareto_indices
from supernet.perplexity import SupernetPerplexity

HERE = Path(__file__).resolve().parent


def front_hv(cands, normaliser, objective):
    pts = [(c.perplexity, c.value(objective)) for c in cands if c.feasible]
    return normaliser.hypervolume([pts[i] for i in pareto_indices(pts)])


class CpuTimed:
    """The perplexity source, with the CPU seconds spent inside it (robust to other processes
    sharing the machine, unlike the engine's wall-clock `perplexity_s`)."""

    def __init__(self, quality):
        self.quality, self.cpu_s = quality, 0.0
        self.windows = quality.windows

    def __call__(self, archs):
        t0 = time.process_time()
        try:
            return self.quality(archs)
        finally:
            self.cpu_s += time.process_time() - t0

    def window_losses(self, archs, windows):
        t0 = time.process_time()
        try:
            return self.quality.window_losses(archs, windows)
        finally:
            self.cpu_s += time.process_time() - t0


def one_search(ev, quality, table, cfg):
    timed = CpuTimed(quality)
    search = build_search(cfg, ev.space, timed, FixedHardware(table), vocab=ev.vocab_size,
                          max_seq=ev.block_size)
    t0, c0 = time.perf_counter(), time.process_time()
    result = search.run()
    return result, {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                    "model_cpu_s": timed.cpu_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="trained supernet run directory (tiny space)")
    ap.add_argument("--hw", default="gemmini-transformer")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--population", type=int, default=24)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--max-tokens", type=int, default=8192)
    ap.add_argument("--racing-start", type=float, default=SearchConfig.racing_start)
    ap.add_argument("--racing-z", type=float, default=SearchConfig.racing_z)
    ap.add_argument("--racing-tolerance", type=float, default=SearchConfig.racing_tolerance)
    ap.add_argument("--out", default=str(HERE / "racing.json"))
    args = ap.parse_args()

    torch.set_num_threads(1)
    prov = provenance(simulator_version=SIMULATOR_VERSION)
    quality = SupernetPerplexity(args.ckpt, max_tokens=args.max_tokens, threads=1)
    ev = quality.evaluator                      # loaded once, outside every timing
    table = build_table(ev.space, load_hardware(args.hw), supernet_workload(ev),
                        progress=False)
    runs = []
    for seed in args.seeds:
        common = dict(population=args.population, generations=args.generations, seed=seed)
        exact, exact_t = one_search(ev, quality, table, SearchConfig(**common, racing=False))
        raced, raced_t = one_search(ev, quality, table, SearchConfig(
            **common, racing=True, racing_start=args.racing_start, racing_z=args.racing_z,
            racing_tolerance=args.racing_tolerance))
        objective = exact.config.objective
        norm = Normaliser([(c.perplexity, c.value(objective))
                           for c in (exact.largest, exact.smallest)])
        rescored = quality([c.arch for c in raced.front])
        drift = max(abs(p - c.perplexity) / p for p, c in zip(rescored, raced.front))
        front = [c.with_(perplexity=p) for c, p in zip(raced.front, rescored)]
        hv_exact = front_hv(exact.front, norm, objective)
        hv_raced = front_hv(front, norm, objective)
        row = {"seed": seed,
               "exact": {"perplexity_s": exact.seconds["perplexity_s"], **exact_t,
                         "evaluations": len(exact.history), "front": len(exact.front),
                         "hypervolume": hv_exact, "hv_curve": exact.hypervolume},
               "racing": {"perplexity_s": raced.seconds["perplexity_s"], **raced_t,
                          "evaluations": len(raced.history), "front": len(raced.front),
                          "hypervolume": hv_raced, "hv_curve": raced.hypervolume,
                          "front_rescore_max_rel_diff": drift, **raced.racing},
               "perplexity_time_ratio": exact.seconds["perplexity_s"]
               / raced.seconds["perplexity_s"],
               "model_cpu_ratio": exact_t["model_cpu_s"] / raced_t["model_cpu_s"],
               "hv_rel_diff": (hv_raced - hv_exact) / hv_exact}
        runs.append(row)
        print(f"seed {seed}: perplexity {row['exact']['perplexity_s']:.1f} s exact, "
              f"{row['racing']['perplexity_s']:.1f} s racing "
              f"({row['perplexity_time_ratio']:.2f}x, "
              f"CPU in the model {row['model_cpu_ratio']:.2f}x; "
              f"{raced.racing['share_of_exact']:.3f} of the windows); hypervolume "
              f"{hv_exact:.4f} exact, {hv_raced:.4f} racing ({100 * row['hv_rel_diff']:+.2f}%)",
              flush=True)

    def mean(f):
        return statistics.fmean(f(r) for r in runs)

    summary = {
        "perplexity_s_exact_mean": mean(lambda r: r["exact"]["perplexity_s"]),
        "perplexity_s_racing_mean": mean(lambda r: r["racing"]["perplexity_s"]),
        "perplexity_time_ratio_of_means": mean(lambda r: r["exact"]["perplexity_s"])
        / mean(lambda r: r["racing"]["perplexity_s"]),
        "model_cpu_ratio_of_means": mean(lambda r: r["exact"]["model_cpu_s"])
        / mean(lambda r: r["racing"]["model_cpu_s"]),
        "window_share_mean": mean(lambda r: r["racing"]["share_of_exact"]),
        "hypervolume_exact_mean": mean(lambda r: r["exact"]["hypervolume"]),
        "hypervolume_racing_mean": mean(lambda r: r["racing"]["hypervolume"]),
        "hv_rel_diff_of_means": mean(lambda r: r["racing"]["hypervolume"])
        / mean(lambda r: r["exact"]["hypervolume"]) - 1,
        "target": "perplexity time ratio >= 3 with hypervolume within 0.5%",
    }
    summary["meets_target"] = (summary["perplexity_time_ratio_of_means"] >= 3
                               and abs(summary["hv_rel_diff_of_means"]) <= 0.005)
    doc = {"settings": vars(args), "supernet": str(Path(args.ckpt).resolve()),
           "windows_per_perplexity": len(ev.x), "tokens_per_perplexity": ev.tokens,
           "load_average_at_end": os.getloadavg(),
           "summary": summary, "runs": runs}
    write_result(args.out, doc, prov)
    print(json.dumps(summary, indent=1))

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(runs):
        ax.plot(r["exact"]["hv_curve"], color="C0", alpha=0.8, label="exact" if i == 0 else None)
        ax.plot(r["racing"]["hv_curve"], color="C1", alpha=0.8, ls="--",
                label="racing" if i == 0 else None)
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (perplexity vs EDP, normalised)")
    ax.set_title(f"exact vs racing perplexity, {len(runs)} seeds: perplexity time "
                 f"{summary['perplexity_time_ratio_of_means']:.2f}x lower, hypervolume "
                 f"{100 * summary['hv_rel_diff_of_means']:+.2f}%", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, Path(args.out).with_suffix(".png"), dpi=130)


if __name__ == "__main__":
    main()
