"""How the sandwich draws its random subnets (`TrainConfig.sampler`).

    uniform      `SearchSpace.sample`: depth, d and every layer's heads and FFN width chosen
                 independently and uniformly, so parameter counts pile up in the middle of the
                 space's range and its large and small ends are rarely trained
    param_bins   parameter-stratified, after whittle's ParamBins (Sukthanker et al. 2024,
                 whittle/sampling/param_bins.py): the range of non-embedding parameter counts
                 from the smallest to the largest subnet is cut into PARAM_BINS equal bins and
                 each random subnet is drawn from a bin chosen uniformly. ParamBins rejects a
                 draw whose bin is fuller than the others (bins that are too hard to fill are
                 tolerated); here each step draws a pool of POOL uniform subnets and picks a
                 reached bin, then a subnet of it, so a step's subnets stay a pure function of
                 the seed and the step (resumable, the same on every rank)
"""

from __future__ import annotations

import random

from nas.core.arch import Arch, SearchSpace

SAMPLERS = ("uniform", "param_bins")
PARAM_BINS = 20                 # whittle's default number of bins
POOL = 100                      # uniform draws per step that the bins are filled from


def param_bins_sample(space: SearchSpace, rng: random.Random, n: int, bins: int = PARAM_BINS,
                      pool: int = POOL) -> list[Arch]:
    """`n` subnets, each from a parameter bin chosen uniformly among those a pool of `pool`
    uniform draws reaches (equal-width bins between the smallest and largest subnet)."""
    lo, hi = space.smallest().params(), space.largest().params()
    if hi == lo:
        return [space.sample(rng) for _ in range(n)]
    by_bin: dict[int, list[Arch]] = {}
    for arch in (space.sample(rng) for _ in range(pool)):
        by_bin.setdefault(min(bins - 1, (arch.params() - lo) * bins // (hi - lo)),
                          []).append(arch)
    reached = sorted(by_bin)
    return [rng.choice(by_bin[rng.choice(reached)]) for _ in range(n)]


def sample_subnets(space: SearchSpace, rng: random.Random, n: int,
                   sampler: str = "uniform") -> list[Arch]:
    """The `n` random subnets of a sandwich, drawn by `sampler` (SAMPLERS)."""
    if sampler == "param_bins":
        return param_bins_sample(space, rng, n)
    return [space.sample(rng) for _ in range(n)]
