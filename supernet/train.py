"""Sandwich-rule training of the elastic supernet (BigNAS), and of one fixed subnet.

Every step, for each of `grad_accum` micro-batches: the largest subnet learns from the labels
(with dropout), then the smallest and `n_random` uniformly sampled subnets learn from the
largest's detached soft predictions (in-place distillation, KL divergence); their losses are
weighted by `student_weight` (default: averaged) and all gradients are summed before one AdamW
step with gradient clipping, linear warmup and cosine decay to `min_lr`.
With `distill_after` > 0 the students learn from the labels for that many steps first.
Width-bias options (experiments/supernet/ranking/): `sandwich_smallest="each_d"` trains the
smallest subnet of every embedding width d each step instead of only the space's smallest;
`distill_loss="alpha"` distils with AlphaNet's adaptive alpha-divergence instead of KL; `fewshot`
splits the supernet into one sub-supernet per d after `fewshot_after` of the steps
(supernet.fewshot), and each later step trains the sandwich of one d's sub-supernet in turn, or
with `fewshot_every_d` the sandwich of every sub-supernet (each clipped on its own).
`train(cfg)` with `cfg.arch` set trains that one architecture alone with the same recipe
(`nas train-subnet`): the baseline a supernet is compared against.

Multi-device: run under `torchrun --nproc_per_node N`; DistributedDataParallel with gloo on CPU
and NCCL on GPU. Each rank draws its own batches; all ranks use the same subnets.
Files in `cfg.out`: last.pt, best.pt (see supernet.checkpoint), log.jsonl (every logged step and
evaluation), eval.csv (evaluations), loss.png (loss curves), config.json, and with
`cfg.tensorboard` TensorBoard event files in tensorboard/ (the same records as log.jsonl).
A resumed run takes its settings from its checkpoint (`resume_config`); only those in
`RESUMABLE` may differ. `train_run(cfg)` trains, resumes or leaves a run folder as
`supernet.runs.plan_run` decides: what every caller that only wants a trained run uses.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from nas.core.arch import Arch, SearchSpace, resolve_model
from nas.core.atomic import atomic_path, atomic_write_text
from nas.core.errors import UserError
from nas.core.plotting import pyplot, save_figure
from nas.core.progress import progress
from nas.core.runlock import run_lock
from supernet.checkpoint import fixed_arch_of, fixed_space, save_checkpoint, space_of
from supernet.config import TrainConfig
from supernet.data import (Tokenizer, check_recorded_dataset, eval_windows, get_batch, is_local,
                           load_tokens)
from supernet.evaluate import default_device, subnet_losses
from supernet.fewshot import FewShotGPT, space_of_d
from supernet.model import ElasticGPT, ModelConfig, num_params
from supernet.runs import (RunPlan, check_resumable, is_finished, last_checkpoint, normalised,
                           plan_run, resume_config)
from supernet.sampling import sample_subnets
from supernet.tensorboard import require_tensorboard, summary_writer
from supernet.threads import set_threads

__all__ = ["TrainConfig", "train", "train_run", "plan_run", "RunPlan", "resume_config",
           "sandwich_step", "lr_factor", "step_archs", "eval_archs", "plot_losses",
           "alpha_divergence", "fewshot_split_step", "step_groups"]

# AlphaNet (Wang et al., ICML 2021): adaptive alpha-divergence between alpha- and alpha+, with the
# importance ratio (teacher / student)^alpha clipped at ALPHA_CLIP.
ALPHA_MIN, ALPHA_MAX, ALPHA_CLIP = -1.0, 1.0, 5.0


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr at `step`: linear warmup, then cosine decay to min_lr at cfg.steps."""
    if step < cfg.warmup:
        return (step + 1) / (cfg.warmup + 1)
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def fewshot_split_step(cfg: TrainConfig) -> int | None:
    """The step at which a few-shot supernet splits by d (None without `fewshot`)."""
    return round(cfg.fewshot_after * cfg.steps) if cfg.fewshot else None


