"""Ranking benchmark of the supernet recipes (run by hand, not in CI): how well do inherited
weights rank architectures that were each trained alone?

    python experiments/supernet/ranking/ranking.py queue            # (re)write the job queue
    nice -n 5 python experiments/supernet/ranking/ranking.py work   # a worker: runs queued jobs
    python experiments/supernet/ranking/ranking.py report           # ranking.json, .md, .png

Architectures: a deterministic stratified grid over the `tiny` space, depth x embedding width
d x layer-width profile (`select_archs`): every depth and d with full-width layers (4 heads,
FFN 512), middle ones and narrow ones (2 heads, FFN 128), so it holds full-width/narrow-layer
(d 128, narrow layers) and narrow-width/wide-layer (d 64, full layers) architectures, the space's
largest and smallest, plus three mixed profiles (attention-heavy, FFN-heavy, tapered).
Each is trained alone (nanoGPT's CPU baby-GPT recipe, as experiments/supernet/benchmark/) with
seeds 1337 and 1; the ground truth is the mean of the two, and the Kendall tau between the two
seeds is the noise ceiling. Every supernet variant (`VARIANTS`, TrainConfig overrides) is
trained with supernet seeds 1337 and 1 and evaluated with inherited weights on the full
validation split. Reported per variant: tau (mean over supernet seeds, per seed, and a 95%
bootstrap interval over architectures, 2000 resamples), top-k recall (the share of the true
best 20% that the supernet puts in its best 20%), the largest subnet's gap to training alone,
the inherited-vs-alone gap per d, and training seconds; proxies: non-embedding parameters, total
parameters, forward FLOPs per token.

Jobs (a standalone run or a supernet, each followed by its validation) are listed in
RUNS/queue.txt in priority order; workers take the first job that is neither done nor claimed by
a live worker, each in a fresh subprocess (so a queue rewritten with a new variant runs the
code as it is now). Finished jobs leave RUNS/done/JOB.json with their losses and time; `report`
only reads them, so it can run at any time (missing runs are listed as such).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(ROOT), str(HERE.parent / "benchmark")]

import calibrated_ranking as cr
from calibrated_ranking import ci95, top_recall
from benchmark import DATA, parse_variant, tau

from nas.core.arch import Arch, SearchSpace
from nas.core.atomic import atomic_write_text
from nas.core.provenance import provenance, write_result

RUNS = ROOT / "runs" / "ranking"
STEPS = 2000
STANDALONE_SEEDS = (1337, 1)
SUPERNET_SEEDS = (1337, 1)
VOCAB, CONTEXT = 65, 64               # Tiny Shakespeare characters, the recipe's context
TOP_FRACTION, BOOTSTRAP = cr.TOP_FRACTION, cr.BOOTSTRAP
# name -> TrainConfig overrides (benchmark.parse_variant syntax); the first is the recipe before
# calibration, few-shot (the second) the default since (ranking.md).
ONESHOT = "fewshot=false,sandwich_smallest=global,distill_loss=kl,sampler=uniform"
VARIANTS = {                            # every field named: the runs stay what they were if a
    "oneshot": ONESHOT,                 # TrainConfig default changes
    "fewshot": "fewshot=true,fewshot_every_d=false,sandwich_smallest=global,distill_loss=kl,"
               "sampler=uniform",
    "balanced": "fewshot=false,sandwich_smallest=each_d,distill_loss=kl,sampler=uniform",
    "alpha": "fewshot=false,sandwich_smallest=global,distill_loss=alpha,sampler=uniform",
    # measured after the above: few-shot with every sub-supernet trained every step after
    # the split (the one-d-in-turn split left the largest 4.9% behind training alone)
    "fewshot_every_d": "fewshot=true,fewshot_every_d=true,sandwich_smallest=global,"
                       "distill_loss=kl,sampler=uniform",
    # a sampling variant from the literature on top of few-shot: the sandwich's random subnets
    # stratified by parameter count (whittle's ParamBins, supernet/sampling.py)
    "fewshot_parambins": "fewshot=true,fewshot_every_d=false,sandwich_smallest=global,"
                         "distill_loss=kl,sampler=param_bins",
}
BASELINE = "oneshot"                  # the recipe before calibration: queued first
# The longer budget: LONG_ARCHS architectures (each d's largest, the calibration's anchors,
# then the stratified order) x the standalone seeds, and LONG_VARIANTS, at 3x the steps.
LONG_STEPS = 3 * STEPS
LONG_ARCHS = 15
LONG_VARIANTS = ("fewshot", "oneshot")


# -- the architectures ---------------------------------------------------------------------------

def _profiles(space: SearchSpace, layers: int) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Per-layer (heads, ffn) profiles for a depth: full, middle, narrow (uniform layers)."""
    h, f = space.heads, space.ffn
    mid_f = [f[len(f) // 2 - 1], f[len(f) // 2]]             # alternate the two middle widths
    return {"full": ((h[-1],) * layers, (f[-1],) * layers),
            "mid": ((h[len(h) // 2],) * layers, tuple(mid_f[i % 2] for i in range(layers))),
            "narrow": ((h[0],) * layers, (f[0],) * layers)}


def select_archs(space: SearchSpace) -> list[tuple[Arch, str]]:
    """(arch, profile) for depth x d x {full, mid, narrow}, then three mixed profiles at the
    middle depth, one per d: attention-heavy (all heads, narrowest FFN), FFN-heavy (fewest
    heads, widest FFN) and tapered (full first layer down to narrow last). Deterministic."""
    out = []
    for layers in space.layers:
        for d in space.d:
            for name, (heads, ffn) in _profiles(space, layers).items():
                out.append((Arch(d=d, heads=heads, ffn=ffn, head_dim=space.head_dim), name))
    n = space.layers[len(space.layers) // 2]
    h, f = space.heads, space.ffn
    mixed = {"attn-heavy": ((h[-1],) * n, (f[0],) * n),
             "ffn-heavy": ((h[0],) * n, (f[-1],) * n),
             "tapered": (tuple(h[round((len(h) - 1) * (1 - i / (n - 1)))] for i in range(n)),
                         tuple(f[round((len(f) - 1) * (1 - i / (n - 1)))] for i in range(n)))}
    for d, (name, (heads, ffn)) in zip(space.d, mixed.items()):
        out.append((Arch(d=d, heads=heads, ffn=ffn, head_dim=space.head_dim), name))
    assert len({a for a, _ in out}) == len(out)
    return out


def flops_per_token(arch: Arch, vocab: int = VOCAB, context: int = CONTEXT) -> int:
    """Forward FLOPs per token: 2 x (matmul weights incl. the tied LM head) + attention scores and
    weighted sum 2 x 2 x layers x context x attention width (Kaplan et al. 2020, Table 1)."""
    matmul = sum(4 * arch.d * h * arch.head_dim + 2 * arch.d * f
                 for h, f in zip(arch.heads, arch.ffn)) + vocab * arch.d
    return 2 * matmul + 4 * context * sum(arch.attn_width(i) for i in range(arch.layers))


# -- jobs ---------------------------------------------------------------------------------------

def _steps_suffix(steps: int) -> str:
    return "" if steps == STEPS else f"-steps{steps}"


def standalone_job(arch: Arch, seed: int, steps: int = STEPS) -> str:
    return f"standalone-{arch.key}-seed{seed}{_steps_suffix(steps)}"


def supernet_job(name: str, seed: int, steps: int = STEPS) -> str:
    return f"supernet-{name}-seed{seed}{_steps_suffix(steps)}"


def parse_job(job: str) -> tuple[str, str, int, int]:
    """('standalone' or 'supernet', arch key or variant, seed, steps) of a job name."""
    kind, _, rest = job.partition("-")
    steps = STEPS
    if "-steps" in rest:
        rest, _, tail = rest.rpartition("-steps")
        steps = int(tail)
    name, _, seed = rest.rpartition("-seed")
    return kind, name, int(seed), steps


def long_archs(space: SearchSpace) -> list[Arch]:
    """The longer budget's architectures: the largest of each d (the default calibration's
    anchors), then the stratified order, LONG_ARCHS in all."""
    from nas.calibrate import pick_anchors
    selected = select_archs(space)
    anchors = pick_anchors([a for a, _ in selected])
    rest = [a for a in stratified_order(selected) if a not in anchors]
    return anchors + rest[:LONG_ARCHS - len(anchors)]


def supernet_overrides(name: str, seed: int) -> dict:
    return {**parse_variant(VARIANTS[name]), "seed": seed}


def stratified_order(selected: list[tuple[Arch, str]]) -> list[Arch]:
    """The architectures reordered so that every prefix of 9 holds each (depth, d) once, with
    the uniform profiles rotated (a latin square), the mixed profiles last: a run cut short
    still has a balanced sample."""
    uniform = [p for p in dict.fromkeys(p for _, p in selected)][:3]
    depths = sorted({a.layers for a, _ in selected})
    widths = sorted({a.d for a, _ in selected})
    where = {(a.layers, a.d, p): a for a, p in selected}
    order = [where[(L, d, uniform[(i + j + r) % len(uniform)])]
             for r in range(len(uniform)) for i, L in enumerate(depths)
             for j, d in enumerate(widths)]
    return order + [a for a, _ in selected if a not in order]


def all_jobs() -> list[str]:
    """Priority order, so that a run cut short still has the most: the standalone runs (first
    seed, then the second in stratified order; the committed ones are reused, `reuse`), the
    supernets of the recipe before calibration and of few-shot (the default) for every seed,
    the sampling variant, the longer budget's few-shot, the other variants, then the longer
    budget's other variants."""
    selected = select_archs(SearchSpace.load("tiny"))
    jobs = [standalone_job(a, STANDALONE_SEEDS[0]) for a, _ in selected]
    jobs += [standalone_job(a, s) for s in STANDALONE_SEEDS[1:]
             for a in stratified_order(selected)]
    first = [BASELINE, "fewshot", "fewshot_parambins"]
    jobs += [supernet_job(v, s) for v in first for s in SUPERNET_SEEDS]
    long = long_jobs()
    jobs += [j for j in long if parse_job(j)[1] not in LONG_VARIANTS[1:]]
    jobs += [supernet_job(v, s) for v in VARIANTS if v not in first for s in SUPERNET_SEEDS]
    return jobs + [j for j in long if j not in jobs]


def long_jobs() -> list[str]:
    """The longer budget: its first variant's supernets, the standalone runs seed by seed,
    then the other variants."""
    archs = long_archs(SearchSpace.load("tiny"))
    jobs = [supernet_job(LONG_VARIANTS[0], s, LONG_STEPS) for s in SUPERNET_SEEDS]
    jobs += [standalone_job(a, s, LONG_STEPS) for s in STANDALONE_SEEDS for a in archs]
    jobs += [supernet_job(v, s, LONG_STEPS) for v in LONG_VARIANTS[1:] for s in SUPERNET_SEEDS]
    return jobs


def done_path(job: str) -> Path:
    return RUNS / "done" / f"{job}.json"


def read_done(job: str) -> dict | None:
    path = done_path(job)
    return json.loads(path.read_text()) if path.is_file() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def claim(job: str) -> bool:
    """Atomically claim `job` for this worker (a claim by a dead worker is taken over)."""
    path = RUNS / "claims" / job
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text() or "0")
            except (OSError, ValueError):
                return False
            if pid and _alive(pid):
                return False
            path.unlink(missing_ok=True)
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def run_job(job: str) -> None:
    """Train (or reuse) the job's run, validate it on the full validation split, and record
    the losses, the architectures' keys and the training time in RUNS/done/JOB.json."""
    import torch
    from benchmark import run, train_time, valid_loss

    from supernet.data import eval_windows, load_tokens
    from supernet.train import TrainConfig

    torch.set_num_threads(1)
    space = SearchSpace.load("tiny")
    kind, name, seed, steps = parse_job(job)
    base = dict(space="tiny", dataset=str(DATA), tokenizer="char", steps=steps, threads=1,
                eval_interval=steps // 8, progress=False)
    archs = [a for a, _ in select_archs(space)]
    if kind == "standalone":
        cfg = TrainConfig(out=str(RUNS / job), arch=name, seed=seed, **base)
        evaluated = [Arch.from_key(name)]
    else:
        cfg = TrainConfig(out=str(RUNS / job), **{**base, **supernet_overrides(name, seed)})
        evaluated = archs
    run_dir = run(cfg)
    _, tokens = load_tokens(str(DATA), "char")
    x, y = eval_windows(tokens["valid"], CONTEXT)
    losses = valid_loss(run_dir, evaluated, x, y)
    atomic_write_text(done_path(job), json.dumps({
        "job": job, "train_seconds": train_time(run_dir), "valid_tokens": y.numel(),
        "valid_loss": dict(zip((a.key for a in evaluated), losses))}, indent=1) + "\n")


def reuse_committed() -> int:
    """RUNS/done/JOB.json of every standalone run whose loss the committed ranking.json holds
    (written by the code before calibration, 2000 steps; a rerun of two of them gave the same
    losses to the last digit): only their training time is unknown (null). Returns how many."""
    committed = json.loads((HERE / "ranking.json").read_text())
    written = 0
    for row in committed["arch_table"]:
        for seed, loss in row["standalone_by_seed"].items():
            job = standalone_job(Arch.from_key(row["key"]), int(seed))
            if loss is None or done_path(job).is_file():
                continue
            atomic_write_text(done_path(job), json.dumps({
                "job": job, "train_seconds": None, "valid_tokens": None,
                "valid_loss": {row["key"]: loss},
                "reused_from": "experiments/supernet/ranking.json (commit 0c95f55)"},
                indent=1) + "\n")
            written += 1
    return written


def work() -> None:
    """Run queued jobs until none is left (re-reading the queue before each)."""
    while True:
        queue = (RUNS / "queue.txt").read_text().split()
        job = next((j for j in queue if not done_path(j).is_file() and claim(j)), None)
        if job is None:
            print("no job left", flush=True)
            return
        t = time.time()
        print(f"{time.strftime('%H:%M:%S')} start {job}", flush=True)
        rc = subprocess.call([sys.executable, __file__, "job", job])
        print(f"{time.strftime('%H:%M:%S')} end {job} rc={rc} ({time.time() - t:.0f}s)",
              flush=True)
        if rc != 0:                          # leave the claim: a failing job is not retried
            continue
        (RUNS / "claims" / job).unlink(missing_ok=True)


def step_costs(steps: int = 40, repeats: int = 3) -> dict[str, dict]:
    """Seconds per training step of each variant, measured without evaluation and on equal
    terms: the same batch, `steps` steps spread evenly over the run (so a few-shot run's shared
    and split phases count in proportion), variants interleaved `repeats` times; the median."""
    import torch

    from supernet.fewshot import FewShotGPT
    from supernet.model import ElasticGPT, ModelConfig
    from supernet.train import TrainConfig, sandwich_step, step_groups, student_weight

    torch.set_num_threads(1)
    space = SearchSpace.load("tiny")
    g = torch.Generator().manual_seed(0)
    data = torch.randint(VOCAB, (12, CONTEXT + 1), generator=g)
    x, y = data[:, :-1], data[:, 1:]
    setups = {}
    for name in VARIANTS:
        cfg = TrainConfig(steps=STEPS, **supernet_overrides(name, 1337))
        torch.manual_seed(0)
        model = (FewShotGPT if cfg.fewshot else ElasticGPT)(ModelConfig(VOCAB, CONTEXT), space)
        if cfg.fewshot:
            model.split()                # the cost of a subnet does not depend on the routing
        setups[name] = (cfg, model)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(repeats):
        for name, (cfg, model) in setups.items():
            t = time.perf_counter()
            for i in range(steps):
                for archs in step_groups(space, None, cfg, i * STEPS // steps):
                    sandwich_step(model, x, y, archs, distill_loss=cfg.distill_loss,
                                  student_weight=student_weight(cfg, archs))
                model.zero_grad(set_to_none=True)
            times[name].append((time.perf_counter() - t) / steps)
    base = statistics.median(times[BASELINE])
    return {name: {"step_seconds": statistics.median(v),
                   "vs_baseline": statistics.median(v) / base} for name, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("queue", help="write RUNS/queue.txt (all jobs in priority order)")
    sub.add_parser("work", help="run queued jobs until none is left")
    job = sub.add_parser("job", help="run one job (what a worker calls)")
    job.add_argument("name")
    sub.add_parser("report", help="write ranking.json, ranking.md, ranking.png")
    sub.add_parser("reuse", help="mark the standalone runs the committed ranking.json holds as "
                                 "done, with their losses")
    sub.add_parser("steptime", help="measure each variant's seconds per training step into "
                                    "RUNS/step_costs.json (read by report)")
    args = ap.parse_args()
    if args.cmd == "queue":
        atomic_write_text(RUNS / "queue.txt", "\n".join(all_jobs()) + "\n")
        print(f"{len(all_jobs())} jobs in {RUNS / 'queue.txt'}")
    elif args.cmd == "work":
        work()
    elif args.cmd == "job":
        run_job(args.name)
    elif args.cmd == "reuse":
        print(f"{reuse_committed()} standalone runs taken from {HERE / 'ranking.json'}")
    elif args.cmd == "steptime":
        costs = step_costs()
        atomic_write_text(RUNS / "step_costs.json", json.dumps(costs, indent=1) + "\n")
        print(json.dumps(costs, indent=1))
    else:
        report()
    return 0


# -- the report --------------------------------------------------------------------------------

def bootstrap(stat, n: int, resamples: int = BOOTSTRAP, seed: int = 0) -> list[float]:
    """`stat(indices)` over `resamples` resamples of the n architectures with replacement."""
    rng = random.Random(seed)
    return [stat([rng.randrange(n) for _ in range(n)]) for _ in range(resamples)]


def default_variant() -> str | None:
    """The variant whose overrides are TrainConfig's defaults (today's recipe)."""
    from dataclasses import fields

    from supernet.train import TrainConfig
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    return next((v for v in VARIANTS if all(defaults[k] == x for k, x in
                                           parse_variant(VARIANTS[v]).items())), None)


def report() -> None:
    prov = provenance()
    space = SearchSpace.load("tiny")
    selected = select_archs(space)
    by_seed = {s: {} for s in STANDALONE_SEEDS}
    for arch, _ in selected:
        for seed in STANDALONE_SEEDS:
            done = read_done(standalone_job(arch, seed))
            if done:
                by_seed[seed][arch.key] = done["valid_loss"][arch.key]
    ranked = [(a, p) for a, p in selected if any(a.key in by_seed[s] for s in STANDALONE_SEEDS)]
    keys = [a.key for a, _ in ranked]
    n = len(keys)
    truth = [statistics.fmean(by_seed[s][k] for s in STANDALONE_SEEDS if k in by_seed[s])
             for k in keys]
    out = {"workflow": "ranking.py queue, then ranking.py work (workers), then this report",
           "recipe": f"tiny space, Tiny Shakespeare char-level, {STEPS} steps, batch 12, "
                     "context 64, lr 1e-3 -> 1e-4, warmup 100; validation: the full 10% split",
           "archs": n, "archs_selected": len(selected),
           "seeds": {"standalone": list(STANDALONE_SEEDS), "supernet": list(SUPERNET_SEEDS)},
           "bootstrap_resamples": BOOTSTRAP, "top_fraction": TOP_FRACTION,
           "default_variant": default_variant()}
    # noise ceiling: tau between the two standalone seeds, on the archs that have both
    both = [i for i, k in enumerate(keys) if all(k in by_seed[s] for s in STANDALONE_SEEDS)]
    s0, s1 = STANDALONE_SEEDS[:2]
    seed_a = [by_seed[s0][keys[i]] for i in both]
    seed_b = [by_seed[s1][keys[i]] for i in both]
    out["noise_ceiling"] = {
        "tau": tau(seed_a, seed_b) if len(both) > 2 else None,
        "tau_ci95": ci95(bootstrap(lambda ix: tau([seed_a[i] for i in ix],
                                                      [seed_b[i] for i in ix]), len(both)))
        if len(both) > 2 else None,
        "archs": len(both), "seeds": [s0, s1],
        "topk_recall": top_recall(seed_a, seed_b) if len(both) > 2 else None}
    # proxies: more is better, so rank by minus the count
    proxy_values = {"non_embedding_params": [a.params() for a, _ in ranked],
                    "total_params": [a.params(VOCAB, CONTEXT) for a, _ in ranked],
                    "flops_per_token": [flops_per_token(a) for a, _ in ranked],
                    # a diagnostic: only the embedding width (ties inside a width)
                    "embedding_width_d": [a.d for a, _ in ranked]}
    out["noise_ceiling"]["tau_within_d"] = {str(d): tau(
        [seed_a[j] for j, i in enumerate(both) if ranked[i][0].d == d],
        [seed_b[j] for j, i in enumerate(both) if ranked[i][0].d == d]) for d in space.d}
    out["proxies"] = {}
    for name, vals in proxy_values.items():
        neg = [-v for v in vals]
        out["proxies"][name] = {
            "tau": tau(neg, truth),
            "tau_ci95": ci95(bootstrap(lambda ix, neg=neg: tau([neg[i] for i in ix],
                                                                   [truth[i] for i in ix]), n)),
            "topk_recall": top_recall(neg, truth)}
    nonemb = [-v for v in proxy_values["non_embedding_params"]]
    largest = space.largest().key
    out["variants"] = {}
    inherited_all = {}
    taus_by_variant = {}
    for name in VARIANTS:
        runs = {s: read_done(supernet_job(name, s)) for s in SUPERNET_SEEDS}
        runs = {s: r for s, r in runs.items() if r}
        if not runs:
            continue
        inh = {s: [r["valid_loss"][k] for k in keys] for s, r in runs.items()}
        inherited_all[name] = {k: statistics.fmean(inh[s][i] for s in inh)
                               for i, k in enumerate(keys)}

        def mean_tau(ix, inh=inh):
            return statistics.fmean(tau([v[i] for i in ix], [truth[i] for i in ix])
                                    for v in inh.values())
        boot = bootstrap(mean_tau, n)
        taus_by_variant[name] = mean_tau
        diff = bootstrap(lambda ix: mean_tau(ix) - tau([nonemb[i] for i in ix],
                                                           [truth[i] for i in ix]), n)
        gaps = {s: [100 * (v[i] / truth[i] - 1) for i in range(n)] for s, v in inh.items()}
        li = keys.index(largest) if largest in keys else None
        out["variants"][name] = {
            "overrides": VARIANTS[name],
            "supernet_seeds": list(inh),
            "tau": mean_tau(range(n)), "tau_ci95": ci95(boot),
            "tau_per_seed": {str(s): tau(v, truth) for s, v in inh.items()},
            "tau_minus_non_embedding_params_ci95": ci95(diff),
            "topk_recall": statistics.fmean(top_recall(v, truth) for v in inh.values()),
            "topk_recall_per_seed": {str(s): top_recall(v, truth) for s, v in inh.items()},
            "largest_gap_pct": (statistics.fmean(g[li] for g in gaps.values())
                                if li is not None else None),
            "largest_gap_pct_per_seed": ({str(s): g[li] for s, g in gaps.items()}
                                         if li is not None else None),
            "tau_within_d": {str(d): statistics.fmean(tau(
                [v[i] for i in range(n) if ranked[i][0].d == d],
                [truth[i] for i in range(n) if ranked[i][0].d == d]) for v in inh.values())
                for d in space.d},
            "gap_pct_by_d": {str(d): statistics.fmean(
                g[i] for g in gaps.values() for i in range(n) if ranked[i][0].d == d)
                for d in space.d},
            "train_seconds": statistics.fmean(r["train_seconds"] for r in runs.values()),
            "train_seconds_per_seed": {str(s): r["train_seconds"] for s, r in runs.items()}}
    if BASELINE in taus_by_variant:       # paired: the same resamples for both recipes
        for name, v in out["variants"].items():
            if name != BASELINE:
                v[f"tau_minus_{BASELINE}_ci95"] = ci95(bootstrap(
                    lambda ix, f=taus_by_variant[name]: f(ix) - taus_by_variant[BASELINE](ix),
                    n))
    costs_path = RUNS / "step_costs.json"
    costs = json.loads(costs_path.read_text()) if costs_path.is_file() else {}
    for name, v in out["variants"].items():
        if name in costs:
            v["step_seconds_equal_terms"] = costs[name]["step_seconds"]
            v["step_time_vs_" + BASELINE] = costs[name]["vs_baseline"]
    base = out["default_variant"]
    if base in out["variants"]:
        for v in out["variants"].values():
            v["train_time_vs_default"] = v["train_seconds"] / out["variants"][base]["train_seconds"]
    out["arch_table"] = [
        {"key": a.key, "profile": p, "d": a.d, "layers": a.layers,
         "non_embedding_params": a.params(), "flops_per_token": flops_per_token(a),
         "standalone_mean": truth[i],
         "standalone_by_seed": {str(s): by_seed[s].get(a.key) for s in STANDALONE_SEEDS},
         "inherited_mean_over_supernet_seeds": {v: inherited_all[v][a.key]
                                                for v in inherited_all}}
        for i, (a, p) in enumerate(ranked)]
    out["calibration"] = calibration_results([a for a, _ in selected])
    if out["calibration"]:
        out["calibrated"], out["pair_accuracy"] = headline(out["calibration"])
    missing = [j for j in all_jobs() if not done_path(j).is_file()]
    out["complete"] = not missing
    out["missing_jobs"] = missing
    write_result(HERE / "ranking.json", out, prov)
    write_markdown(out)
    if out["variants"]:
        plot(out, HERE / "ranking.png")
    print(json.dumps({k: out[k] for k in ("archs", "noise_ceiling", "proxies", "complete")},
                     indent=1))
    for name, v in out["variants"].items():
        print(f"{name}: tau {v['tau']:.3f} {v['tau_ci95']} per seed {v['tau_per_seed']} "
              f"top-k {v['topk_recall']:.2f} largest gap {v['largest_gap_pct']} "
              f"by d {v['gap_pct_by_d']} {v['train_seconds']:.0f}s")


# -- the calibration section (calibrated_ranking) ----------------------------------------------

ANCHOR_COUNTS = (3, 6, 9)       # anchors per supernet seed: one, two, three per d


def benchmark_of(archs: list[Arch], steps: int, variants) -> cr.Benchmark | None:
    """The finished runs of `steps` steps: standalone losses of `archs` for every seed (None
    when one is missing) and the inherited ones of every variant's finished supernets."""
    standalone = {}
    for seed in STANDALONE_SEEDS:
        done = [read_done(standalone_job(a, seed, steps)) for a in archs]
        if not all(done):
            return None
        standalone[seed] = {a.key: d["valid_loss"][a.key] for a, d in zip(archs, done)}
    inherited = {}
    for v in variants:
        runs = {s: read_done(supernet_job(v, s, steps)) for s in SUPERNET_SEEDS}
        if any(runs.values()):
            inherited[v] = {s: r["valid_loss"] for s, r in runs.items() if r}
    return cr.Benchmark(archs, standalone, inherited)


def _section(bench: cr.Benchmark, variants: list[str], counts=(3,)) -> dict:
    threshold = cr.NOISE_SDS * bench.seed_sd()
    return {"seed_sd": bench.seed_sd(), "noise_threshold": threshold,
            "by_anchors": {str(k): cr.compare(bench, variants if k == counts[0] else
                                              variants[:1], k, threshold) for k in counts}}


def calibration_results(archs: list[Arch]) -> dict:
    """Every variant raw and calibrated with one anchor per d; the default with two and three
    per d (leave-one-out picks the correction); every variant's calibrated pair accuracy minus
    the default's; the longer budget and the same architectures at STEPS."""
    bench = benchmark_of(archs, STEPS, VARIANTS)
    default = default_variant()
    if bench is None or default not in bench.inherited:
        return {}
    variants = [default] + [v for v in VARIANTS if v != default and v in bench.inherited]
    out = {"noise_sds": cr.NOISE_SDS, "default_variant": default,
           **_section(bench, variants, ANCHOR_COUNTS)}
    out["calibrated_minus_default_ci95"] = {     # each variant against the default, paired
        v: cr.paired(bench, 3, out["noise_threshold"], v, default) for v in variants[1:]}
    space = SearchSpace.load("tiny")
    out["anchor_position"] = cr.anchor_sets(bench, default, anchor_positions(space),
                                            out["noise_threshold"])
    out["long"] = {}
    for steps in (LONG_STEPS, STEPS):
        sub = benchmark_of(long_archs(space), steps, LONG_VARIANTS)
        if sub is not None and sub.inherited:
            out["long"][str(steps)] = _section(sub, [v for v in LONG_VARIANTS
                                                     if v in sub.inherited])
    return out


def anchor_positions(space: SearchSpace) -> dict[str, list[Arch]]:
    """`L<depth>-<profile>` -> the architecture of that depth and uniform profile
    (select_archs) in every d: one anchor per d at the same place in each."""
    sets: dict[str, list[Arch]] = {}
    for arch, profile in select_archs(space):
        sets.setdefault(f"L{arch.layers}-{profile}", []).append(arch)
    return {name: archs for name, archs in sets.items() if len(archs) == len(space.d)}


def headline(section: dict) -> tuple[dict, dict]:
    """ranking.json's `calibrated` and `pair_accuracy`: the default recipe calibrated with one
    anchor per d, against itself raw, d alone and the parameter proxy."""
    default = section["default_variant"]
    c = section["by_anchors"]["3"]
    est = c["estimators"]
    cal = est[f"calibrated {default}"]
    return ({"variant": default, "anchors_per_seed": c["anchors_per_seed"],
             "resolvable_pairs": c["resolvable_pairs"],
             "noise_threshold": section["noise_threshold"], "tau": cal["tau"],
             "tau_ci95": cal["tau_ci95"], "mae_pct": cal["mae_pct"],
             "topk_recall": cal["topk_recall"]},
            {"calibrated": cal["pair_accuracy"],
             "raw_default": est[f"raw {default}"]["pair_accuracy"],
             "d_alone": est["d_alone"]["pair_accuracy"],
             "non_embedding_params": est["non_embedding_params"]["pair_accuracy"]})


def _fmt(x, spec=".3f") -> str:
    return "-" if x is None else format(x, spec)


def write_markdown(r: dict) -> None:
    nc = r["noise_ceiling"]
    lines = ["# Supernet ranking benchmark", "",
             f"{r['recipe']}. {r['archs']} architectures trained alone with seeds "
             f"{r['seeds']['standalone']} (ground truth: their mean); supernets with seeds "
             f"{r['seeds']['supernet']}. 95% intervals: {r['bootstrap_resamples']} bootstrap "
             f"resamples of the architectures. Top-k recall: share of the true best "
             f"{100 * r['top_fraction']:.0f}% in the estimator's best "
             f"{100 * r['top_fraction']:.0f}%. Default recipe: `{r['default_variant']}`.", ""]
    if not r["complete"]:
        lines += [f"**Partial:** {len(r['missing_jobs'])} runs missing: "
                  + ", ".join(f"`{j}`" for j in r["missing_jobs"]), ""]
    lines += ["| estimator | tau (mean over supernet seeds) | 95% CI | tau per seed | "
              "tau - non-emb. params, 95% CI | top-k recall | largest vs alone | "
              "gap by d (inherited vs alone) | train s, shared machine (vs default) | "
              f"s/step on equal terms (vs {BASELINE}) |",
              "|---|---:|---|---|---|---:|---:|---|---:|---:|"]
    for name, v in r["variants"].items():
        lines.append(
            f"| {name} (`{v['overrides']}`) | **{v['tau']:.3f}** | "
            f"[{v['tau_ci95'][0]:.3f}, {v['tau_ci95'][1]:.3f}] | "
            + ", ".join(f"{s}: {t:.3f}" for s, t in v["tau_per_seed"].items()) + " | "
            f"[{v['tau_minus_non_embedding_params_ci95'][0]:+.3f}, "
            f"{v['tau_minus_non_embedding_params_ci95'][1]:+.3f}] | {v['topk_recall']:.2f} | "
            f"{_fmt(v['largest_gap_pct'], '+.2f')}% | "
            + ", ".join(f"d{d}: {g:+.2f}%" for d, g in v["gap_pct_by_d"].items()) + " | "
            f"{v['train_seconds']:.0f} ({_fmt(v.get('train_time_vs_default'), '.2f')}x) | "
            f"{_fmt(v.get('step_seconds_equal_terms'), '.3f')} "
            f"({_fmt(v.get('step_time_vs_' + BASELINE), '.2f')}x) |")
    for name, p in r["proxies"].items():
        lines.append(f"| proxy: {name} | {p['tau']:.3f} | [{p['tau_ci95'][0]:.3f}, "
                     f"{p['tau_ci95'][1]:.3f}] | | | {p['topk_recall']:.2f} | | | | |")
    if nc["tau"] is not None:
        lines.append(f"| noise ceiling: standalone seed {nc['seeds'][0]} vs {nc['seeds'][1]} "
                     f"({nc['archs']} archs) | {nc['tau']:.3f} | [{nc['tau_ci95'][0]:.3f}, "
                     f"{nc['tau_ci95'][1]:.3f}] | | | {nc['topk_recall']:.2f} | | | | |")
    lines += ["", "Kendall tau within each d (the order of the 10 architectures of one width; "
              "the rest of the error is the order across widths): " + "; ".join(
                  f"{name} " + ", ".join(f"d{d} {t:.3f}" for d, t in v["tau_within_d"].items())
                  for name, v in r["variants"].items())
              + ("; noise ceiling " + ", ".join(f"d{d} {t:.3f}" for d, t in
                                               nc["tau_within_d"].items())
                 if nc.get("tau_within_d") else "") + "."]
    lines += ["", f"Paired bootstrap of tau minus the {BASELINE} recipe's (95%): " + "; ".join(
        f"{name} [{v[f'tau_minus_{BASELINE}_ci95'][0]:+.3f}, "
        f"{v[f'tau_minus_{BASELINE}_ci95'][1]:+.3f}]"
        for name, v in r["variants"].items() if f"tau_minus_{BASELINE}_ci95" in v) + "."]
    lines += cr.calibration_markdown(r.get("calibration", {}))
    names = list(r["variants"])
    lines += ["", "![ranking](ranking.png)", "",
              "| architecture | profile | non-emb. params | standalone mean | "
              + " | ".join(f"seed {s}" for s in r["seeds"]["standalone"]) + " | "
              + " | ".join(names) + " |",
              "|---|---|---:|---:|" + "---:|" * (len(r["seeds"]["standalone"]) + len(names))]
    for a in r["arch_table"]:
        lines.append(f"| `{a['key']}` | {a['profile']} | {a['non_embedding_params']:,} | "
                     f"{a['standalone_mean']:.4f} | "
                     + " | ".join(_fmt(a["standalone_by_seed"][str(s)], ".4f")
                                  for s in r["seeds"]["standalone"]) + " | "
                     + " | ".join(_fmt(a["inherited_mean_over_supernet_seeds"].get(v), ".4f")
                                  for v in names) + " |")
    atomic_write_text(HERE / "ranking.md", "\n".join(lines) + "\n")


def plot(r: dict, path: Path) -> None:
    """One panel per variant: inherited (mean over supernet seeds) vs standalone loss, coloured
    by d; a last panel: every estimator's tau with its 95% interval."""
    from nas.core.plotting import pyplot, save_figure
    plt = pyplot()
    names = list(r["variants"])
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.2 * (len(names) + 1), 4.2),
                             squeeze=False)
    xs = [a["standalone_mean"] for a in r["arch_table"]]
    colours = {64: "tab:blue", 96: "tab:orange", 128: "tab:green"}
    for ax, name in zip(axes[0], names):
        ys = [a["inherited_mean_over_supernet_seeds"][name] for a in r["arch_table"]]
        for d in sorted({a["d"] for a in r["arch_table"]}):
            pts = [(x, y) for x, y, a in zip(xs, ys, r["arch_table"]) if a["d"] == d]
            ax.scatter(*zip(*pts), s=18, color=colours.get(d), label=f"d = {d}")
        lo, hi = min(xs + ys) - 0.01, max(xs + ys) + 0.01
        ax.plot([lo, hi], [lo, hi], "k:", lw=0.8)
        ax.set(title=f"{name}: tau {r['variants'][name]['tau']:.3f}",
               xlabel="standalone loss (mean of seeds)", ylabel="inherited loss")
        ax.legend(fontsize=7)
    ax = axes[0][-1]
    rows = ([(n, v["tau"], v["tau_ci95"]) for n, v in r["variants"].items()]
            + [(f"proxy {n}", p["tau"], p["tau_ci95"]) for n, p in r["proxies"].items()])
    if r["noise_ceiling"]["tau"] is not None:
        rows.append(("noise ceiling", r["noise_ceiling"]["tau"], r["noise_ceiling"]["tau_ci95"]))
    for i, (label, t, (lo, hi)) in enumerate(rows):
        ax.errorbar([t], [i], xerr=[[t - lo], [hi - t]], fmt="o", capsize=3)
    ax.axvline(0.85, color="k", ls=":", lw=0.8)
    ax.set_yticks(range(len(rows)), [row[0] for row in rows], fontsize=7)
    ax.set(title="Kendall tau, 95% CI", xlabel="tau vs standalone")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
