"""Integer genome <-> architecture for one search space.

Genome (indices into the space's choices):
    [depth, d, heads of layer 0 .. L-1, ffn of layer 0 .. L-1]     (L = the space's max depth)
Genes of layers beyond the genome's depth are reset to 0 ("canonical"), so two genomes that decode
to the same architecture are equal and the per-architecture cache never evaluates it twice.
"""

from __future__ import annotations

import random
from typing import Sequence

from nas.core.arch import Arch, SearchSpace


class GenomeCodec:
    def __init__(self, space: SearchSpace):
        self.space = space
        self.max_layers = space.layers[-1]
        self.choices: list[tuple[int, ...]] = ([space.layers, space.d]
                                               + [space.heads] * self.max_layers
                                               + [space.ffn] * self.max_layers)
        self.low = [0] * len(self.choices)
        self.up = [len(c) - 1 for c in self.choices]

    def canonical(self, genes: list[int]) -> list[int]:
        """Reset the genes of unused layers (in place) and return the genome."""
        depth, L = self.space.layers[genes[0]], self.max_layers
        for i in range(depth, L):
            genes[2 + i] = 0
            genes[2 + L + i] = 0
        return genes

    def decode(self, genes: Sequence[int]) -> Arch:
        s, L = self.space, self.max_layers
        n = s.layers[genes[0]]
        return Arch(d=s.d[genes[1]], heads=tuple(s.heads[g] for g in genes[2:2 + n]),
                    ffn=tuple(s.ffn[g] for g in genes[2 + L:2 + L + n]), head_dim=s.head_dim)

    def encode(self, arch: Arch) -> list[int]:
        self.space.check(arch)
        s, L = self.space, self.max_layers
        genes = [s.layers.index(arch.layers), s.d.index(arch.d)] + [0] * (2 * L)
        for i, (h, f) in enumerate(zip(arch.heads, arch.ffn)):
            genes[2 + i], genes[2 + L + i] = s.heads.index(h), s.ffn.index(f)
        return genes

    def random(self, rng: random.Random) -> list[int]:
        return self.canonical([rng.randint(lo, up) for lo, up in zip(self.low, self.up)])