def _sandwich(space: SearchSpace, cfg: TrainConfig, rng: random.Random) -> list[Arch]:
    """Largest, smallest (of every d with `sandwich_smallest="each_d"`), n_random random (drawn
    by `cfg.sampler`, supernet.sampling)."""
    smallest = ([space_of_d(space, d).smallest() for d in space.d]
                if cfg.sandwich_smallest == "each_d" else [space.smallest()])
    return [space.largest()] + smallest + sample_subnets(space, rng, cfg.n_random, cfg.sampler)


def step_archs(space: SearchSpace, fixed: Arch | None, cfg: TrainConfig, step: int) -> list[Arch]:
    """The subnets of one step: largest, smallest (of every d with `sandwich_smallest="each_d"`),
    n_random random ones; after a few-shot split, all of them of one d, taken in turn. A pure
    function of the seed and the step, so every rank and a resumed run draw the same."""
    if fixed is not None:
        return [fixed]
    rng = random.Random(f"{cfg.seed}-archs-{step}")
    split = fewshot_split_step(cfg)
    if split is not None and step >= split:
        space = space_of_d(space, space.d[(step - split) % len(space.d)])
    return _sandwich(space, cfg, rng)


def step_groups(space: SearchSpace, fixed: Arch | None, cfg: TrainConfig,
                step: int) -> list[list[Arch]]:
    """The sandwiches of one step, each led by its teacher: `step_archs`, or after a few-shot
    split with `fewshot_every_d` one sandwich per d (each sub-supernet trains every step)."""
    split = fewshot_split_step(cfg)
    if fixed is None and split is not None and step >= split and cfg.fewshot_every_d:
        rng = random.Random(f"{cfg.seed}-archs-{step}")
        return [_sandwich(space_of_d(space, d), cfg, rng) for d in space.d]
    return [step_archs(space, fixed, cfg, step)]


def teachers(groups: list[list[Arch]]) -> set[int]:
    """Indices of the teachers (the first of each group) in the flattened groups."""
    starts, n = set(), 0
    for g in groups:
        starts.add(n)
        n += len(g)
    return starts


def alpha_divergence(student_logits: torch.Tensor, teacher_log_probs: torch.Tensor,
                     alpha: float, clip: float = ALPHA_CLIP) -> torch.Tensor:
    """Per-row D_alpha(p || q) = sum q ((p/q)^alpha - 1) / (alpha (alpha - 1)), p the teacher,
    q the student, (p/q)^alpha clipped at `clip`; alpha = 1 is KL(p || q) (Amari's family as
    in AlphaNet's f_divergence)."""
    log_q = F.log_softmax(student_logits, dim=-1)
    log_ratio = teacher_log_probs - log_q
    if abs(alpha - 1.0) < 1e-6:
        return (teacher_log_probs.exp() * log_ratio).sum(-1)
    ratio_alpha = torch.exp(alpha * log_ratio).clamp(max=clip)
    return (log_q.exp() * (ratio_alpha - 1)).sum(-1) / (alpha * (alpha - 1))


def adaptive_alpha_loss(student_logits: torch.Tensor,
                        teacher_log_probs: torch.Tensor) -> torch.Tensor:
    """AlphaNet's loss: per token the larger of D_alpha- and D_alpha+, averaged."""
    return torch.maximum(alpha_divergence(student_logits, teacher_log_probs, ALPHA_MIN),
                         alpha_divergence(student_logits, teacher_log_probs, ALPHA_MAX)).mean()


def student_weight(cfg: TrainConfig, archs: list[Arch]) -> float:
    """Weight of each smaller subnet's loss: `cfg.student_weight`, by default 1 / their number.

    With a plain sum (1.0) the students' gradients outweigh the largest's in the shared weights
    and hold it back (experiments/supernet/student_weight/: +18% validation loss against
    +2% averaged, Tiny Shakespeare, 1000 steps)."""
    if cfg.student_weight is not None:
        return cfg.student_weight
    return 1.0 / max(1, len(archs) - 1)


