"""`nas verify`: retrain front picks alone and compare them with their inherited perplexity.

The last step of HAT's workflow (Wang et al. 2020) and of the survey's case study: a search
ranks architectures by their perplexity with weights inherited from the supernet; the picks are
then trained from scratch. `verify` takes K picks spread evenly along a search's front (by
perplexity, both ends included, the largest subnet aside; the whole front when K covers it),
the front members named by `--pick` (nas export's expressions, e.g. +0.1 +1) and the largest
subnet, trains each alone with the supernet's recipe (`supernet.train.train` with `arch` set:
its dataset, tokenizer, context, batch, learning-rate schedule and seed; `--steps` may shorten
it), measures their perplexity on the search's own validation subset (split and tokens) and
writes into `FRONT/verify/`:

    <arch key>/        each training run (reused when finished, resumed when interrupted)
    verified.csv       per architecture: inherited and standalone perplexity, costs, ranks,
                       whether it is on the front of the standalone values
    verified.json      the same, Kendall's tau between the two perplexities, the picks that
                       leave the front once trained alone, the settings
    verified.png       standalone vs inherited perplexity (with y = x), and both fronts
                       against the search's objective

On a search of calibrated perplexity (`nas calibrate`), the inherited perplexity is the
calibrated one, the raw one beside it (`inherited_ppl_raw`, and the error of both in
verified.json). `nas calibrate --add-verified FRONT` makes the runs anchors of the calibration.

Runs train in `--workers` processes (`--threads` torch threads each, default 1), started by a
fork server that imports the training code once, and ending with `nas verify` however it ends
(nas.core.workers), or, with `--executor ray`, as Ray tasks on a cluster (one GPU each when it
has GPUs; a run whose worker died runs again, resuming from its last checkpoint):
nas.core.distributed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nas.core.arch import Arch
from nas.core.atomic import atomic_write_text
from nas.core.distributed import Engine, RunsOn, task_executor
from nas.core.errors import UserError
from nas.core.paths import check_output_dir
from nas.core.runlock import run_lock
from nas.search.candidate import OBJECTIVES, Candidate
from nas.search.outputs import FrontFile, csv_text, picks_of, read_front
from nas.search.pareto import pareto_indices

VERIFY_DIR = "verify"


@dataclass
class VerifyJob(RunsOn):
    """Everything `nas verify` takes (see `nas verify --help`); where runs train: `RunsOn`."""

    front: Path
    top: int = 5
    picks: list[str] = field(default_factory=list)   # also these (nas export's expressions)
    steps: int | None = None        # training steps per run; None: the supernet's
    threads: int | None = None      # torch threads per run; None: 1
    progress: bool = True

    def check(self) -> None:
        for name in ("top", "steps", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name} must be >= 1, got {value}")
        self.engine().probe()


@dataclass
class Verified:
    """One architecture trained alone."""

    candidate: Candidate            # as the search scored it (inherited perplexity)
    role: str                       # 'pick' or 'largest'
    standalone: float               # perplexity trained alone, on the search's subset
    run: Path
    on_front: bool = False          # on the front of the standalone perplexities

    def row(self) -> dict[str, Any]:
        c = self.candidate
        raw = {} if c.ppl_raw is None else {"inherited_ppl_raw": c.ppl_raw}
        return {"key": c.key, "role": self.role, "inherited_ppl": c.perplexity, **raw,
                "standalone_ppl": self.standalone,
                "delta_ppl": self.standalone - c.perplexity,
                **{o.field: getattr(c, o.field) for o in OBJECTIVES.values()},
                "on_verified_front": self.on_front, "run": str(self.run)}


def spread_picks(front: list[Candidate], k: int) -> list[Candidate]:
    """K front members evenly spaced by perplexity order (both ends included)."""
    front = sorted(front, key=lambda c: c.perplexity)
    if k >= len(front):
        return front
    if k == 1:
        return [front[0]]
    idx = sorted({round(i * (len(front) - 1) / (k - 1)) for i in range(k)})
    return [front[i] for i in idx]


def kendall_tau(a: list[float], b: list[float]) -> float | None:
    """Kendall's tau-b of two rankings (None for fewer than 2 items or a constant one)."""
    if len(a) < 2:
        return None
    from scipy.stats import kendalltau
    tau = kendalltau(a, b)[0]
    return None if tau is None or math.isnan(tau) else float(tau)


def search_source(doc: FrontFile) -> dict[str, Any]:
    """The supernet checkpoint, split and token budget the search scored perplexity with
    (search.json's `perplexity_source`)."""
    path = doc.folder / "search.json"
    try:
        source = json.loads(path.read_text()).get("perplexity_source") or {}
    except (OSError, json.JSONDecodeError):
        source = {}
    if not source.get("ckpt"):
        raise UserError(f"{path} names no supernet checkpoint (perplexity_source.ckpt): "
                        f"verify needs the supernet the search ran on")
    return source


