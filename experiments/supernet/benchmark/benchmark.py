"""Supernet benchmarks (run by hand, not in CI): quality of the largest subnet, ranking, speed.

    python experiments/supernet/benchmark/benchmark.py [--steps 2000] [--seeds 1337 1 2]
                                                       [--variants default n_random=4 ...]

On Tiny Shakespeare (../shared/data, character level, 90/10 split), the `tiny` space, nanoGPT's
CPU baby-GPT recipe (batch 12, context 64, lr 1e-3 -> 1e-4, warmup 100, no dropout):
 1. the largest subnet's validation loss vs the same architecture trained alone for the same
    number of steps (target: within 2%; nanoGPT's baby GPT reaches about 1.88 in 2000 steps);
 2. Kendall tau between inherited-weight and standalone validation loss over architectures
    spread over the space (target >= 0.8), beside the tau of the parameter-count proxy. Each
    architecture is trained alone once per --seeds; the standalone loss is the mean over seeds,
    and the tau between two seeds' standalone losses is the ranking's noise ceiling;
 3. throughput of the supernet at its largest subnet vs an equal static model (target ratio
    <= 1.1) and the time of one sandwich step.
Supernet variants (--variants) are TrainConfig overrides such as `n_random=4` or `seed=1`.
Training runs are kept in --runs and reused when complete, so an interrupted benchmark can be
restarted. Writes experiments/supernet/benchmark/NAME.json, NAME.md and NAME.png (the ranking plot);
NAME is --name, by default `results`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch
from scipy.stats import kendalltau

from nas.core.arch import Arch, SearchSpace
from nas.core.atomic import atomic_write_text
from nas.core.provenance import provenance, write_result
from nas.core.plotting import pyplot, save_figure
from supernet.checkpoint import load_checkpoint, model_from_checkpoint
from supernet.data import eval_windows, get_batch, load_tokens
from supernet.evaluate import subnet_losses
from supernet.model import ElasticGPT, ModelConfig
from supernet.train import TrainConfig, sandwich_step, step_archs, train_run

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
HERE = Path(__file__).resolve().parent


def spread_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    """Largest, smallest and n-2 random subnets at evenly spaced parameter-count quantiles."""
    rng = random.Random(seed)
    pool = sorted({space.sample(rng) for _ in range(500)}, key=lambda a: a.params())
    picks = [pool[round(i * (len(pool) - 1) / (n - 3))] for i in range(n - 2)]
    return [space.largest()] + picks + [space.smallest()]


def parse_variant(text: str) -> dict:
    """'default' -> {}; 'n_random=4,seed=1' -> TrainConfig overrides with the fields' types.
    Raises argparse.ArgumentTypeError (argparse prints it and exits with 2) on a bad item."""
    if text == "default":
        return {}
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in defaults or not value:
            raise argparse.ArgumentTypeError(
                f"bad variant item '{item}': want FIELD=VALUE with a TrainConfig field")
        default = defaults[key]
        try:
            if isinstance(default, bool):
                out[key] = value.lower() in ("1", "true", "yes")
            elif default is None:                 # optional numbers (student_weight, threads)
                out[key] = float(value) if "." in value else int(value)
            else:
                out[key] = type(default)(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad value in '{item}': {key} takes a {type(default).__name__}") from None
    return out


def variant_name(text: str) -> str:
    """Run-directory name: 'supernet', or e.g. 'supernet-n_random4-seed1'."""
    if text == "default":
        return "supernet"
    return "supernet-" + text.replace("=", "").replace(",", "-")


def variant(text: str) -> tuple[str, dict]:
    """A --variants item: (run-directory name, TrainConfig overrides)."""
    return variant_name(text), parse_variant(text)


def seed_groups(variants: dict) -> dict:
    """Supernets that differ only by their seed, grouped by recipe (the overrides other than the
    seed), with their mean tau and gap: one supernet's tau moves by a discordant pair (0.044
    for 10 architectures) from seed to seed."""
    groups: dict[str, list[str]] = {}
    for name, v in variants.items():
        recipe = ",".join(f"{k}={x}" for k, x in v["overrides"].items() if k != "seed")
        groups.setdefault(recipe or "default", []).append(name)
    out = {}
    for recipe, names in groups.items():
        taus = [variants[n]["kendall_tau_inherited_vs_standalone"] for n in names]
        gaps = [variants[n]["largest_relative_gap"] for n in names]
        out[recipe] = {"supernets": names, "kendall_tau": taus,
                       "mean_kendall_tau": statistics.fmean(taus), "largest_relative_gap": gaps,
                       "mean_largest_relative_gap": statistics.fmean(gaps)}
    return out


def tau(a: list[float], b: list[float]) -> float:
    return float(kendalltau(a, b)[0])


def run(cfg: TrainConfig) -> Path:
    """Train, resume or reuse (when finished) the run in cfg.out (supernet.train.train_run)."""
    plan = train_run(cfg)
    print(f"{cfg.out}: {plan.describe()}", flush=True)
    return Path(cfg.out)


def train_time(run_dir: Path) -> float:
    """Seconds of training recorded in the run's log (its last record's `time`)."""
    with open(Path(run_dir) / "log.jsonl") as f:
        return float(json.loads(f.readlines()[-1])["time"])


def valid_loss(run_dir: Path, archs: list[Arch], x, y) -> list[float]:
    model = model_from_checkpoint(load_checkpoint(run_dir, "best"))
    return subnet_losses(model, x, y, archs, batch_size=64)


def throughput(vocab: int, block: int, batch: int, space: SearchSpace, tokens: torch.Tensor,
               repeats: int = 7, iters: int = 20) -> dict:
    """Tokens/s of ElasticGPT at its largest subnet vs an equal static GPT with the same
    weights, interleaved in one run; and the time of one sandwich step vs one plain step."""
    torch.manual_seed(0)
    config = ModelConfig(vocab, block)
    elastic = ElasticGPT(config, space)
    static = elastic.export(space.largest())
    gen = torch.Generator().manual_seed(0)
    x, y = get_batch(tokens, block, batch, gen)

    def train_step(model, **kw):
        _, loss = model(x, targets=y, **kw)
        loss.backward()
        model.zero_grad(set_to_none=True)

    @torch.no_grad()
    def infer(model):
        model(x)

    def sandwich():
        archs = step_archs(space, None, TrainConfig(), 0)
        sandwich_step(elastic, x, y, archs)
        elastic.zero_grad(set_to_none=True)

    def timed(fn) -> float:
        fn()                                   # warm-up
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t) / iters

    rows = {k: [] for k in ("elastic_train", "static_train", "elastic_infer", "static_infer",
                            "sandwich")}
    for _ in range(repeats):
        rows["elastic_train"].append(timed(lambda: train_step(elastic)))
        rows["static_train"].append(timed(lambda: train_step(static)))
        rows["elastic_infer"].append(timed(lambda: infer(elastic)))
        rows["static_infer"].append(timed(lambda: infer(static)))
        rows["sandwich"].append(timed(sandwich))
    med = {k: statistics.median(v) for k, v in rows.items()}
    toks = batch * block
    return {
        "batch": batch, "block": block, "repeats": repeats, "iters_per_repeat": iters,
        "tokens_per_s": {k: toks / v for k, v in med.items() if k != "sandwich"},
        "ratio_train_time_elastic_over_static": med["elastic_train"] / med["static_train"],
        "ratio_infer_time_elastic_over_static": med["elastic_infer"] / med["static_infer"],
        "sandwich_step_s": med["sandwich"],
        "largest_train_step_s": med["elastic_train"],
        "sandwich_over_largest_step": med["sandwich"] / med["elastic_train"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--archs", type=int, default=10, help="architectures in the ranking (>= 8)")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench-supernet"))
    ap.add_argument("--name", default="results",
                    help="output stem in this folder: NAME.json, NAME.md, NAME.png")
    ap.add_argument("--only", choices=["quality", "throughput"], default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2],
                    help="seeds of the standalone runs (the ground truth is their mean)")
    ap.add_argument("--variants", nargs="+", default=["default"], type=variant,
                    help="supernets to compare: 'default' or TrainConfig overrides "
                         "FIELD=VALUE[,FIELD=VALUE] (e.g. n_random=4 seed=1)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: avoids oversubscription on a shared 2-core machine)")
    args = ap.parse_args()
    if len(set(args.seeds)) != len(args.seeds):
        ap.error(f"--seeds repeats a seed: {args.seeds}")
    torch.set_num_threads(args.threads)
    if not DATA.is_file():
        sys.exit(f"missing {DATA}")
    runs = Path(args.runs)
    results_path = HERE / f"{args.name}.json"
    prov = provenance()
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    earlier = results.pop("provenance", None)
    if earlier and args.only:           # the other part stays from the run that wrote it
        results["provenance_of_kept_part"] = earlier
    space = SearchSpace.load("tiny")
    base = dict(space="tiny", dataset=str(DATA), tokenizer="char", steps=args.steps,
                threads=args.threads,
                eval_interval=max(1, args.steps // 8), progress=False)

    if args.only in (None, "quality"):
        archs = spread_archs(space, args.archs)
        tokenizer, tokens = load_tokens(str(DATA), "char")
        x, y = eval_windows(tokens["valid"], 64)
        by_seed: dict[int, list[float]] = {}
        times = {}
        for seed in args.seeds:
            suffix = "" if seed == TrainConfig().seed else f"-seed{seed}"
            by_seed[seed] = []
            for i, arch in enumerate(archs):
                d = run(TrainConfig(out=str(runs / f"standalone-{arch.key}{suffix}"),
                                    arch=arch.key, seed=seed, **base))
                times[f"{arch.key}{suffix}"] = train_time(d)
                by_seed[seed].append(valid_loss(d, [arch], x, y)[0])
                print(f"[seed {seed} {i + 1}/{len(archs)}] {arch.key}: standalone "
                      f"{by_seed[seed][i]:.4f}", flush=True)
        standalone = [statistics.fmean(v) for v in zip(*by_seed.values())]
        spread = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in zip(*by_seed.values())]
        seed_pairs = list(itertools.combinations(args.seeds, 2))
        tau_seeds = [tau(by_seed[a], by_seed[b]) for a, b in seed_pairs]
        params = [a.params(len(tokenizer.vocab), 64) for a in archs]
        tau_params = tau([-p for p in params], standalone)
        variants = {}
        for name, overrides in args.variants:
            sn_dir = run(TrainConfig(out=str(runs / name), **{**base, **overrides}))
            times[name] = train_time(sn_dir)
            inherited = valid_loss(sn_dir, archs, x, y)
            gap = inherited[0] / standalone[0] - 1
            t = tau(inherited, standalone)
            variants[name] = {
                "overrides": overrides, "largest_supernet_valid_loss": inherited[0],
                "largest_relative_gap": gap, "largest_gap_met": bool(abs(gap) <= 0.02),
                "kendall_tau_inherited_vs_standalone": t, "tau_met": bool(t >= 0.8),
                "kendall_tau_vs_each_seed": {str(s): tau(inherited, v)
                                             for s, v in by_seed.items()},
                "inherited_valid_loss": dict(zip((a.key for a in archs), inherited))}
            print(f"{name}: largest {inherited[0]:.4f} vs standalone {standalone[0]:.4f} "
                  f"({100 * gap:+.2f}%), tau {t:.3f}", flush=True)
        results["quality"] = {
            "dataset": "Tiny Shakespeare, char-level, first 90% train / last 10% valid",
            "valid_tokens": y.numel(), "steps": args.steps, "recipe": {
                k: v for k, v in TrainConfig(**base).__dict__.items()
                if k in ("batch_size", "block_size", "lr", "min_lr", "warmup", "weight_decay",
                         "beta2", "grad_clip", "dropout", "n_random", "distill", "threads")},
            "largest_key": archs[0].key,
            "largest_standalone_valid_loss": standalone[0],
            "reference": "nanoGPT CPU baby GPT (same architecture and recipe): about 1.88 "
                         "after 2000 iterations",
            "targets": {"largest_gap": "within 2%", "kendall_tau": ">= 0.8"},
            "standalone_seeds": args.seeds,
            "archs": [{"key": a.key, "params": p, "standalone_valid_loss": m,
                       "standalone_std_over_seeds": sd,
                       "standalone_by_seed": {str(s): v[i] for s, v in by_seed.items()}}
                      for i, (a, p, m, sd) in enumerate(zip(archs, params, standalone, spread))],
            "kendall_tau_params_proxy_vs_standalone": tau_params,
            "kendall_tau_between_standalone_seeds": dict(
                zip((f"{a}-{b}" for a, b in seed_pairs), tau_seeds)),
            "supernets": variants,
            "recipes_over_supernet_seeds": seed_groups(variants),
            "wall_time_s": times,
        }
        write_result(results_path, results, prov)
        plot_ranking(results["quality"], HERE / f"{args.name}.png")

    if args.only in (None, "throughput"):
        tokenizer, tokens = load_tokens(str(DATA), "char")
        results["throughput"] = throughput(len(tokenizer.vocab), 64, 12, space, tokens["train"])
        results["throughput"]["target"] = "elastic/static time ratio <= 1.1"
        results["throughput"]["met"] = bool(results["throughput"][
            "ratio_train_time_elastic_over_static"] <= 1.1)
        write_result(results_path, results, prov)
    write_markdown(results, args.name, prov)
    print(json.dumps({k: v for k, v in results.items() if k != "quality"}, indent=2))
    return 0


def write_markdown(r: dict, name: str, prov: dict) -> None:
    lines = ["# Supernet benchmarks", "", f"Command: `{prov['command']}`  ",
             f"Machine: {prov['machine']}", ""]
    q = r.get("quality")
    if q:
        seeds = q["standalone_seeds"]
        sns = list(q["supernets"])
        lines += [f"## Quality ({q['dataset']}, {q['steps']} steps, {q['valid_tokens']} "
                  "validation tokens)", "",
                  f"Largest subnet `{q['largest_key']}` trained alone: "
                  f"{q['largest_standalone_valid_loss']:.4f} (mean of seeds "
                  f"{', '.join(map(str, seeds))}; {q['reference']}).", "",
                  "Standalone ground truth = mean over seeds. Ranking noise ceiling (Kendall tau "
                  "between two seeds' standalone losses): " + ", ".join(
                      f"{k}: {v:.3f}" for k, v in q["kendall_tau_between_standalone_seeds"].items())
                  + f". Parameter-count proxy: {q['kendall_tau_params_proxy_vs_standalone']:.3f}.",
                  "", "| supernet | overrides | largest (inherited) | gap vs alone (target 2%) | "
                  "Kendall tau vs mean (target 0.8) | tau vs each seed |",
                  "|---|---|---:|---:|---:|---|"]
        for sn, v in q["supernets"].items():
            lines.append(f"| {sn} | {v['overrides'] or '-'} | "
                         f"{v['largest_supernet_valid_loss']:.4f} | "
                         f"{100 * v['largest_relative_gap']:+.2f}% | "
                         f"{v['kendall_tau_inherited_vs_standalone']:.3f} | " + ", ".join(
                             f"{t:.3f}" for t in v["kendall_tau_vs_each_seed"].values()) + " |")
        for recipe, g in q.get("recipes_over_supernet_seeds", {}).items():
            if len(g["supernets"]) > 1:
                lines += ["", f"Recipe `{recipe}` over {len(g['supernets'])} supernet seeds "
                          f"({', '.join(g['supernets'])}): mean Kendall tau "
                          f"**{g['mean_kendall_tau']:.3f}** (" + ", ".join(
                              f"{t:.3f}" for t in g["kendall_tau"]) + "), mean largest gap "
                          f"**{100 * g['mean_largest_relative_gap']:+.2f}%**."]
        lines += ["", "| architecture | params | standalone mean | std over seeds | "
                  + " | ".join(f"seed {s}" for s in seeds) + " | " + " | ".join(sns) + " |",
                  "|---|---:|---:|---:|" + "---:|" * (len(seeds) + len(sns))]
        for a in q["archs"]:
            lines.append(
                f"| `{a['key']}` | {a['params']:,} | {a['standalone_valid_loss']:.4f} | "
                f"{a['standalone_std_over_seeds']:.4f} | "
                + " | ".join(f"{a['standalone_by_seed'][str(s)]:.4f}" for s in seeds) + " | "
                + " | ".join(f"{q['supernets'][n]['inherited_valid_loss'][a['key']]:.4f}"
                             for n in sns) + " |")
        lines += ["", f"![ranking]({name}.png)", "",
                  "The students' losses are averaged (`student_weight`, the default); "
                  "summed as in BigNAS they held the largest back: see "
                  "`student_weight_1000.json` and `distillation_diagnostic.json`.", ""]
        lines += ["Training wall time (s, from each run's log; the machine was shared, so "
                  "these vary with load): " + ", ".join(
            f"{k} {v:.0f}" for k, v in q["wall_time_s"].items()), ""]
    t = r.get("throughput")
    if t:
        tps = t["tokens_per_s"]
        lines += [f"## Throughput (batch {t['batch']} x context {t['block']}, median of "
                  f"{t['repeats']} interleaved repeats)", "",
                  "| | elastic (largest subnet) | static | time ratio |", "|---|---:|---:|---:|",
                  f"| train step (fwd+bwd), tokens/s | {tps['elastic_train']:.0f} | "
                  f"{tps['static_train']:.0f} | {t['ratio_train_time_elastic_over_static']:.3f} |",
                  f"| inference (fwd), tokens/s | {tps['elastic_infer']:.0f} | "
                  f"{tps['static_infer']:.0f} | {t['ratio_infer_time_elastic_over_static']:.3f} |",
                  "", f"Sandwich step (largest + smallest + 2 random, distillation): "
                  f"{1000 * t['sandwich_step_s']:.1f} ms = {t['sandwich_over_largest_step']:.2f}x "
                  f"a plain step of the largest ({1000 * t['largest_train_step_s']:.1f} ms).", ""]
    atomic_write_text(HERE / f"{name}.md", "\n".join(lines))


def plot_ranking(q: dict, path: Path) -> None:
    """Inherited (supernet) vs standalone validation loss per architecture (labelled by its
    parameter count), one panel per supernet; error bars = std of the standalone loss over
    seeds."""
    plt = pyplot()
    names = list(q["supernets"])
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    xs = [a["standalone_valid_loss"] for a in q["archs"]]
    err = [a["standalone_std_over_seeds"] for a in q["archs"]]
    for ax, name in zip(axes.flat, names):
        v = q["supernets"][name]
        ys = [v["inherited_valid_loss"][a["key"]] for a in q["archs"]]
        ax.errorbar(xs, ys, xerr=err, fmt="o", capsize=3)
        for a, xv, yv in zip(q["archs"], xs, ys):      # label points by parameter count
            ax.annotate(f"{a['params'] / 1e3:.0f}k", (xv, yv), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        lo, hi = min(xs + ys) - 0.01, max(xs + ys) + 0.01
        ax.plot([lo, hi], [lo, hi], "k:", lw=0.8, label="y = x")
        ax.set(title=f"{name}: tau {v['kendall_tau_inherited_vs_standalone']:.3f}",
               xlabel=f"standalone loss (mean of {len(q['standalone_seeds'])} seeds)",
               ylabel="inherited loss (supernet)")
        ax.title.set_fontsize(9)
        ax.legend(loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
