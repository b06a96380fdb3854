"""How many CPU threads torch uses: chosen from the model's size and the machine's cores.

Torch's default (one thread per core) makes small models slower, not faster: the work of one
matrix product is too small to split, and the threads' synchronisation dominates; when another
process holds a core, the spinning threads wait for it. A model whose forward pass over one batch
is below `SINGLE_THREAD_MACS` multiply-accumulates runs on one thread; larger ones on every core
this process may use. experiments/threads/ measures the crossover (threads.json).
"""

from __future__ import annotations

import os

import torch

from nas.core.arch import Arch
from nas.core.errors import UserError

# Below this many MACs per forward pass of one batch, one thread is fastest (threads.json).
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