def recipe(saved: dict[str, Any], steps: int, threads: int) -> dict[str, Any]:
    """The supernet's training settings (a checkpoint's `config`) as TrainConfig fields for
    one architecture trained alone: same data, schedule and seed, `steps` steps."""
    from supernet.config import TrainConfig
    names = {f.name for f in fields(TrainConfig)}
    settings = {k: v for k, v in saved.items() if k in names}
    settings.update(steps=steps, resume=False, threads=threads, progress=False,
                    tensorboard=False)
    return settings


# what a worker of `train_alone` imports: the training code, and torch._dynamo, which the first
# optimizer step imports (about 1 s)
TRAINING = ("supernet.train", "torch._dynamo")


def _train_one(task: dict[str, Any]) -> str:
    """Train, resume or reuse one run (`supernet.train.train_run`); returns what was done.
    Runs in a worker process."""
    import torch

    from supernet.config import TrainConfig
    from supernet.train import train_run
    settings = task["settings"]
    torch.set_num_threads(settings["threads"])
    plan = train_run(TrainConfig(**{**settings, "out": task["run"], "arch": task["key"]}))
    return plan.describe()


def train_alone(keys: list[str], folder: Path, settings: dict[str, Any],
                engine: Engine = Engine(), progress: bool = True,
                label: str = "verify") -> dict[str, str]:
    """Train each architecture alone in folder/KEY with `settings` (`recipe`) on `engine`:
    here or in worker processes, or as Ray tasks (one GPU each when the cluster has GPUs:
    nas.core.distributed.task_executor), the largest first so that the workers finish
    together; a finished run is reused, an interrupted or shorter one resumed
    (`supernet.train.train_run`). Returns what was done, by key."""
    from nas.core.progress import progress as progress_bar
    largest_first = sorted(keys, key=lambda key: -Arch.from_key(key).params())
    tasks = [{"key": key, "run": str(folder / key), "settings": settings}
             for key in largest_first]
    folder.mkdir(parents=True, exist_ok=True)
    runner = task_executor(_train_one, engine, cpus=settings["threads"], preload=TRAINING)
    bar = progress_bar(len(tasks), label, unit="run", enabled=progress)
    try:
        done = dict(zip(largest_first, runner.map(tasks, on_done=lambda *_: bar.update(1))))
    finally:
        bar.close()
        runner.close()
    for key in keys:
        print(f"  {key}: {done[key]}")
    return {key: done[key] for key in keys}


def standalone_loss(run: Path, split: str, max_tokens: int | None, threads: int) -> float:
    """The loss (nats per token) of a run trained alone, on `max_tokens` tokens of `split`."""
    from supernet.evaluate import SupernetEvaluator
    ev = SupernetEvaluator(run, split=split, max_tokens=max_tokens, threads=threads)
    return ev.losses([ev.fixed_arch or ev.space.largest()])[0]


def verify(job: VerifyJob) -> dict[str, Any]:
    """Train the picks and the largest subnet alone (resumable), write verified.csv/.json/.png;
    returns the summary written to verified.json."""
    job.check()
    doc = read_front(job.front)
    source = search_source(doc)
    if not doc.front:
        raise UserError(f"{doc.path}: the front is empty, nothing to verify")
    out = check_output_dir(doc.folder / VERIFY_DIR, "verify folder")
    with run_lock(out, what="verify folder"):   # one verify at a time; each run locks its own
        return _verify(job, doc, source, out)


def _verify(job: VerifyJob, doc: FrontFile, source: dict[str, Any], out: Path) -> dict[str, Any]:
    from supernet.checkpoint import load_checkpoint
    saved = load_checkpoint(source["ckpt"], "best")["config"]   # fails early on a bad supernet
    steps = job.steps or int(saved["steps"])
    threads = job.threads or 1
    largest = doc.largest.arch.key
    picks = spread_picks([c for c in doc.front if c.arch.key != largest], job.top)
    named = [c for cands in picks_of(doc.front, doc.largest, job.picks, doc.objective).values()
             for c in cands if c.arch.key != largest]
    picks += [c for c in dict.fromkeys(named) if c not in picks]
    entries = [(c, "pick") for c in picks] + [(doc.largest, "largest")]
    archs = list(dict.fromkeys(c.arch.key for c, _ in entries))
    engine = job.engine()
    print(f"verify {doc.folder}: {len(picks)} of the front's {len(doc.front)} architectures and "
          f"the largest subnet, trained alone for {steps} steps each with the supernet's recipe "
          f"({source['ckpt']}), {engine.describe()} -> {out}")
    train_alone(archs, out, recipe(saved, steps, threads), engine, job.progress)
    ppl = {key: math.exp(standalone_loss(out / key, source.get("split", "valid"),
                                         source.get("max_tokens"), threads)) for key in archs}
    results = [Verified(c, role, ppl[c.arch.key], out / c.arch.key) for c, role in entries]
    return write_verified(results, doc, out, {"steps": steps, "source": source,
                                              "top": job.top, "picks": job.picks,
                                              "workers": job.workers, "executor": job.executor})


