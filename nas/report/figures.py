"""The report's interactive figures, each a plotly `go.Figure` built from a `RunData`.

    pareto          perplexity against the objective: every candidate, the front (hover: key,
                    perplexity, EDP, latency, energy, area, hardware), the largest subnet, its
                    +0.1 / +1 perplexity lines, the picks
    hypervolume     the front's hypervolume after each generation, against evaluations
    evolution       the front after each generation
    operator_costs  each pick's latency and energy per operator on its accelerator
    training        the supernet's training and validation losses and learning rate
    host_latency    measured (`nas export --measure`) against simulated latency

Every function returns None when the run has nothing to draw for it.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale
from plotly.subplots import make_subplots

from nas.report.run import RunData
from nas.search.candidate import OBJECTIVES, PPL_DELTAS, Candidate
from nas.search.pareto import pareto_indices

PERPLEXITY = "perplexity (inherited weights, validation subset)"
FRONT_TRACE = "Pareto front"    # the trace whose points the browser test counts
HOVER_FRONT = ("<b>%{customdata[0]}</b><br>perplexity %{x:.4f}%{customdata[1]}<br>"
               "EDP %{customdata[2]:.4g} J s<br>latency %{customdata[3]:.4g} ms<br>"
               "energy %{customdata[4]:.4g} mJ<br>area %{customdata[5]}<br>"
               "hardware %{customdata[6]}<br>%{customdata[7]:,} parameters<extra></extra>")


def _layout(fig: go.Figure, title: str, **axes: Any) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", hovermode="closest",
                      margin=dict(l=70, r=30, t=60, b=60), legend=dict(font=dict(size=11)),
                      **axes)
    return fig


def hardware_text(cand: Candidate, default: str) -> str:
    """The accelerator of a candidate: its name, and the fields a joint search chose."""
    hw = cand.hardware
    if hw is None:
        return default
    chosen = ", ".join(f"{k}={v}" for k, v in hw.fields)
    name = hw.name if hw.hash in hw.name else f"{hw.name} [{hw.hash}]"
    return name + (f": {chosen}" if chosen else "")


def _front_customdata(run: RunData) -> list[list[Any]]:
    """Per front point: key, raw perplexity (when the front is calibrated), EDP, latency,
    energy, area, hardware, parameters (front.json's rows: a `ppl_raw` column is shown)."""
    raw = {r["key"]: r.get("ppl_raw") for r in run.rows}
    return [[c.key, f" (raw {raw[c.key]:.4f})" if raw.get(c.key) is not None else "",
             c.edp, c.latency_ms, c.energy_mj, f"{c.area_mm2:.3g} mm2" if c.area_mm2 else "n/a",
             hardware_text(c, run.front.hw), c.params] for c in run.front_sorted]


def pareto(run: RunData) -> go.Figure:
    """Perplexity (x) against the search's objective (y, log), as pareto.png draws it."""
    objective = OBJECTIVES[run.front.objective]
    value = lambda cs: [c.value(objective.name) for c in cs]  # noqa: E731
    fig = go.Figure()
    front_keys = {c.key for c in run.front.front}
    others = [c for c in run.history if c.key not in front_keys]
    for name, cands, marker in (
            ("feasible", [c for c in others if c.feasible], dict(color="#b0b0b0", size=5)),
            ("infeasible (breaks a constraint)", [c for c in others if not c.feasible],
             dict(color="#ff7f0e", size=6, symbol="x"))):
        if cands:
            fig.add_scatter(x=[c.perplexity for c in cands], y=value(cands), mode="markers",
                            name=f"{name} ({len(cands)})", marker=marker, text=[c.key for c in cands],
                            hovertemplate="%{text}<br>perplexity %{x:.4f}<br>"
                                          f"{objective.label} %{{y:.4g}}<extra></extra>")
    front = run.front_sorted
    marker: dict[str, Any] = dict(size=8, color="#1f77b4")
    if run.joint:                       # colour = the area of each point's accelerator
        marker.update(color=[c.area_mm2 for c in front], colorscale="Viridis", showscale=True,
                      colorbar=dict(title="area (mm2)"))
    fig.add_scatter(x=[c.perplexity for c in front], y=value(front), mode="lines+markers",
                    name=f"{FRONT_TRACE} ({len(front)})", marker=marker,
                    line=dict(color="#1f77b4", width=1), customdata=_front_customdata(run),
                    hovertemplate=HOVER_FRONT)
    largest = run.front.largest
    fig.add_scatter(x=[largest.perplexity], y=[largest.value(objective.name)], mode="markers",
                    name="largest subnet", marker=dict(symbol="star", size=16, color="#d62728"),
                    text=[largest.key], hovertemplate="largest subnet %{text}<br>perplexity "
                                                      "%{x:.4f}<extra></extra>")
    for delta, dash in zip(PPL_DELTAS, ("dash", "dot")):
        fig.add_vline(x=largest.perplexity + delta, line=dict(color="#d62728", dash=dash,
                                                              width=1),
                      annotation_text=f"largest +{delta:g}", annotation_position="top")
    if run.picks:
        picks = list(run.picks.items())
        fig.add_scatter(x=[c.perplexity for _, c in picks], y=[c.value(objective.name)
                                                               for _, c in picks],
                        mode="markers+text", name="picks (nas export's defaults)",
                        text=[expr for expr, _ in picks], textposition="top right",
                        marker=dict(size=16, color="rgba(0,0,0,0)",
                                    line=dict(color="black", width=1.5)),
                        hovertemplate="%{text}<extra></extra>")
    _layout(fig, f"Pareto front: {len(front)} of {len(run.history)} candidates",
            xaxis=dict(title=PERPLEXITY), yaxis=dict(title=objective.label, type="log"))
    # the legend above the plot, out of the way of a joint search's colour bar
    return fig.update_layout(legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"),
                             margin=dict(t=110))


def hypervolume(run: RunData) -> go.Figure | None:
    """Hypervolume (search.json) after each generation, at the evaluations done by then."""
    hv = run.search.get("hypervolume") or []
    if not hv:
        return None
    evaluations = [sum(c.generation <= g for c in run.history) for g in range(len(hv))]
    fig = go.Figure(go.Scatter(x=evaluations, y=hv, mode="lines+markers", name="hypervolume",
                               customdata=list(range(len(hv))),
                               hovertemplate="generation %{customdata}<br>%{x} evaluations<br>"
                                             "hypervolume %{y:.4f}<extra></extra>"))
    return _layout(fig, "Hypervolume (normalised objectives, reference point 1.1, 1.1)",
                   xaxis=dict(title="evaluations"), yaxis=dict(title="hypervolume"))


def evolution(run: RunData) -> go.Figure | None:
    """The feasible front of the candidates evaluated up to each generation."""
    objective = run.front.objective
    generations = sorted({c.generation for c in run.history})
    if len(generations) < 2:
        return None
    colours = sample_colorscale("Viridis", [i / (len(generations) - 1)
                                            for i in range(len(generations))])
    fig = go.Figure()
    for g, colour in zip(generations, colours):
        seen = [c for c in run.history if c.generation <= g and c.feasible]
        front = [seen[i] for i in pareto_indices([(c.perplexity, c.value(objective))
                                                  for c in seen])]
        fig.add_scatter(x=[c.perplexity for c in front], y=[c.value(objective) for c in front],
                        mode="lines+markers", line=dict(color=colour, width=1.5, shape="hv"),
                        marker=dict(size=5), name=f"generation {g}", text=[c.key for c in front],
                        hovertemplate=f"generation {g}<br>%{{text}}<br>perplexity %{{x:.4f}}"
                                      f"<extra></extra>")
    return _layout(fig, "The front after each generation", xaxis=dict(title=PERPLEXITY),
                   yaxis=dict(title=OBJECTIVES[objective].label, type="log"))


def operator_costs(run: RunData) -> go.Figure | None:
    """Latency and energy per operator of each pick (grouped bars, one colour per pick)."""
    if not run.costs:
        return None
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("latency per operator (ms)", "energy per operator (mJ)"))
    names = {c.key: expr for expr, c in reversed(run.picks.items())}
    for n, pick in enumerate(run.costs):
        ops, colour = list(pick.operators), qualitative.Plotly[n % len(qualitative.Plotly)]
        label = f"{names.get(pick.key, '')} {pick.key}".strip()
        for row, i, total, unit in ((1, 0, pick.latency_ms, "ms"),
                                    (2, 1, pick.energy_mj, "mJ")):
            values = [pick.operators[o][i] for o in ops]
            fig.add_bar(x=ops, y=values, name=label, legendgroup=pick.key, showlegend=row == 1,
                        marker_color=colour,
                        customdata=[[100 * v / total if total else 0.0, pick.hardware]
                                    for v in values], row=row, col=1,
                        hovertemplate=f"{label}<br>%{{x}}: %{{y:.4g}} {unit} "
                                      f"(%{{customdata[0]:.1f}}%) on %{{customdata[1]}}"
                                      f"<extra></extra>")
    fig.update_layout(barmode="group", height=620)
    return _layout(fig, "Each pick's cost per operator (summed over layers), simulated on "
                        "its accelerator")