def sandwich_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, archs: list[Arch],
                  distill: bool = True, sync: bool = True, loss_scale: float = 1.0,
                  autocast=nullcontext, scaler=None, student_weight: float = 1.0,
                  distill_loss: str = "kl") -> list[float]:
    """Forward and backward of every subnet in `archs` on one micro-batch (gradients add up).

    archs[0] (the teacher) learns from the labels with dropout; the others from its detached
    soft predictions when `distill` (KL divergence, or with `distill_loss="alpha"` AlphaNet's
    adaptive alpha-divergence), else from the labels. Under DDP only the last backward
    synchronises gradients (when `sync`): earlier ones run under `no_sync` and accumulate.
    Returns the unscaled loss of each subnet (cross-entropy, or the divergence for students).
    """
    losses, teacher = [], None
    for j, arch in enumerate(archs):
        last = j == len(archs) - 1
        ctx = model.no_sync() if isinstance(model, DDP) and not (sync and last) else nullcontext()
        with ctx:
            with autocast():
                logits, loss = model(x, arch, y, dropout=(j == 0))
                if j == 0:
                    teacher = F.softmax(logits.detach().float(), dim=-1).view(-1, logits.size(-1))
                elif distill and distill_loss == "alpha":
                    loss = adaptive_alpha_loss(logits.float().view(-1, logits.size(-1)),
                                               teacher.clamp_min(1e-30).log())
                elif distill:
                    log_p = F.log_softmax(logits.float(), dim=-1).view(-1, logits.size(-1))
                    loss = F.kl_div(log_p, teacher, reduction="batchmean")
            scaled = loss * loss_scale * (1.0 if j == 0 else student_weight)
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        losses.append(loss.item())
    return losses


# -- the training loop --------------------------------------------------------------------------

def train(cfg: TrainConfig) -> Path:
    """Train a supernet (or one fixed subnet when cfg.arch is set); return the run directory.

    With cfg.resume, continue the run in cfg.out: cfg must hold its settings (`resume_config`)."""
    cfg = normalised(cfg)
    cfg.validate()
    if cfg.tensorboard:
        require_tensorboard()
    # one run at a time in a folder (nas.core.runlock), checked before the data are loaded;
    # under torchrun rank 0 holds it for all
    with run_lock(cfg.out) if os.environ.get("RANK", "0") == "0" else nullcontext():
        return _train_ranks(cfg)


def _train_ranks(cfg: TrainConfig) -> Path:
    """`_train` on this process's rank and device (DistributedDataParallel under torchrun)."""
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    device = default_device(cfg.device)
    if ddp:
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
            torch.cuda.set_device(device)
    try:
        return _train(cfg, device, rank, world, ddp)
    finally:
        if ddp and dist.is_initialized():
            dist.destroy_process_group()


def train_run(cfg: TrainConfig) -> RunPlan:
    """Bring the run in cfg.out to cfg.steps: train it, resume it with its own settings, or
    leave it when finished (`supernet.runs.plan_run`); returns the plan carried out."""
    plan = plan_run(cfg)
    if plan.action != "skip":
        train(plan.config)
    return plan