def write_verified(results: list[Verified], doc: FrontFile, out: Path,
                   settings: dict[str, Any]) -> dict[str, Any]:
    """verified.csv, verified.json and verified.png from the trained runs."""
    objective = doc.objective
    pts = [(r.standalone, r.candidate.value(objective)) for r in results]
    for i in pareto_indices(pts):
        results[i].on_front = True
    picks = [r for r in results if r.role == "pick"]
    inherited = [r.candidate.perplexity for r in results]
    standalone = [r.standalone for r in results]
    summary = {
        "front": str(doc.path), "objective": objective, **settings,
        "kendall_tau": kendall_tau(inherited, standalone),
        "kendall_tau_picks": kendall_tau([r.candidate.perplexity for r in picks],
                                         [r.standalone for r in picks]),
        **_calibrated_summary(results),
        "picks_leaving_front": [r.candidate.key for r in picks if not r.on_front],
        "rows": [r.row() for r in results],
    }
    atomic_write_text(out / "verified.csv", csv_text(summary["rows"]))
    atomic_write_text(out / "verified.json", json.dumps(summary, indent=1, default=str))
    tau = summary["kendall_tau"]
    plot_verified(results, objective, out / "verified.png",
                  title=f"{doc.folder}: {len(picks)} front picks and the largest subnet trained "
                        f"alone for {settings['steps']} steps; Kendall tau "
                        + (f"{tau:.2f}" if tau is not None else "undefined"))
    print(f"Kendall tau, inherited vs standalone perplexity ({len(results)} architectures): "
          + (f"{tau:.3f}" if tau is not None else "undefined"))
    if "perplexity_mae_pct" in summary:
        mae = summary["perplexity_mae_pct"]
        print(f"calibrated inherited perplexity: {mae['calibrated']:.2f}% from standalone "
              f"(raw: {mae['raw']:.2f}%); raw Kendall tau "
              + (f"{summary['kendall_tau_raw']:.3f}" if summary["kendall_tau_raw"] is not None
                 else "undefined"))
    left = summary["picks_leaving_front"]
    print(f"picks that leave the front once trained alone: {', '.join(left) if left else 'none'}")
    print(f"wrote {out / 'verified.csv'}, {out / 'verified.json'}, {out / 'verified.png'}")
    return summary


def _calibrated_summary(results: list[Verified]) -> dict[str, Any]:
    """For a search on calibrated perplexity: the tau and mean absolute error of the raw and
    the calibrated inherited perplexity against the standalone one (nothing otherwise)."""
    if any(r.candidate.ppl_raw is None for r in results):
        return {}
    standalone = [r.standalone for r in results]

    def mae_pct(values: list[float]) -> float:
        return 100 * sum(abs(v / s - 1) for v, s in zip(values, standalone)) / len(values)
    raw = [r.candidate.ppl_raw for r in results]
    calibrated = [r.candidate.perplexity for r in results]
    return {"kendall_tau_raw": kendall_tau(raw, standalone),
            "perplexity_mae_pct": {"calibrated": mae_pct(calibrated), "raw": mae_pct(raw)}}


def plot_verified(results: list[Verified], objective: str, path: Path, title: str = "") -> None:
    """Left: standalone vs inherited perplexity with the y = x line. Right: the picks against
    the objective with both perplexities, each front drawn."""
    from nas.core.plotting import pyplot, save_figure
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    inh = [r.candidate.perplexity for r in results]
    std = [r.standalone for r in results]
    lo, hi = min(inh + std), max(inh + std)
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", ls="--", lw=1, label="y = x")
    for role, marker, color in (("pick", "o", "C0"), ("largest", "*", "C3")):
        sel = [r for r in results if r.role == role]
        if sel:
            ax.scatter([r.candidate.perplexity for r in sel], [r.standalone for r in sel],
                       marker=marker, s=90 if role == "largest" else 30, color=color,
                       label="largest subnet" if role == "largest" else "front picks", zorder=3)
    ax.set_xlabel("inherited perplexity (supernet weights)")
    ax.set_ylabel("standalone perplexity (trained alone)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    y = [r.candidate.value(objective) for r in results]
    for values, label, color in ((inh, "inherited", "C0"), (std, "standalone", "C1")):
        ax2.scatter(values, y, color=color, s=25, label=label)
        front = pareto_indices(list(zip(values, y)))
        ax2.plot([values[i] for i in front], [y[i] for i in front], color=color, lw=1)
    ax2.set_yscale("log")
    ax2.set_xlabel("perplexity")
    ax2.set_ylabel(OBJECTIVES[objective].label)
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8, title="front of", title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


__all__ = ["VerifyJob", "Verified", "verify", "spread_picks", "kendall_tau", "write_verified",
           "recipe", "train_alone", "standalone_loss", "search_source"]
