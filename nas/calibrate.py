"""`nas calibrate`: a supernet calibrated by a few subnets trained alone.

Inherited weights order the architectures of one embedding width d well, but the supernet's loss
is biased by d (experiments/supernet/ranking/ranking.md). `calibrate` picks anchor subnets
(`pick_anchors`: the largest of each d, which is each few-shot sub-supernet's largest; with
more anchors, further ones spread by parameter count), trains them alone with the supernet's
recipe (the runner of `nas verify`: resumable, parallel, with progress) into RUN/calibration/
KEY/, measures both losses of every anchor on the same tokens, fits a correction and stores it
as RUN/calibration.json (nas.core.calibration). `add_verified` adds the architectures a
`nas verify` trained alone as anchors and fits again.

The correction (`MODELS`, fitted with scikit-learn's LinearRegression): an offset per d, and,
where the anchors allow, a slope on the inherited loss (shared by all widths, or one per d) or
a term in ln(non-embedding parameters) shared by all widths. With one anchor per d only the
offset can be fitted; with more, the model of least leave-one-anchor-out error
(sklearn.model_selection.LeaveOneOut; each held-out anchor predicted from the others) is
chosen; a model some fold can not fit (a slope per d needs three anchors of each d) is not.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from nas.core.arch import Arch, SearchSpace
from nas.core.calibration import (CALIBRATION_FILE, Anchor, Calibration, read_calibration,
                                  run_folder, save_calibration)
from nas.core.distributed import RunsOn
from nas.core.errors import UserError
from nas.core.runlock import run_lock

ANCHOR_DIR = "calibration"          # RUN/calibration/KEY: the anchors' training runs
POOL_PER_D = 64                     # random subnets per d besides its largest and smallest


# -- the corrections -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """A correction: an offset per d; a slope on the inherited loss fixed at 1, shared by all
    widths or one per d (`slope`: fixed, shared, per_d); and optionally a coefficient of
    ln(non-embedding parameters) shared by all widths (`params`)."""

    name: str
    slope: str = "fixed"
    params: bool = False

    def per_width(self) -> int:
        """Coefficients of each width: its offset (and its slope)."""
        return 2 if self.slope == "per_d" else 1

    def shared(self) -> int:
        """Coefficients shared by all widths."""
        return int(self.slope == "shared") + int(self.params)

    def design(self, anchors: Sequence[Anchor], widths: Sequence[int]):
        """(X, y) of a linear regression without intercept: one-hot d columns (the offsets),
        the slope columns (one, one per d or none), the parameter column; y the standalone loss
        (minus the inherited one when the slope is fixed at 1)."""
        import numpy as np
        rows, target = [], []
        for a in anchors:
            onehot = [float(a.arch.d == d) for d in widths]
            row = list(onehot)
            if self.slope == "shared":
                row.append(a.inherited_loss)
            elif self.slope == "per_d":
                row += [x * a.inherited_loss for x in onehot]
            if self.params:
                row.append(math.log(a.arch.params()))
            rows.append(row)
            target.append(a.standalone_loss - (a.inherited_loss if self.slope == "fixed" else 0))
        return np.array(rows), np.array(target)

    def fits(self, anchors: Sequence[Anchor], widths: Sequence[int]) -> bool:
        """Whether the anchors determine the model: every width has as many distinct
        architectures as its own coefficients, and the shared ones have a width with more."""
        distinct = {d: len({a.key for a in anchors if a.arch.d == d}) for d in widths}
        need = self.per_width()
        return (min(distinct.values()) >= need
                and (not self.shared() or sum(n - need for n in distinct.values())
                     >= self.shared()))

    def fit(self, anchors: Sequence[Anchor], widths: Sequence[int]) -> Calibration:
        from sklearn.linear_model import LinearRegression
        X, y = self.design(anchors, widths)
        coef = [float(c) for c in LinearRegression(fit_intercept=False).fit(X, y).coef_]
        offsets, rest = dict(zip(widths, coef)), coef[len(widths):]
        slopes = {}
        if self.slope == "shared":
            slopes, rest = {d: rest[0] for d in widths}, rest[1:]
        elif self.slope == "per_d":
            slopes, rest = dict(zip(widths, rest)), rest[len(widths):]
        return Calibration(model=self.name, offsets=offsets, slopes=slopes,
                           params_coef=rest[0] if self.params else 0.0, anchors=tuple(anchors))


MODELS = (Model("offset"), Model("offset+slope", slope="shared"),
          Model("offset+params", params=True), Model("affine per d", slope="per_d"))


def loo_mae(model: Model, anchors: Sequence[Anchor], widths: Sequence[int]) -> float | None:
    """Leave-one-anchor-out mean absolute error of the standalone loss (nats): each anchor
    predicted by the model fitted on the others; None when some fold can not fit it."""
    from sklearn.model_selection import LeaveOneOut
    errors = []
    for train, (test,) in LeaveOneOut().split(list(anchors)):
        rest = [anchors[i] for i in train]
        if not model.fits(rest, widths):
            return None
        fitted, held = model.fit(rest, widths), anchors[test]
        errors.append(abs(fitted.loss(held.arch, held.inherited_loss) - held.standalone_loss))
    return sum(errors) / len(errors) if errors else None


def fit_calibration(anchors: Sequence[Anchor], widths: Sequence[int] | None = None,
                    models: Sequence[Model] = MODELS) -> Calibration:
    """The correction of least leave-one-anchor-out error among `models` (the first, the
    offset, where none can be compared; the simpler on a tie), fitted on all anchors.
    `widths`: the d values to calibrate (default: the anchors'); each needs an anchor."""
    anchors = list(anchors)
    widths = sorted(widths or {a.arch.d for a in anchors})
    missing = sorted(set(widths) - {a.arch.d for a in anchors})
    if missing:
        raise UserError(f"no anchor of width d = {missing}: every embedding width needs one "
                        f"(run `nas calibrate --ckpt RUN`)")
    errors = {m.name: loo_mae(m, anchors, widths) for m in models}
    scored = [m for m in models if errors[m.name] is not None and m.fits(anchors, widths)]
    # ties (to a micro-nat) go to the model with fewer coefficients
    best = (min(scored, key=lambda m: (round(errors[m.name], 6),
                                       m.per_width() * len(widths) + m.shared()))
            if scored else models[0])
    return replace(best.fit(anchors, widths), loo_mae=errors)


# -- the anchors -----------------------------------------------------------------------------

def anchor_pool(space: SearchSpace, per_d: int = POOL_PER_D, seed: int = 0) -> list[Arch]:
    """Candidate anchors: for every d, its largest and smallest subnet and `per_d` random ones
    (deterministic)."""
    from supernet.fewshot import space_of_d
    pool: dict[str, Arch] = {}
    for d in space.d:
        sub = space_of_d(space, d)
        rng = random.Random(f"{seed}-anchors-{d}")
        for arch in [sub.largest(), sub.smallest()] + [sub.sample(rng) for _ in range(per_d)]:
            pool.setdefault(arch.key, arch)
    return list(pool.values())


def pick_anchors(pool: Sequence[Arch], k: int | None = None) -> list[Arch]:
    """K anchors from `pool` (default: one per d): first the largest of every d, then, width
    by width from the widest, more per d, each d's spread evenly by parameter count from its
    largest to its smallest."""
    widths = sorted({a.d for a in pool}, reverse=True)
    k = len(widths) if k is None else k
    if k < len(widths):
        raise UserError(f"--anchors {k}: need at least one per embedding width ({len(widths)}: "
                        f"d = {sorted(widths)})")
    out = []
    for i, d in enumerate(widths):
        mine = sorted((a for a in pool if a.d == d), key=lambda a: (-a.params(), a.key))
        n = min(len(mine), k // len(widths) + (i < k % len(widths)))
        idx = [0] if n == 1 else sorted({round(j * (len(mine) - 1) / (n - 1)) for j in range(n)})
        out += [mine[j] for j in idx]
    return out


# -- the command -----------------------------------------------------------------------------

@dataclass
class CalibrateJob(RunsOn):
    """Everything `nas calibrate` takes (see `nas calibrate --help`); where anchors train:
    `RunsOn` (as `nas verify`'s runs)."""

    ckpt: Path | None = None            # the supernet run (None: the verified search's)
    anchors: int | None = None          # anchors to train; None: one per d
    add_verified: Path | None = None    # a search folder whose `nas verify` runs become anchors
    threads: int | None = None
    split: str = "valid"
    max_tokens: int | None = None       # tokens both losses are measured on; None: all
    progress: bool = True

    def check(self) -> None:
        for name in ("anchors", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name} must be >= 1, got {value}")
        self.engine().probe()
        if self.ckpt is None and self.add_verified is None:
            raise UserError("give --ckpt (the supernet run), or --add-verified SEARCH")
        if self.add_verified is not None and self.anchors is not None:
            raise UserError("--anchors trains new anchors; --add-verified adds those `nas "
                            "verify` trained: give one of them")


@dataclass(frozen=True)
class _Supernet:
    """The supernet being calibrated: its run folder, checkpoint (`data`) and recipe."""

    run: Path
    data: dict[str, Any]

    @property
    def space(self) -> SearchSpace:
        from supernet.checkpoint import space_of
        return space_of(self.data)


def _supernet(ckpt: Path) -> _Supernet:
    from supernet.checkpoint import fixed_arch_of, load_checkpoint
    data = load_checkpoint(ckpt, "best")
    if fixed_arch_of(data) is not None:
        raise UserError(f"{data['path']} is a train-subnet run (one architecture trained alone): "
                        f"only a supernet needs calibrating")
    return _Supernet(run_folder(data["path"]), data)


def calibrate(job: CalibrateJob) -> Calibration:
    """Train the anchors (or take the verified ones), measure, fit, write RUN/calibration.json;
    returns the calibration. Anchors `nas verify` gave an earlier calibration of the same
    checkpoint are kept (and with --add-verified all earlier anchors). The supernet's run
    folder is locked meanwhile (not while it trains, nor by two calibrations at once)."""
    job.check()
    t0 = time.perf_counter()
    verified, source = _verified_runs(job) if job.add_verified is not None else ({}, None)
    net = _supernet(Path(job.ckpt or source))
    if source is not None and run_folder(source).resolve() != net.run.resolve():
        raise UserError(f"the verified search ran on {source}, not on {net.run}: calibrate "
                        f"the supernet it searched")
    with run_lock(net.run, what="supernet run"):
        return _calibrate(job, net, verified, t0)


def _calibrate(job: CalibrateJob, net: _Supernet, verified: dict[str, Path],
               t0: float) -> Calibration:
    threads = job.threads or 1
    from supernet.evaluate import SupernetEvaluator      # a bad --split or --max-tokens fails
    ev = SupernetEvaluator(net.data["path"], split=job.split, max_tokens=job.max_tokens,
                           threads=threads)              # here, before any training
    step = net.data["step"]
    earlier = read_calibration(net.run)
    kept = [a for a in (earlier.anchors if earlier and earlier.step == step else ())
            if verified or a.source == "verify"]
    if verified:
        runs = {key: (run, "verify") for key, run in verified.items()}
    else:
        runs = _train_anchors(net, pick_anchors(anchor_pool(net.space), job.anchors), job,
                              threads)
    t1 = time.perf_counter()
    fresh = measure_anchors(ev, runs, job.max_tokens, threads)
    anchors = list({a.key: a for a in kept + fresh}.values())
    t2 = time.perf_counter()
    fitted = fit_calibration(anchors, net.space.d)
    calibration = replace(fitted, checkpoint=str(net.data["path"]), step=step, split=job.split,
                          tokens=ev.tokens, seconds={"train_anchors": t1 - t0, "measure": t2 - t1,
                                                  "fit": time.perf_counter() - t2})
    path = save_calibration(calibration, net.run)
    print_calibration(calibration, path)
    return calibration


def _train_anchors(net: _Supernet, archs: list[Arch], job: CalibrateJob,
                   threads: int) -> dict[str, tuple[Path, str]]:
    """Train the anchors alone with the supernet's recipe into RUN/calibration/KEY."""
    from nas.verify import recipe, train_alone
    saved = net.data["config"]
    folder = net.run / ANCHOR_DIR
    engine = job.engine()
    print(f"calibrate {net.run}: {len(archs)} anchor(s), each trained alone for "
          f"{saved['steps']} steps with the supernet's recipe, {engine.describe()} -> "
          f"{folder}")
    train_alone([a.key for a in archs], folder, recipe(saved, int(saved["steps"]), threads),
                engine, job.progress, label="calibrate")
    return {a.key: (folder / a.key, "calibrate") for a in archs}


def measure_anchors(ev, runs: dict[str, tuple[Path, str]], max_tokens: int | None,
                    threads: int) -> list[Anchor]:
    """Both losses of every anchor on the same tokens: inherited from the supernet (`ev`, its
    `supernet.evaluate.SupernetEvaluator`) and of its run trained alone."""
    from nas.verify import standalone_loss
    archs = [Arch.from_key(key) for key in runs]
    inherited = ev.losses(archs)
    return [Anchor(a.key, inh, standalone_loss(run, ev.split, max_tokens, threads), source,
                   str(Path(run).resolve()))
            for a, inh, (run, source) in zip(archs, inherited, runs.values())]


def _verified_runs(job: CalibrateJob) -> tuple[dict[str, Path], str]:
    """The runs `nas verify` trained for the search in job.add_verified (arch key -> run) and
    the supernet the search ran on; refused unless trained with the supernet's step count."""
    import json

    from nas.search.outputs import read_front
    from nas.verify import VERIFY_DIR, search_source
    from supernet.checkpoint import load_checkpoint
    doc = read_front(job.add_verified)
    folder = doc.folder / VERIFY_DIR
    if not (folder / "verified.json").is_file():
        raise UserError(f"no {folder / 'verified.json'}: run `nas verify --front {doc.folder}` "
                        f"first")
    summary = json.loads((folder / "verified.json").read_text())
    source = search_source(doc)["ckpt"]
    steps = int(load_checkpoint(source, "best")["config"]["steps"])
    if int(summary["steps"]) != steps:
        raise UserError(f"{folder / 'verified.json'}: its runs were trained for "
                        f"{summary['steps']} steps, the supernet's recipe is {steps}: an anchor "
                        f"must be trained like the supernet (run `nas verify` without --steps)")
    keys = dict.fromkeys(row["key"].split("@")[0] for row in summary["rows"])
    return {key: folder / key for key in keys}, source


def print_calibration(calibration: Calibration, path: Path) -> None:
    """The anchors (inherited, alone, calibrated), the models' errors and the file written."""
    width = max(len("anchor"), *(len(a.key) for a in calibration.anchors))
    print(f"{'anchor':<{width}}  {'source':<9}  {'inherited':>9}  {'alone':>7}  "
          f"{'calibrated':>10}")
    for a in calibration.anchors:
        print(f"{a.key:<{width}}  {a.source:<9}  {a.inherited_loss:>9.4f}  "
              f"{a.standalone_loss:>7.4f}  {calibration.loss(a.arch, a.inherited_loss):>10.4f}")
    print("leave-one-anchor-out error (nats): " + ", ".join(
        f"{name} {'-' if e is None else f'{e:.4f}'}" for name, e in calibration.loo_mae.items()))
    secs = calibration.seconds
    print(f"{calibration.summary()}; anchors trained in {secs.get('train_anchors', 0):.0f} s, "
          f"measured in {secs.get('measure', 0):.1f} s, fitted in {secs.get('fit', 0):.2f} s "
          f"-> {path}")


__all__ = ["ANCHOR_DIR", "CALIBRATION_FILE", "Model", "MODELS", "loo_mae", "fit_calibration",
           "anchor_pool", "pick_anchors", "CalibrateJob", "calibrate", "measure_anchors",
           "print_calibration"]
