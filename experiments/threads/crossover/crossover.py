"""Where does using every core start to pay? One thread vs all cores over a ladder of model sizes.

For each model, from the `tiny` space's smallest subnet up to d=512 with 4 layers, times one torch
thread against every usable core, alternating in the same process:
    train  a sandwich step as `nas train-supernet` takes it (largest, smallest and two random
           subnets of a space whose largest is the model; batch 12 x context 64, AdamW)
    eval   a no-grad forward of the largest over 16 windows of 64 tokens (`nas eval`'s batch)
under two conditions: `idle` (nothing else of ours running) and `one_core_held` (another process
spins on one core, as on a shared machine). Each figure is the median of --repeats timings of
--steps steps, after one warm-up step. Per step, the choice with the smaller worst case: one
thread forgoes the idle speed-up of all cores, all cores suffer their slowdown with a core held;
`supernet.threads.SINGLE_THREAD_MACS` is where that choice turns to all cores.

    python experiments/threads/crossover/crossover.py [--repeats 3] [--steps 1]

Writes crossover.json next to itself (per-model times and speed-ups, with its provenance).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from nas.core.arch import Arch, SearchSpace
from nas.core.provenance import provenance, write_result
from supernet.model import ElasticGPT, ModelConfig
from supernet.threads import forward_macs, usable_cores
from supernet.train import TrainConfig, make_optimizer, sandwich_step, step_archs

HERE = Path(__file__).resolve().parent
CONDITIONS = ("idle", "one_core_held")
VOCAB, BLOCK, TRAIN_BATCH, EVAL_BATCH = 65, 64, 12, 16   # Tiny Shakespeare, nanoGPT baby GPT

# name -> space whose largest is the model (the smaller choices are what the sandwich samples)
LADDER = {
    "tiny smallest (L2-d64)": SearchSpace(name="d64", layers=(1, 2), d=(32, 64), heads=(1, 2),
                                          ffn=(64, 128), head_dim=32),
    "L3-d96": SearchSpace(name="d96", layers=(2, 3), d=(64, 96), heads=(2, 3), ffn=(128, 384),
                          head_dim=32),
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
    opt = make_optimizer(model, cfg, torch.device("cpu"))
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


def measure(fn, counts: list[int], repeats: int, steps: int) -> dict[int, float]:
    """Median seconds per step of `fn` with each thread count, alternating counts per repeat."""
    times: dict[int, list[float]] = {n: [] for n in counts}
    for n in counts:                                   # warm-up (allocator, kernels)
        torch.set_num_threads(n)
        fn()
    for _ in range(repeats):                           # alternate: load changes hit both
        for n in counts:
            torch.set_num_threads(n)
            times[n].append(timed(fn, steps))
    return {n: statistics.median(t) for n, t in times.items()}


@contextmanager
def core_held(busy: bool) -> Iterator[None]:
    """While active, another process spins on one core (as on a shared machine)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timings per figure (median)")
    ap.add_argument("--steps", type=int, default=1, help="steps per timing")
    ap.add_argument("--out", type=Path, default=HERE / "crossover.json")
    args = ap.parse_args(argv)
    prov = provenance()
    cores = usable_cores()
    counts = sorted({1, cores})
    load_at_start = os.getloadavg()
    models = []
    for name, space in LADDER.items():
        arch: Arch = space.largest()
        row = {"model": name, "arch": arch.key, "params": arch.params(VOCAB, BLOCK)}
        for kind, (fn, tokens) in workloads(space).items():
            row[kind] = {"forward_macs": forward_macs(arch, VOCAB, tokens)}
            for condition in CONDITIONS:
                with core_held(condition == "one_core_held"):
                    med = measure(fn, counts, args.repeats, args.steps)
                row[kind][condition] = {"seconds_per_step": {str(n): med[n] for n in counts},
                                        "speedup_all_cores": med[1] / med[cores]}
                print(f"{name:24s} {kind:5s} {condition:13s} MACs "
                      f"{row[kind]['forward_macs']:.2e}  "
                      + "  ".join(f"{n} thr {med[n] * 1e3:7.1f} ms" for n in counts)
                      + f"  speed-up {med[1] / med[cores]:.2f}", flush=True)
        models.append(row)

    # Worst-case slowdown of each choice: one thread forgoes the idle speed-up; all cores suffer
    # the slowdown with a core held. The choice with the smaller worst case, by size:
    by_size = []
    for r in models:
        for k in ("train", "eval"):
            idle, held = (r[k][c]["speedup_all_cores"] for c in CONDITIONS)
            by_size.append([r[k]["forward_macs"], r["model"], k, round(idle, 2), round(held, 2),
                            "all cores" if 1 / held < idle else "one thread"])
    by_size.sort()
    result = {
        "usable_cores": cores, "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "setup": {"vocab": VOCAB, "block": BLOCK, "train_batch": TRAIN_BATCH,
                  "eval_batch": EVAL_BATCH, "repeats": args.repeats, "steps": args.steps,
                  "conditions": CONDITIONS},
        "models": models,
        "by_forward_macs": {"columns": ["forward_macs", "model", "step",
                                        *(f"speedup_{c}" for c in CONDITIONS),
                                        "smaller_worst_case_slowdown"],
                            "rows": by_size},
    }
    write_result(args.out, result, prov)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
