"""Taking a front home, timed: `nas export --onnx --measure` over a 10-pick front, then
`nas report` of the run, opened in headless Chromium, with a screenshot for README.

    python experiments/export/take_home.py      # writes experiments/export/take_home.json
                                                # and experiments/export/report.png

Runs (or reuses) `nas quickstart --threads 1` in runs/export-quickstart, then, each as the
command a user types (a fresh process, its start and imports included in the wall time):

1. `nas export --front SEARCH --pick 0 .. 9 --onnx --measure`: ten front architectures
   exported to ONNX, each checked against PyTorch, with its card, then timed on this CPU;
   target: under a minute on this 2-core machine. The load average before and after is
   recorded (other processes share the machine).
2. `nas report SEARCH`: the page's size (target <= 5 MB), then the page opened in Chromium
   (nas.report.chromium): its console errors, the URLs it requested (only itself: it opens
   offline), the points drawn for the front against front.csv's rows, and a 1280 x 900
   screenshot of its top (report.png).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from nas.core.provenance import provenance, write_result  # noqa: E402

PICKS = 10


def nas(*argv: str) -> tuple[float, str]:
    """Run `nas ARGV` as a user would (the `nas` command beside this Python, on this
    checkout's code) in the repository root; its wall time and output (stops on failure)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = Path(sys.executable).with_name("nas")
    t0 = time.perf_counter()
    done = subprocess.run([str(command), *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"nas {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def export_measured(search: Path, picks: int) -> dict:
    """`nas export --onnx --measure` over the first `picks` front rows, timed."""
    load_before = os.getloadavg()
    seconds, out = nas("export", "--front", str(search.relative_to(ROOT)), "--pick",
                       *map(str, range(picks)), "--onnx", "--measure")
    summary = json.loads((search / "export" / "host_latency.json").read_text())
    print(out.strip().splitlines()[-1])
    print(f"nas export --onnx --measure over {picks} picks: {seconds:.1f} s", flush=True)
    cards = [json.loads(p.read_text()) for p in (search / "export").glob("*.onnx.card.json")]
    return {"picks": picks, "wall_s": seconds, "target_s": 60,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "max_abs_diff": max(c["check"]["max_abs_diff"] for c in cards),
            "size_ratio_max": max(c["check"]["size_ratio"] for c in cards),
            "kendall_tau": summary["kendall_tau"], "kendall_pvalue": summary["kendall_pvalue"],
            "timed": summary["timed"], "rows": summary["rows"]}


def report_in_browser(search: Path, screenshot: Path) -> dict:
    """`nas report`, then the page in Chromium: errors, requests, front points, screenshot."""
    from nas.report import MAX_BYTES
    from nas.report.chromium import Chromium
    seconds, _ = nas("report", str(search.relative_to(ROOT)))
    page_file = search / "report.html"
    with (search / "front.csv").open(newline="") as f:
        rows = len(list(csv.DictReader(f)))
    with Chromium() as browser:
        page = browser.open(page_file, ready="document.body.dataset.rendered")
        drawn = browser.evaluate(
            "(() => { const p = document.getElementById('pareto');"
            " const i = p.data.findIndex(t => t.name.startsWith('Pareto front'));"
            " return p.querySelectorAll('.scatterlayer .trace')[i]"
            ".querySelectorAll('path.point').length; })()")
        browser.screenshot(screenshot)
    result = {"wall_s": seconds, "bytes": page_file.stat().st_size, "max_bytes": MAX_BYTES,
              "console_errors": page.errors, "requests": page.requests,
              "front_rows": rows, "front_points_drawn": drawn,
              "screenshot": str(screenshot.relative_to(ROOT)),
              "screenshot_bytes": screenshot.stat().st_size}
    print(f"report: {result['bytes'] / 1e6:.2f} MB in {seconds:.1f} s; {len(page.errors)} "
          f"console errors; {len(page.requests)} request(s); {drawn} of {rows} front points "
          f"drawn; screenshot {screenshot}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "take_home.json")
    ap.add_argument("--screenshot", type=Path, default=HERE / "report.png")
    args = ap.parse_args(argv)
    from costmodel.simulate import SIMULATOR_VERSION
    prov = provenance(simulator_version=SIMULATOR_VERSION)
    run = Path("runs") / "export-quickstart"        # relative to ROOT, where nas runs
    nas("quickstart", "--out", str(run), "--threads", "1", "--no-progress")
    search = ROOT / run / "search"
    with (search / "front.csv").open(newline="") as f:
        picks = min(PICKS, len(list(csv.DictReader(f))))
    result = {"quickstart": str(run),
              "export": export_measured(search, picks),
              "report": report_in_browser(search, args.screenshot.resolve())}
    write_result(args.out, result, prov)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