def _train(cfg: TrainConfig, device: torch.device, rank: int, world: int, ddp: bool) -> Path:
    """Set the run up (new or resumed), then the loop: one optimizer step on each step's
    sandwich of subnets, a training record every log_interval steps, validation and checkpoints
    every eval_interval steps (and at the last step)."""
    out, main = Path(cfg.out), rank == 0
    resume = _resume_data(cfg)
    if resume is not None and is_finished(resume["step"], cfg.steps):
        if main:
            print(f"{out} is already at step {resume['step']} of {cfg.steps}: nothing to train "
                  f"(give a larger --steps to extend it)", flush=True)
        return out
    space, fixed = _space_and_arch(cfg, resume)
    torch.manual_seed(cfg.seed + rank)
    tokenizer = Tokenizer.from_dict(resume["tokenizer"]) if resume else cfg.tokenizer
    tokenizer, tokens = load_tokens(cfg.dataset, tokenizer)
    val_x, val_y = eval_windows(tokens["valid"], cfg.block_size, cfg.eval_tokens)
    threads = set_threads(cfg.threads, space.largest(), len(tokenizer.vocab),
                          cfg.batch_size * cfg.block_size,
                          processes=int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    run = _setup(cfg, space, fixed, tokenizer, device, ddp, resume)
    evals = eval_archs(space, fixed, cfg)
    log = _open_log(run, world, threads, evals, resumed=resume is not None) if main else None

    bar = progress(cfg.steps, desc="supernet" if fixed is None else "subnet", unit="step",
                   initial=run.step, enabled=main and cfg.progress)
    batch_gen = torch.Generator()
    t0 = time.time()
    run.model.train()
    try:
        while run.step < cfg.steps:
            _fewshot_split(run, announce=main)
            groups = step_groups(space, fixed, cfg, run.step)
            losses, lr, grad_norm = _optimizer_step(run, groups, tokens["train"], rank,
                                                    batch_gen)
            run.step += 1
            bar.set_postfix(loss=f"{losses[0]:.3f}", refresh=False)     # the line of this step
            bar.update(1)
            if main and (run.step % cfg.log_interval == 0 or run.step == cfg.steps):
                log.add(_train_record(run, groups, losses, lr, grad_norm, t0))
            if run.step % cfg.eval_interval == 0 or run.step == cfg.steps:
                if main:
                    _validate(run, evals, val_x, val_y, log, bar, t0)
                if ddp:
                    dist.barrier()
    finally:
        bar.close()
        if log is not None:
            log.close()
    return out


@dataclass
class _Run:
    """A run while it trains: the model (`net`: the same under DistributedDataParallel), its
    optimizer, learning-rate schedule and mixed precision, and how far it got."""

    cfg: TrainConfig
    space: SearchSpace
    fixed: Arch | None
    tokenizer: Tokenizer
    model_config: ModelConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    device: torch.device
    scaler: torch.amp.GradScaler | None = None
    autocast: Callable[[], Any] = nullcontext
    split_at: int | None = None     # the few-shot split's step (None: not a few-shot run)
    net: torch.nn.Module | None = None
    step: int = 0
    best_loss: float = math.inf

    def restore(self, data: dict[str, Any]) -> None:
        """Weights, optimizer, schedule, scaler, step and random states of a checkpoint."""
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.scheduler.load_state_dict(data["scheduler"])
        if self.scaler is not None and data.get("scaler"):
            self.scaler.load_state_dict(data["scaler"])
        self.step, self.best_loss = data["step"], data["best_loss"]
        _set_rng(data["rng"])

    def payload(self, evaluation: dict[str, Any], resumable: bool = True) -> dict[str, Any]:
        """The checkpoint of this step (supernet.checkpoint describes its fields); with
        `resumable`, the training state that --resume needs too (last.pt: best.pt is read only
        for its weights, and the optimizer's moments would double its size)."""
        data = {"model": self.model.state_dict(), "model_config": asdict(self.model_config),
                "space": self.space.to_dict(),
                "fixed_arch": self.fixed.to_dict() if self.fixed else None,
                "tokenizer": self.tokenizer.to_dict(), "config": asdict(self.cfg),
                "step": self.step, "best_loss": self.best_loss, "eval": evaluation}
        if resumable:
            data.update({"optimizer": self.optimizer.state_dict(),
                         "scheduler": self.scheduler.state_dict(),
                         "scaler": self.scaler.state_dict() if self.scaler else None,
                         "rng": _get_rng()})
        return data


def _resume_data(cfg: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint a resumed run continues from (checked against cfg); None for a new run,
    which must not overwrite one."""
    out = Path(cfg.out)
    if cfg.resume:
        data = last_checkpoint(out)
        check_resumable(data, cfg)
        check_recorded_dataset(cfg.dataset, data["path"])
        return data
    if (out / "last.pt").exists() or (out / "best.pt").exists():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose "
                        f"another --out")
    return None


def _space_and_arch(cfg: TrainConfig,
                    resume: dict[str, Any] | None) -> tuple[SearchSpace, Arch | None]:
    """The space trained, and the one architecture of a train-subnet run (its own space)."""
    if resume is not None:
        return space_of(resume), fixed_arch_of(resume)
    if not cfg.arch:
        return SearchSpace.load(cfg.space), None
    fixed = resolve_model(cfg.arch)[0]
    return fixed_space(fixed), fixed


def _mixed_precision(device: torch.device) -> tuple[torch.amp.GradScaler | None,
                                                    Callable[[], Any]]:
    """On CUDA, bfloat16 autocast (float16 with a gradient scaler where bfloat16 is missing);
    elsewhere full precision."""
    if device.type != "cuda":
        return None, nullcontext
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return scaler, lambda: torch.autocast("cuda", dtype=dtype)


def _setup(cfg: TrainConfig, space: SearchSpace, fixed: Arch | None, tokenizer: Tokenizer,
           device: torch.device, ddp: bool, resume: dict[str, Any] | None) -> _Run:
    """The model (a few-shot supernet with cfg.fewshot), AdamW, the schedule; restored from
    `resume` when given, wrapped in DistributedDataParallel under torchrun."""
    model_config = ModelConfig(len(tokenizer.vocab), cfg.block_size, cfg.dropout)
    fewshot = cfg.fewshot and fixed is None
    model = (FewShotGPT if fewshot else ElasticGPT)(model_config, space).to(device)
    optimizer = make_optimizer(model, cfg, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    scaler, autocast = _mixed_precision(device)
    run = _Run(cfg, space, fixed, tokenizer, model_config, model, optimizer, scheduler, device,
               scaler, autocast, split_at=fewshot_split_step(cfg) if fewshot else None)
    if resume:
        run.restore(resume)
    run.net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                  find_unused_parameters=fixed is None) if ddp else model
    return run


def eval_archs(space: SearchSpace, fixed: Arch | None, cfg: TrainConfig) -> dict[str, Arch]:
    """The subnets validated at every evaluation, by name: largest, smallest and eval_random
    random ones (the same for every evaluation and on resume), or the one `subnet`."""
    if fixed is not None:
        return {"subnet": fixed}
    rng = random.Random(f"{cfg.seed}-eval")
    randoms = [space.sample(rng) for _ in range(cfg.eval_random)]
    return {"largest": space.largest(), "smallest": space.smallest(),
            **{f"random{i}": arch for i, arch in enumerate(randoms)}}


def _open_log(run: _Run, world: int, threads: int, evals: dict[str, Arch],
              resumed: bool) -> RunLog:
    """The run folder made ready: records after the checkpoint dropped (an interrupted run's,
    or all of a new run's), config.json written; the log to append to."""
    cfg, out = run.cfg, Path(run.cfg.out)
    writer = (summary_writer(out / "tensorboard", purge_step=run.step) if cfg.tensorboard
              else None)
    _truncate_logs(out, run.step)
    if resumed:
        print(f"resuming {out} from step {run.step} of {cfg.steps}", flush=True)
    atomic_write_text(out / "config.json", json.dumps(
        {**asdict(cfg), "vocab_size": run.model_config.vocab_size, "world_size": world,
         "torch_threads": threads, "params_supernet": num_params(run.model),
         "eval_archs": {name: arch.key for name, arch in evals.items()}}, indent=2))
    return RunLog(out, writer, plot_title(cfg, run.space, run.fixed))


def _fewshot_split(run: _Run, announce: bool) -> None:
    """At the few-shot split's step, split the supernet into one sub-supernet per d."""
    if run.split_at is None or run.step < run.split_at or bool(run.model.is_split):
        return
    run.model.split(run.optimizer)
    if announce:
        print(f"step {run.step}: few-shot split into one sub-supernet per d "
              f"{list(run.space.d)}", flush=True)


def _optimizer_step(run: _Run, groups: list[list[Arch]], train_tokens: torch.Tensor, rank: int,
                    batch_gen: torch.Generator) -> tuple[list[float], float, float]:
    """One optimizer step: every sandwich of `groups` on each of grad_accum micro-batches
    (gradients summed), clipping, AdamW, the schedule. Returns each subnet's loss averaged
    over the micro-batches, the learning rate used and the gradient norm before clipping."""
    cfg = run.cfg
    sums = [0.0] * sum(len(g) for g in groups)
    for micro in range(cfg.grad_accum):
        # Batches are a pure function of (seed, rank, step, micro-batch): resumable.
        batch_gen.manual_seed(hash((cfg.seed, rank, run.step, micro)) & 0x7FFFFFFF)
        x, y = get_batch(train_tokens, cfg.block_size, cfg.batch_size, batch_gen)
        losses = []
        for g, archs in enumerate(groups):
            losses += sandwich_step(
                run.net, x.to(run.device), y.to(run.device), archs,
                cfg.distill and run.step >= cfg.distill_after,
                sync=micro == cfg.grad_accum - 1 and g == len(groups) - 1,
                loss_scale=1 / cfg.grad_accum, autocast=run.autocast, scaler=run.scaler,
                student_weight=student_weight(cfg, archs), distill_loss=cfg.distill_loss)
        sums = [s + v / cfg.grad_accum for s, v in zip(sums, losses)]
    grad_norm = _clip_gradients(run)
    lr = run.optimizer.param_groups[0]["lr"]
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    return sums, lr, grad_norm


def _clip_gradients(run: _Run) -> float:
    """Clip the gradient norm at grad_clip (after a few-shot split each sub-supernet is a model
    of its own, clipped alone); the largest norm before clipping (NaN when off)."""
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if run.cfg.grad_clip <= 0:
        return float("nan")
    clip_sets = ([list(sub.parameters()) for sub in run.model.subs]
                 if run.split_at is not None and bool(run.model.is_split)
                 else [list(run.model.parameters())])
    return max(torch.nn.utils.clip_grad_norm_(ps, run.cfg.grad_clip).item() for ps in clip_sets)


def _train_record(run: _Run, groups: list[list[Arch]], losses: list[float], lr: float,
                  grad_norm: float, t0: float) -> dict[str, Any]:
    """log.jsonl's record of a step: the teacher's loss, the students' mean and its kind."""
    cfg = run.cfg
    record = {"kind": "train", "step": run.step, "lr": lr, "grad_norm": grad_norm,
              "loss": losses[0], "time": time.time() - t0}
    students = [v for i, v in enumerate(losses) if i not in teachers(groups)]
    if students:
        record["student_loss"] = sum(students) / len(students)
        record["student_loss_kind"] = (cfg.distill_loss if cfg.distill
                                       and run.step > cfg.distill_after else "ce")
    return record


def _validate(run: _Run, evals: dict[str, Arch], val_x: torch.Tensor, val_y: torch.Tensor,
              log: RunLog, bar, t0: float) -> None:
    """Validate the evaluated subnets; write last.pt (and best.pt on a new lowest mean loss),
    the log, eval.csv and loss.png."""
    out = Path(run.cfg.out)
    val = subnet_losses(run.model, val_x, val_y, list(evals.values()), run.cfg.batch_size * 2)
    evaluation = {"kind": "eval", "step": run.step, **dict(zip(evals, val)),
                  "mean": sum(val) / len(val), "time": time.time() - t0}
    if evaluation["mean"] < run.best_loss:
        run.best_loss = evaluation["mean"]
        save_checkpoint(out / "best.pt", run.payload(evaluation, resumable=False))
    save_checkpoint(out / "last.pt", run.payload(evaluation))
    log.add(evaluation)
    log.flush()
    who = f"{run.fixed.key}: " if run.fixed else ""        # runs of `nas verify` interleave
    bar.write(f"{who}step {run.step}: val " + ", ".join(f"{k} {v:.4f}" for k, v in zip(evals,
                                                                                      val)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig,
                   device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, LayerNorms)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(0.9, cfg.beta2),
                             fused=device.type == "cuda")


def _get_rng() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- logs and plots -----------------------------------------------------------------------------

class RunLog:
    """The records of a run: appended to log.jsonl, mirrored as TensorBoard scalars
    (train/loss, train/lr, train/grad_norm, train/student_loss, valid/<subnet>, valid/mean) when
    a writer is given; `flush` rewrites eval.csv and loss.png."""

    def __init__(self, out: Path, writer=None, title: str = "") -> None:
        self.out, self.writer, self.title = out, writer, title

    def add(self, record: dict[str, Any]) -> None:
        with (self.out / "log.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            group = "train" if record["kind"] == "train" else "valid"
            for key, value in record.items():
                if key not in ("kind", "step", "time") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{group}/{key}", value, record["step"])

    def flush(self) -> None:
        records = read_log(self.out)
        evals = [r for r in records if r["kind"] == "eval"]
        if evals:
            keys = [k for k in evals[-1] if k != "kind"]
            with atomic_path(self.out / "eval.csv") as tmp, tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(evals)
        plot_losses(records, self.out / "loss.png", self.title)
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_log(out: str | Path) -> list[dict[str, Any]]:
    path = Path(out) / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_logs(out: Path, step: int) -> None:
    """Drop records written after the checkpoint (all of them for a new run) by a run that was
    interrupted."""
    kept = [r for r in read_log(out) if r["step"] <= step]
    atomic_write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in kept))


def plot_title(cfg: TrainConfig, space: SearchSpace, fixed: Arch | None) -> str:
    """'tinyshakespeare/input.txt, space tiny' or '..., fixed arch KEY': a local dataset by its
    folder and file name."""
    path = Path(cfg.dataset)
    dataset = (f"{path.parent.name}/{path.name}" if path.is_file() else path.name) \
        if is_local(cfg.dataset) else cfg.dataset
    return f"{dataset}, " + (f"fixed arch {fixed.key}" if fixed else f"space {space.name}")


def plot_losses(records: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Two panels: the training loss (of the largest subnet, or of the one trained subnet), and
    the validation loss of every evaluated subnet, each in its own colour and marker, with the
    training loss lighter behind for reference."""
    plt = pyplot()
    trains = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    names = [k for k in evals[-1] if k not in ("kind", "step", "mean", "time")] if evals else []
    train_label = "train loss" if names == ["subnet"] else "train loss, largest subnet"
    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    if trains:
        steps, losses = [r["step"] for r in trains], [r["loss"] for r in trains]
        ax_train.plot(steps, losses, color="tab:blue", lw=1, label=train_label)
        ax_val.plot(steps, losses, color="0.8", lw=1, zorder=1, label=train_label)
    markers = "osD^vP*X"
    for i, name in enumerate(names):
        ax_val.plot([r["step"] for r in evals], [r[name] for r in evals], zorder=2 + i,
                    color=f"C{i}", marker=markers[i % len(markers)], ms=4, lw=1.2,
                    label=f"validation, {name}")
    for ax, what in ((ax_train, "training"), (ax_val, "validation")):
        ax.set_title(what, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    ax_train.set_ylabel("cross-entropy (nats/token)")
    if title:
        fig.suptitle(title)
    # fixed margins for this fixed layout: tight_layout would draw the figure twice, and the
    # plot is redrawn at every validation
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.11, top=0.87 if title else 0.92,
                        wspace=0.04)
    save_figure(fig, path, dpi=110)
