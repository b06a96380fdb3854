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
`RESUMABLE` may differ.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from nas.core.arch import SPACE_PRESETS, Arch, SearchSpace, resolve_model
from nas.core.atomic import atomic_path, atomic_write_text
from nas.core.errors import UserError
from nas.core.options import flag_of
from nas.core.plotting import pyplot, save_figure
from nas.core.progress import progress
from supernet.checkpoint import fixed_arch_of, load_checkpoint, save_checkpoint, space_of
from supernet.config import RESUMABLE, TrainConfig
from supernet.data import (Tokenizer, check_recorded_dataset, eval_windows, get_batch, is_local,
                           load_tokens, resolve_dataset)
from supernet.evaluate import default_device, subnet_losses
from supernet.fewshot import FewShotGPT, space_of_d
from supernet.model import ElasticGPT, ModelConfig, num_params
from supernet.tensorboard import require_tensorboard, summary_writer
from supernet.threads import set_threads

__all__ = ["TrainConfig", "train", "resume_config", "sandwich_step", "lr_factor", "step_archs",
           "plot_losses", "alpha_divergence", "fewshot_split_step", "step_groups"]

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
    """Largest, smallest (of every d with `sandwich_smallest="each_d"`), n_random random."""
    smallest = ([space_of_d(space, d).smallest() for d in space.d]
                if cfg.sandwich_smallest == "each_d" else [space.smallest()])
    return [space.largest()] + smallest + [space.sample(rng) for _ in range(cfg.n_random)]


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


# -- settings and resume -------------------------------------------------------------------------

def _resolve_space(space: str) -> str:
    """A search-space YAML file as an absolute path; a preset name (or a missing file, for the
    error message) unchanged."""
    if space not in SPACE_PRESETS and Path(space).is_file():
        return str(Path(space).resolve())
    return space


def normalised(cfg: TrainConfig) -> TrainConfig:
    """`cfg` as a run records it: a local dataset or space file as an absolute path, the
    architecture as its key, so the run can be evaluated or resumed from any directory."""
    return replace(cfg, dataset=resolve_dataset(cfg.dataset), space=_resolve_space(cfg.space),
                   arch=resolve_model(cfg.arch)[0].key if cfg.arch else None)


def _last_checkpoint(out: str | Path) -> dict[str, Any]:
    if not (Path(out) / "last.pt").is_file():
        raise UserError(f"--resume: {out} holds no last.pt to resume from")
    return load_checkpoint(out, "last")


