"""`nas report RUN`: a search run as one self-contained HTML page (job layer: it reads a run's
files and simulates its picks with the cost model).

    run.py       the search folder read back (`read_run`): front, candidates, settings, picks
                 with their operator costs, the supernet's training log, measured latency
    figures.py   the interactive plotly figures
    page.py      the HTML page, plotly.js inlined (opens offline)
    chromium.py  headless Chromium over the DevTools protocol: a page's console errors,
                 requests and screenshot (the report's browser test, README's screenshot)

    summary = write_report("runs/search", "runs/search/report.html")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 5_000_000           # the report's size budget (a test keeps it)


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    bytes: int
    figures: list[str]          # ids of the figures drawn
    notes: list[str]            # what the run lacked


def write_report(run: str | Path, out: str | Path | None = None,
                 hw: str | None = None) -> ReportSummary:
    """Read the search folder `run`, draw its figures and write the page to `out` (default
    RUN/report.html), atomically. `hw`: the accelerator of the picks' operator costs when
    the search's own is not found (a preset or YAML)."""
    from nas.core.atomic import atomic_write_text
    from nas.core.paths import check_output_file
    from nas.report.figures import FIGURES
    from nas.report.page import render
    from nas.report.run import read_run
    folder = Path(run) if Path(run).is_dir() else Path(run).parent
    out = check_output_file(out if out is not None else folder / "report.html", "--out report")
    data = read_run(run, hw)
    figures = {name: fig for name, draw in FIGURES.items() if (fig := draw(data)) is not None}
    text = render(data, figures)
    atomic_write_text(out, text, "--out report")
    return ReportSummary(out, len(text.encode()), list(figures), data.notes)


__all__ = ["MAX_BYTES", "ReportSummary", "write_report"]
