"""Search benchmarks on a trained `tiny` supernet (run by hand; results committed here).

1. (run second) Wall time of a default search (NSGA-II, population 40, 40 generations, objective EDP) and
   where it goes: perplexity evaluation vs cost look-up vs checkpoints vs DEAP bookkeeping.
2. NSGA-II vs random search at the same number of evaluated architectures: hypervolume of each
   over several seeds (both normalised by the same anchors: largest and smallest subnet).

    python experiments/search/bench_search/bench_search.py --ckpt RUN_DIR
        [--seeds 0 1 2] [--population 20] [--generations 15] [--max-tokens 2048]

Writes search_bench.json and hv_nsga2_vs_random.png beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

from costmodel.hardware import load_hardware
from costmodel.simulate import SIMULATOR_VERSION
from nas.core.plotting import pyplot, save_figure
from nas.core.provenance import provenance, write_result
from nas.pipeline import build_table, supernet_workload
from nas.search.build import build_search
from nas.search.config import SearchConfig
from nas.search.costs import FixedHardware
from nas.search.pareto import Normaliser, pareto_indices
from nas.search.quality import MemoQuality
from supernet.perplexity import SupernetPerplexity

HERE = Path(__file__).resolve().parent


def training_record(ckpt: str) -> dict | None:
    """How the supernet was trained: its run's config.json and last eval.csv row."""
    run = Path(ckpt) if Path(ckpt).is_dir() else Path(ckpt).parent
    if not (run / "config.json").is_file():
        return None
    rows = list(csv.DictReader((run / "eval.csv").open())) if (run / "eval.csv").is_file() else []
    return {"config": json.loads((run / "config.json").read_text()),
            "last_eval": rows[-1] if rows else None}


def hv_curve(history, normaliser, objective, counts):
    """Hypervolume of the feasible front of the first n evaluated candidates, for each n."""
    out = []
    for n in counts:
        pts = [(c.perplexity, c.value(objective)) for c in history[:n] if c.feasible]
        out.append(normaliser.hypervolume([pts[i] for i in pareto_indices(pts)]))
    return out


