"""How many CPU threads torch uses: chosen from the model's size and the machine's cores.

Torch's default is one thread per core. On an idle machine that is faster at every model size
measured, but for small models only by a fraction of the core count; when another process holds
a core, the threads wait for it at every synchronisation, and all cores are slower than one
thread at every size. A model whose forward pass over one batch is below `SINGLE_THREAD_MACS`
multiply-accumulates runs on one thread; larger ones on every core this process may use (shared
between the processes of a DDP run).

experiments/threads/crossover/ measures it (2-core CPU, torch 2.13, medians of 3; speed-up of
all cores over one thread, idle / with a core held by another process):
    L3-d96 .. L4-d192 (2.6e8 .. 1.8e9 MACs)   idle 1.50-1.74x, core held 0.13-0.90x
    L4-d256 .. L4-d512 (2.4e9 .. 1.3e10)      idle 1.69-2.08x, core held 0.55-0.90x
Taking for each step the choice with the smaller worst case (one thread forgoes the idle
speed-up, all cores suffer the held-core slowdown), every step from L4-d256 up runs best on all
cores, while the training steps of L3-d96 .. L4-d192 (the `tiny` space's largest included) run
best on one thread: hence the boundary at 2e9. (The tiny space's smallest, L2-d64 at 5e7 MACs,
takes 3-30 ms a step, where these timings are too noisy to decide; it stays on one thread.)
"""

from __future__ import annotations

import os

import torch

from nas.core.arch import Arch
from nas.core.errors import UserError

# Below this many MACs per forward pass of one batch, one thread (experiments/threads/crossover/).
SINGLE_THREAD_MACS = 2e9


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                      # not Linux
        return os.cpu_count() or 1


def forward_macs(arch: Arch, vocab: int, tokens: int) -> float:
    """Multiply-accumulates of one forward pass over `tokens` tokens, counting every weight
    once per token (the tied LM head included; attention's products are left out: they are
    small at the contexts these models train with)."""
    return float(tokens) * arch.params(vocab)


def auto_threads(macs: float, cores: int | None = None) -> int:
    """One thread for a small model, every usable core (or `cores`) for a large one."""
    return 1 if macs < SINGLE_THREAD_MACS else (cores or usable_cores())


def set_threads(requested: int | None, arch: Arch, vocab: int, tokens: int,
                processes: int = 1) -> int:
    """Set torch's thread count: `requested`, or `auto_threads` for `arch` run on batches of
    `tokens` tokens, the cores shared by `processes` processes of this machine (DDP ranks).
    Returns the count set."""
    if requested is not None and requested < 1:
        raise UserError(f"--threads must be >= 1, got {requested}")
    n = requested or auto_threads(forward_macs(arch, vocab, tokens),
                                  max(1, usable_cores() // processes))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
