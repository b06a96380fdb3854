"""Where does using every core start to pay? One thread vs all cores over a ladder of model sizes.

For each model, from the `tiny` space's largest subnet up to d=512 with 4 layers, times with one
torch thread and with every usable core, alternating in the same process:
    train  a sandwich step as `nas train-supernet` takes it (largest, smallest and two random
           subnets of a space whose largest is the model; batch 12 x context 64, AdamW)
    eval   a no-grad forward of the largest over 16 windows of 64 tokens (`nas eval`'s batch)
Each figure is the median of --repeats timings of --steps steps, after one warm-up step. The
result fixes `supernet.threads.SINGLE_THREAD_MACS`: below the forward MACs of one batch of the
smallest model where all cores win, one thread is used.

    python experiments/threads/crossover.py [--repeats 3] [--steps 2]

Writes experiments/threads/crossover.json (machine, command, per-model times and speed-ups).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from nas.core.arch import Arch, SearchSpace
from nas.core.atomic import atomic_write_text
from supernet.model import ElasticGPT, ModelConfig
from supernet.threads import forward_macs, usable_cores
from supernet.train import TrainConfig, _optimizer, sandwich_step, step_archs

HERE = Path(__file__).resolve().parent
VOCAB, BLOCK, TRAIN_BATCH, EVAL_BATCH = 65, 64, 12, 16   # Tiny Shakespeare, nanoGPT baby GPT

# name -> space whose largest is the model (the smaller choices are what the sandwich samples)
LADDER = {
    "tiny largest (L4-d128)": SearchSpace.load("tiny"),
    "L4-d192": SearchSpace(name="d192", layers=(2, 4), d=(96, 192), heads=(3, 6),
                           ffn=(384, 768), head_dim=32),
    "L4-d256": SearchSpace(name="d256", layers=(2, 4), d=(128, 256), heads=(4, 8),
                           ffn=(512, 1024), head_dim=32),
    "L4-d384": SearchSpace(name="d384", layers=(2, 4), d=(192, 384), heads=(6, 12),
                           ffn=(768, 1536), head_dim=32),
    "L4-d512": SearchSpace(name="d512", layers=(2, 4), d=(256, 512), heads=(8, 16),
                           ffn=(1024, 2048), head_dim=32),
}


def timed(fn, steps: int) -> float:
    """Seconds per call of `fn`, over `steps` calls."""
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def workloads(space: SearchSpace) -> dict:
    """The two measured steps for `space`: a training sandwich step and an eval forward."""
    torch.manual_seed(0)
    model = ElasticGPT(ModelConfig(VOCAB, BLOCK), space)
    cfg = TrainConfig()
    opt = _optimizer(model, cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(VOCAB, (TRAIN_BATCH, BLOCK), generator=g)
    y = torch.randint(VOCAB, (TRAIN_BATCH, BLOCK), generator=g)
    xe = torch.randint(VOCAB, (EVAL_BATCH, BLOCK), generator=g)
    step = iter(range(10**9))

    def train_step() -> None:
        sandwich_step(model, x, y, step_archs(space, None, cfg, next(step)),
                      student_weight=1 / 3)
        opt.step()
        opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def eval_step() -> None:
        model.eval()(xe, space.largest())
        model.train()

    return {"train": (train_step, TRAIN_BATCH * BLOCK), "eval": (eval_step, EVAL_BATCH * BLOCK)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timings per figure (median)")
    ap.add_argument("--steps", type=int, default=2, help="steps per timing")
    ap.add_argument("--out", type=Path, default=HERE / "crossover.json")
    args = ap.parse_args(argv)
    cores = usable_cores()
    load_at_start = os.getloadavg()
    counts = sorted({1, cores})
    models = []
    for name, space in LADDER.items():
        arch: Arch = space.largest()
        row = {"model": name, "arch": arch.key, "params": arch.params(VOCAB, BLOCK)}
        for kind, (fn, tokens) in workloads(space).items():
            times: dict[int, list[float]] = {n: [] for n in counts}
            for n in counts:                           # warm-up (allocator, kernels)
                torch.set_num_threads(n)
                fn()
            for _ in range(args.repeats):              # alternate: load changes hit both
                for n in counts:
                    torch.set_num_threads(n)
                    times[n].append(timed(fn, args.steps))
            med = {n: statistics.median(t) for n, t in times.items()}
            row[kind] = {"forward_macs": forward_macs(arch, VOCAB, tokens),
                         "seconds_per_step": {str(n): med[n] for n in counts},
                         "speedup_all_cores": med[1] / med[cores]}
            print(f"{name:24s} {kind:5s} MACs {row[kind]['forward_macs']:.2e}  "
                  + "  ".join(f"{n} thr {med[n] * 1e3:7.1f} ms" for n in counts)
                  + f"  speed-up {row[kind]['speedup_all_cores']:.2f}", flush=True)
        models.append(row)

    wins = [r[k]["forward_macs"] for r in models for k in ("train", "eval")
            if r[k]["speedup_all_cores"] > 1.0]
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "usable_cores": cores, "torch": torch.__version__,
                    "load_average_at_start": load_at_start,
                    "load_average_at_end": os.getloadavg()},
        "command": "python experiments/threads/crossover.py " + " ".join(sys.argv[1:]),
        "setup": {"vocab": VOCAB, "block": BLOCK, "train_batch": TRAIN_BATCH,
                  "eval_batch": EVAL_BATCH, "repeats": args.repeats, "steps": args.steps},
        "models": models,
        "smallest_forward_macs_where_all_cores_win": min(wins) if wins else None,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