def plot_curves(curves, seeds, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for color, a in zip(("C0", "C1"), curves):
        for i, (counts, curve) in enumerate(curves[a]):
            ax.plot(counts, curve, color=color, alpha=0.8, label=a if i == 0 else None)
    ax.set_xlabel("distinct architectures evaluated")
    ax.set_ylabel("hypervolume (perplexity vs EDP, normalised)")
    ax.set_title(f"NSGA-II vs random search, {len(seeds)} seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=130)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="trained supernet run directory (tiny space)")
    ap.add_argument("--hw", default="gemmini-transformer")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--population", type=int, default=20)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--max-tokens", type=int, default=2048,
                    help="validation tokens per perplexity in part 2")
    ap.add_argument("--default-max-tokens", type=int, default=8192,
                    help="validation tokens per perplexity in part 1 (`nas search` default)")
    ap.add_argument("--skip-default", action="store_true", help="skip part 1")
    ap.add_argument("--out", default=str(HERE / "search_bench.json"))
    args = ap.parse_args()
    prov = provenance(simulator_version=SIMULATOR_VERSION)

    hw = load_hardware(args.hw)
    probe = SupernetPerplexity(args.ckpt, max_tokens=args.max_tokens)
    ev = probe.evaluator
    table = build_table(ev.space, hw, supernet_workload(ev))
    common = {"vocab": ev.vocab_size, "max_seq": ev.block_size}
    doc = {"supernet": str(ev.checkpoint), "space": ev.space.to_dict(), "hardware": hw.name,
           "table": table.describe(), "supernet_training": training_record(args.ckpt)}

    # -- 2. NSGA-II vs random at equal evaluations ----------------------------------------------
    memo = MemoQuality(probe)
    runs = {"nsga2": {}, "random": {}}
    normaliser = None
    for seed in args.seeds:
        for algorithm in runs:
            cfg = SearchConfig(algorithm=algorithm, population=args.population,
                               generations=args.generations, seed=seed,
                               racing=False)     # hypervolume of every evaluated candidate
            t0 = time.perf_counter()
            res = build_search(cfg, ev.space, memo, FixedHardware(table), **common).run()
            normaliser = normaliser or Normaliser([(res.largest.perplexity, res.largest.edp),
                                                   (res.smallest.perplexity, res.smallest.edp)])
            runs[algorithm][seed] = {"history": res.history, "wall_s": time.perf_counter() - t0}
            print(f"seed {seed} {algorithm}: {len(res.history)} evaluated, "
                  f"hv {res.hypervolume[-1]:.4f}")
    comparison = []
    curves = {}
    for seed in args.seeds:
        n = min(len(runs[a][seed]["history"]) for a in runs)
        counts = list(range(args.population, n + 1, max(1, args.population // 2))) + [n]
        row = {"seed": seed, "evaluations": n}
        for a in runs:
            curve = hv_curve(runs[a][seed]["history"], normaliser, "edp", counts)
            curves.setdefault(a, []).append((counts, curve))
            row[f"hv_{a}"] = curve[-1]
            row[f"evaluated_{a}"] = len(runs[a][seed]["history"])
        comparison.append(row)
    summary = {a: {"mean": statistics.mean(r[f"hv_{a}"] for r in comparison),
                   "stdev": statistics.stdev(r[f"hv_{a}"] for r in comparison)
                   if len(comparison) > 1 else 0.0} for a in runs}
    doc["nsga2_vs_random"] = {
        "settings": f"population {args.population}, {args.generations} generations, objective "
                    f"edp, {args.max_tokens} validation tokens per perplexity; hypervolume of "
                    f"the feasible front of the first N distinct evaluated architectures, N = "
                    f"the smaller of the two runs' counts; objectives normalised between the "
                    f"largest and smallest subnet, reference point (1.1, 1.1)",
        "normaliser": normaliser.to_dict(), "per_seed": comparison, "summary": summary,
        "nsga2_wins": sum(r["hv_nsga2"] > r["hv_random"] for r in comparison),
    }
    print(json.dumps(doc["nsga2_vs_random"]["per_seed"], indent=1), summary)
    write_result(args.out, doc, prov)
    plot_curves(curves, args.seeds, Path(args.out).with_name("hv_nsga2_vs_random.png"))

    # -- 1. a default search, timed ----------------------------------------------------------
    if not args.skip_default:
        quality = SupernetPerplexity(args.ckpt, max_tokens=args.default_max_tokens)
        quality.evaluator                       # load outside the timed search
        with tempfile.TemporaryDirectory() as tmp:
            search = build_search(SearchConfig(racing=False), ev.space, quality,  # as recorded
                                  FixedHardware(table), **common,
                                  state_path=Path(tmp) / "state.pkl", progress=True)
            t0 = time.perf_counter()
            res = search.run()
            wall = time.perf_counter() - t0
        secs = res.seconds
        doc["default_search"] = {
            "settings": "NSGA-II, population 40, 40 generations, mutation 0.2, objective edp, "
                        f"{args.default_max_tokens} validation tokens per perplexity",
            "wall_s": wall, "evaluated_architectures": len(res.history),
            "candidate_slots": 40 * 41, "front_size": len(res.front),
            "hypervolume_final": res.hypervolume[-1],
            "seconds": secs,
            "share": {k: secs[f"{k}_s"] / secs["total_s"]
                      for k in ("perplexity", "cost", "checkpoint", "bookkeeping")},
            "ms_per_perplexity": 1e3 * secs["perplexity_s"] / len(res.history),
            "us_per_cost_lookup": 1e6 * secs["cost_s"] / len(res.history),
        }
        print(json.dumps(doc["default_search"], indent=1))
        write_result(args.out, doc, prov)

    print("wrote", args.out)


if __name__ == "__main__":
    main()
