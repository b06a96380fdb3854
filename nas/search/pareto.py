"""Pareto fronts, 2-D hypervolume, the normalisation that makes hypervolumes comparable, and
the Pareto plot.

Everything here minimises both objectives. The front and hypervolume functions take plain
(x, y) pairs so they serve the search, the exporter and the benchmarks alike.
"""

from __future__ import annotations

from typing import Sequence

from nas.core.plotting import pyplot, save_figure
from nas.search.candidate import OBJECTIVES, PPL_DELTAS, Candidate

Point = tuple[float, float]


def pareto_indices(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points (both objectives minimised), sorted by x then y.

    Of several identical points only the first is kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1], i))
    front, best_y = [], float("inf")
    for i in order:                         # sweep by increasing x: keep strictly better y
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def hypervolume_2d(points: Sequence[Point], ref: Point) -> float:
    """Area dominated by `points` and bounded by the reference point `ref` (minimisation).

    Sweep the front by increasing x and add the rectangle each point adds below the previous y.
    Points not strictly better than `ref` in both objectives add nothing.
    """
    inside = [p for p in points if p[0] < ref[0] and p[1] < ref[1]]
    area, prev_y = 0.0, ref[1]
    for i in pareto_indices(inside):
        x, y = inside[i]
        area += (ref[0] - x) * (prev_y - y)
        prev_y = y
    return area


class Normaliser:
    """Maps both objectives to [0, 1] between the two anchor subnets (largest and smallest).

    Hypervolumes are computed on normalised objectives with the reference point (1.1, 1.1), i.e.
    10% beyond the worse anchor in each objective, so that runs with the same anchors (same
    supernet, table and objective) are comparable whatever the objective's units.
    """

    REF = (1.1, 1.1)

    def __init__(self, anchors: Sequence[Point]):
        xs, ys = [a[0] for a in anchors], [a[1] for a in anchors]
        self.lo = (min(xs), min(ys))
        self.span = (max(max(xs) - self.lo[0], 1e-12), max(max(ys) - self.lo[1], 1e-12))

    def __call__(self, p: Point) -> Point:
        return ((p[0] - self.lo[0]) / self.span[0], (p[1] - self.lo[1]) / self.span[1])

    def hypervolume(self, points: Sequence[Point]) -> float:
        return hypervolume_2d([self(p) for p in points], self.REF)

    def to_dict(self) -> dict:
        return {"lo": list(self.lo), "span": list(self.span), "ref": list(self.REF)}


def plot_pareto(history: Sequence[Candidate], front: Sequence[Candidate], largest: Candidate,
                path, objective: str = "edp", picks: dict[str, Candidate] | None = None,
                title: str = "") -> None:
    """Perplexity vs the hardware objective, like the survey's Fig. 26: feasible and infeasible
    candidates, the front, the largest subnet, the exported picks, and vertical lines at +0.1
    and +1 perplexity from the largest subnet."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    y = lambda cs: [c.value(objective) for c in cs]  # noqa: E731
    feasible = [c for c in history if c.feasible]
    infeasible = [c for c in history if not c.feasible]
    if any(c.hardware is not None and c.hardware.searched for c in history):
        # joint search: each point coloured by the area of the accelerator it runs on
        dots = ax.scatter([c.perplexity for c in feasible], y(feasible), s=10,
                          c=[c.area_mm2 for c in feasible], cmap="viridis",
                          label=f"feasible ({len(feasible)}), colour = area")
        fig.colorbar(dots, ax=ax, label="accelerator area (mm2)")
    else:
        ax.scatter([c.perplexity for c in feasible], y(feasible), s=8, color="0.65",
                   label=f"feasible ({len(feasible)})")
    if infeasible:
        ax.scatter([c.perplexity for c in infeasible], y(infeasible), s=12, marker="x",
                   color="C1", alpha=0.6, lw=0.8,
                   label=f"infeasible: breaks a constraint ({len(infeasible)})")
    fr = sorted(front, key=lambda c: c.perplexity)
    ax.plot([c.perplexity for c in fr], y(fr), "o-", ms=4, color="C0",
            label=f"Pareto front ({len(fr)})")
    ax.scatter([largest.perplexity], [largest.value(objective)], marker="*", s=170,
               color="C3", zorder=5, label="largest subnet")
    for delta, style in zip(PPL_DELTAS, ("--", ":")):
        ax.axvline(largest.perplexity + delta, color="C3", ls=style, lw=1,
                   label=f"largest +{delta:g} perplexity")
    for i, (name, cand) in enumerate((picks or {}).items()):
        ax.scatter([cand.perplexity], [cand.value(objective)], s=90, facecolors="none",
                   edgecolors="k", lw=1.2, zorder=6, label="exported picks" if i == 0 else None)
        ax.annotate(name, (cand.perplexity, cand.value(objective)), textcoords="offset points",
                    xytext=(6, 4 + 9 * (i % 2)), fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("perplexity (inherited weights, validation subset)")
    ax.set_ylabel(OBJECTIVES[objective].label)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    # fixed margins for this fixed layout (tight_layout would draw the figure twice)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.1, top=0.93 if title else 0.97)
    save_figure(fig, path, dpi=130)
