"""Integer genome <-> design (architecture, and hardware in a joint search).

Genome (indices into the spaces' choices):
    [depth, d, heads of layer 0 .. L-1, ffn of layer 0 .. L-1]     (L = the space's max depth)
    + [attention kind of layer 0 .. L-1]                           (spaces with several kinds)
    + [one gene per field of the hardware space]                   (joint search only)
Genes of layers beyond the genome's depth are reset to 0 ("canonical"), so two genomes that decode
to the same architecture are equal and the per-design cache never evaluates it twice.

The hardware space is any object with `genes()` -> [(field, choices)], `decode(indices)` -> a
hardware config, `encode(hw)` -> indices and, with an area budget, `within_area(indices,
max_area_mm2, rng)` -> indices (costmodel.hwspace.HardwareSpace); this module does not import
the simulator.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple, Sequence

from nas.core.arch import Arch, SearchSpace


class Design(NamedTuple):
    """What one genome decodes to: an architecture, and its hardware in a joint search (None:
    the fixed hardware of the lookup table)."""

    arch: Arch
    hw: Any = None

    @property
    def key(self) -> str:
        return self.arch.key if self.hw is None else f"{self.arch.key}@{self.hw.hash()}"


class GenomeCodec:
    def __init__(self, space: SearchSpace, hw_space: Any = None,
                 max_area_mm2: float | None = None):
        """`max_area_mm2` (a joint search): every genome's hardware is stepped down to fit
        (the hardware space's `within_area`), so no evaluation goes to hardware over budget."""
        self.space, self.hw_space, self.max_area_mm2 = space, hw_space, max_area_mm2
        self.max_layers = L = space.layers[-1]
        self.kind_genes = L if len(space.attention) > 1 else 0
        self.arch_genes = 2 + 2 * L + self.kind_genes
        hw_choices = [c for _, c in hw_space.genes()] if hw_space is not None else []
        self.choices: list[tuple[Any, ...]] = ([space.layers, space.d] + [space.heads] * L
                                               + [space.ffn] * L
                                               + [space.attention] * self.kind_genes
                                               + hw_choices)
        self.low = [0] * len(self.choices)
        self.up = [len(c) - 1 for c in self.choices]
        if hw_space is not None and max_area_mm2 is not None:     # fail before any evaluation
            hw_space.within_area([0] * len(hw_choices), max_area_mm2, random.Random(0))

    def canonical(self, genes: list[int], rng: random.Random | Any = random) -> list[int]:
        """Reset the genes of unused layers and fit the hardware genes to the area budget (both
        in place; `rng` draws the area steps) and return the genome."""
        depth, L = self.space.layers[genes[0]], self.max_layers
        for i in range(depth, L):
            genes[2 + i] = 0
            genes[2 + L + i] = 0
            if self.kind_genes:
                genes[2 + 2 * L + i] = 0
        if self.hw_space is not None and self.max_area_mm2 is not None:
            genes[self.arch_genes:] = self.hw_space.within_area(genes[self.arch_genes:],
                                                                self.max_area_mm2, rng)
        return genes

    def decode(self, genes: Sequence[int]) -> Arch:
        s, L = self.space, self.max_layers
        n = s.layers[genes[0]]
        kinds = (tuple(s.attention[g] for g in genes[2 + 2 * L:2 + 2 * L + n])
                 if self.kind_genes else s.attention[0])
        return Arch(d=s.d[genes[1]], heads=tuple(s.heads[g] for g in genes[2:2 + n]),
                    ffn=tuple(s.ffn[g] for g in genes[2 + L:2 + L + n]), head_dim=s.head_dim,
                    attention=kinds)

    def design(self, genes: Sequence[int]) -> Design:
        hw = None if self.hw_space is None else self.hw_space.decode(genes[self.arch_genes:])
        return Design(self.decode(genes), hw)

    def encode(self, arch: Arch, hw: Any = None) -> list[int]:
        """The genome of `arch` (and of `hw` in a joint search: required there)."""
        self.space.check(arch)
        s, L = self.space, self.max_layers
        genes = [s.layers.index(arch.layers), s.d.index(arch.d)] + [0] * (2 * L + self.kind_genes)
        for i, (h, f, k) in enumerate(zip(arch.heads, arch.ffn, arch.attention)):
            genes[2 + i], genes[2 + L + i] = s.heads.index(h), s.ffn.index(f)
            if self.kind_genes:
                genes[2 + 2 * L + i] = s.attention.index(k)
        if self.hw_space is not None:
            genes += self.hw_space.encode(hw)
        return genes

    def random(self, rng: random.Random) -> list[int]:
        return self.canonical([rng.randint(lo, up) for lo, up in zip(self.low, self.up)], rng)
