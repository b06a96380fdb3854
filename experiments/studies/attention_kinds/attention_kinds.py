"""Attention kinds as a search dimension (issue 12, study c, and the summary of studies a-c).

c. The mixed-kind space (`tiny-kinds`: softmax, taylor, sparse25, sparse50 per layer) searched
   against the softmax-only space (`tiny`) at an equal budget on the same hardware. Each space
   has its own supernet, trained with the same recipe and steps (what a user would do); both
   searches cost candidates on the same hardware and workload. Read-outs per seed: the
   hypervolume of each feasible (perplexity, EDP) front, normalised by the same anchors (the
   softmax supernet's largest and smallest subnets), the lowest EDP within +0.1 and +1
   perplexity of the softmax supernet's largest subnet, and how often each kind appears per
   layer on the mixed front. A third search, the softmax-only space on the mixed supernet's
   weights, separates what the kinds add from what training with them did to the weights.

Then writes experiments/studies/attention_kinds/attention_kinds.json with the figures of study a
(attention_kinds_cost.json: DeiT-Tiny at 197 tokens on gemmini-transformer, vitcod, vitality)
and study b (attention_kinds_quality.json: each kind trained alone on Tiny Shakespeare).

    python experiments/studies/attention_kinds/attention_kinds.py [--steps 1000] [--seeds 0 1 2]
        [--population 24] [--generations 15] [--hw gemmini-transformer]

Supernets are trained into runs/attention-kinds-supernet-{tiny,tiny-kinds} (reused when
finished).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from costmodel.hardware import load_hardware
from costmodel.simulate import SIMULATOR_VERSION
from lut.cache import TableCache
from nas.core.arch import SearchSpace
from nas.core.provenance import provenance, write_result
from nas.core.plotting import pyplot, save_figure
from nas.pipeline import hardware_point, supernet_workload
from nas.search.candidate import PPL_DELTAS, lowest_within
from nas.search.config import SearchConfig
from nas.search.build import build_search
from nas.search.costs import FixedHardware
from nas.search.quality import MemoQuality
from nas.search.pareto import Normaliser, pareto_indices
from supernet.perplexity import SupernetPerplexity

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
# search -> (its search space, the space its supernet was trained on)
SPACES = {"softmax_only": ("tiny", "tiny"), "mixed": ("tiny-kinds", "tiny-kinds"),
          "softmax_only_kinds_supernet": ("tiny", "tiny-kinds")}


def train_supernet(space: str, steps: int) -> Path:
    """The same recipe for both spaces (the project's defaults), reused when finished."""
    from supernet.config import TrainConfig
    from supernet.train import train_run
    out = ROOT / "runs" / f"attention-kinds-supernet-{space}"
    train_run(TrainConfig(out=str(out), space=space, dataset=str(DATA), steps=steps, threads=1,
                          eval_interval=max(1, steps // 4), progress=False))
    return out


def feasible_front(cands) -> list:
    feasible = [c for c in cands if c.feasible]
    pts = [(c.perplexity, c.edp) for c in feasible]
    return [feasible[i] for i in pareto_indices(pts)]


def kinds_per_layer(front) -> dict[str, dict[str, int]]:
    """How many front members use each kind, per layer index."""
    layers: dict[int, Counter] = {}
    for c in front:
        for i, kind in enumerate(c.arch.attention):
            layers.setdefault(i, Counter())[kind] += 1
    return {f"layer{i}": dict(sorted(cnt.items())) for i, cnt in sorted(layers.items())}


def summary(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="supernet steps (both spaces)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--population", type=int, default=24)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--max-tokens", type=int, default=2048,
                    help="validation tokens per perplexity (the search's default budget)")
    ap.add_argument("--hw", default="gemmini-transformer", help="the hardware of both searches")
    ap.add_argument("--softmax-ckpt", type=Path,
                    help="an existing `tiny` supernet trained with the same recipe and --steps "
                         "(e.g. runs/cosearch-supernet; default: train one)")
    ap.add_argument("--out", type=Path, default=HERE / "attention_kinds.json")
    args = ap.parse_args()
    prov = provenance(simulator_version=SIMULATOR_VERSION)

    t0 = time.perf_counter()
    hw = load_hardware(args.hw)
    point = hardware_point(hw)
    setups = {}
    qualities = {}
    for name, (space, trained_on) in SPACES.items():
        if trained_on not in qualities:
            ckpt = (args.softmax_ckpt if trained_on == "tiny" and args.softmax_ckpt
                    else train_supernet(trained_on, args.steps))
            quality = SupernetPerplexity(ckpt, max_tokens=args.max_tokens, threads=1)
            qualities[trained_on] = (quality.evaluator, MemoQuality(quality))
        ev, memo = qualities[trained_on]
        search_space = SearchSpace.load(space)
        setups[name] = (ev, memo, TableCache(search_space, supernet_workload(ev)).table(hw),
                        search_space)

    def search(name: str, seed: int, generations: int):
        ev, memo, table, search_space = setups[name]
        cfg = SearchConfig(population=args.population, generations=generations, seed=seed,
                           racing=False)
        return build_search(cfg, search_space, memo, FixedHardware(table, point),
                            vocab=ev.vocab_size, max_seq=ev.block_size).run()

    ref = search("softmax_only", 0, 0)                   # anchors of every hypervolume
    normaliser = Normaliser([(ref.largest.perplexity, ref.largest.edp),
                             (ref.smallest.perplexity, ref.smallest.edp)])
    base_ppl = ref.largest.perplexity
    runs = []
    for seed in args.seeds:
        row = {"seed": seed}
        for name in SPACES:
            result = search(name, seed, args.generations)
            front = feasible_front(result.history)
            m = {"evaluations": len(result.history),
                 "hv": normaliser.hypervolume([(c.perplexity, c.edp) for c in front]),
                 "largest_perplexity": result.largest.perplexity,
                 "front": [{"key": c.key, "perplexity": c.perplexity, "edp": c.edp}
                           for c in sorted(front, key=lambda c: c.perplexity)],
                 "kinds_on_front": kinds_per_layer(front)}
            for delta in PPL_DELTAS:
                best = lowest_within(front, base_ppl + delta, "edp")
                m[f"edp_at_+{delta:g}"] = best.edp if best else None
                m[f"key_at_+{delta:g}"] = best.key if best else None
            row[name] = m
        runs.append(row)
        print(json.dumps({n: {k: v for k, v in row[n].items() if k in ("hv", "edp_at_+0.1",
                                                                         "edp_at_+1")}
                          for n in SPACES}), flush=True)

    def mean(name: str, field: str):
        vals = [r[name][field] for r in runs if r[name][field] is not None]
        return statistics.fmean(vals) if vals else None

    cost = summary(HERE / "attention_kinds_cost.json")
    quality = summary(HERE / "attention_kinds_quality.json")
    kinds_total: dict[str, Counter] = {}
    for r in runs:
        for layer, cnt in r["mixed"]["kinds_on_front"].items():
            kinds_total.setdefault(layer, Counter()).update(cnt)
    doc = {
        "vitality_vs_dense_speedup": cost.get("vitality_vs_dense_speedup"),
        "vitality_vs_vitcod_speedup": cost.get("vitality_vs_vitcod_speedup"),
        "vitality_vs_dense_energy_ratio": cost.get("vitality_vs_dense_energy_ratio"),
        "vitality_vs_vitcod_energy_ratio": cost.get("vitality_vs_vitcod_energy_ratio"),
        "taylor_attention_cycles_4096_over_1024": cost.get(
            "taylor_attention_cycles_4096_over_1024"),
        "ppl_by_kind": quality.get("ppl_by_kind"),
        "hv_mixed": mean("mixed", "hv"),
        "hv_softmax_only": mean("softmax_only", "hv"),
        "hv_softmax_only_kinds_supernet": mean("softmax_only_kinds_supernet", "hv"),
        "hv_per_seed": {n: [r[n]["hv"] for r in runs] for n in SPACES},
        "edp_at_+0.1": {n: mean(n, "edp_at_+0.1") for n in SPACES},
        "edp_at_+1": {n: mean(n, "edp_at_+1") for n in SPACES},
        "kinds_on_mixed_front": {k: dict(sorted(v.items())) for k, v in kinds_total.items()},
        "search": {"hardware": hw.name, "population": args.population,
                   "generations": args.generations, "seeds": args.seeds,
                   "max_tokens": args.max_tokens, "supernet_steps": args.steps,
                   "supernets": {n: str(setups[n][0].checkpoint) for n in SPACES},
                   "baseline_perplexity": base_ppl, "normaliser": normaliser.to_dict(),
                   "workload": {n: setups[n][2].workload.key
                                if hasattr(setups[n][2].workload, "key") else None
                                for n in SPACES}},
        "targets": {"hv_mixed >= hv_softmax_only": None},
        "seconds": time.perf_counter() - t0,
        "runs": runs,
    }
    if doc["hv_mixed"] is not None and doc["hv_softmax_only"] is not None:
        doc["targets"]["hv_mixed >= hv_softmax_only"] = doc["hv_mixed"] >= doc["hv_softmax_only"]
    write_result(args.out, doc, prov)
    plot(runs, base_ppl, args.out.with_suffix(".png"))
    print({k: doc[k] for k in ("hv_mixed", "hv_softmax_only", "hv_softmax_only_kinds_supernet",
                               "edp_at_+0.1", "edp_at_+1")})
    return 0


def plot(runs: list[dict], base_ppl: float, path: Path) -> None:
    """Each seed's two fronts (perplexity vs EDP), with the +0.1/+1 lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colours = {"softmax_only": "tab:blue", "softmax_only_kinds_supernet": "tab:green",
               "mixed": "tab:orange"}
    for r in runs:
        for name, colour in colours.items():
            f = r[name]["front"]
            ax.step([c["perplexity"] for c in f], [c["edp"] for c in f], where="post",
                    color=colour, alpha=0.7,
                    label=name.replace("_", " ") if r is runs[0] else None)
    for delta in PPL_DELTAS:
        ax.axvline(base_ppl + delta, color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("perplexity (supernet, inherited weights)")
    ax.set_ylabel("EDP (J s)")
    ax.set_title("Mixed attention kinds vs softmax only: feasible fronts, every seed")
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
