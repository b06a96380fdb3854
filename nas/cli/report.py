"""`nas report`: argument parsing only; the page is made by `nas.report`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="a search run as one self-contained, interactive HTML page",
        description="Draw a search run on one HTML page that opens offline (plotly, inlined): "
                    "the Pareto front (hover: key, perplexity, EDP, latency, energy, area, "
                    "hardware) with the +0.1/+1 perplexity lines and nas export's picks; "
                    "hypervolume against evaluations; the front after each generation; each "
                    "pick's latency and energy per operator, simulated on its accelerator; "
                    "measured host latency (after `nas export --onnx --measure`); the "
                    "supernet's training curves; the run's settings. Works for architecture "
                    "searches and joint architecture x hardware searches.",
        epilog="examples:\n  nas report runs/search                    # runs/search/report.html\n"
               "  nas report runs/quickstart/search --out report.html")
    p.add_argument("run", metavar="RUN", help="search output directory (or its front.json)")
    p.add_argument("--out", help="the HTML file (default: RUN/report.html)")
    p.add_argument("--hw", help="the accelerator the picks' operator costs are simulated on "
                                "when the search's own is not found (a preset or YAML with "
                                "the front's hardware hash; default: found from the run)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from nas.report import MAX_BYTES, write_report
    summary = write_report(args.run, args.out, args.hw)
    for note in summary.notes:
        print(f"note: {note}")
    size = f"{summary.bytes / 1e6:.2f} MB" + (
        f" (over the {MAX_BYTES / 1e6:g} MB budget)" if summary.bytes > MAX_BYTES else "")
    print(f"wrote {summary.path}: {len(summary.figures)} figures "
          f"({', '.join(summary.figures)}), {size}; opens offline in a browser")
    return 0
