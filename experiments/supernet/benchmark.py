"""Supernet benchmarks (run by hand, not in CI): quality of the largest subnet, ranking, speed.

    python experiments/supernet/benchmark.py [--steps 2000] [--runs runs/bench-supernet]

On Tiny Shakespeare (../shared/data, character level, 90/10 split), the `tiny` space, nanoGPT's
CPU baby-GPT recipe (batch 12, context 64, lr 1e-3 -> 1e-4, warmup 100, no dropout):
 1. the largest subnet's validation loss vs the same architecture trained alone for the same
    number of steps (target: within 2%; nanoGPT's baby GPT reaches about 1.88 in 2000 steps);
 2. Kendall tau between inherited-weight and standalone validation loss over architectures
    spread over the space (target >= 0.8), beside the tau of the parameter-count proxy;
 3. throughput of the supernet at its largest subnet vs an equal static model (target ratio
    <= 1.1) and the time of one sandwich step.
Training runs are kept in --runs and reused when complete, so an interrupted benchmark can be
restarted. Writes experiments/supernet/results.json and results.md.
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

import torch
from scipy.stats import kendalltau

from nas.arch import Arch, SearchSpace
from supernet.checkpoint import load_checkpoint, model_from_checkpoint
from supernet.data import eval_windows, get_batch, load_tokens
from supernet.evaluate import subnet_losses
from supernet.model import ElasticGPT, ModelConfig
from supernet.train import TrainConfig, sandwich_step, step_archs, train

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
HERE = Path(__file__).resolve().parent


def spread_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    """Largest, smallest and n-2 random subnets at evenly spaced parameter-count quantiles."""
    rng = random.Random(seed)
    pool = sorted({space.sample(rng) for _ in range(500)}, key=lambda a: a.params())
    picks = [pool[round(i * (len(pool) - 1) / (n - 3))] for i in range(n - 2)]
    return [space.largest()] + picks + [space.smallest()]


def run(cfg: TrainConfig) -> Path:
    """Train unless --runs already holds this finished run."""
    out = Path(cfg.out)
    if (out / "last.pt").is_file() and load_checkpoint(out, "last")["step"] >= cfg.steps:
        print(f"reusing {out}", flush=True)
        return out
    cfg.resume = (out / "last.pt").is_file()
    return train(cfg)


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
    ap.add_argument("--only", choices=["quality", "throughput"], default=None)
    ap.add_argument("--distill-after", type=int, nargs="+", default=[0],
                    help="supernet variants: students learn from labels for N steps first")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: avoids oversubscription on a shared 2-core machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not DATA.is_file():
        sys.exit(f"missing {DATA}")
    runs = Path(args.runs)
    results_path = HERE / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["command"] = "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:])
    results["machine"] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "note": "2 CPU cores shared with other jobs"}
    space = SearchSpace.load("tiny")
    base = dict(space="tiny", dataset=str(DATA), tokenizer="char", steps=args.steps,
                threads=args.threads,
                eval_interval=max(1, args.steps // 8), progress=False)

    if args.only in (None, "quality"):
        archs = spread_archs(space, args.archs)
        tokenizer, tokens = load_tokens(str(DATA), "char")
        x, y = eval_windows(tokens["valid"], 64)
        standalone, times = [], {}
        for i, arch in enumerate(archs):
            t = time.time()
            d = run(TrainConfig(out=str(runs / f"standalone-{arch.key}"), arch=arch.key, **base))
            times[arch.key] = time.time() - t
            standalone.append(valid_loss(d, [arch], x, y)[0])
            print(f"[{i + 1}/{len(archs)}] {arch.key}: standalone {standalone[i]:.4f}", flush=True)
        params = [a.params(len(tokenizer.vocab), 64) for a in archs]
        tau_params = float(kendalltau([-p for p in params], standalone)[0])
        variants = {}
        for after in args.distill_after:
            name = "supernet" if after == 0 else f"supernet-distill-after-{after}"
            t = time.time()
            sn_dir = run(TrainConfig(out=str(runs / name), distill_after=after, **base))
            times[name] = time.time() - t
            inherited = valid_loss(sn_dir, archs, x, y)
            tau = float(kendalltau(inherited, standalone)[0])
            gap = inherited[0] / standalone[0] - 1
            variants[name] = {
                "distill_after": after, "largest_supernet_valid_loss": inherited[0],
                "largest_relative_gap": gap, "largest_gap_met": bool(abs(gap) <= 0.02),
                "kendall_tau_inherited_vs_standalone": tau, "tau_met": bool(tau >= 0.8),
                "inherited_valid_loss": dict(zip((a.key for a in archs), inherited))}
            print(f"{name}: largest {inherited[0]:.4f} vs standalone {standalone[0]:.4f} "
                  f"({100 * gap:+.2f}%), tau {tau:.3f}", flush=True)
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
            "archs": [{"key": a.key, "params": p, "standalone_valid_loss": ls}
                      for a, p, ls in zip(archs, params, standalone)],
            "kendall_tau_params_proxy_vs_standalone": tau_params,
            "supernets": variants,
            "wall_time_s": times,
        }
        results_path.write_text(json.dumps(results, indent=2) + "\n")

    if args.only in (None, "throughput"):
        tokenizer, tokens = load_tokens(str(DATA), "char")
        results["throughput"] = throughput(len(tokenizer.vocab), 64, 12, space, tokens["train"])
        results["throughput"]["target"] = "elastic/static time ratio <= 1.1"
        results["throughput"]["met"] = bool(results["throughput"][
            "ratio_train_time_elastic_over_static"] <= 1.1)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results)
    print(json.dumps({k: v for k, v in results.items() if k != "quality"}, indent=2))
    return 0


def write_markdown(r: dict) -> None:
    lines = ["# Supernet benchmarks", "", f"Command: `{r['command']}`  ",
             f"Machine: {r['machine']}", ""]
    q = r.get("quality")
    if q:
        lines += [f"## Quality ({q['dataset']}, {q['steps']} steps, {q['valid_tokens']} "
                  "validation tokens)", "",
                  f"Largest subnet `{q['largest_key']}` trained alone: "
                  f"{q['largest_standalone_valid_loss']:.4f} ({q['reference']}). "
                  "Parameter-count proxy: Kendall tau "
                  f"{q['kendall_tau_params_proxy_vs_standalone']:.3f}.",
                  "", "| supernet | largest (inherited) | gap vs alone (target 2%) | Kendall tau "
                  "(target 0.8) |", "|---|---:|---:|---:|"]
        for name, v in q["supernets"].items():
            lines.append(f"| {name} | {v['largest_supernet_valid_loss']:.4f} | "
                         f"{100 * v['largest_relative_gap']:+.2f}% | "
                         f"{v['kendall_tau_inherited_vs_standalone']:.3f} |")
        names = list(q["supernets"])
        lines += ["", "| architecture | params | standalone | " + " | ".join(names) + " |",
                  "|---|---:|---:|" + "---:|" * len(names)]
        for a in q["archs"]:
            lines.append(f"| `{a['key']}` | {a['params']:,} | {a['standalone_valid_loss']:.4f} | "
                         + " | ".join(f"{q['supernets'][n]['inherited_valid_loss'][a['key']]:.4f}"
                                      for n in names) + " |")
        lines += ["", "The students' losses are averaged (`student_weight`, the default); "
                  "summed as in BigNAS they held the largest back: see "
                  "`student_weight_1000.json` and `distillation_diagnostic.json`.", ""]
        lines += ["", "Wall time (s; small = reused run): " + ", ".join(
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
    (HERE / "results.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
