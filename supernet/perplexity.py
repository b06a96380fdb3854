"""The supernet as the search's perplexity source: a picklable callable list[Arch] -> list[float].

The search runs it in worker processes (`--workers`): each copy loads its own supernet on first
use, so this module imports torch only then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.core.arch import Arch


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

    def describe(self) -> dict[str, Any]:
        return {"ckpt": str(Path(self.ckpt).resolve()), "split": self.split,
                "max_tokens": self.max_tokens}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ev": None}
