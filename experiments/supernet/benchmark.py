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
import math
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
from supernet.data import Tokenizer, eval_windows, get_batch, load_tokens
from supernet.evaluate import subnet_losses
from supernet.model import GPT, ElasticGPT, ModelConfig
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
        t = time.time()
        sn_dir = run(TrainConfig(out=str(runs / "supernet"), **base))
        supernet_s = time.time() - t
        tokenizer, tokens = load_tokens(str(DATA), Tokenizer.from_dict(
            load_checkpoint(sn_dir)["tokenizer"]))
        x, y = eval_windows(tokens["valid"], 64)
        archs = spread_archs(space, args.archs)
        inherited = valid_loss(sn_dir, archs, x, y)
        standalone, times = [], []
        for i, arch in enumerate(archs):
            t = time.time()
            d = run(TrainConfig(out=str(runs / f"standalone-{arch.key}"), arch=arch.key, **base))
            times.append(time.time() - t)
            standalone.append(valid_loss(d, [arch], x, y)[0])
            print(f"[{i + 1}/{len(archs)}] {arch.key}: inherited {inherited[i]:.4f} "
                  f"standalone {standalone[i]:.4f}", flush=True)
        params = [a.params(len(tokenizer.vocab), 64) for a in archs]
        tau = float(kendalltau(inherited, standalone)[0])
        tau_params = float(kendalltau([-p for p in params], standalone)[0])
        gap = inherited[0] / standalone[0] - 1
        results["quality"] = {
            "dataset": "Tiny Shakespeare, char-level, first 90% train / last 10% valid",
            "valid_tokens": y.numel(), "steps": args.steps, "recipe": {
                k: v for k, v in TrainConfig(**base).__dict__.items()
                if k in ("batch_size", "block_size", "lr", "min_lr", "warmup", "weight_decay",
                         "beta2", "grad_clip", "dropout", "n_random", "distill")},
            "largest": {"key": archs[0].key, "supernet_valid_loss": inherited[0],
                        "standalone_valid_loss": standalone[0], "relative_gap": gap,
                        "target": "within 2%", "met": bool(abs(gap) <= 0.02),
                        "reference": "nanoGPT CPU baby GPT (same architecture and recipe): "
                                     "about 1.88 after 2000 iterations"},
            "ranking": {"archs": [{"key": a.key, "params": p, "inherited_valid_loss": li,
                                   "standalone_valid_loss": ls}
                                  for a, p, li, ls in zip(archs, params, inherited, standalone)],
                        "kendall_tau_inherited_vs_standalone": tau,
                        "kendall_tau_params_proxy_vs_standalone": tau_params,
                        "target": ">= 0.8", "met": bool(tau >= 0.8)},
            "wall_time_s": {"supernet": supernet_s, "standalone": dict(
                zip((a.key for a in archs), times))},
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
        lg, rk = q["largest"], q["ranking"]
        lines += [f"## Quality ({q['dataset']}, {q['steps']} steps, {q['valid_tokens']} "
                  "validation tokens)", "",
                  f"Largest subnet `{lg['key']}`: supernet {lg['supernet_valid_loss']:.4f}, "
                  f"standalone {lg['standalone_valid_loss']:.4f}, gap "
                  f"{100 * lg['relative_gap']:+.2f}% (target within 2%: "
                  f"{'met' if lg['met'] else 'missed'}; {lg['reference']}).", "",
                  f"Ranking over {len(rk['archs'])} architectures: Kendall tau inherited vs "
                  f"standalone = {rk['kendall_tau_inherited_vs_standalone']:.3f} (target >= 0.8: "
                  f"{'met' if rk['met'] else 'missed'}); parameter-count proxy tau = "
                  f"{rk['kendall_tau_params_proxy_vs_standalone']:.3f}.", "",
                  "| architecture | params | inherited loss | standalone loss |",
                  "|---|---:|---:|---:|"]
        lines += [f"| `{a['key']}` | {a['params']:,} | {a['inherited_valid_loss']:.4f} | "
                  f"{a['standalone_valid_loss']:.4f} |" for a in rk["archs"]]
        lines += ["", f"Wall time: supernet {q['wall_time_s']['supernet']:.0f} s, standalone "
                  f"runs {sum(q['wall_time_s']['standalone'].values()):.0f} s in total "
                  "(0 s = reused).", ""]
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
