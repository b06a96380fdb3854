"""Sandwich-rule training of the elastic supernet (BigNAS), and of one fixed subnet.

Every step, for each of `grad_accum` micro-batches: the largest subnet learns from the labels
(with dropout), then the smallest and `n_random` uniformly sampled subnets learn from the
largest's detached soft predictions (in-place distillation, KL divergence); their losses are
weighted by `student_weight` (default: averaged) and all gradients are summed before one AdamW
step with gradient clipping, linear warmup and cosine decay to `min_lr`.
With `distill_after` > 0 the students learn from the labels for that many steps first.
`train(cfg)` with `cfg.arch` set trains that one architecture alone with the same recipe
(`nas train-subnet`): the baseline a supernet is compared against.

Multi-device: run under `torchrun --nproc_per_node N`; DistributedDataParallel with gloo on CPU
and NCCL on GPU. Each rank draws its own batches; all ranks use the same subnets.
Files in `cfg.out`: last.pt, best.pt (see supernet.checkpoint), log.jsonl (every logged step and
evaluation), eval.csv (evaluations), loss.png (loss curves).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from nas.core.arch import Arch, SearchSpace, resolve_model
from nas.core.atomic import atomic_path, atomic_write_text
from nas.core.errors import UserError
from nas.core.plotting import pyplot, save_figure
from supernet.checkpoint import load_checkpoint, save_checkpoint
from supernet.config import STRUCTURAL, TrainConfig
from supernet.data import Tokenizer, eval_windows, get_batch, load_tokens
from supernet.evaluate import default_device, subnet_losses
from supernet.model import ElasticGPT, ModelConfig, num_params

__all__ = ["TrainConfig", "train", "sandwich_step", "lr_factor", "step_archs", "plot_losses"]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr at `step`: linear warmup, then cosine decay to min_lr at cfg.steps."""
    if step < cfg.warmup:
        return (step + 1) / (cfg.warmup + 1)
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def step_archs(space: SearchSpace, fixed: Arch | None, cfg: TrainConfig, step: int) -> list[Arch]:
    """The subnets of one step: largest, smallest, n_random random ones (a pure function of the
    seed and the step, so every rank and a resumed run draw the same)."""
    if fixed is not None:
        return [fixed]
    rng = random.Random(f"{cfg.seed}-archs-{step}")
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(cfg.n_random)]


def student_weight(cfg: TrainConfig, archs: list[Arch]) -> float:
    """Weight of each smaller subnet's loss: `cfg.student_weight`, by default 1 / their number.

    With a plain sum (1.0) the students' gradients outweigh the largest's in the shared weights
    and hold it back (experiments/supernet/student_weight.json: +18% validation loss against
    +2% averaged, Tiny Shakespeare, 1000 steps)."""
    if cfg.student_weight is not None:
        return cfg.student_weight
    return 1.0 / max(1, len(archs) - 1)


