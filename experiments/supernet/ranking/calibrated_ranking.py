"""The ranking benchmark's calibration section (ranking.py `report`): how well each estimator
orders the architectures that training alone can tell apart, raw and calibrated.

Ground truth: the mean of the standalone seeds. Per-run seed noise: sd = sqrt(mean over
architectures of (seed a - seed b)^2 / 2) (the pooled variance of two runs); the difference of
two architectures' means then has sd `sd` too, and a pair is **resolvable** when their means
differ by more than NOISE_SDS x sd (the threshold). Pair accuracy: the share of resolvable
pairs an estimator orders like the truth (a tie of the estimator counts half: it orders
nothing). Estimators:

    raw <variant>         the inherited loss of each supernet seed
    calibrated <variant>  the inherited loss corrected by `nas.calibrate.fit_calibration` on K
                          anchors per supernet seed (`pick_anchors` of the benchmark's
                          architectures: each d's largest first), each anchor's standalone loss
                          that of the standalone run with the supernet's seed (what `nas
                          calibrate` trains)
    d alone               the embedding width (wider is better; ties within a width)
    non-embedding params  the parameter count proxy

**Anchors are excluded from every metric**: all estimators are compared on the same
non-anchor architectures. A variant's metric is the mean over its supernet seeds; 95%
intervals: BOOTSTRAP resamples of the architectures (the same resamples for every estimator,
so differences are paired). Also: Kendall tau (and within each d), the mean absolute error of
the loss in % (raw and calibrated only) and top-k recall.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np
from benchmark import tau   # experiments/supernet/benchmark (on the path: ranking.py)

from nas.calibrate import fit_calibration, pick_anchors
from nas.core.arch import Arch
from nas.core.calibration import Anchor

NOISE_SDS = 2.0
BOOTSTRAP = 2000
TOP_FRACTION = 0.2


@dataclass
class Benchmark:
    """The architectures, their standalone losses by seed and the supernets' inherited ones."""

    archs: list[Arch]
    standalone: dict[int, dict[str, float]]           # seed -> key -> loss
    inherited: dict[str, dict[int, dict[str, float]]]  # variant -> supernet seed -> key -> loss

    def truth(self, archs: list[Arch]) -> np.ndarray:
        return np.array([statistics.fmean(s[a.key] for s in self.standalone.values())
                         for a in archs])

    def seed_sd(self) -> float:
        """Per-run seed sd from the first two standalone seeds (every architecture)."""
        a, b = list(self.standalone.values())[:2]
        return math.sqrt(statistics.fmean((a[k.key] - b[k.key]) ** 2 / 2 for k in self.archs))