def training(run: RunData) -> go.Figure | None:
    """Training loss (the largest subnet's, the teacher), validation losses of the tracked
    subnets, and the learning rate (right axis)."""
    train = [r for r in run.training if r.get("kind") == "train"]
    evals = [r for r in run.training if r.get("kind") == "eval"]
    if not train and not evals:
        return None
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if train:
        steps = [r["step"] for r in train]
        fig.add_scatter(x=steps, y=[r.get("loss") for r in train], name="training loss",
                        line=dict(width=1))
        fig.add_scatter(x=steps, y=[r.get("lr") for r in train], name="learning rate",
                        line=dict(width=1, dash="dot", color="#7f7f7f"), secondary_y=True)
    names = [k for k in (evals[0] if evals else {}) if k not in ("kind", "step", "time")]
    for name in names:
        fig.add_scatter(x=[r["step"] for r in evals], y=[r.get(name) for r in evals],
                        mode="lines+markers", name=f"validation: {name}")
    fig.update_yaxes(title_text="loss (nats per token)", secondary_y=False)
    fig.update_yaxes(title_text="learning rate", secondary_y=True, showgrid=False)
    return _layout(fig, "The supernet's training", xaxis=dict(title="step"))


def host_latency(run: RunData) -> go.Figure | None:
    """`nas export --measure`'s measured host latency against the simulated latency."""
    rows = run.host_latency
    if not rows:
        return None
    fig = go.Figure(go.Scatter(
        x=[r["simulated_ms"] for r in rows], y=[r["measured_ms"] for r in rows],
        mode="markers", text=[r["key"] for r in rows], name="picks",
        error_y=dict(type="data", symmetric=False,
                     array=[r["measured_q3_ms"] - r["measured_ms"] for r in rows],
                     arrayminus=[r["measured_ms"] - r["measured_q1_ms"] for r in rows]),
        hovertemplate="%{text}<br>simulated %{x:.4g} ms<br>measured %{y:.4g} ms"
                      "<extra></extra>"))
    return _layout(fig, "Measured on this host (median, quartiles) against simulated latency",
                   xaxis=dict(title="simulated accelerator latency (ms)"),
                   yaxis=dict(title="measured CPU latency, onnxruntime (ms)"))


FIGURES = {"pareto": pareto, "hypervolume": hypervolume, "evolution": evolution,
           "operators": operator_costs, "training": training, "host-latency": host_latency}

__all__ = ["FIGURES", "FRONT_TRACE", "hardware_text", "pareto", "hypervolume", "evolution",
           "operator_costs", "training", "host_latency"]