def sandwich_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, archs: list[Arch],
                  distill: bool = True, sync: bool = True, loss_scale: float = 1.0,
                  autocast=nullcontext, scaler=None, student_weight: float = 1.0) -> list[float]:
    """Forward and backward of every subnet in `archs` on one micro-batch (gradients add up).

    archs[0] (the teacher) learns from the labels with dropout; the others from its detached
    soft predictions when `distill`, else from the labels. Under DDP only the last backward
    synchronises gradients (when `sync`): earlier ones run under `no_sync` and accumulate.
    Returns the unscaled loss of each subnet (cross-entropy, or KL divergence for students).
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
                elif distill:
                    log_p = F.log_softmax(logits.float(), dim=-1).view(-1, logits.size(-1))
                    loss = F.kl_div(log_p, teacher, reduction="batchmean")
            scaled = loss * loss_scale * (1.0 if j == 0 else student_weight)
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        losses.append(loss.item())
    return losses


# -- the training loop --------------------------------------------------------------------------

def train(cfg: TrainConfig) -> Path:
    """Train a supernet (or one fixed subnet when cfg.arch is set); return the run directory."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
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
    space = SearchSpace.load(cfg.space)
    fixed = None
    if cfg.arch:
        fixed, _ = resolve_model(cfg.arch)
        space = SearchSpace(name=f"fixed-{fixed.key}", layers=(fixed.layers,), d=(fixed.d,),
                            heads=fixed.heads, ffn=fixed.ffn, head_dim=fixed.head_dim)

    resume_data = None
    if cfg.resume:
        if not (out / "last.pt").is_file():
            raise UserError(f"--resume: {out} holds no last.pt to resume from")
        resume_data = load_checkpoint(out, "last")
        _check_resumable(resume_data["config"], cfg)
    elif (out / "last.pt").exists() or (out / "best.pt").exists():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose "
                        f"another --out")

    torch.manual_seed(cfg.seed + rank)
    tokenizer = Tokenizer.from_dict(resume_data["tokenizer"]) if resume_data else cfg.tokenizer
    tokenizer, tokens = load_tokens(cfg.dataset, tokenizer)
    train_tokens = tokens["train"]
    val_x, val_y = eval_windows(tokens["valid"], cfg.block_size, cfg.eval_tokens)

    model_config = ModelConfig(len(tokenizer.vocab), cfg.block_size, cfg.dropout)
    model = ElasticGPT(model_config, space).to(device)
    optimizer = _optimizer(model, cfg, device)
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
        if main:
            _truncate_logs(out, step)
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
              find_unused_parameters=fixed is None) if ddp else model

    eval_rng = random.Random(f"{cfg.seed}-eval")
    eval_archs = ([space.largest(), space.smallest()]
                  + [space.sample(eval_rng) for _ in range(cfg.eval_random)]
                  if fixed is None else [fixed])
    eval_names = (["largest", "smallest"] + [f"random{i}" for i in range(cfg.eval_random)]
                  if fixed is None else ["subnet"])

    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(
            {**asdict(cfg), "vocab_size": model_config.vocab_size, "world_size": world,
             "params_supernet": num_params(model),
             "eval_archs": dict(zip(eval_names, (a.key for a in eval_archs)))}, indent=2))

    def checkpoint_payload(evaluation: dict[str, Any]) -> dict[str, Any]:
        return {"model": model.state_dict(), "model_config": asdict(model_config),
                "space": space.to_dict(), "fixed_arch": fixed.to_dict() if fixed else None,
                "tokenizer": tokenizer.to_dict(), "config": asdict(cfg),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler else None, "rng": _get_rng(),
                "step": step, "best_loss": best_loss, "eval": evaluation}

    progress = None
    if main and cfg.progress:
        from tqdm import tqdm
        progress = tqdm(total=cfg.steps, initial=step, desc="supernet" if fixed is None
                        else "subnet", unit="step", dynamic_ncols=True)
    batch_gen = torch.Generator()
    t0 = time.time()
    model.train()
    while step < cfg.steps:
        archs = step_archs(space, fixed, cfg, step)
        sums = [0.0] * len(archs)
        for micro in range(cfg.grad_accum):
            # Batches are a pure function of (seed, rank, step, micro-batch): resumable.
            batch_gen.manual_seed(hash((cfg.seed, rank, step, micro)) & 0x7FFFFFFF)
            x, y = get_batch(train_tokens, cfg.block_size, cfg.batch_size, batch_gen)
            losses = sandwich_step(net, x.to(device), y.to(device), archs,
                                   cfg.distill and step >= cfg.distill_after,
                                   sync=micro == cfg.grad_accum - 1,
                                   loss_scale=1 / cfg.grad_accum, autocast=autocast,
                                   scaler=scaler, student_weight=student_weight(cfg, archs))
            sums = [s + v / cfg.grad_accum for s, v in zip(sums, losses)]
        if scaler is not None:
            scaler.unscale_(optimizer)
        grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip).item()
                     if cfg.grad_clip > 0 else float("nan"))
        lr = optimizer.param_groups[0]["lr"]
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1

        if main:
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{sums[0]:.3f}", refresh=False)
            if step % cfg.log_interval == 0 or step == cfg.steps:
                record = {"kind": "train", "step": step, "lr": lr, "grad_norm": grad_norm,
                          "loss": sums[0], "time": time.time() - t0}
                if len(sums) > 1:
                    record["student_loss"] = sum(sums[1:]) / len(sums[1:])
                    record["student_loss_kind"] = ("kl" if cfg.distill
                                                   and step > cfg.distill_after else "ce")
                _append_jsonl(out / "log.jsonl", record)
        if step % cfg.eval_interval == 0 or step == cfg.steps:
            evaluation = None
            if main:
                val = subnet_losses(model, val_x, val_y, eval_archs, cfg.batch_size * 2)
                evaluation = {"kind": "eval", "step": step, **dict(zip(eval_names, val)),
                              "mean": sum(val) / len(val), "time": time.time() - t0}
                if evaluation["mean"] < best_loss:
                    best_loss = evaluation["mean"]
                    save_checkpoint(out / "best.pt", checkpoint_payload(evaluation))
                save_checkpoint(out / "last.pt", checkpoint_payload(evaluation))
                _append_jsonl(out / "log.jsonl", evaluation)
                _write_csv_and_plot(out)
                if progress is not None:
                    progress.write(f"step {step}: val " + ", ".join(
                        f"{k} {v:.4f}" for k, v in zip(eval_names, val)))
            if ddp:
                dist.barrier()
    if progress is not None:
        progress.close()
    return out


def _optimizer(model: torch.nn.Module, cfg: TrainConfig,
               device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, LayerNorms)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(0.9, cfg.beta2),
                             fused=device.type == "cuda")


def _check_resumable(saved: dict[str, Any], cfg: TrainConfig) -> None:
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {getattr(cfg, k)!r}"
             for k in STRUCTURAL if saved.get(k) != getattr(cfg, k)]
    if diffs:
        raise UserError(f"--resume: the run in {cfg.out} was trained differently ("
                        + "; ".join(diffs) + ")")


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

def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(out: str | Path) -> list[dict[str, Any]]:
    path = Path(out) / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_logs(out: Path, step: int) -> None:
    """On resume, drop records written after the checkpoint by the interrupted run."""
    kept = [r for r in read_log(out) if r["step"] <= step]
    atomic_write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in kept))


def _write_csv_and_plot(out: Path) -> None:
    records = read_log(out)
    evals = [r for r in records if r["kind"] == "eval"]
    if evals:
        keys = [k for k in evals[-1] if k != "kind"]
        with atomic_path(out / "eval.csv") as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(evals)
    plot_losses(records, out / "loss.png")


def plot_losses(records: list[dict[str, Any]], path: Path) -> None:
    """Training loss of the largest subnet and validation loss of every evaluated subnet."""
    plt = pyplot()

    trains = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if trains:
        ax.plot([r["step"] for r in trains], [r["loss"] for r in trains], color="0.7", lw=1,
                label="train (largest / subnet)")
    if evals:
        names = [k for k in evals[-1] if k not in ("kind", "step", "mean", "time")]
        for name in names:
            ax.plot([r["step"] for r in evals], [r[name] for r in evals], marker="o", ms=3,
                    lw=1.5 if name in ("largest", "smallest", "subnet") else 0.8,
                    label=f"valid {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