def calibrated(bench: Benchmark, variant: str, anchors: list[Arch], items: list[Arch],
               model: str | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Per supernet seed, the calibrated losses of `items` (fitted on `anchors`; `model`
    forces a correction, else leave-one-out chooses), and the models chosen."""
    from nas.calibrate import MODELS
    models = [m for m in MODELS if m.name == model] if model else MODELS
    widths = sorted({a.d for a in bench.archs})
    out, chosen = [], []
    for seed, inh in bench.inherited[variant].items():
        fit = fit_calibration([Anchor(a.key, inh[a.key], bench.standalone[seed][a.key])
                               for a in anchors], widths, models)
        out.append(np.array([fit.loss(a, inh[a.key]) for a in items]))
        chosen.append(fit.model)
    return out, chosen


def raw(bench: Benchmark, variant: str, items: list[Arch]) -> list[np.ndarray]:
    return [np.array([inh[a.key] for a in items]) for inh in bench.inherited[variant].values()]


# -- the metrics -------------------------------------------------------------------------------

def concordance(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """n x n: 1 where the estimator orders the pair like the truth, 0.5 on its ties, else 0."""
    e = np.sign(estimate[:, None] - estimate[None, :])
    t = np.sign(truth[:, None] - truth[None, :])
    return np.where(e == 0, 0.5, (e == t).astype(float))


def pair_accuracy(conc: list[np.ndarray], resolvable: np.ndarray, counts: np.ndarray) -> float:
    """Mean over seeds of the accuracy on resolvable pairs, each pair of distinct
    architectures weighted by how often a resample holds both."""
    w = np.triu(np.outer(counts, counts), 1) * resolvable
    total = w.sum()
    return float("nan") if total == 0 else statistics.fmean(float((w * c).sum() / total)
                                                            for c in conc)


def top_recall(estimate: np.ndarray, truth: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    k = max(1, round(fraction * len(truth)))
    return len(set(np.argsort(estimate, kind="stable")[:k]) &
               set(np.argsort(truth, kind="stable")[:k])) / k


def ci95(values) -> list[float]:
    v = sorted(x for x in values if not math.isnan(x))
    return [v[int(0.025 * (len(v) - 1))], v[int(math.ceil(0.975 * (len(v) - 1)))]]


@dataclass
class Comparison:
    """Estimators on one set of architectures: resolvable pairs and shared resamples."""

    items: list[Arch]
    truth: np.ndarray
    threshold: float

    def __post_init__(self) -> None:
        t = self.truth
        self.resolvable = np.abs(t[:, None] - t[None, :]) > self.threshold
        rng = np.random.default_rng(0)
        n = len(self.items)
        self.resamples = rng.integers(n, size=(BOOTSTRAP, n))
        self.counts = np.stack([np.bincount(ix, minlength=n) for ix in self.resamples])

    @property
    def pairs(self) -> int:
        return int(np.triu(self.resolvable, 1).sum())

    def accuracy_boot(self, estimates: list[np.ndarray]) -> np.ndarray:
        conc = [concordance(e, self.truth) for e in estimates]
        return np.array([pair_accuracy(conc, self.resolvable, c) for c in self.counts])

    def metrics(self, estimates: list[np.ndarray], losses: bool = True) -> dict:
        """Pair accuracy, tau (each with a 95% interval), tau within each d, loss error in %
        (`losses`: the estimates are losses) and top-k recall, each the mean over seeds."""
        ones = np.ones(len(self.items), dtype=int)
        conc = [concordance(e, self.truth) for e in estimates]
        taus = [statistics.fmean(tau(e[ix], self.truth[ix]) for e in estimates)
                for ix in self.resamples]
        widths = sorted({a.d for a in self.items})
        within = {}
        for d in widths:                # undefined (None) for an estimator constant in a width
            sel = np.array([a.d == d for a in self.items])
            taus_d = [tau(e[sel], self.truth[sel]) for e in estimates]
            within[str(d)] = None if any(map(math.isnan, taus_d)) else statistics.fmean(taus_d)
        return {
            "pair_accuracy": {"value": pair_accuracy(conc, self.resolvable, ones),
                              "ci95": ci95(self.accuracy_boot(estimates))},
            "tau": statistics.fmean(tau(e, self.truth) for e in estimates), "tau_ci95": ci95(taus),
            "tau_within_d": within,
            "mae_pct": (statistics.fmean(float(np.mean(np.abs(e / self.truth - 1))) * 100
                                         for e in estimates) if losses else None),
            "topk_recall": statistics.fmean(top_recall(e, self.truth) for e in estimates)}

    def difference(self, a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
        """95% interval of pair accuracy a - b (paired: the same resamples)."""
        return ci95(self.accuracy_boot(a) - self.accuracy_boot(b))

    def noise_ceiling(self, seed_a: np.ndarray, seed_b: np.ndarray) -> dict:
        """One standalone seed against the other on these architectures: tau (overall and
        within each d), top-k recall, and pair accuracy of one seed on the other's resolvable
        pairs of the mean."""
        within = {}
        for d in sorted({a.d for a in self.items}):
            sel = np.array([a.d == d for a in self.items])
            within[str(d)] = tau(seed_a[sel], seed_b[sel])
        ones = np.ones(len(self.items), dtype=int)
        return {"tau": tau(seed_a, seed_b), "tau_within_d": within,
                "topk_recall": top_recall(seed_a, seed_b),
                "pair_accuracy_one_seed": pair_accuracy(
                    [concordance(seed_a, self.truth), concordance(seed_b, self.truth)],
                    self.resolvable, ones)}


# -- the section -------------------------------------------------------------------------------

def proxies(items: list[Arch]) -> dict[str, list[np.ndarray]]:
    """The two baselines that train nothing (lower is better, so minus the count)."""
    return {"d_alone": [np.array([-float(a.d) for a in items])],
            "non_embedding_params": [np.array([-float(a.params()) for a in items])]}


def compare(bench: Benchmark, variants: list[str], k: int, threshold: float,
            model: str | None = None) -> dict:
    """Every variant raw and calibrated with `k` anchors per seed, and the proxies, on the
    non-anchor architectures; paired differences of pair accuracy against the raw variant and
    d alone."""
    anchors = pick_anchors(bench.archs, k)
    items = [a for a in bench.archs if a not in anchors]
    cmp = Comparison(items, bench.truth(items), threshold)
    seeds = [np.array([bench.standalone[s][a.key] for a in items]) for s in bench.standalone]
    out = {"anchors_per_seed": k, "anchors": [a.key for a in anchors], "archs": len(items),
           "resolvable_pairs": cmp.pairs, "pairs": len(items) * (len(items) - 1) // 2,
           "noise_ceiling": cmp.noise_ceiling(*seeds[:2]), "estimators": {}}
    base = proxies(items)
    for name, est in base.items():
        out["estimators"][name] = cmp.metrics(est, losses=False)
    for v in variants:
        cal, chosen = calibrated(bench, v, anchors, items, model)
        unc = raw(bench, v, items)
        out["estimators"][f"raw {v}"] = cmp.metrics(unc)
        out["estimators"][f"calibrated {v}"] = {
            **cmp.metrics(cal), "models": chosen,
            "minus_raw_ci95": cmp.difference(cal, unc),
            "minus_d_alone_ci95": cmp.difference(cal, base["d_alone"])}
    return out


def anchor_sets(bench: Benchmark, variant: str, sets: dict[str, list[Arch]],
                threshold: float) -> dict[str, dict]:
    """`variant` calibrated on each named set of anchors, each set's metrics on the
    architectures outside it: how much the choice of the anchors moves them."""
    out = {}
    for name, anchors in sets.items():
        items = [a for a in bench.archs if a not in anchors]
        m = Comparison(items, bench.truth(items), threshold).metrics(
            calibrated(bench, variant, anchors, items)[0])
        out[name] = {"anchors": [a.key for a in anchors],
                     **{k: m[k] for k in ("pair_accuracy", "tau", "tau_ci95", "mae_pct",
                                          "topk_recall")}}
    return out


def paired(bench: Benchmark, k: int, threshold: float, a: str, b: str) -> list[float]:
    """95% interval of calibrated variant a's pair accuracy minus b's (k anchors per seed)."""
    anchors = pick_anchors(bench.archs, k)
    items = [x for x in bench.archs if x not in anchors]
    cmp = Comparison(items, bench.truth(items), threshold)
    return cmp.difference(calibrated(bench, a, anchors, items)[0],
                          calibrated(bench, b, anchors, items)[0])


# -- markdown ----------------------------------------------------------------------------------

def _ci(x: list[float]) -> str:
    return f"[{x[0]:.3f}, {x[1]:.3f}]"


def comparison_table(c: dict) -> list[str]:
    """One comparison (`compare`) as a markdown table."""
    nc = c["noise_ceiling"]
    lines = [f"{c['archs']} architectures (anchors excluded: {', '.join(c['anchors'])}), "
             f"{c['resolvable_pairs']} of {c['pairs']} pairs resolvable; noise ceiling (one "
             f"standalone seed against the other on them): tau {nc['tau']:.3f} (within d: "
             + ", ".join(f"d{d} {t:.2f}" for d, t in nc["tau_within_d"].items())
             + f"), top-k recall {nc['topk_recall']:.2f}; one standalone seed's pair accuracy "
             f"against the mean: {nc['pair_accuracy_one_seed']:.3f}.", "",
             "| estimator | pair accuracy | 95% CI | minus raw, 95% CI | minus d alone, 95% CI "
             "| tau | 95% CI | tau within d | loss MAE % | top-k recall | correction |",
             "|---|---:|---|---|---|---:|---|---|---:|---:|---|"]
    for name, e in c["estimators"].items():
        acc = e["pair_accuracy"]
        lines.append(
            f"| {name} | **{acc['value']:.3f}** | {_ci(acc['ci95'])} | "
            + (f"{_ci(e['minus_raw_ci95'])} | {_ci(e['minus_d_alone_ci95'])}"
               if "minus_raw_ci95" in e else " | ")
            + f" | {e['tau']:.3f} | {_ci(e['tau_ci95'])} | "
            + ", ".join(f"d{d} {'-' if t is None else format(t, '.2f')}"
                        for d, t in e["tau_within_d"].items())
            + f" | {'-' if e['mae_pct'] is None else format(e['mae_pct'], '.2f')} | "
            f"{e['topk_recall']:.2f} | {', '.join(dict.fromkeys(e.get('models', [])))} |")
    return lines


def calibration_markdown(section: dict) -> list[str]:
    """ranking.md's calibration section."""
    if not section:
        return []
    lines = ["", "## Calibrated inherited loss (nas calibrate)", "",
             f"Per-run seed sd {section['seed_sd']:.4f} (from the two standalone seeds of "
             f"every architecture); a pair is resolvable when the mean standalone losses differ "
             f"by more than {section['noise_sds']:g} sd = {section['noise_threshold']:.4f}. "
             "Pair accuracy: share of resolvable pairs ordered like the truth (an estimator's "
             "tie counts half); every metric is the mean over supernet seeds, 95% intervals "
             f"from {BOOTSTRAP} bootstrap resamples of the architectures (paired for the "
             "differences). Calibrated: `nas.calibrate.fit_calibration` on the anchors of each "
             "supernet seed (their standalone run of that seed); anchors are excluded from "
             "every metric, of every estimator. Default recipe: "
             f"`{section['default_variant']}`."]
    for k, c in section["by_anchors"].items():
        lines += ["", f"### {k} anchors per supernet seed", ""] + comparison_table(c)
    diffs = section.get("calibrated_minus_default_ci95", {})
    if diffs:
        lines += ["", "Calibrated pair accuracy (3 anchors) of each variant minus the default's "
                      f"(`{section['default_variant']}`), paired, 95%: "
                  + "; ".join(f"{v} {_ci(ci)}" for v, ci in diffs.items()) + "."]
    positions = section.get("anchor_position", {})
    if positions:
        lines += ["", "### Where the anchors sit", "",
                  f"`{section['default_variant']}` calibrated on one anchor per d, the same "
                  "depth and uniform profile in every d (the default, each d's largest, is the "
                  "deepest `full`), each row on the architectures outside its anchors:", "",
                  "| anchors | pair accuracy | tau | 95% CI | loss MAE % | top-k recall |",
                  "|---|---:|---:|---|---:|---:|"]
        for name, e in positions.items():
            lines.append(f"| {name} | {e['pair_accuracy']['value']:.3f} | {e['tau']:.3f} | "
                         f"{_ci(e['tau_ci95'])} | {e['mae_pct']:.2f} | {e['topk_recall']:.2f} |")
    for steps, sub in section.get("long", {}).items():
        lines += ["", f"### Longer budget: {steps} steps, the same architectures", "",
                  f"Per-run seed sd {sub['seed_sd']:.4f}, threshold "
                  f"{sub['noise_threshold']:.4f}."] + comparison_table(sub["by_anchors"]["3"])
    return lines