def _saved_settings(data: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig fields recorded in a checkpoint (a field it lacks keeps its default)."""
    names = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in data["config"].items() if k in names}


def resume_config(out: str | Path, given: dict[str, Any] | None = None) -> TrainConfig:
    """The settings to resume the run in `out`: those of its last checkpoint, with `given` (the
    options the user typed, as `nas.core.options.given` returns them) applied. `train` then
    refuses any of them that differs from the checkpoint, except the fields in RESUMABLE."""
    saved = _saved_settings(_last_checkpoint(out))
    return TrainConfig(**{**saved, **(given or {}), "out": str(out), "resume": True})


def _check_resumable(data: dict[str, Any], cfg: TrainConfig) -> None:
    """Every setting but RESUMABLE ones must be the checkpoint's: one line naming each that
    differs, with the checkpoint's value and the given one."""
    saved = _saved_settings(data)
    diffs = []
    for f in fields(TrainConfig):
        if f.name in RESUMABLE or f.name in ("out", "resume"):
            continue
        old = saved.get(f.name, f.default)
        if f.name == "dataset":                 # as recorded by older runs: maybe relative
            old = resolve_dataset(old)
        elif f.name == "space":
            old = _resolve_space(old)
        if old != getattr(cfg, f.name):
            diffs.append(f"{flag_of(f.name)} differs (checkpoint {old!r}, given "
                         f"{getattr(cfg, f.name)!r})")
    if diffs:
        raise UserError(f"--resume: the run in {cfg.out} was trained differently: "
                        + "; ".join(diffs) + "; only "
                        + ", ".join(flag_of(n) for n in RESUMABLE) + " may change on resume")


# -- the training loop --------------------------------------------------------------------------

def train(cfg: TrainConfig) -> Path:
    """Train a supernet (or one fixed subnet when cfg.arch is set); return the run directory.

    With cfg.resume, continue the run in cfg.out: cfg must hold its settings (`resume_config`)."""
    cfg = normalised(cfg)
    cfg.validate()
    if cfg.tensorboard:
        require_tensorboard()
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


def _train(cfg: TrainConfig, device: torch.device, rank: int, world: int, ddp: bool) -> Path:
    out = Path(cfg.out)
    main = rank == 0
    resume_data = None
    if cfg.resume:
        resume_data = _last_checkpoint(out)
        _check_resumable(resume_data, cfg)
        check_recorded_dataset(cfg.dataset, resume_data["path"])
        space, fixed = space_of(resume_data), fixed_arch_of(resume_data)
        if resume_data["step"] >= cfg.steps:
            if main:
                print(f"{out} is already at step {resume_data['step']} of {cfg.steps}: "
                      f"nothing to train (give a larger --steps to extend it)", flush=True)
            return out
    elif (out / "last.pt").exists() or (out / "best.pt").exists():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose "
                        f"another --out")
    else:
        fixed = resolve_model(cfg.arch)[0] if cfg.arch else None
        space = (SearchSpace.load(cfg.space) if fixed is None else
                 SearchSpace(name=f"fixed-{fixed.key}", layers=(fixed.layers,), d=(fixed.d,),
                             heads=fixed.heads, ffn=fixed.ffn, head_dim=fixed.head_dim,
                             attention=fixed.attention))

    torch.manual_seed(cfg.seed + rank)
    tokenizer = Tokenizer.from_dict(resume_data["tokenizer"]) if resume_data else cfg.tokenizer
    tokenizer, tokens = load_tokens(cfg.dataset, tokenizer)
    train_tokens = tokens["train"]
    val_x, val_y = eval_windows(tokens["valid"], cfg.block_size, cfg.eval_tokens)
    threads = set_threads(cfg.threads, space.largest(), len(tokenizer.vocab),
                          cfg.batch_size * cfg.block_size,
                          processes=int(os.environ.get("LOCAL_WORLD_SIZE", world)))

    model_config = ModelConfig(len(tokenizer.vocab), cfg.block_size, cfg.dropout)
    fewshot = cfg.fewshot and fixed is None
    model = (FewShotGPT if fewshot else ElasticGPT)(model_config, space).to(device)
    split_at = fewshot_split_step(cfg) if fewshot else None
    optimizer = make_optimizer(model, cfg, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    use_amp = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None
    autocast = ((lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else nullcontext)

    step, best_loss = 0, math.inf
    if resume_data:
        model.load_state_dict(resume_data["model"])
        optimizer.load_state_dict(resume_data["optimizer"])
        scheduler.load_state_dict(resume_data["scheduler"])
        if scaler is not None and resume_data.get("scaler"):
            scaler.load_state_dict(resume_data["scaler"])
        step, best_loss = resume_data["step"], resume_data["best_loss"]
        _set_rng(resume_data["rng"])
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
              find_unused_parameters=fixed is None) if ddp else model

    eval_rng = random.Random(f"{cfg.seed}-eval")
    eval_archs = ([space.largest(), space.smallest()]
                  + [space.sample(eval_rng) for _ in range(cfg.eval_random)]
                  if fixed is None else [fixed])
    eval_names = (["largest", "smallest"] + [f"random{i}" for i in range(cfg.eval_random)]
                  if fixed is None else ["subnet"])

    log = None
    if main:
        # records after `step` are from an interrupted run (or one that never checkpointed)
        writer = summary_writer(out / "tensorboard", purge_step=step) if cfg.tensorboard else None
        out.mkdir(parents=True, exist_ok=True)
        _truncate_logs(out, step)
        if resume_data:
            print(f"resuming {out} from step {step} of {cfg.steps}", flush=True)
        atomic_write_text(out / "config.json", json.dumps(
            {**asdict(cfg), "vocab_size": model_config.vocab_size, "world_size": world,
             "torch_threads": threads, "params_supernet": num_params(model),
             "eval_archs": dict(zip(eval_names, (a.key for a in eval_archs)))}, indent=2))
        log = RunLog(out, writer, plot_title(cfg, space, fixed))

    def checkpoint_payload(evaluation: dict[str, Any]) -> dict[str, Any]:
        return {"model": model.state_dict(), "model_config": asdict(model_config),
                "space": space.to_dict(), "fixed_arch": fixed.to_dict() if fixed else None,
                "tokenizer": tokenizer.to_dict(), "config": asdict(cfg),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler else None, "rng": _get_rng(),
                "step": step, "best_loss": best_loss, "eval": evaluation}

    bar = progress(cfg.steps, desc="supernet" if fixed is None else "subnet", unit="step",
                   initial=step, enabled=main and cfg.progress)
    batch_gen = torch.Generator()
    t0 = time.time()
    model.train()
    try:
        while step < cfg.steps:
            if split_at is not None and step >= split_at and not bool(model.is_split):
                model.split(optimizer)
                if main:
                    print(f"step {step}: few-shot split into one sub-supernet per d "
                          f"{list(space.d)}", flush=True)
            groups = step_groups(space, fixed, cfg, step)
            sums = [0.0] * sum(len(g) for g in groups)
            for micro in range(cfg.grad_accum):
                # Batches are a pure function of (seed, rank, step, micro-batch): resumable.
                batch_gen.manual_seed(hash((cfg.seed, rank, step, micro)) & 0x7FFFFFFF)
                x, y = get_batch(train_tokens, cfg.block_size, cfg.batch_size, batch_gen)
                losses = []
                for g, archs in enumerate(groups):
                    losses += sandwich_step(
                        net, x.to(device), y.to(device), archs,
                        cfg.distill and step >= cfg.distill_after,
                        sync=micro == cfg.grad_accum - 1 and g == len(groups) - 1,
                        loss_scale=1 / cfg.grad_accum, autocast=autocast, scaler=scaler,
                        student_weight=student_weight(cfg, archs), distill_loss=cfg.distill_loss)
                sums = [s + v / cfg.grad_accum for s, v in zip(sums, losses)]
            if scaler is not None:
                scaler.unscale_(optimizer)
            # after a few-shot split each sub-supernet is a model of its own: clipped alone
            clip_sets = ([list(sub.parameters()) for sub in model.subs]
                         if split_at is not None and bool(model.is_split)
                         else [list(model.parameters())])
            grad_norm = (max(torch.nn.utils.clip_grad_norm_(ps, cfg.grad_clip).item()
                             for ps in clip_sets) if cfg.grad_clip > 0 else float("nan"))
            lr = optimizer.param_groups[0]["lr"]
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1

            bar.update(1)
            bar.set_postfix(loss=f"{sums[0]:.3f}", refresh=False)
            if main and (step % cfg.log_interval == 0 or step == cfg.steps):
                record = {"kind": "train", "step": step, "lr": lr, "grad_norm": grad_norm,
                          "loss": sums[0], "time": time.time() - t0}
                students = [v for i, v in enumerate(sums) if i not in teachers(groups)]
                if students:
                    record["student_loss"] = sum(students) / len(students)
                    record["student_loss_kind"] = (cfg.distill_loss if cfg.distill
                                                   and step > cfg.distill_after else "ce")
                log.add(record)
            if step % cfg.eval_interval == 0 or step == cfg.steps:
                if main:
                    val = subnet_losses(model, val_x, val_y, eval_archs, cfg.batch_size * 2)
                    evaluation = {"kind": "eval", "step": step, **dict(zip(eval_names, val)),
                                  "mean": sum(val) / len(val), "time": time.time() - t0}
                    if evaluation["mean"] < best_loss:
                        best_loss = evaluation["mean"]
                        save_checkpoint(out / "best.pt", checkpoint_payload(evaluation))
                    save_checkpoint(out / "last.pt", checkpoint_payload(evaluation))
                    log.add(evaluation)
                    log.flush()
                    bar.write(f"step {step}: val " + ", ".join(
                        f"{k} {v:.4f}" for k, v in zip(eval_names, val)))
                if ddp:
                    dist.barrier()
    finally:
        bar.close()
        if log is not None:
            log.close()
    return out


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
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
