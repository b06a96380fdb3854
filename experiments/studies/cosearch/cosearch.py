"""Co-design benchmark (issue 13): the joint architecture x hardware search against
(i) the best fixed preset with an architecture-only search and (ii) sequential design (the
architecture searched on gemmini-transformer first, then the best hardware for it), with the
same supernet, the same area budget and the same evaluation budget, over several seeds.

Budget: every method evaluates `population x (generations + 1)` designs. Sequential design
spends half on the architecture search and half on hardware points for the chosen
architecture (random points of the hardware space drawn within the area budget: a point
that does not fit is redrawn, not evaluated; the exhaustive read-out below also gives it the
best point for its architecture, beyond the budget). The fixed-preset
method runs one architecture-only search per preset within the area budget and keeps, per
seed, the preset with the lowest EDP at +0.1 perplexity.

Read-outs, as the survey's Fig. 26: the lowest EDP among feasible designs within +0.1 and +1
perplexity of the largest subnet (perplexities are the supernet's, identical for every
method), and the hypervolume of each method's feasible (perplexity, EDP) front, all methods
normalised by the same anchors (largest and smallest subnet on gemmini-transformer).

What any search could reach (`reachable`, skipped with --no-reachable): every hardware point of
the space within the area budget (exhaustive: the space's `points()`), each paired with every
architecture some method measured within +0.1 / +1 perplexity; the lowest EDP bounds the gain
a better joint search could show over the best preset in this space at this budget. The
tables are cached by hardware hash in runs/cosearch-luts, so a re-run reads them back.

    python experiments/studies/cosearch/cosearch.py [--ckpt RUN] [--steps 1000] [--seeds 0 1 2]
        [--population 20] [--generations 10] [--area-budget-mm2 A] [--no-reachable]

Writes experiments/studies/cosearch/cosearch.json and cosearch.png (trains a supernet into
runs/cosearch-supernet first when --ckpt is not given).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from costmodel.area import area
from costmodel.hardware import PRESETS, load_hardware
from costmodel.hwspace import HardwareSpace
from costmodel.simulate import SIMULATOR_VERSION
from lut.cache import TableCache
from lut.table import CostTable
from nas.core.arch import Arch
from nas.core.provenance import provenance, write_result
from nas.core.plotting import pyplot, save_figure
from nas.core.progress import progress
from nas.pipeline import JointCosts, hardware_point, supernet_workload
from nas.search.candidate import PPL_DELTAS, lowest_within
from nas.search.config import SearchConfig
from nas.search.build import build_search
from nas.search.costs import FixedHardware
from nas.search.quality import MemoQuality
from nas.search.genome import Design
from nas.search.pareto import Normaliser, pareto_indices
from supernet.perplexity import SupernetPerplexity

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def train_supernet(out: Path, steps: int) -> Path:
    from supernet.config import TrainConfig
    from supernet.train import train_run
    train_run(TrainConfig(out=str(out), space="tiny", dataset=str(DATA), steps=steps,
                          eval_interval=max(1, steps // 4), progress=False))
    return out


def best_within(cands, ppl_limit: float):
    return lowest_within([c for c in cands if c.feasible], ppl_limit, "edp")


def front_hv(cands, normaliser: Normaliser) -> float:
    pts = [(c.perplexity, c.edp) for c in cands if c.feasible]
    return normaliser.hypervolume([pts[i] for i in pareto_indices(pts)])


def sample_within(hw_space: HardwareSpace, rng: random.Random, budget: float):
    """A random point of the space within the area budget: area costs nothing to compute, so
    sequential design never spends an evaluation on a point that does not fit."""
    while True:
        hw = hw_space.sample(rng)
        if area(hw).total_mm2 <= budget:
            return hw


def _lowest_edp(job: tuple) -> tuple[dict[str, tuple], dict[str, float]]:
    """One chunk of `reachable`: per perplexity limit, (EDP, perplexity, key, point index) of
    the lowest-EDP design among these hardware points; per architecture, its lowest EDP."""
    space, workload, folder, points, archs, ppl, within = job
    cache = TableCache(space, workload, folder=folder)
    best: dict[str, tuple] = {}
    per_arch = {k: float("inf") for k in archs}
    for i, hw in points:
        costs = cache.table(hw).costs(list(archs.values()))
        edp = {k: c.edp for k, c in zip(archs, costs)}
        for k, e in edp.items():
            per_arch[k] = min(per_arch[k], e)
        for name, keys in within.items():
            for k in keys:
                if name not in best or (edp[k], ppl[k]) < best[name][:2]:
                    best[name] = (edp[k], ppl[k], k, i)
    return best, per_arch


def reachable(hw_space: HardwareSpace, budget: float, space, workload, ppl: dict[str, float],
              limits: dict[str, float], folder: Path, workers: int = 1
              ) -> tuple[dict[str, dict], dict[str, float]]:
    """The lowest EDP of any design pairing a hardware point of `hw_space` within `budget` with
    a measured architecture (`ppl`: key -> perplexity) under each perplexity limit, and each
    such architecture's lowest EDP on any of those points; the points' tables are built by
    `workers` processes and cached in `folder` (lut.cache.TableCache)."""
    import multiprocessing
    within = {name: sorted(k for k, p in ppl.items() if p <= lim) for name, lim in limits.items()}
    archs = {k: Arch.from_key(k) for k in sorted({k for ks in within.values() for k in ks})}
    points = [hw for hw in hw_space.points() if area(hw).total_mm2 <= budget]
    indexed, step = list(enumerate(points)), max(1, len(points) // (16 * workers))
    chunks = [indexed[i:i + step] for i in range(0, len(points), step)]
    jobs = [(space, workload, folder, chunk, archs, {k: ppl[k] for k in archs}, within)
            for chunk in chunks]
    best: dict[str, tuple] = {}
    per_arch = {k: float("inf") for k in archs}
    bar = progress(len(points), "reachable: hardware points", unit="point")
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for chunk, (part, part_per_arch) in zip(chunks, pool.imap(_lowest_edp, jobs)):
            for name, cand in part.items():
                if name not in best or cand[:2] < best[name][:2]:
                    best[name] = cand
            for k, e in part_per_arch.items():
                per_arch[k] = min(per_arch[k], e)
            bar.update(len(chunk))
    bar.close()
    out = {}
    for name in limits:
        edp, p, k, i = best.get(name, (None, None, None, None))
        hw = points[i] if i is not None else None
        out[name] = {"edp": edp, "key": k, "perplexity": p, "architectures": len(within[name]),
                     "hardware_points": len(points),
                     "hw": hw_space.hardware_dict(hw) if hw else None,
                     "area_mm2": area(hw).total_mm2 if hw else None}
    return out, per_arch


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
    ap.add_argument("--no-reachable", action="store_true",
                    help="skip the exhaustive bound (every hardware point within the budget)")
    ap.add_argument("--workers", type=int, default=1,
                    help="processes that build the bound's tables (default 1)")
    ap.add_argument("--out", type=Path, default=HERE / "cosearch.json")
    args = ap.parse_args()
    prov = provenance(simulator_version=SIMULATOR_VERSION)

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
    evaluations = args.population * (args.generations + 1)
    area_rule = SearchConfig(max_area_mm2=budget)        # the one constraint of every method
    common = {"vocab": ev.vocab_size, "max_seq": ev.block_size}

    def arch_search(hw, seed: int, generations: int):
        # exact perplexities: the sequential method and the bound read every candidate's
        cfg = SearchConfig(population=args.population, generations=generations, seed=seed,
                           max_area_mm2=budget, racing=False)
        costs = FixedHardware(cache.table(hw), hardware_point(hw))
        return build_search(cfg, ev.space, memo, costs, **common).run()

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
            row.setdefault("sequential_picks", {})[f"+{delta:g}"] = pick.key
            # the rest of the budget, shared by the thresholds: hardware points for `pick`
            for _ in range((evaluations - len(first.history)) // len(PPL_DELTAS)):
                hw = sample_within(hw_space, rng, budget)
                cost, point = joint_costs([Design(pick.arch, hw)])[0]
                cand = pick.with_(latency_ms=cost.latency_ms, energy_mj=cost.energy_mj,
                                  edp=cost.edp, cycles=cost.cycles, hardware=point)
                seq_cands.append(cand.with_(violation=area_rule.violation(cand)))
        # (iii) joint
        joint_cfg = SearchConfig(population=args.population, generations=args.generations,
                                 seed=seed, max_area_mm2=budget, racing=False)
        joint_search = build_search(joint_cfg, ev.space, memo, joint_costs, **common)
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

    bound, per_arch = None, {}
    if not args.no_reachable:
        bound, per_arch = reachable(hw_space, budget, ev.space, workload, memo.values,
                          {f"+{d:g}": base_ppl + d for d in PPL_DELTAS}, cache.folder,
                                    args.workers)

    def gain(other: str, delta: float) -> dict:
        ratios = [r["methods"][other][f"edp_at_+{delta:g}"] / r["methods"]["joint"][
            f"edp_at_+{delta:g}"] for r in runs if r["methods"][other][f"edp_at_+{delta:g}"]
            and r["methods"]["joint"][f"edp_at_+{delta:g}"]]
        return {"mean": statistics.mean(ratios) if ratios else None, "per_seed": ratios}

    doc = {
        "supernet": str(ckpt), "space": ev.space.name, "hw_space": hw_space.to_dict(),
        "area_budget_mm2": budget, "presets_within_budget": list(presets),
        "evaluations_per_method": evaluations, "largest_perplexity": base_ppl,
        "joint_mutation_prob": joint_search.variation.mutation_prob,   # scaled to the joint genome
        "edp_gain_vs_best_preset": gain("best_preset", PPL_DELTAS[0])["mean"],
        "edp_gain_vs_sequential": gain("sequential", PPL_DELTAS[0])["mean"],
        "edp_gain_vs_best_preset_at_+1": gain("best_preset", PPL_DELTAS[1])["mean"],
        "edp_gain_vs_sequential_at_+1": gain("sequential", PPL_DELTAS[1])["mean"],
        "gains_per_seed": {f"{o}_+{d:g}": gain(o, d)["per_seed"]
                           for o in ("best_preset", "sequential") for d in PPL_DELTAS},
        "hv": {m: statistics.mean(r["methods"][m]["hv"] for r in runs)
               for m in ("best_preset", "sequential", "joint")},
        # sequential design given its best hardware (exhaustive, beyond the evaluation budget):
        # what remains of the joint search's gain is the architecture-hardware coupling
        "edp_gain_vs_sequential_best_hardware": None if bound is None else {
            f"+{d:g}": statistics.mean(per_arch[r["sequential_picks"][f"+{d:g}"]] / r["methods"][
                "joint"][f"edp_at_+{d:g}"] for r in runs) for d in PPL_DELTAS
            if all(f"+{d:g}" in r.get("sequential_picks", {}) for r in runs)},
        "targets": {"edp_gain_vs_best_preset": ">= 2", "edp_gain_vs_sequential": ">= 1.2"},
        # the most any search could gain over each method in this space at this budget
        "reachable": bound,
        "reachable_gain": None if bound is None else {
            m: {f"+{d:g}": statistics.mean(r["methods"][m][f"edp_at_+{d:g}"]
                                           / bound[f"+{d:g}"]["edp"] for r in runs)
                for d in PPL_DELTAS if bound[f"+{d:g}"]["edp"]}
            for m in ("best_preset", "sequential", "joint")},
        "table_cache": {"built": cache.built, "loaded": cache.loaded, "hits": cache.hits},
        "seconds": time.perf_counter() - t_start,
        "runs": runs,
    }
    write_result(args.out, doc, prov)
    plot(runs, args.out.with_suffix(".png"), budget, bound)
    print({k: doc[k] for k in ("edp_gain_vs_best_preset", "edp_gain_vs_sequential", "hv",
                               "reachable_gain", "edp_gain_vs_sequential_best_hardware")})
    return 0


def plot(runs: list[dict], path: Path, budget: float, bound: dict | None) -> None:
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
        if bound and bound[f"+{delta:g}"]["edp"]:
            ax.axhline(bound[f"+{delta:g}"]["edp"], color="k", ls="--", lw=1,
                       label="reachable (every hardware point)")
            ax.legend(fontsize=8)
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
