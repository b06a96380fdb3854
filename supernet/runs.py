"""Run folders: the settings a run records, resuming it, and what a folder still needs.

A run folder (`TrainConfig.out`) holds last.pt, the latest checkpoint, whose `step` says how far
it was trained. One rule, `is_finished`, says when that is far enough: its step is at least the
steps asked for. `plan_run` applies it to decide, for every caller that trains into a folder
(`supernet.train.train_run`, `nas verify`, `nas quickstart`, the studies and benchmarks), whether
to train a new run, resume an interrupted or shorter one with the run's own settings
(`resume_config`: only the RESUMABLE ones may change), or leave a finished one alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from nas.core.arch import SPACE_PRESETS, resolve_model
from nas.core.errors import UserError
from nas.core.options import flag_of
from supernet.checkpoint import load_checkpoint
from supernet.config import FORMER_DEFAULTS, RESUMABLE, RUN_IDENTITY, TrainConfig
from supernet.data import resolve_dataset

__all__ = ["normalised", "resume_config", "check_resumable", "last_checkpoint", "is_finished",
           "RunPlan", "plan_run"]


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


def last_checkpoint(out: str | Path) -> dict[str, Any]:
    """The run's last.pt (a one-line error when it has none)."""
    if not (Path(out) / "last.pt").is_file():
        raise UserError(f"--resume: {out} holds no last.pt to resume from")
    return load_checkpoint(out, "last")


def _saved_settings(data: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig fields recorded in a checkpoint (a field it lacks keeps its default, or
    the default it was trained with: FORMER_DEFAULTS)."""
    names = {f.name for f in fields(TrainConfig)}
    return {**FORMER_DEFAULTS, **{k: v for k, v in data["config"].items() if k in names}}


def _resume_config_of(data: dict[str, Any], out: str | Path,
                      given: dict[str, Any] | None) -> TrainConfig:
    return TrainConfig(**{**_saved_settings(data), **(given or {}), "out": str(out),
                          "resume": True})


def resume_config(out: str | Path, given: dict[str, Any] | None = None) -> TrainConfig:
    """The settings to resume the run in `out`: those of its last checkpoint, with `given` (the
    options the user typed, as `nas.core.options.given` returns them) applied. `train` then
    refuses any of them that differs from the checkpoint, except the fields in RESUMABLE."""
    return _resume_config_of(last_checkpoint(out), out, given)


def _differences(data: dict[str, Any], cfg: TrainConfig, names: list[str]) -> list[str]:
    """'--flag differs (checkpoint OLD, given NEW)' for each of `names` where the checkpoint's
    setting is not `cfg`'s (a normalised config)."""
    saved = _saved_settings(data)
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    diffs = []
    for name in names:
        old = saved.get(name, defaults[name])
        if name == "dataset":                   # as recorded by older runs: maybe relative
            old = resolve_dataset(old)
        elif name == "space":
            old = _resolve_space(old)
        if old != getattr(cfg, name):
            diffs.append(f"{flag_of(name)} differs (checkpoint {old!r}, given "
                         f"{getattr(cfg, name)!r})")
    return diffs


def check_resumable(data: dict[str, Any], cfg: TrainConfig) -> None:
    """Every setting but RESUMABLE ones must be the checkpoint's: one line naming each that
    differs, with the checkpoint's value and the given one."""
    names = [f.name for f in fields(TrainConfig)
             if f.name not in RESUMABLE and f.name not in ("out", "resume")]
    diffs = _differences(data, cfg, names)
    if diffs:
        raise UserError(f"--resume: the run in {cfg.out} was trained differently: "
                        + "; ".join(diffs) + "; only "
                        + ", ".join(flag_of(n) for n in RESUMABLE) + " may change on resume")


def is_finished(step: int | None, steps: int) -> bool:
    """The one meaning of a finished run: its last checkpoint is at `steps` or beyond."""
    return step is not None and step >= steps


@dataclass(frozen=True)
class RunPlan:
    """What a run folder needs to reach the asked steps (`plan_run`).

    action  "train" (no checkpoint yet), "resume" (its last checkpoint is short of the steps)
            or "skip" (finished: `is_finished`)
    done    the last checkpoint's step (None without one)
    config  what `supernet.train.train` gets: the given settings for a new run; the run's own
            (`resume_config`) with the given RESUMABLE ones to resume, or to describe a finished
            run
    """

    action: str
    done: int | None
    config: TrainConfig

    def describe(self) -> str:
        """What carrying the plan out did: 'trained', 'resumed from step N', 'reused (N steps)'."""
        return {"train": "trained", "resume": f"resumed from step {self.done}",
                "skip": f"reused ({self.done} steps)"}[self.action]


def plan_run(cfg: TrainConfig) -> RunPlan:
    """Train, resume or skip the run in `cfg.out` to reach `cfg.steps`.

    `cfg` holds the settings of a new run. An existing run keeps its own settings, except the
    RESUMABLE ones (steps, device, threads, progress, tensorboard), taken from `cfg`; it must be
    the same kind of run (RUN_IDENTITY: space, architecture, dataset, tokenizer), else one line
    asks for another folder."""
    out = Path(cfg.out)
    if not (out / "last.pt").is_file():
        return RunPlan("train", None, replace(cfg, resume=False))
    data = load_checkpoint(out, "last")
    diffs = _differences(data, normalised(cfg), list(RUN_IDENTITY))
    if diffs:
        raise UserError(f"{out} holds another run (" + "; ".join(diffs) + "): choose another "
                        f"folder")
    config = _resume_config_of(data, out, {name: getattr(cfg, name) for name in RESUMABLE})
    action = "skip" if is_finished(data["step"], cfg.steps) else "resume"
    return RunPlan(action, data["step"], config)
