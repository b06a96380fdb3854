"""Validation loss and perplexity of subnets with inherited weights (no retraining).

The evaluation set is fixed: non-overlapping windows of the context length over the first
`max_tokens` tokens of a split, so results are deterministic. Subnets are evaluated one after the
other over the same batches of windows.

Splits: `valid` is the last 10% of a single text file, the valid/validation file of a folder,
the validation split of a hf: dataset, or the 5% after the first 90% of builtin; `test` exists
for a folder with a test file, a hf: dataset with a test split, and builtin (its last 5%).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from nas.core.arch import Arch, SearchSpace
from nas.core.errors import UserError
from nas.core.progress import progress
from supernet.checkpoint import fixed_arch_of, load_checkpoint, model_from_checkpoint, space_of
from supernet.data import Tokenizer, check_recorded_dataset, eval_windows, load_tokens
from supernet.fewshot import FewShotGPT
from supernet.model import ElasticGPT
from supernet.threads import set_threads


@torch.no_grad()
def subnet_losses(model: ElasticGPT | FewShotGPT, x: torch.Tensor, y: torch.Tensor, archs: list[Arch],
                  batch_size: int = 16, bar=None) -> list[float]:
    """Mean cross-entropy per token of each subnet over the windows x -> y; `bar` (a
    nas.core.progress bar) advances by one per subnet and batch. A few-shot supernet runs each
    subnet in the sub-supernet of its d."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    totals = [0.0] * len(archs)
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device)
        yb = y[start:start + batch_size].to(device)
        for j, arch in enumerate(archs):
            logits, _ = model(xb, arch)
            totals[j] += F.cross_entropy(logits.float().view(-1, logits.size(-1)),
                                         yb.reshape(-1), reduction="sum").item()
            if bar is not None:
                bar.update(1)
    model.train(was_training)
    return [t / y.numel() for t in totals]


def default_device(device: str | None) -> torch.device:
    """`device` (cpu, cuda, cuda:1 ...), by default cuda when available, else cpu."""
    try:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise UserError(f"unknown device '{device}': use cpu, cuda, cuda:N ...") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{device}': CUDA is not available on this machine")
    return dev


class SupernetEvaluator:
    """Perplexity of any subnet of a trained supernet, with its inherited weights.

    `ckpt` is a run directory (its best checkpoint), a checkpoint file (a one-shot or a
    few-shot supernet: `supernet.fewshot`, subnets routed by d), or an exported subnet (.pt). The model, tokenizer,
    search space and dataset recorded in the checkpoint are used; the evaluation windows are the
    first `max_tokens` tokens of `split` (all of it when None). `threads`: torch's CPU threads
    (default: chosen from the largest subnet's size, `supernet.threads`).
    """

    def __init__(self, ckpt: str | Path, split: str = "valid", max_tokens: int | None = None,
                 batch_size: int = 16, threads: int | None = None,
                 device: str | None = None) -> None:
        if batch_size <= 0:
            raise UserError(f"batch size must be positive, got {batch_size}")
        self.device = default_device(device)
        data = load_checkpoint(ckpt, "best", map_location=self.device, subnets=True)
        self.checkpoint = data["path"]
        self.step: int = data["step"]
        self.space: SearchSpace = space_of(data)
        self.fixed_arch: Arch | None = fixed_arch_of(data)
        self.model = model_from_checkpoint(data).to(self.device).eval()
        self.vocab_size: int = self.model.config.vocab_size
        self.block_size: int = self.model.config.block_size
        self.batch_size = batch_size
        self.split = split
        self.threads = set_threads(threads, self.space.largest(), self.vocab_size,
                                   batch_size * self.block_size)
        dataset = data["config"].get("dataset")
        if dataset is None:
            raise UserError(f"{self.checkpoint} records no dataset (a subnet exported by an "
                            f"older version): export it again")
        check_recorded_dataset(dataset, self.checkpoint)
        self.dataset: str = dataset
        _, tokens = load_tokens(dataset, Tokenizer.from_dict(data["tokenizer"]))
        if split not in tokens:
            raise UserError(f"dataset '{dataset}' has no '{split}' split "
                            f"(available: {', '.join(tokens)})")
        if max_tokens is not None and max_tokens <= self.block_size:
            raise UserError(f"max_tokens must exceed the context ({self.block_size}), "
                            f"got {max_tokens}")
        self.x, self.y = eval_windows(tokens[split], self.block_size, max_tokens)

    @property
    def tokens(self) -> int:
        return self.y.numel()

    def losses(self, archs: list[Arch], show_progress: bool = False) -> list[float]:
        """Mean cross-entropy per token of each subnet; a progress bar over subnets x batches
        on standard error when `show_progress`."""
        for arch in archs:
            self.space.check(arch)
        batches = -(-len(self.x) // self.batch_size)
        bar = progress(len(archs) * batches, desc=f"eval {self.split}", unit="batch",
                       enabled=show_progress)
        try:
            return subnet_losses(self.model, self.x, self.y, archs, self.batch_size, bar)
        finally:
            bar.close()

    def perplexity(self, archs: list[Arch]) -> list[float]:
        return [math.exp(loss) for loss in self.losses(archs)]
