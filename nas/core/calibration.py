"""A supernet's calibration to trained-alone loss, as plain data (no numpy, no torch).

Inherited weights rank architectures of one embedding width d well but are biased by d: the
supernet's loss is too pessimistic by an offset that grows with d (experiments/supernet/
ranking.md). `nas calibrate` trains a few anchor subnets alone with the supernet's recipe and
fits (nas.calibrate, scikit-learn) a correction that is affine in the inherited loss:

    calibrated loss = slope[d] * inherited loss + offset[d] + params_coef * ln(non-embedding
                      parameters)

(the default model, one anchor per d, has slopes 1 and params_coef 0: a per-width offset). It is
stored beside the supernet's checkpoints as RUN/calibration.json (`Calibration.to_dict`) with
the anchors it was fitted on, and applies to the checkpoint it was fitted on (its step): every
command that reads the run (`nas eval`, `nas search`, `nas export`, `nas verify`) reports the
calibrated loss and perplexity with the raw value beside it. Being affine in the loss, it also
applies window by window (racing scores a subnet on windows; the mean of the calibrated window
losses is the calibrated mean).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.core.arch import Arch
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError

CALIBRATION_FILE = "calibration.json"
FORMAT = 1


@dataclass(frozen=True)
class Anchor:
    """One architecture trained alone, with both losses on the calibration's tokens."""

    key: str
    inherited_loss: float           # nats per token, with the supernet's weights
    standalone_loss: float          # nats per token, trained alone with the supernet's recipe
    source: str = "calibrate"       # 'calibrate' (nas calibrate) or 'verify' (--add-verified)
    run: str = ""                   # the standalone training run

    @property
    def arch(self) -> Arch:
        return Arch.from_key(self.key)


@dataclass(frozen=True)
class Calibration:
    """calibrated loss = slopes[d] * raw + offsets[d] + params_coef * ln(arch.params()); a
    width missing from `slopes` has slope 1.

    model       the correction chosen (nas.calibrate.MODELS), by leave-one-anchor-out error
                when there is more than one anchor of some width
    loo_mae     leave-one-anchor-out mean absolute error (nats) of every candidate model, None
                where it can not be measured (one anchor per width: the offset, no choice)
    checkpoint  the supernet checkpoint (path) and `step` it was fitted on
    split, tokens   the tokens both losses of the anchors were measured on
    seconds     what the calibration cost: training the anchors, measuring and fitting
    """

    model: str
    offsets: dict[int, float]
    slopes: dict[int, float] = field(default_factory=dict)
    params_coef: float = 0.0
    anchors: tuple[Anchor, ...] = ()
    loo_mae: dict[str, float | None] = field(default_factory=dict)
    checkpoint: str = ""
    step: int = 0
    split: str = "valid"
    tokens: int = 0
    seconds: dict[str, float] = field(default_factory=dict)   # training the anchors, fitting

    def covers(self, arch: Arch) -> bool:
        return arch.d in self.offsets

    def shift(self, arch: Arch) -> float:
        """The architecture's intercept: offset of its d plus the parameter term."""
        if not self.covers(arch):
            raise UserError(f"the calibration has no offset for d={arch.d} ({arch.key}): its "
                            f"anchors cover d = {sorted(self.offsets)}")
        return self.offsets[arch.d] + self.params_coef * math.log(arch.params())

    def slope(self, arch: Arch) -> float:
        return self.slopes.get(arch.d, 1.0)

    def loss(self, arch: Arch, raw: float) -> float:
        """The calibrated loss of `arch` from its inherited (raw) loss."""
        return self.slope(arch) * raw + self.shift(arch)

    def raw_loss(self, arch: Arch, loss: float) -> float:
        """The inverse of `loss`: the inherited loss behind a calibrated one."""
        return (loss - self.shift(arch)) / self.slope(arch)

    def perplexity(self, arch: Arch, raw_perplexity: float) -> float:
        return math.exp(self.loss(arch, math.log(raw_perplexity)))

    def raw_perplexity(self, arch: Arch, perplexity: float) -> float:
        return math.exp(self.raw_loss(arch, math.log(perplexity)))

    def describe(self) -> dict[str, Any]:
        """What a search records (and must match to resume): the correction and its step."""
        return {"model": self.model, "offsets": _by_d(self.offsets),
                "slopes": _by_d(self.slopes), "params_coef": self.params_coef,
                "anchors": len(self.anchors), "step": self.step}

    def summary(self) -> str:
        """One line: the model, its offsets and anchors."""
        terms = ", ".join(f"d{d} {v:+.4f}" + (f" slope {self.slopes[d]:.3f}"
                                               if self.slopes.get(d, 1.0) != 1.0 else "")
                          for d, v in sorted(self.offsets.items()))
        extra = f", {self.params_coef:+.4f} ln(params)" if self.params_coef else ""
        return (f"calibrated ({self.model}: {terms}{extra}; {len(self.anchors)} anchors, "
                f"step {self.step})")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["offsets"], out["slopes"] = _by_d(self.offsets), _by_d(self.slopes)
        return {"format": FORMAT, **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        data = {k: v for k, v in data.items() if k != "format"}
        for name in ("offsets", "slopes"):
            data[name] = {int(d): float(v) for d, v in data.get(name, {}).items()}
        data["anchors"] = tuple(Anchor(**a) for a in data.get("anchors", ()))
        return cls(**data)


def _by_d(values: dict[int, float]) -> dict[str, float]:
    """A per-width mapping as JSON keys, by increasing d."""
    return {str(d): v for d, v in sorted(values.items())}


def run_folder(ckpt: str | Path) -> Path:
    """The run folder of a checkpoint: the folder itself, or the folder of a checkpoint file."""
    ckpt = Path(ckpt)
    return ckpt if ckpt.is_dir() else ckpt.parent


def save_calibration(calibration: Calibration, run: str | Path) -> Path:
    path = run_folder(run) / CALIBRATION_FILE
    atomic_write_text(path, json.dumps(calibration.to_dict(), indent=1) + "\n")
    return path


def read_calibration(run: str | Path) -> Calibration | None:
    """The run's calibration.json, None when it has none (a one-line error when unreadable)."""
    path = run_folder(run) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: not a calibration written by `nas calibrate` "
                        f"({type(exc).__name__}: {exc})") from None


def load_calibration(ckpt: str | Path, step: int) -> tuple[Calibration | None, str]:
    """The calibration of the checkpoint `ckpt` at `step` and a note to print: (None, '') for
    an uncalibrated run; (None, why) when the run's calibration was fitted on another step (the
    supernet was trained on, or another checkpoint of the run is read): it no longer holds."""
    calibration = read_calibration(ckpt)
    if calibration is None:
        return None, ""
    if calibration.step != step:
        return None, (f"note: {run_folder(ckpt) / CALIBRATION_FILE} was fitted at step "
                      f"{calibration.step}, this checkpoint is at step {step}: raw perplexity "
                      f"(run `nas calibrate` again)")
    return calibration, ""


__all__ = ["CALIBRATION_FILE", "Anchor", "Calibration", "run_folder", "save_calibration",
           "read_calibration", "load_calibration"]
