"""The training configuration (torch-free, so the command line can build its options from it).

Each field is a `nas.core.options.option`: its help is the text of its command-line option
(`--batch-size` for `batch_size`); fields marked `supernet_only` are not options of
`nas train-subnet`. A resumed run takes every setting from its checkpoint; only those in
`RESUMABLE` may be changed when resuming.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.core.errors import UserError
from nas.core.options import option
from supernet.sampling import SAMPLERS

TOKENIZERS = ("char", "word")
SANDWICH_SMALLEST = ("global", "each_d")
DISTILL_LOSSES = ("kl", "alpha")
# Settings a resumed run may change: they do not alter what is trained (steps extends the run).
RESUMABLE = ("steps", "device", "threads", "progress", "tensorboard")
# Settings that say which run a folder holds: a run asked for with other ones is another run.
RUN_IDENTITY = ("space", "arch", "dataset", "tokenizer")
# Settings whose default changed since runs recorded them: a checkpoint without one was trained
# with the value given here (few-shot became the default with the ranking benchmark's
# calibration, experiments/supernet/ranking/ranking.md).
FORMER_DEFAULTS = {"fewshot": False}


@dataclass
class TrainConfig:
    out: str = option("runs/supernet", "run directory (checkpoints, logs, plot)")
    space: str = option("tiny", "search-space preset (survey, tiny, survey-kinds, tiny-kinds) "
                                "or YAML file",
                        supernet_only=True)
    arch: str | None = option(None, "the architecture to train alone (YAML file or key)")
    dataset: str = option("builtin", "text file (90/10 split), folder with train/valid[/test] "
                                     "files, hf:NAME[:CONFIG], or builtin (offline stdlib "
                                     "docstrings); a local path is stored absolute")
    tokenizer: str = option("char", "char, or word (WikiText: whitespace tokens, <eos> per "
                                    "line)")
    steps: int = option(2000, "optimizer steps (with --resume: the new total, to extend a run)")
    batch_size: int = option(12, "sequences per micro-batch per device")
    block_size: int = option(64, "context length (tokens)")
    grad_accum: int = option(1, "micro-batches per optimizer step")
    lr: float = option(1e-3, "peak learning rate (AdamW)")
    min_lr: float = option(1e-4, "floor of the cosine decay")
    warmup: int = option(100, "linear warmup steps")
    weight_decay: float = option(0.1, "AdamW weight decay (matrices only)")
    beta2: float = option(0.99, "AdamW beta2")
    grad_clip: float = option(1.0, "gradient-norm clip (0: off)")
    dropout: float = option(0.0, "dropout (on the largest subnet only)")
    n_random: int = option(2, "random subnets per sandwich step", supernet_only=True)
    sampler: str = option(
        "uniform", "how the sandwich's random subnets are drawn: uniform (every choice "
                   "independently) or param_bins (whittle's ParamBins: from 20 equal bins of "
                   "parameter count, each bin equally often; supernet/sampling.py)",
        choices=SAMPLERS, supernet_only=True)
    distill: bool = option(True, "in-place distillation from the largest subnet",
                           supernet_only=True)
    sandwich_smallest: str = option(
        "global", "the sandwich's smallest subnets: global (the space's smallest, every step) or "
                  "each_d (the smallest of every embedding width d, so that no width's channels "
                  "are trained by a smallest subnet more than another's)",
        choices=SANDWICH_SMALLEST, supernet_only=True)
    distill_loss: str = option(
        "kl", "the students' distillation loss: kl (KL(teacher || student)) or alpha "
              "(AlphaNet's adaptive alpha-divergence: the larger of alpha = -1 and +1, "
              "importance ratio clipped at 5)", choices=DISTILL_LOSSES, supernet_only=True)
    fewshot: bool = option(True, "few-shot supernet (the default; --no-fewshot: one-shot): "
                                 "after --fewshot-after of the steps, split into one "
                                 "sub-supernet per embedding width d, each warm-started from "
                                 "the shared one; every later step trains one d's "
                                 "sub-supernet in turn (same cost per step). It ranks "
                                 "architectures better, raw and calibrated "
                                 "(experiments/supernet/ranking/ranking.md)", supernet_only=True)
    fewshot_after: float = option(0.5, "with --fewshot: the share of the steps trained as one "
                                       "shared supernet before the split", supernet_only=True)
    fewshot_every_d: bool = option(False, "with --fewshot: after the split every step trains the "
                                          "sandwich of every d's sub-supernet (the number of "
                                          "widths times the cost of a step; with "
                                          "--fewshot-after 0.6 and 3 widths, 1.8x in all)",
                                   supernet_only=True)
    distill_after: int = option(0, "students learn from the labels for the first N steps, "
                                   "then from the largest (a weak early teacher can stall "
                                   "training)", supernet_only=True)
    student_weight: float | None = option(None, "weight of each smaller subnet's loss in the "
                                                "summed gradient (default: 1 / their number, "
                                                "so together they weigh as much as the "
                                                "largest; 1: plain sum)", supernet_only=True)
    eval_interval: int = option(250, "steps between validations and checkpoints")
    eval_tokens: int = option(32768, "validation tokens used by periodic evaluation")
    eval_random: int = option(3, "fixed random subnets validated besides largest and smallest",
                              supernet_only=True)
    log_interval: int = option(10, "steps between training-loss records in log.jsonl")
    seed: int = option(1337, "random seed")
    resume: bool = option(False, "continue the run in --out from its last.pt, with its "
                                 "settings; only --steps, --device, --threads, --progress and "
                                 "--tensorboard may be changed")
    device: str | None = option(None, "cpu, cuda, cuda:1 ... (default: cuda if available)")
    threads: int | None = option(None, "torch CPU threads (default: 1 for a small model, every "
                                       "core for a large one; see supernet/threads.py)")
    progress: bool = option(True, "show a progress bar (validation results print either way)")
    tensorboard: bool = option(False, "also write TensorBoard logs to OUT/tensorboard")

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
        if self.tokenizer not in TOKENIZERS:
            raise UserError(f"tokenizer must be char or word, got '{self.tokenizer}'")
        if self.student_weight is not None and self.student_weight < 0:
            raise UserError(f"student_weight must be >= 0, got {self.student_weight}")
        if self.sandwich_smallest not in SANDWICH_SMALLEST:
            raise UserError(f"sandwich_smallest must be global or each_d, got "
                            f"'{self.sandwich_smallest}'")
        if self.sampler not in SAMPLERS:
            raise UserError(f"sampler must be uniform or param_bins, got '{self.sampler}'")
        if self.distill_loss not in DISTILL_LOSSES:
            raise UserError(f"distill_loss must be kl or alpha, got '{self.distill_loss}'")
        if not 0 < self.fewshot_after < 1:
            raise UserError(f"fewshot_after must be in (0, 1), got {self.fewshot_after}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.threads is not None and self.threads <= 0:
            raise UserError(f"threads must be positive, got {self.threads}")
