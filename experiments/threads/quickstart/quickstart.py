"""README's main command with default threads vs `--threads 1`, measured in one run.

Issue 9's target: the quickstart on defaults takes at most 1.2x the time of `--threads 1`. Each
pair runs back to back, in fresh output folders, through the installed `nas` entry point (what
README's command runs), on an idle machine and with one core held by a busy process (a test
suite or a second job: where torch's default threads used to stall, 518 s vs 53 s).

    python experiments/threads/quickstart/quickstart.py [--repeats 1] [--nas .venv/bin/nas]

Writes quickstart.json next to itself.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "crossover"))

from crossover import core_held     # noqa: E402  the same busy process as the crossover benchmark
from nas.core.provenance import provenance, write_result  # noqa: E402


def quickstart_seconds(nas: str, extra: list[str]) -> float:
    out = Path(tempfile.mkdtemp(prefix="qs-"))
    try:
        t0 = time.perf_counter()
        subprocess.run([nas, "quickstart", "--out", str(out / "run"), "--no-progress", *extra],
                       check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nas", default=str(Path(sys.executable).with_name("nas")),
                    help="the nas entry point (default: beside this Python)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "quickstart.json")
    args = ap.parse_args()
    prov = provenance()

    rows = []
    for busy in (False, True):
        for rep in range(args.repeats):
            with core_held(busy):
                default = quickstart_seconds(args.nas, [])
                one = quickstart_seconds(args.nas, ["--threads", "1"])
            rows.append({"busy_core": busy, "repeat": rep, "default_s": round(default, 2),
                         "threads1_s": round(one, 2), "ratio": round(default / one, 3)})
            print(rows[-1], flush=True)
    doc = {"target": "default / --threads 1 <= 1.2",
           "runs": rows, "worst_ratio": max(r["ratio"] for r in rows),
           "met": all(r["ratio"] <= 1.2 for r in rows)}
    write_result(args.out, doc, prov)
    print(f"worst ratio {doc['worst_ratio']:.3f} (target <= 1.2): "
          f"{'met' if doc['met'] else 'MISSED'}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
