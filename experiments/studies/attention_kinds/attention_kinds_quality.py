"""Study 4b: language-model quality of each attention kind, each trained alone on Tiny Shakespeare.

    nice -n 5 python experiments/studies/attention_kinds/attention_kinds_quality.py

One architecture (the `tiny` space's largest, 4 layers, d 128, 4 heads of 32, FFN 512) with the
same attention kind in every layer: softmax, taylor (ViTALiTy's linear Taylor attention, causal)
and sparse local-window + global-token patterns keeping 25% and 50% of the scores. Each is
trained alone with `supernet.train.train` and the standalone recipe of the ranking benchmark
(experiments/supernet/ranking/ranking.py: character tokens, context 64, 2000 steps, 1
thread), with seeds 1337 and 1; its validation loss is that of its best checkpoint over the
whole validation split (non-overlapping 64-token windows). Reported per kind: the mean, each
seed, the standard deviation and min-max over seeds, and the perplexity of the mean loss.

Runs live in runs/attention-kinds/<key>-seed<N> and are reused when finished (an interrupted one
resumes from its last checkpoint); the JSON is rewritten after every run, so it holds the runs
finished so far.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))        # experiments/studies: common.py

from common import ROOT, SHARED_DATA, fmt_table, pyplot, save_figure

from nas.core.arch import Arch
from nas.core.attention import sparse_pattern
from nas.core.provenance import provenance, write_result

DATA = SHARED_DATA / "tinyshakespeare" / "input.txt"
NAME = "attention_kinds_quality"


@dataclass
class Config:
    arch: str = "L4-d128-h4.4.4.4-f512.512.512.512-hd32"    # the tiny space's largest
    kinds: tuple[str, ...] = ("softmax", "taylor", "sparse25", "sparse50")
    seeds: tuple[int, ...] = (1337, 1)
    steps: int = 2000
    block_size: int = 64
    runs: str = "runs/attention-kinds"


def train_run(cfg: Config, key: str, seed: int) -> Path:
    """Train `key` alone with `seed` (or reuse / resume its run directory)."""
    from supernet.train import TrainConfig, train_run

    out = ROOT / cfg.runs / f"{key}-seed{seed}"
    train_run(TrainConfig(out=str(out), arch=key, dataset=str(DATA), tokenizer="char",
                          steps=cfg.steps, block_size=cfg.block_size, seed=seed, threads=1,
                          eval_interval=max(1, cfg.steps // 8), progress=False))
    return out


def valid_loss(run_dir: Path, arch: Arch, block_size: int) -> float:
    """Loss (nats/token) of the run's best checkpoint over the whole validation split."""
    from supernet.checkpoint import load_checkpoint, model_from_checkpoint
    from supernet.data import eval_windows, load_tokens
    from supernet.evaluate import subnet_losses

    _, tokens = load_tokens(str(DATA), "char")
    x, y = eval_windows(tokens["valid"], block_size)
    model = model_from_checkpoint(load_checkpoint(run_dir, "best"))
    return subnet_losses(model, x, y, [arch], batch_size=64)[0]


def summary(losses: dict[int, float]) -> dict:
    values = list(losses.values())
    mean = statistics.fmean(values)
    return {"valid_loss": mean, "per_seed": {str(s): v for s, v in losses.items()},
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values), "perplexity": math.exp(mean),
            "seeds": len(values)}


def run(cfg: Config, out: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    prov = provenance()                          # training only: no simulator version
    base = Arch.from_key(cfg.arch)
    losses: dict[str, dict[int, float]] = {k: {} for k in cfg.kinds}
    seconds: dict[str, dict[int, float]] = {k: {} for k in cfg.kinds}
    result: dict = {}
    for seed in cfg.seeds:                       # every kind of one seed before the next seed
        for kind in cfg.kinds:
            arch = base.with_attention(kind)
            start = time.time()
            run_dir = train_run(cfg, arch.key, seed)
            losses[kind][seed] = valid_loss(run_dir, arch, cfg.block_size)
            seconds[kind][seed] = round(time.time() - start, 1)
            print(f"{arch.key} seed {seed}: valid loss {losses[kind][seed]:.4f} "
                  f"({seconds[kind][seed]:.0f} s)", flush=True)
            result = results(cfg, base, losses, seconds)
            write_result(out / f"{NAME}.json", result, prov)
    return result


def results(cfg: Config, base: Arch, losses: dict, seconds: dict) -> dict:
    patterns = {k: asdict(sparse_pattern(k, cfg.block_size, causal=True))
                | {"density": sparse_pattern(k, cfg.block_size, causal=True).density}
                for k in cfg.kinds if k.startswith("sparse")}
    return {
        "config": asdict(cfg), "dataset": "tinyshakespeare/input.txt (char, last 10% valid)",
        "keys": {k: base.with_attention(k).key for k in cfg.kinds},
        "ppl_by_kind": {k: summary(v) for k, v in losses.items() if v},
        "seconds": {k: {str(s): t for s, t in v.items()} for k, v in seconds.items() if v},
        "sparse_patterns": patterns,
        "complete": all(len(v) == len(cfg.seeds) for v in losses.values()),
    }


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    kinds = list(result["ppl_by_kind"])
    for i, kind in enumerate(kinds):
        s = result["ppl_by_kind"][kind]
        seeds = list(s["per_seed"].values())
        ax.plot([i] * len(seeds), seeds, "o", color="0.6", ms=4,
                label="one seed" if i == 0 else None)
        ax.errorbar([i], [s["valid_loss"]], yerr=[[s["valid_loss"] - s["min"]],
                                                  [s["max"] - s["valid_loss"]]],
                    fmt="D", color="C0", capsize=5, label="mean, min-max" if i == 0 else None)
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_title(f"Attention kinds, trained alone: {result['config']['arch']}\n"
                 f"Tiny Shakespeare, {result['config']['steps']} steps", fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def report(result: dict) -> str:
    rows = [[k, s["valid_loss"], s["std"] if s["std"] is not None else "-",
             f"{s['min']:.4f}-{s['max']:.4f}", s["perplexity"], s["seeds"]]
            for k, s in result["ppl_by_kind"].items()]
    return fmt_table(["kind", "valid loss (mean)", "std", "min-max", "perplexity", "seeds"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="folder for the JSON and PNG")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(Config.seeds))
    ap.add_argument("--steps", type=int, default=Config.steps)
    ap.add_argument("--runs", default=Config.runs, help="folder of the training runs "
                    "(relative to the repository root)")
    args = ap.parse_args(argv)
    if not DATA.is_file():
        sys.exit(f"missing {DATA}")
    cfg = Config(seeds=tuple(args.seeds), steps=args.steps, runs=args.runs)
    result = run(cfg, args.out)
    plot(result, args.out / f"{NAME}.png")
    print(report(result))
    print(f"wrote {args.out / f'{NAME}.json'} and {NAME}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
