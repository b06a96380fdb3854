"""Checkpoints: written atomically, read with one-line errors, turned back into a model.

A checkpoint is one `torch.save`d dict (loaded with `weights_only=True`):
    format, version      identify the file
    model, model_config  ElasticGPT weights and ModelConfig fields
    space, fixed_arch    the search space (dict) and, for `nas train-subnet`, the one architecture
    tokenizer, config    Tokenizer.to_dict() and the TrainConfig fields
    step, best_loss, eval    the step, the lowest mean validation loss so far, this validation
    optimizer, scheduler, scaler, rng   training state for --resume (last.pt only)
A run directory holds `last.pt` (latest, for --resume) and `best.pt` (lowest mean validation loss,
weights without the training state).
A few-shot supernet (config `fewshot`) is one checkpoint holding the shared supernet and every
sub-supernet (`supernet.fewshot.FewShotGPT`); `model_from_checkpoint` rebuilds it, and it routes
each subnet to its sub-supernet, so evaluation, search and export need nothing else.
An exported subnet file (`supernet.export`, .pt: format SUBNET_FORMAT) holds one `GPT`'s weights,
its model config, tokenizer, the source run's config and `info`; `load_subnet` reads it, and
`load_checkpoint(..., subnets=True)` reads it as a train-subnet run of its architecture (what
`nas eval` and `nas sample` do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.core.atomic import atomic_path, existing_file
from nas.core.arch import Arch, SearchSpace
from nas.core.errors import UserError
from supernet.fewshot import FewShotGPT
from supernet.model import GPT, ElasticGPT, ModelConfig

FORMAT = "transformer-hw-nas supernet checkpoint"
SUBNET_FORMAT = "transformer-hw-nas subnet"
VERSION = 1
REQUIRED = ("model", "model_config", "space", "tokenizer", "config", "step")


def save_checkpoint(path: str | Path, payload: dict[str, Any], fmt: str = FORMAT) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    with atomic_path(path) as tmp:
        torch.save({"format": fmt, "version": VERSION, **payload}, tmp)


def resolve_checkpoint(ckpt: str | Path, which: str = "best") -> Path:
    """A checkpoint file, or a run directory (its `which`.pt, falling back to the other one)."""
    path = Path(ckpt)
    if path.is_dir():
        for name in (f"{which}.pt", "best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise UserError(f"run directory {path} holds no checkpoint (best.pt or last.pt)")
    return existing_file(path, "checkpoint")


def load_checkpoint(ckpt: str | Path, which: str = "best",
                    map_location: str | torch.device = "cpu",
                    subnets: bool = False) -> dict[str, Any]:
    """A checkpoint's fields (and `path`). With `subnets`, an exported subnet file (.pt) is
    read too, as the checkpoint of a train-subnet run of its architecture (`subnet_checkpoint`):
    what evaluation and sampling need."""
    path = resolve_checkpoint(ckpt, which)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, pickle errors, foreign objects ...
        raise UserError(f"checkpoint {path} is corrupt or not a checkpoint "
                        f"({type(exc).__name__})") from None
    if subnets and isinstance(data, dict) and data.get("format") == SUBNET_FORMAT:
        return subnet_checkpoint(data, path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        hint = " (an exported subnet)" if isinstance(data, dict) and data.get(
            "format") == SUBNET_FORMAT else ""
        raise UserError(f"{path} is not a supernet checkpoint{hint}")
    if data.get("version") != VERSION:
        raise UserError(f"checkpoint {path} has version {data.get('version')}, "
                        f"this program reads version {VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise UserError(f"checkpoint {path} lacks {', '.join(missing)}")
    data["path"] = str(path)
    return data


def fixed_space(arch: Arch) -> SearchSpace:
    """The search space of one architecture alone (a train-subnet run's): its depth and width,
    its heads and FFN widths as the choices, its attention kinds."""
    return SearchSpace(name=f"fixed-{arch.key}", layers=(arch.layers,), d=(arch.d,),
                       heads=arch.heads, ffn=arch.ffn, head_dim=arch.head_dim,
                       attention=arch.attention)


def space_of(data: dict[str, Any]) -> SearchSpace:
    return SearchSpace.from_dict(data["space"])


def fixed_arch_of(data: dict[str, Any]) -> Arch | None:
    return Arch.from_dict(data["fixed_arch"]) if data.get("fixed_arch") else None


def is_fewshot(data: dict[str, Any]) -> bool:
    """Whether the checkpoint holds a few-shot supernet (older checkpoints: no)."""
    return bool(data["config"].get("fewshot")) and not data.get("fixed_arch")


def model_from_checkpoint(data: dict[str, Any]) -> ElasticGPT | FewShotGPT:
    """The supernet of a checkpoint: an ElasticGPT, or a FewShotGPT routing subnets by d."""
    cls = FewShotGPT if is_fewshot(data) else ElasticGPT
    model = cls(ModelConfig(**data["model_config"]), space_of(data))
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise UserError(f"checkpoint {data.get('path')}: weights do not match its search space "
                        f"({first})") from None
    return model


# -- standalone subnets (nas export-subnet: supernet.export) --------------------------------------

def subnet_checkpoint(data: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """An exported subnet file's fields as the checkpoint of a train-subnet run of its
    architecture: the architecture's `fixed_space`, its weights in the slices of the model over
    that space, the source run's training config (its dataset) and step."""
    arch = Arch.from_dict(data["info"]["arch"])
    config = ModelConfig(**data["model_config"])
    static = GPT(config, arch)
    static.load_state_dict(data["model"])
    model = ElasticGPT(config, fixed_space(arch))
    model.load_subnet(static)
    return {"format": FORMAT, "version": VERSION, "model": model.state_dict(),
            "model_config": data["model_config"], "space": model.space.to_dict(),
            "fixed_arch": arch.to_dict(), "tokenizer": data["tokenizer"],
            "config": data.get("config") or {}, "step": data["info"].get("step", 0),
            "path": str(path)}


def load_subnet(path: str | Path) -> tuple[GPT, dict[str, Any]]:
    """A model written by `export_subnet`, and its info (arch, params, tokenizer, source)."""
    path = existing_file(path, "subnet file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"subnet file {path} is corrupt ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != SUBNET_FORMAT:
        raise UserError(f"{path} is not an exported subnet")
    arch = Arch.from_dict(data["info"]["arch"])
    model = GPT(ModelConfig(**data["model_config"]), arch)
    model.load_state_dict(data["model"])
    return model, {**data["info"], "tokenizer": data["tokenizer"]}
