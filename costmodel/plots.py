"""Figures of a simulation: where the time goes (per operator type, coloured by the unit that
bounds it), where the energy goes (per component), and, with a sparse attention engine, the
attention products' busy time per engine (`nas simulate --plot`).

matplotlib on the Agg backend, imported only when a figure is drawn (nas.core.plotting).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from costmodel.cost import MJ, MS, PJ
from costmodel.report import row_name
from costmodel.simulate import Report
from nas.core.plotting import pyplot, save_figure

# One colour per hardware unit, the same in every panel: in the latency panel it is the unit
# that bounds an operator's time, in the energy panel the unit that spends the energy.
UNIT_COLOURS = {"PE array": "tab:blue", "sparse engine": "tab:cyan", "DRAM": "tab:orange",
                "SFUs": "tab:green", "host CPU": "tab:purple", "SRAM buffers": "tab:brown",
                "pre/post-processors": "tab:olive", "SA-Diag": "tab:pink", "leakage": "tab:gray"}
BOUND_UNITS = {"compute": "PE array", "sparse": "sparse engine", "memory": "DRAM",
               "sfu": "SFUs", "host": "host CPU", "preproc": "pre/post-processors",
               "sa-diag": "SA-Diag"}
# energy component (OpCost.energy key) -> (bar label, unit)
ENERGY_PARTS = {"mac": ("MACs", "PE array"), "rf": ("PE registers", "PE array"),
                "scratchpad": ("scratchpad", "SRAM buffers"),
                "accumulator": ("accumulator", "SRAM buffers"), "dram": ("DRAM", "DRAM"),
                "sfu": ("SFUs", "SFUs"), "host": ("host CPU", "host CPU"),
                "static": ("static (leakage)", "leakage")}


def _label_bars(ax, ends: list[float], ys: list[float]) -> None:
    """Write each bar's value at its end (small bars stay readable next to large ones)."""
    for x, y in zip(ends, ys):
        ax.text(x, y, f" {x:.3g}" if x < 1000 else f" {x:,.0f}", va="center", fontsize=7)


def _fit_x(ax, values: list[float]) -> None:
    """The x axis from 0 to past the largest of `values` (every bar and mark of the panel),
    with room for the labels."""
    ax.set_xlim(0, 1.18 * max(values, default=0) or 1)


def _latency_panel(ax, rep: Report, used: set[str]) -> None:
    """Latency per operator type (summed over layers and decode steps), split by the unit that
    bounds it."""
    ms = MS / rep.hw.clock_hz
    by_type: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for c in rep.ops:
        by_type[row_name(c.op.name, summary=True)][BOUND_UNITS[c.bound]] += c.cycles * ms
    names = sorted(by_type, key=lambda n: sum(by_type[n].values()))
    left = [0.0] * len(names)
    for unit, colour in UNIT_COLOURS.items():
        vals = [by_type[n].get(unit, 0.0) for n in names]
        if any(vals):
            ax.barh(names, vals, left=left, color=colour)
            left = [x + v for x, v in zip(left, vals)]
            used.add(unit)
    _label_bars(ax, left, list(range(len(names))))
    _fit_x(ax, left)
    ax.set_title("latency per operator type, coloured by its bound", fontsize=10)
    ax.set_xlabel("latency (ms)")


def _energy_panel(ax, rep: Report, used: set[str]) -> None:
    """Energy per component, coloured by the unit that spends it."""
    breakdown = rep.energy_breakdown()
    energy = [(label, unit, breakdown[key] * PJ * MJ)
              for key, (label, unit) in ENERGY_PARTS.items() if breakdown.get(key, 0.0) > 0]
    ax.barh([e[0] for e in energy], [e[2] for e in energy],
            color=[UNIT_COLOURS[e[1]] for e in energy])
    _label_bars(ax, [e[2] for e in energy], list(range(len(energy))))
    _fit_x(ax, [e[2] for e in energy])
    ax.invert_yaxis()                                   # the legend's order, top down
    used.update(e[1] for e in energy)
    ax.set_title("energy per component", fontsize=10)
    ax.set_xlabel("energy (mJ)")


def _engine_busy(rep: Report) -> dict[str, list[float]]:
    """Per attention product that ran on a sparse engine: its dense-engine, sparse-engine and
    DRAM busy time and its latency (ms)."""
    ms = MS / rep.hw.clock_hz
    busy: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for c in rep.ops:
        if c.sparse_engine_cycles:
            name = row_name(c.op.name, summary=True)
            for i, v in enumerate((c.dense_engine_cycles, c.sparse_engine_cycles,
                                   c.memory_cycles, c.cycles)):
                busy[name][i] += v * ms
    return busy


def _engines_panel(ax, busy: dict[str, list[float]], used: set[str]) -> None:
    ops = sorted(busy)
    h = 0.27
    for j, unit in enumerate(("PE array", "sparse engine", "DRAM")):
        ys = [i + (j - 1) * h for i in range(len(ops))]   # legend order, top down
        vals = [busy[n][j] for n in ops]
        ax.barh(ys, vals, height=h, color=UNIT_COLOURS[unit])
        _label_bars(ax, vals, ys)
        used.add(unit)
    ax.scatter([busy[n][3] for n in ops], range(len(ops)), marker="|", s=1500,
               color="black", linewidths=2, zorder=3)
    _fit_x(ax, [v for n in ops for v in busy[n]])       # every unit's bar and the latency
    ax.set_yticks(range(len(ops)), ops)
    ax.invert_yaxis()
    ax.set_title("attention products: busy time per unit\n"
                 "(dense engine = PE array; black tick = latency)", fontsize=10)
    ax.set_xlabel("busy time (ms)")


def plot_report(rep: Report, title: str, path: str | Path) -> None:
    """Latency per operator type, energy per component and, when attention products ran on a
    sparse engine, their engines' busy time, side by side; written atomically to `path`."""
    plt = pyplot()
    busy = _engine_busy(rep)
    types = {row_name(c.op.name, summary=True) for c in rep.ops}
    panels = 3 if busy else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.4 * panels, max(3.6, 0.3 * len(types) + 1.8)),
                             gridspec_kw={"width_ratios": [1.3, 1, 1][:panels]})
    used: set[str] = set()
    _latency_panel(axes[0], rep, used)
    _energy_panel(axes[1], rep, used)
    if busy:
        _engines_panel(axes[2], busy, used)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for u, c in UNIT_COLOURS.items() if u in used]
    fig.legend(handles, [u for u in UNIT_COLOURS if u in used], loc="lower center",
               ncol=len(handles), fontsize=9, frameon=False)
    fig.suptitle(f"{title}: {rep.latency_ms:.4g} ms, {rep.energy_mj:.4g} mJ", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, path)


__all__ = ["UNIT_COLOURS", "BOUND_UNITS", "ENERGY_PARTS", "plot_report"]
