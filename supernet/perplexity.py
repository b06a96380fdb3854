"""The supernet as the search's perplexity source: a picklable callable list[Arch] -> list[float].

The search runs it in worker processes (`--workers`): each copy loads its own supernet on first
use, so this module imports torch only then. `window_losses` gives the loss of each evaluation
window separately, for the racing evaluator (nas.search.racing), which scores candidates on a
few windows first and adds more only where the front is undecided.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from nas.core.arch import Arch


def window_losses(model, x, y, archs: list[Arch], batch_size: int = 16) -> list[list[float]]:
    """Mean cross-entropy per token of each subnet on each window x[i] -> y[i] (every window
    has the same number of tokens, so the mean of a subnet's list is its loss over all of them,
    `supernet.evaluate.subnet_losses`)."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[list[float]] = [[] for _ in archs]
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device)
            yb = y[start:start + batch_size].to(device)
            for j, arch in enumerate(archs):
                logits, _ = model(xb, arch)
                ce = F.cross_entropy(logits.float().view(-1, logits.size(-1)), yb.reshape(-1),
                                     reduction="none").view(yb.shape).mean(dim=1)
                out[j].extend(ce.tolist())
    model.train(was_training)
    return out


class SupernetPerplexity:
    """Perplexity with inherited supernet weights on a fixed validation subset."""

    def __init__(self, ckpt: str | Path, split: str = "valid", max_tokens: int | None = None,
                 batch_size: int = 16, threads: int | None = None):
        self.ckpt, self.split, self.max_tokens = str(ckpt), split, max_tokens
        self.batch_size, self.threads = batch_size, threads
        self._ev = None

    @property
    def evaluator(self):
        """The loaded `SupernetEvaluator` (loads the checkpoint and data on first use)."""
        if self._ev is None:
            from supernet.evaluate import SupernetEvaluator
            self._ev = SupernetEvaluator(self.ckpt, split=self.split, max_tokens=self.max_tokens,
                                         batch_size=self.batch_size, threads=self.threads)
        return self._ev

    def __call__(self, archs: list[Arch]) -> list[float]:
        return [float(p) for p in self.evaluator.perplexity(list(archs))]

    # -- per window (racing) ---------------------------------------------------------------------
    @property
    def windows(self) -> int:
        """Evaluation windows of the subset (each the context length)."""
        return len(self.evaluator.x)

    def window_losses(self, archs: list[Arch], windows: Sequence[int]) -> list[list[float]]:
        """Each subnet's loss (nats per token) on each of the given windows, in that order."""
        ev = self.evaluator
        for arch in archs:
            ev.space.check(arch)
        index = list(windows)
        return window_losses(ev.model, ev.x[index], ev.y[index], list(archs), self.batch_size)

    def describe(self) -> dict[str, Any]:
        return {"ckpt": str(Path(self.ckpt).resolve()), "split": self.split,
                "max_tokens": self.max_tokens}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ev": None}
