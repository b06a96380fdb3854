"""Co-design benchmark (issue 13): the joint architecture x hardware search against
(i) the best fixed preset with an architecture-only search and (ii) sequential design (the
architecture searched on gemmini-transformer first, then the best hardware for it), with the
same supernet, the same area budget and the same evaluation budget, over several seeds.

Budget: every method evaluates `population x (generations + 1)` designs. Sequential design
spends half on the architecture search and half on hardware points for the chosen
architecture (random points of the hardware space under the area budget). The fixed-preset
method runs one architecture-only search per preset within the area budget and keeps, per
seed, the preset with the lowest EDP at +0.1 perplexity.

Read-outs, as the survey's Fig. 26: the lowest EDP among feasible designs within +0.1 and +1
perplexity of the largest subnet (perplexities are the supernet's, identical for every
method), and the hypervolume of each method's feasible (perplexity, EDP) front, all methods
normalised by the same anchors (largest and smallest subnet on gemmini-transformer).

    python experiments/cosearch/bench_cosearch.py [--ckpt RUN] [--steps 1000] [--seeds 0 1 2]
        [--population 20] [--generations 10] [--area-budget-mm2 A]

Writes experiments/cosearch/cosearch.json and cosearch.png (trains a supernet into
runs/cosearch-supernet first when --ckpt is not given).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from costmodel.area import area
from costmodel.hardware import PRESETS, load_hardware
from costmodel.hwspace import HardwareSpace
from lut.cache import TableCache
from nas.core.atomic import atomic_write_text
from nas.core.plotting import pyplot, save_figure
from nas.pipeline import JointCosts, hardware_point, supernet_workload
from nas.search.candidate import PPL_DELTAS, lowest_within
from nas.search.config import SearchConfig
from nas.search.engine import MemoQuality, Search
from nas.search.genome import Design
from nas.search.pareto import Normaliser, pareto_indices
from supernet.perplexity import SupernetPerplexity

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def train_supernet(out: Path, steps: int) -> Path:
    from supernet.config import TrainConfig
    from supernet.train import resume_config, train
    if (out / "last.pt").is_file():
        train(resume_config(out, {"steps": steps, "progress": False}))
    else:
        train(TrainConfig(out=str(out), space="tiny", dataset=str(DATA), steps=steps,
                          eval_interval=max(1, steps // 4), progress=False))
    return out


def best_within(cands, ppl_limit: float):
    return lowest_within([c for c in cands if c.feasible], ppl_limit, "edp")


def front_hv(cands, normaliser: Normaliser) -> float:
    pts = [(c.perplexity, c.edp) for c in cands if c.feasible]
    return normaliser.hypervolume([pts[i] for i in pareto_indices(pts)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", help="a trained tiny supernet (default: train one)")
    ap.add_argument("--steps", type=int, default=1000, help="supernet steps when training")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--population", type=int, default=20)
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=2048)
    ap.add_argument("--hw-space", default="edge-hw")
    ap.add_argument("--area-budget-mm2", type=float,
                    help="default: the area of the largest preset that is a point of the space")
    ap.add_argument("--out", type=Path, default=HERE / "cosearch.json")
    args = ap.parse_args()

    t_start = time.perf_counter()
    ckpt = Path(args.ckpt) if args.ckpt else train_supernet(ROOT / "runs" / "cosearch-supernet",
                                                          args.steps)
    quality = SupernetPerplexity(ckpt, max_tokens=args.max_tokens, threads=1)
    ev = quality.evaluator
    memo = MemoQuality(quality)
    workload = supernet_workload(ev)
    hw_space = HardwareSpace.load(args.hw_space)
    presets = {n: h for n, h in PRESETS.items() if h in hw_space}
    budget = args.area_budget_mm2 or max(area(h).total_mm2 for h in presets.values())
    presets = {n: h for n, h in presets.items() if area(h).total_mm2 <= budget}
    cache = TableCache(ev.space, workload, folder=ROOT / "runs" / "cosearch-luts")
    joint_costs = JointCosts(hw_space, cache)
    anchor_hw = hw_space.decode(hw_space.encode(load_hardware(hw_space.base)))
    evaluations = args.population * (args.generations + 1)
    area_rule = SearchConfig(max_area_mm2=budget)        # the one constraint of every method
    common = {"vocab": ev.vocab_size, "max_seq": ev.block_size}

    def arch_search(hw, seed: int, generations: int):
        cfg = SearchConfig(population=args.population, generations=generations, seed=seed,
                           max_area_mm2=budget)
        return Search(ev.space, memo, cache.table(hw), cfg, hardware=hardware_point(hw),
                      **common).run()

    # the anchors, on gemmini-transformer: every method is normalised by them
    ref = arch_search(load_hardware("gemmini-transformer"), 0, 0)
    normaliser = Normaliser([(ref.largest.perplexity, ref.largest.edp),
                             (ref.smallest.perplexity, ref.smallest.edp)])
    base_ppl = ref.largest.perplexity

    runs = []
    for seed in args.seeds:
        row = {"seed": seed, "methods": {}}
        # (i) each preset with an architecture-only search; the best one at +0.1
        preset_runs = {n: arch_search(h, seed, args.generations) for n, h in presets.items()}
        by_preset = {n: best_within(r.history, base_ppl + PPL_DELTAS[0])
                     for n, r in preset_runs.items()}
        best_name = min(by_preset, key=lambda n: by_preset[n].edp if by_preset[n] else 1e99)
        fixed = preset_runs[best_name].history
        # (ii) sequential: architecture on gemmini-transformer, then hardware for it
        first = arch_search(load_hardware("gemmini-transformer"), seed,
                            max(0, (args.generations + 1) // 2 - 1))
        seq_cands = list(first.history)
        rng = random.Random(seed)
        for delta in PPL_DELTAS:
            pick = best_within(first.history, base_ppl + delta)
            if pick is None:
                continue
            # the rest of the budget, shared by the thresholds: hardware points for `pick`
            for _ in range((evaluations - len(first.history)) // len(PPL_DELTAS)):
                cost, point = joint_costs([Design(pick.arch, hw_space.sample(rng))])[0]
                cand = pick.with_(latency_ms=cost.latency_ms, energy_mj=cost.energy_mj,
                                  edp=cost.edp, cycles=cost.cycles, hardware=point)
                seq_cands.append(cand.with_(violation=area_rule.violation(cand)))
        # (iii) joint
        joint_cfg = SearchConfig(population=args.population, generations=args.generations,
                                 seed=seed, max_area_mm2=budget)
        joint_search = Search(ev.space, memo, joint_costs, joint_cfg, hw_space=hw_space,
                              anchor_hw=anchor_hw, **common)
        joint = joint_search.run()
        for name, cands in (("best_preset", fixed), ("sequential", seq_cands),
                            ("joint", joint.history)):
            m = {"evaluations": len(cands), "hv": front_hv(cands, normaliser)}
            for delta in PPL_DELTAS:
                best = best_within(cands, base_ppl + delta)
                m[f"edp_at_+{delta:g}"] = best.edp if best else None
                m[f"design_at_+{delta:g}"] = ({"key": best.key, "perplexity": best.perplexity,
                                                "hw": dict(best.hardware.fields) or
                                                best.hardware.name,
                                                "area_mm2": best.area_mm2} if best else None)
            row["methods"][name] = m
        row["best_preset"] = best_name
        runs.append(row)
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if not kk.startswith("design")}
                          for k, v in row["methods"].items()}), row["best_preset"], flush=True)

    def gain(other: str, delta: float) -> dict:
        ratios = [r["methods"][other][f"edp_at_+{delta:g}"] / r["methods"]["joint"][
            f"edp_at_+{delta:g}"] for r in runs if r["methods"][other][f"edp_at_+{delta:g}"]
            and r["methods"]["joint"][f"edp_at_+{delta:g}"]]
        return {"mean": statistics.mean(ratios) if ratios else None, "per_seed": ratios}

    doc = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python "
                   f"{platform.python_version()}",
        "supernet": str(ckpt), "space": ev.space.name, "hw_space": hw_space.to_dict(),
        "area_budget_mm2": budget, "presets_within_budget": list(presets),
        "evaluations_per_method": evaluations, "largest_perplexity": base_ppl,
        "joint_mutation_prob": joint_search.mutation_prob,   # scaled to the joint genome
        "edp_gain_vs_best_preset": gain("best_preset", PPL_DELTAS[0])["mean"],
        "edp_gain_vs_sequential": gain("sequential", PPL_DELTAS[0])["mean"],
        "edp_gain_vs_best_preset_at_+1": gain("best_preset", PPL_DELTAS[1])["mean"],
        "edp_gain_vs_sequential_at_+1": gain("sequential", PPL_DELTAS[1])["mean"],
        "gains_per_seed": {f"{o}_+{d:g}": gain(o, d)["per_seed"]
                           for o in ("best_preset", "sequential") for d in PPL_DELTAS},
        "hv": {m: statistics.mean(r["methods"][m]["hv"] for r in runs)
               for m in ("best_preset", "sequential", "joint")},
        "targets": {"edp_gain_vs_best_preset": ">= 2", "edp_gain_vs_sequential": ">= 1.2"},
        "table_cache": {"built": cache.built, "loaded": cache.loaded, "hits": cache.hits},
        "seconds": time.perf_counter() - t_start,
        "runs": runs,
    }
    atomic_write_text(args.out, json.dumps(doc, indent=1, default=str) + "\n")
    plot(runs, args.out.with_suffix(".png"), budget)
    print({k: doc[k] for k in ("edp_gain_vs_best_preset", "edp_gain_vs_sequential", "hv")})
    return 0


def plot(runs: list[dict], path: Path, budget: float) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    methods = ("best_preset", "sequential", "joint")
    for ax, delta in zip(axes, PPL_DELTAS):
        for i, m in enumerate(methods):
            vals = [r["methods"][m][f"edp_at_+{delta:g}"] for r in runs]
            ax.scatter([i] * len(vals), vals, color=f"C{i}", s=30)
            ok = [v for v in vals if v]
            if ok:
                ax.hlines(statistics.mean(ok), i - 0.25, i + 0.25, color=f"C{i}")
        ax.set_xticks(range(len(methods)), [m.replace("_", " ") for m in methods])
        ax.set_yscale("log")
        ax.set_ylabel("lowest EDP (J s)")
        ax.set_title(f"within +{delta:g} perplexity of the largest subnet, area <= "
                     f"{budget:.3g} mm2", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"co-design: {len(runs)} seeds, same supernet, area and evaluation budget")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
