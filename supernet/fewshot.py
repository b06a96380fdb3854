"""Few-shot supernet split by embedding width (Few-shot NAS, Zhao et al. 2021; AutoDistil,
Xu et al. 2022; HW-GPT-Bench splits its GPT space by embedding size too).

In one elastic supernet every subnet of width d uses the first d channels of every weight, so
the d = 64 subnets share all their channels with the smallest subnet that trains every step,
and the d = 128 ones share theirs with everybody: inherited losses come out biased by d
(experiments/supernet/ranking/ranking.md). `FewShotGPT` holds one shared `ElasticGPT` (the one-shot
phase) and one sub-supernet per value of d, each an `ElasticGPT` of the space restricted to that
d. `split(optimizer)` warm-starts every sub-supernet from the shared weights (and their AdamW
moments), sliced to its width as a subnet would use them; from then on a subnet runs in the
sub-supernet of its d. Before the split every subnet runs in the shared supernet. The split is
a buffer, so a checkpoint (one file holding them all) restores the routing, and evaluation,
search and export route a subnet transparently.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn

from nas.core.arch import Arch, SearchSpace
from supernet.model import GPT, ElasticGPT, ModelConfig


def space_of_d(space: SearchSpace, d: int) -> SearchSpace:
    """`space` restricted to embedding width `d` (a sub-supernet's space)."""
    return replace(space, name=f"{space.name}-d{d}", d=(d,))


class FewShotGPT(nn.Module):
    """A shared supernet, then (after `split`) one sub-supernet per embedding width d."""

    def __init__(self, config: ModelConfig, space: SearchSpace) -> None:
        super().__init__()
        self.config, self.space = config, space
        self.shared = ElasticGPT(config, space)
        self.subs = nn.ModuleList(ElasticGPT(config, space_of_d(space, d)) for d in space.d)
        self.register_buffer("is_split", torch.tensor(False))

    def route(self, arch: Arch | None) -> tuple[ElasticGPT, Arch]:
        """The supernet that runs `arch` (the largest when None), and the arch checked."""
        arch = self.space.largest() if arch is None else self.space.check(arch)
        if not bool(self.is_split):
            return self.shared, arch
        return self.subs[self.space.d.index(arch.d)], arch

    def forward(self, idx: torch.Tensor, arch: Arch | None = None,
                targets: torch.Tensor | None = None,
                dropout: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        model, arch = self.route(arch)
        return model(idx, arch, targets, dropout)

    @torch.no_grad()
    def export(self, arch: Arch) -> GPT:
        model, arch = self.route(arch)
        return model.export(arch)

    @torch.no_grad()
    def split(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Copy the shared weights into every sub-supernet, each sliced to its width (the first
        rows and columns, as its subnets used them), with the optimizer's state of those
        weights sliced the same way; then route subnets by d."""
        shared = dict(self.shared.named_parameters())
        for sub in self.subs:
            for name, p in sub.named_parameters():
                src = shared[name]
                window = tuple(slice(0, n) for n in p.shape)
                p.copy_(src[window])
                if optimizer is not None and src in optimizer.state:
                    optimizer.state[p] = {
                        k: (v[window].clone() if torch.is_tensor(v) and v.shape == src.shape
                            else v.clone() if torch.is_tensor(v) else v)
                        for k, v in optimizer.state[src].items()}
        self.is_split.fill_(True)
