"""The report as one self-contained HTML page: no request leaves it, so it opens offline.

plotly.js (from the `plotly` package: `plotly.offline.get_plotlyjs()`, about 4.8 MB) is
inlined gzip-compressed and base64-encoded (about 2 MB), and decompressed by the browser's
own `DecompressionStream` when the page opens; the figures are inlined as plotly JSON and drawn
once it has loaded. That keeps a report near 2 MB instead of 5. When every figure is drawn, the
page sets `data-rendered` on its body to their number (`data-error` if drawing failed).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from functools import lru_cache
from typing import Any

from nas.report.run import RunData

# Loads plotly from the inlined bundle, then draws every figure into its <div id=...>.
LOADER = """
(async () => {
  const packed = document.getElementById("plotly-gz").textContent.trim();
  const bytes = Uint8Array.from(atob(packed), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const code = document.createElement("script");
  code.textContent = await new Response(stream).text();
  document.head.appendChild(code);
  const figures = JSON.parse(document.getElementById("figures").textContent);
  for (const [id, fig] of Object.entries(figures)) {
    await Plotly.newPlot(id, fig.data, fig.layout, {responsive: true, displaylogo: false});
  }
  document.body.dataset.rendered = Object.keys(figures).length;
})().catch(err => {
  document.body.dataset.error = String(err);
  document.getElementById("load-error").textContent =
    "The figures could not be drawn (" + err + "): this page needs a browser with " +
    "DecompressionStream (Chrome 80, Firefox 113, Safari 16.4 or later).";
  console.error(err);
});
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin: 2px 0; } .notes { background: #fff6d5; padding: 8px 16px; }
.plot { width: 100%; height: 520px; } .tall { height: 640px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
table { border-collapse: collapse; font-size: 0.9em; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 0.85em; }
#load-error { color: #b00; }
"""


@lru_cache(maxsize=1)
def plotly_bundle() -> str:
    """plotly.js, gzip-compressed (deterministic: no timestamp) and base64-encoded."""
    from plotly.offline import get_plotlyjs
    return base64.b64encode(gzip.compress(get_plotlyjs().encode(), 9, mtime=0)).decode()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, (dict, list)):
        value = json.dumps(value, default=str)
    return f"<td>{html.escape(str(value))}</td>"


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def key_values(data: dict[str, Any]) -> str:
    return table(["setting", "value"], [[k, v] for k, v in data.items()])


def _heading(run: RunData) -> str:
    s, doc = run.search, run.front
    prov = s.get("provenance") or {}
    hardware = (f"hardware space '{(doc.hw_space or {}).get('name', '?')}' (searched with the "
                f"architecture)" if doc.hw_space else f"hardware {doc.hw} [{doc.hw_hash}]")
    hv = s.get("hypervolume") or [float("nan")]
    lines = [f"objective {doc.objective}, {hardware}, workload {_workload(doc.workload)}",
             f"{s.get('evaluations', len(run.history))} evaluations in "
             f"{s.get('generations_done', '?')} generations; {len(doc.front)} architectures on "
             f"the front; hypervolume {hv[-1]:.4f}",
             f"{prov.get('command', '?')} at {prov.get('date', '?')}, commit "
             f"{str(prov.get('commit', '?'))[:12]}{' (dirty)' if prov.get('dirty') else ''}"]
    return (f"<h1>Search report: {html.escape(str(run.folder))}</h1>"
            + "".join(f'<p class="sub">{html.escape(x)}</p>' for x in lines))


def _workload(workload: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in workload.items()) or "?"


def _picks_table(run: RunData) -> str:
    from nas.report.figures import hardware_text
    raw = {r["key"]: r["ppl_raw"] for r in run.rows if r.get("ppl_raw") is not None}
    rows = [[expr, c.key, c.perplexity] + ([raw.get(c.key, "")] if raw else [])
            + [c.edp, c.latency_ms, c.energy_mj, c.area_mm2 or "",
               hardware_text(c, run.front.hw), c.params] for expr, c in run.picks.items()]
    reductions = [[f"<= +{r['delta']:g}", r.get("reduction") or "none", r.get("key") or "",
                   r.get("perplexity") or ""]
                  for r in run.search.get("reductions_vs_largest", [])]
    return (table(["pick", "key", "perplexity"] + (["raw perplexity"] if raw else [])
                  + ["EDP (J s)", "latency (ms)", "energy (mJ)", "area (mm2)", "hardware",
                     "parameters"], rows)
            + (table(["perplexity vs the largest subnet", f"{run.front.objective} reduction "
                      f"(x)", "architecture", "perplexity"], reductions) if reductions else ""))


def _host_latency_text(run: RunData) -> str:
    from scipy.stats import kendalltau
    rows = run.host_latency
    tau = kendalltau([r["simulated_ms"] for r in rows], [r["measured_ms"] for r in rows])
    return (f"<p>{len(rows)} exported picks timed with onnxruntime on the exporting machine "
            f"(FRONT/export/host_latency.json says how); Kendall's tau between measured and "
            f"simulated latency: {tau.statistic:.2f} (p = {tau.pvalue:.2g}).</p>")


def _settings(run: RunData) -> str:
    s = run.search
    parts = [key_values(s.get("settings", {}))]
    for name in ("perplexity_source", "racing", "seconds"):
        if isinstance(s.get(name), dict):
            parts.append(f"<h3>{name.replace('_', ' ')}</h3>" + key_values(s[name]))
    if s.get("table"):
        parts.append(f"<h3>costs</h3><p>{html.escape(str(s['table']))}</p>")
    prov = s.get("provenance") or {}
    if prov:
        parts.append("<h3>provenance</h3>" + key_values(prov))
    parts.append("<details><summary>search.json</summary><pre>"
                 + html.escape(json.dumps(s, indent=1, default=str)) + "</pre></details>")
    return "".join(parts)


def render(run: RunData, figures: dict[str, Any]) -> str:
    """The page: `figures` maps a div id (nas.report.figures.FIGURES) to a plotly Figure."""
    def plot(name: str, css: str = "plot") -> str:
        return f'<div id="{name}" class="{css}"></div>' if name in figures else (
            f"<p>Nothing to draw ({name.replace('-', ' ')}).</p>")

    notes = "".join(f"<li>{html.escape(n)}</li>" for n in run.notes)
    data = "{" + ",".join(f"{json.dumps(k)}:{f.to_json()}" for k, f in figures.items()) + "}"
    data = data.replace("</", "<\\/")          # no "</script>" inside the script element
    body = [
        _heading(run), '<p id="load-error"></p>',
        f'<div class="notes"><ul>{notes}</ul></div>' if notes else "",
        "<h2>Pareto front</h2>", plot("pareto", "plot tall"), _picks_table(run),
        '<h2>Search progress</h2><div class="grid">', plot("hypervolume"), plot("evolution"),
        "</div>", "<h2>Cost per operator of the picks</h2>", plot("operators", "plot tall"),
        "<h2>Measured host latency</h2>",
        (plot("host-latency") + _host_latency_text(run)) if run.host_latency else
        "<p>Not measured: <code>nas export --front RUN --onnx --measure</code> times the "
        "picks on this machine.</p>",
        "<h2>Supernet training</h2>", plot("training"), "<h2>Settings</h2>", _settings(run)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Search report: {html.escape(run.folder.name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}"
            f'<script id="plotly-gz" type="application/octet-stream">{plotly_bundle()}</script>'
            f'<script id="figures" type="application/json">{data}'
            f"</script><script>{LOADER}</script></body></html>\n")


__all__ = ["render", "plotly_bundle", "table", "key_values"]
