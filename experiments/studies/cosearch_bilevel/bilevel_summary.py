"""The benchmark's summary: every setting-<name>.json of this folder combined into
cosearch_bilevel.json (issue 23's figures per space) and cosearch_bilevel.png.

Per space, at +0.1 perplexity of the largest subnet (the "+1" fields: at +1), each gain is the
mean over seeds of a method's lowest EDP over the bilevel search's (or, `reachable_*`, over
the bound's):

    edp_gain_vs_best_preset, edp_gain_vs_sequential       best preset / sequential vs bilevel
    gain_vs_sequential_exhaustive_per_seed                sequential + its best point / bilevel
    fraction_of_bound_per_seed                            bound EDP / bilevel EDP (1 = reached)
    reachable_gain_vs_sequential, reachable_gain_vs_best_preset
    evaluations                                           per method (see the benchmark)

    python experiments/studies/cosearch_bilevel/cosearch_bilevel.py --summarise
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from nas.core.plotting import pyplot, save_figure
from nas.search.candidate import PPL_DELTAS
from nas.core.provenance import write_result
from bilevel_common import HERE, run_provenance

METHODS = ("best_preset", "sequential", "sequential_exhaustive", "joint", "bilevel_cold",
           "bilevel")
TARGETS = {"bilevel_vs_sequential_exhaustive": ">= 1 in every seed and space",
           "fraction_of_bound": ">= 0.98 in every seed and space",
           "survey_edp_gain_vs_sequential": ">= 1.4", "survey_edp_gain_vs_best_preset": ">= 3",
           "inner_solve_ms_edge_hw": "<= 20 (inner_speed.json)"}


def _ratios(runs: list[dict], num: str, den: str, delta: float) -> list[float | None]:
    key = f"edp_at_+{delta:g}"
    out = []
    for r in runs:
        a, b = r["methods"][num][key], r["methods"][den][key]
        out.append(a / b if a and b else None)
    return out


def _mean(values: list) -> float | None:
    ok = [v for v in values if v is not None]
    return statistics.mean(ok) if ok else None


def space_summary(doc: dict) -> dict:
    runs, bound = doc["runs"], doc["bound"]
    out = {"hw_space": doc["hw_space"], "space": doc["space"], "workload": doc["workload"],
           "area_budget_mm2": doc["area_budget_mm2"], "supernet": doc["supernet"],
           "supernet_steps": doc["supernet_steps"], "seeds": [r["seed"] for r in runs],
           "hw_points_within_budget": doc["hw_points_within_budget"],
           "screen": doc.get("screen", 1)}     # every method's search screened (--screen)
    for delta in PPL_DELTAS:
        sfx = "" if delta == PPL_DELTAS[0] else f"_at_+{delta:g}"
        b = bound[f"+{delta:g}"]["edp"]
        out["edp_gain_vs_best_preset" + sfx] = _mean(_ratios(runs, "best_preset", "bilevel",
                                                             delta))
        out["edp_gain_vs_sequential" + sfx] = _mean(_ratios(runs, "sequential", "bilevel",
                                                            delta))
        out["edp_gain_vs_joint" + sfx] = _mean(_ratios(runs, "joint", "bilevel", delta))
        out["gain_vs_sequential_exhaustive_per_seed" + sfx] = _ratios(
            runs, "sequential_exhaustive", "bilevel", delta)
        key = f"edp_at_+{delta:g}"
        out["fraction_of_bound_per_seed" + sfx] = [
            b / r["methods"]["bilevel"][key] if b and r["methods"]["bilevel"][key] else None
            for r in runs]
        for m in ("sequential", "best_preset", "joint"):
            out[f"reachable_gain_vs_{m}" + sfx] = _mean(
                [r["methods"][m][key] / b if b and r["methods"][m][key] else None
                 for r in runs])
        out["bound" + sfx] = bound[f"+{delta:g}"]
    out["hv"] = {m: _mean([r["methods"][m]["hv"] for r in runs]) for m in METHODS
                 if m != "sequential_exhaustive"}
    out["evaluations"] = {m: _mean([r["methods"][m]["evaluations"] for r in runs])
                          for m in METHODS}
    out["architectures_measured"] = {m: _mean([r["methods"][m]["architectures"]
                                               for r in runs]) for m in METHODS}
    out["edp_at_+0.1_per_seed"] = {m: [r["methods"][m]["edp_at_+0.1"] for r in runs]
                                   for m in METHODS}
    out["best_preset_per_seed"] = [r["best_preset"] for r in runs]
    return out


def summarise(folder: Path = HERE, prov: dict | None = None) -> Path:
    """cosearch_bilevel.json and .png in `folder` from its setting-*.json (`prov`: this run's
    provenance, collected now when not given)."""
    prov = prov or run_provenance()
    docs = {json.loads(p.read_text())["setting"]["name"]: json.loads(p.read_text())
            for p in sorted(folder.glob("setting-*.json"))}
    if not docs:
        raise SystemExit(f"no setting-*.json in {folder}: run a --setting first")
    spaces = {name: space_summary(doc) for name, doc in docs.items()}
    seeds = sorted({s for sp in spaces.values() for s in sp["seeds"]})
    out = write_result(folder / "cosearch_bilevel.json", {
        "seeds": seeds, "spaces": spaces, "targets": TARGETS,
        "settings_files": [f"setting-{n}.json" for n in docs]}, prov)
    plot(docs, folder / "cosearch_bilevel.png")
    print(f"wrote {out}")
    return out


def plot(docs: dict[str, dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(docs), 2, figsize=(12, 4.2 * len(docs)), squeeze=False)
    for row, (name, doc) in zip(axes, docs.items()):
        for ax, delta in zip(row, PPL_DELTAS):
            key = f"edp_at_+{delta:g}"
            for i, m in enumerate(METHODS):
                vals = [r["methods"][m][key] for r in doc["runs"]]
                ax.scatter([i] * len(vals), vals, color=f"C{i}", s=30)
                ok = [v for v in vals if v]
                if ok:
                    ax.hlines(statistics.mean(ok), i - 0.25, i + 0.25, color=f"C{i}")
            b = doc["bound"][f"+{delta:g}"]["edp"]
            if b:
                ax.axhline(b, color="k", ls="--", lw=1, label="reachable bound")
                ax.legend(fontsize=8)
            ax.set_xticks(range(len(METHODS)), [m.replace("_", "\n") for m in METHODS],
                          fontsize=8)
            ax.set_yscale("log")
            ax.set_ylabel("lowest EDP (J s)")
            ax.set_title(f"{name}: within +{delta:g} perplexity, area <= "
                         f"{doc['area_budget_mm2']:.3g} mm2", fontsize=9)
            ax.grid(alpha=0.3, which="both")
    fig.suptitle("bilevel co-design vs joint, sequential and preset design: equal evaluation "
                 "budgets, one point per seed")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (4.2 * len(docs))))     # room for the title
    save_figure(fig, path)


__all__ = ["summarise", "space_summary"]
