"""The training configuration (torch-free, so the command line can build its options from it).

Each field's `help` metadata is the text of its command-line option (`--batch-size` for
`batch_size`); fields marked `supernet_only` are not options of `nas train-subnet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nas.core.errors import UserError

# Fields that must match when resuming: they define the model and the data.
STRUCTURAL = ("space", "arch", "dataset", "tokenizer", "block_size")


def _f(default, help: str, supernet_only: bool = False):  # noqa: A002 - argparse's word
    return field(default=default, metadata={"help": help, "supernet_only": supernet_only})


@dataclass
class TrainConfig:
    out: str = _f("runs/supernet", "run directory (checkpoints, logs, plot)")
    space: str = _f("tiny", "search-space preset (survey, tiny) or YAML file", True)
    arch: str | None = _f(None, "train this one architecture alone (YAML file or key)")
    dataset: str = _f("builtin", "text file (90/10 split), folder with train/valid[/test] "
                                 "files, hf:NAME[:CONFIG], or builtin (offline stdlib docstrings)")
    tokenizer: str = _f("char", "char, or word (WikiText: whitespace tokens, <eos> per line)")
    steps: int = _f(2000, "optimizer steps")
    batch_size: int = _f(12, "sequences per micro-batch per device")
    block_size: int = _f(64, "context length (tokens)")
    grad_accum: int = _f(1, "micro-batches per optimizer step")
    lr: float = _f(1e-3, "peak learning rate (AdamW)")
    min_lr: float = _f(1e-4, "floor of the cosine decay")
    warmup: int = _f(100, "linear warmup steps")
    weight_decay: float = _f(0.1, "AdamW weight decay (matrices only)")
    beta2: float = _f(0.99, "AdamW beta2")
    grad_clip: float = _f(1.0, "gradient-norm clip (0: off)")
    dropout: float = _f(0.0, "dropout (on the largest subnet only)")
    n_random: int = _f(2, "random subnets per sandwich step", True)
    distill: bool = _f(True, "in-place distillation from the largest subnet", True)
    distill_after: int = _f(0, "students learn from the labels for the first N steps, then "
                               "from the largest (a weak early teacher can stall training)",
                            True)
    student_weight: float | None = _f(None, "weight of each smaller subnet's loss in the "
                                            "summed gradient (default: 1 / their number, so "
                                            "together they weigh as much as the largest; 1: "
                                            "plain sum)", True)
    eval_interval: int = _f(250, "steps between validations and checkpoints")
    eval_tokens: int = _f(32768, "validation tokens used by periodic evaluation")
    eval_random: int = _f(3, "fixed random subnets validated besides largest and smallest",
                          True)
    log_interval: int = _f(10, "steps between training-loss records in log.jsonl")
    seed: int = _f(1337, "random seed")
    resume: bool = _f(False, "continue the run in --out from its last.pt")
    device: str | None = _f(None, "cpu, cuda, cuda:1 ... (default: cuda if available)")
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)")
    progress: bool = _f(True, "show a progress bar")

    def validate(self) -> None:
        for name in ("steps", "batch_size", "block_size", "grad_accum", "eval_interval",
                     "eval_tokens", "log_interval"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("n_random", "eval_random", "warmup", "distill_after"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.lr or not 0 <= self.min_lr <= self.lr:
            raise UserError(f"need 0 < lr and 0 <= min_lr <= lr (lr={self.lr}, "
                            f"min_lr={self.min_lr})")
        if self.tokenizer not in ("char", "word"):
            raise UserError(f"tokenizer must be char or word, got '{self.tokenizer}'")
        if self.student_weight is not None and self.student_weight < 0:
            raise UserError(f"student_weight must be >= 0, got {self.student_weight}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.threads is not None and self.threads <= 0:
            raise UserError(f"threads must be positive, got {self.threads}")
